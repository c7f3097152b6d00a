"""The HTTP Observatory grading: modifiers, extra credit, letter chart, per-header requirements."""

from __future__ import annotations

import pytest

from postdeploy.security import headers as obs
from postdeploy.security.headers import Headers, Observation

#: The reference app's headers (fixtures/learning_assistant/security.py).
GOOD_HEADERS = {
    "Content-Type": "text/html; charset=utf-8",
    "Strict-Transport-Security": "max-age=63072000; includeSubDomains",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "strict-origin-when-cross-origin",
}
GOOD_COOKIE = "la_session=abc; HttpOnly; Max-Age=3600; Path=/; SameSite=lax; Secure"
PAGE = '<html><head><script src="/static/app.js" defer></script></head></html>'
SIX_MONTHS = obs.SIX_MONTHS_S


def observe(headers=None, cookies=(GOOD_COOKIE,), cors=None, redirects=None, **changes):
    base = {name.lower(): value for name, value in GOOD_HEADERS.items()}
    for name, value in changes.items():
        key = name.replace("_", "-")
        if value is None:
            base.pop(key, None)
        else:
            base[key] = value
    return Observation(
        url="https://app.example/",
        headers=Headers(headers if headers is not None else base),
        body=PAGE,
        set_cookies=list(cookies),
        cors_origin="https://evil.example",
        cors_headers=Headers(cors or {}),
        redirects=redirects,
    )


def expectation(graded, test):
    return next(r.expectation for r in graded.results if r.test == test)


def test_the_reference_headers_get_an_a_plus_with_extra_credit():
    graded = obs.grade(observe())
    # 100 + CSP no unsafe (5) + cookies with SameSite (5) + referrer private (5) + XFO via CSP (5)
    assert (graded.score, graded.grade) == (120, "A+")
    assert not graded.deductions()


@pytest.mark.parametrize(
    ("score", "grade"),
    [(135, "A+"), (100, "A+"), (99, "A"), (90, "A"), (89, "A-"), (84, "B+"), (79, "B"),
     (70, "B"), (69, "B-"), (64, "C+"), (50, "C"), (49, "C-"), (44, "D+"), (30, "D"),
     (29, "D-"), (25, "D-"), (24, "F"), (0, "F"), (-20, "F")],
)  # fmt: skip
def test_letter_grades_follow_the_observatory_chart(score, grade):
    assert obs.grade_for(score) == grade


def test_missing_headers_cost_what_the_observatory_charges():
    graded = obs.grade(
        observe(
            content_security_policy=None,
            strict_transport_security=None,
            x_content_type_options=None,
            x_frame_options=None,
            referrer_policy=None,
        )
    )
    # -25 CSP, -20 HSTS, -5 nosniff, -20 XFO; bonuses (cookies +5) only count from 90 up
    assert graded.score == 30
    assert graded.grade == "D"
    assert [r.modifier for r in graded.deductions()] == [-25, -20, -20, -5]


def test_bonuses_count_only_when_the_score_without_them_is_an_a():
    graded = obs.grade(observe(x_content_type_options=None, strict_transport_security="max-age=60"))
    # -5 and -10 give 85 without bonuses: below 90, so the +20 of bonuses are not added
    assert graded.score == 85
    assert graded.grade == "A-"


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("default-src 'none'", "csp-implemented-with-no-unsafe-default-src-none"),
        ("default-src 'self'", "csp-implemented-with-no-unsafe"),
        ("default-src 'self'; script-src 'self' 'unsafe-inline'",
         "csp-implemented-with-unsafe-inline"),
        ("default-src 'self'; script-src 'self' 'nonce-abc' 'unsafe-inline'",
         "csp-implemented-with-no-unsafe"),
        ("default-src 'self'; script-src 'self' 'unsafe-eval'",
         "csp-implemented-with-unsafe-eval"),
        ("default-src 'self'; style-src 'self' 'unsafe-inline'",
         "csp-implemented-with-unsafe-inline-in-style-src-only"),
        ("default-src 'self'; script-src https:", "csp-implemented-with-unsafe-inline"),
        ("default-src 'self'; script-src http://cdn.example",
         "csp-implemented-with-insecure-scheme"),
        ("default-src 'self'; object-src 'none'; connect-src http://api.example",
         "csp-implemented-with-insecure-scheme"),
        ("default-src 'self'; img-src http://img.example",
         "csp-implemented-with-insecure-scheme-in-passive-content-only"),
        ("script-src 'self'", "csp-implemented-with-unsafe-inline"),
        ("default-src 'self'; bad_directive! x", "csp-header-invalid"),
    ],
)  # fmt: skip
def test_content_security_policy_expectations(policy, expected):
    result, _ = obs.csp_test(observe(content_security_policy=policy))
    assert result.expectation == expected


