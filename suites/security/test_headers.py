"""Security validation - all security headers present; cookies and CORS safe.

The site is graded the way the MDN HTTP Observatory grades it (``security.min_grade``,
default B), and each requirement is also its own check against every sampled response, so a
missing header fails with its name and every URL that lacks it.
"""

from __future__ import annotations

import secrets

import pytest

from postdeploy.contract import PATHS, SESSION_COOKIE
from postdeploy.expect import expect_status
from postdeploy.reporting.attachments import attach_text
from postdeploy.security.headers import (
    REQUIREMENTS,
    GradeError,
    Headers,
    Observation,
    check_grade,
    cookie_problems,
    grade,
    meets,
    parse_set_cookie,
    redirect_chain,
)

#: Answers probed with a foreign Origin: a page, public JSON, and private JSON (as a user).
CORS_PATHS = (PATHS.page_home, PATHS.health, PATHS.me, PATHS.progress)
#: Methods a preflight asks about.
PREFLIGHT_METHODS = ("POST", "PUT", "DELETE")


def _foreign_origin() -> str:
    return f"https://postdeploy-probe-{secrets.token_hex(4)}.example"


def _minimum_grade(target) -> str:
    try:
        return check_grade(target.security.min_grade)
    except GradeError as exc:
        raise GradeError(
            f"{target.source}: [targets.{target.name}.security] min_grade: {exc}"
        ) from None


def test_security_headers_grade_meets_the_minimum(target, api, new_user):
    minimum = _minimum_grade(target)
    home = api.get(PATHS.page_home)
    expect_status(home, 200, what="loading the home page to grade it")
    user = new_user()
    login = api.post(PATHS.login, json=user.credentials)
    api.cookies.clear()
    expect_status(login, 200, what="logging in to grade the session cookie")
    origin = _foreign_origin()
    cors = api.get(PATHS.page_home, headers={"Origin": origin})
    redirects = None
    if target.http_url:
        redirects = redirect_chain(api, target.http_url)
    observation = Observation(
        url=str(home.url),
        headers=Headers(home.headers.multi_items()),
        body=home.text,
        set_cookies=home.headers.get_list("set-cookie") + login.headers.get_list("set-cookie"),
        cors_origin=origin,
        cors_headers=Headers(cors.headers.multi_items()),
        redirects=redirects,
    )
    result = grade(observation)
    attach_text("HTTP Observatory grade", result.describe())
    assert meets(result.grade, minimum), (
        f"security headers grade {result.grade} ({result.score}/100) is below the minimum "
        f"{minimum}:\n{result.describe()}"
    )


@pytest.mark.parametrize("requirement", list(REQUIREMENTS))
def test_security_header_is_set_on_every_response(requirement, header_samples, target):
    check = REQUIREMENTS[requirement]
    min_age = int(target.security.hsts_min_age_s)
    problems = [
        f"{sample.url} (HTTP {sample.status}): {problem}"
        for sample in header_samples
        if (problem := check(sample.headers, min_age))
    ]
    assert not problems, f"{requirement}: {len(problems)} response(s) fail:\n" + "\n".join(problems)


def test_cookies_are_secure_httponly_and_samesite(api, new_user, header_samples):
    """Log in and inspect every cookie set: the session cookie above all."""
    user = new_user()
    login = api.post(PATHS.login, json=user.credentials)
    api.cookies.clear()
    expect_status(login, 200, what="logging in to inspect the session cookie")
    set_by_login = login.headers.get_list("set-cookie")
    names = [cookie.name for h in set_by_login if (cookie := parse_set_cookie(h))]
    assert SESSION_COOKIE in names, (
        f"POST {PATHS.login} set no {SESSION_COOKIE!r} cookie (cookies set: {names or 'none'})"
    )
    problems = [
        f"POST {login.url}: {p}"
        for header in set_by_login
        for p in cookie_problems(header, session_cookie=SESSION_COOKIE, from_auth_route=True)
    ]
    problems += [
        f"GET {sample.url}: {p}"
        for sample in header_samples
        for header in sample.set_cookies
        for p in cookie_problems(header, session_cookie=SESSION_COOKIE)
    ]
    assert not problems, "\n".join(problems)


def test_an_arbitrary_origin_is_never_trusted_with_credentials(api, user):
    """A foreign (or ``null``) Origin is never echoed with Access-Control-Allow-Credentials."""
    problems = []
    for origin in (_foreign_origin(), "null"):
        for path in CORS_PATHS:
            response = api.get(path, headers={**user.auth, "Origin": origin})
            problems += _reflections(response, origin)
        for method in PREFLIGHT_METHODS:
            preflight = api.options(
                PATHS.profile,
                headers={
                    "Origin": origin,
                    "Access-Control-Request-Method": method,
                    "Access-Control-Request-Headers": "authorization, content-type",
                },
            )
            problems += _reflections(preflight, origin)
    assert not problems, "\n".join(problems)


def _reflections(response, origin: str) -> list[str]:
    allowed = (response.headers.get("access-control-allow-origin") or "").strip()
    credentials = (response.headers.get("access-control-allow-credentials") or "").strip()
    if allowed == origin and credentials.lower() == "true":
        return [
            f"{response.request.method} {response.url}: Origin {origin!r} is echoed in "
            "Access-Control-Allow-Origin together with Access-Control-Allow-Credentials: true "
            "(any site can read this user's answers)"
        ]
    return []