@pytest.mark.parametrize(
    ("cookie", "expected"),
    [
        (GOOD_COOKIE, "cookies-secure-with-httponly-sessions-and-samesite"),
        ("la_session=a; Secure; HttpOnly", "cookies-secure-with-httponly-sessions"),
        ("la_session=a; HttpOnly; SameSite=Lax",
         "cookies-session-without-secure-flag-but-protected-by-hsts"),
        ("la_session=a; Secure; SameSite=Lax", "cookies-session-without-httponly-flag"),
        ("theme=dark; SameSite=Lax", "cookies-without-secure-flag-but-protected-by-hsts"),
        ("la_session=a; Secure; HttpOnly; SameSite=Sometimes", "cookies-samesite-flag-invalid"),
        ("csrftoken=a; Secure", "cookies-anticsrf-without-samesite-flag"),
    ],
)  # fmt: skip
def test_cookie_expectations(cookie, expected):
    assert expectation(obs.grade(observe(cookies=[cookie])), "cookies") == expected


def test_session_cookie_without_secure_and_without_hsts_is_the_worst():
    graded = obs.grade(observe(strict_transport_security=None, cookies=["la_session=a"]))
    assert expectation(graded, "cookies") == "cookies-session-without-secure-flag"


def test_a_reflected_origin_with_credentials_costs_fifty_points():
    cors = {
        "Access-Control-Allow-Origin": "https://evil.example",
        "Access-Control-Allow-Credentials": "true",
    }
    graded = obs.grade(observe(cors=cors))
    assert expectation(graded, "cross-origin-resource-sharing").endswith("universal-access")
    assert graded.score == 50
    public = obs.grade(observe(cors={"Access-Control-Allow-Origin": "*"}))
    assert expectation(public, "cross-origin-resource-sharing").endswith("public-access")


@pytest.mark.parametrize(
    ("chain", "expected"),
    [
        (None, "redirection-not-needed-no-http"),
        (["http://app.example/"], "redirection-missing"),
        (["http://app.example/", "https://app.example/"], "redirection-to-https"),
        (["http://app.example/", "https://www.app.example/"], "redirection-off-host-from-http"),
        (["http://app.example/", "http://www.app.example/", "https://www.app.example/"],
         "redirection-not-to-https-on-initial-redirection"),
        (["http://app.example/", "http://www.app.example/"], "redirection-not-to-https"),
    ],
)  # fmt: skip
def test_redirection_expectations(chain, expected):
    assert obs.redirection_test(observe(redirects=chain)).expectation == expected


def test_external_scripts_without_integrity_cost_points():
    observation = observe()
    observation.body = '<script src="https://cdn.example/lib.js"></script>'
    assert obs.sri_test(observation).modifier == -5
    observation.body = '<script src="http://cdn.example/lib.js"></script>'
    assert obs.sri_test(observation).modifier == -50
    observation.body = '<script src="https://cdn.example/lib.js" integrity="sha384-x"></script>'
    assert obs.sri_test(observation).modifier == 5


def test_referrer_policy_and_corp():
    assert obs.referrer_policy_test(observe(referrer_policy="unsafe-url")).modifier == -5
    assert obs.referrer_policy_test(observe(referrer_policy="no-referrer, bogus")).modifier == 5
    assert obs.referrer_policy_test(observe(referrer_policy="bogus")).modifier == -5
    assert obs.corp_test(observe(cross_origin_resource_policy="same-origin")).modifier == 10
    assert obs.corp_test(observe(cross_origin_resource_policy="nope")).modifier == -5


def test_grades_compare_and_bad_grades_are_named():
    assert obs.meets("A+", "B")
    assert obs.meets("b", "B")
    assert not obs.meets("B-", "B")
    with pytest.raises(obs.GradeError, match="'E' is not a grade; use one of A\\+, A, A-"):
        obs.check_grade("E")


def test_the_reference_headers_meet_every_requirement():
    headers = Headers(GOOD_HEADERS)
    assert {name: check(headers, SIX_MONTHS) for name, check in obs.REQUIREMENTS.items()} == {
        name: None for name in obs.REQUIREMENTS
    }


@pytest.mark.parametrize(
    ("requirement", "headers", "message"),
    [
        ("Content-Security-Policy", {}, "Content-Security-Policy is missing"),
        ("Content-Security-Policy",
         {"Content-Security-Policy": "script-src 'self' 'unsafe-inline'"},
         "allows 'unsafe-inline' in script sources"),
        ("Content-Security-Policy", {"Content-Security-Policy": "default-src *"},
         "allows scripts from anywhere"),
        ("Strict-Transport-Security", {"Strict-Transport-Security": "max-age=86400"},
         "max-age=86400 is shorter than 15552000 s"),
        ("Strict-Transport-Security", {"Strict-Transport-Security": "includeSubDomains"},
         "has no valid max-age"),
        ("X-Content-Type-Options", {"X-Content-Type-Options": "sniff"}, "not 'nosniff'"),
        ("X-Frame-Options or frame-ancestors", {"Content-Security-Policy": "frame-ancestors *"},
         "framing is not denied"),
        ("Referrer-Policy", {"Referrer-Policy": "unsafe-url"}, "leaks URLs"),
        ("Server and X-Powered-By", {"Server": "uvicorn/0.29.0"}, "uvicorn/0.29.0"),
        ("Server and X-Powered-By", {"X-Powered-By": "PHP/8.2.1"}, "PHP/8.2.1"),
    ],
)  # fmt: skip
def test_each_requirement_names_what_is_wrong(requirement, headers, message):
    problem = obs.REQUIREMENTS[requirement](Headers(headers), SIX_MONTHS)
    assert problem is not None
    assert message in problem


def test_a_server_header_without_a_version_is_fine():
    assert obs.require_no_version_banner(Headers({"Server": "nginx"}), SIX_MONTHS) is None


def test_cookie_problems_list_every_missing_attribute():
    assert obs.cookie_problems("la_session=a") == [
        "cookie 'la_session' lacks Secure",
        "session cookie 'la_session' lacks HttpOnly",
        "cookie 'la_session' lacks SameSite",
    ]
    assert obs.cookie_problems("theme=dark; Secure; SameSite=None") == []
    assert obs.cookie_problems(GOOD_COOKIE) == []


def test_httponly_applies_to_the_contract_s_session_cookie_by_name_and_to_auth_routes():
    # a session cookie whose name gives no hint is still the contract's session cookie
    assert obs.cookie_problems("auth=t; Secure; SameSite=Lax") == []
    assert obs.cookie_problems("auth=t; Secure; SameSite=Lax", session_cookie="auth") == [
        "session cookie 'auth' lacks HttpOnly"
    ]
    # any cookie an auth route sets carries the login, whatever its name
    assert obs.cookie_problems("id=1; Secure; SameSite=Lax", from_auth_route=True) == [
        "cookie set by an auth route 'id' lacks HttpOnly"
    ]
    assert obs.cookie_problems("id=1; Secure; HttpOnly; SameSite=Lax", from_auth_route=True) == []
