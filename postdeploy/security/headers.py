"""Headers, cookies and CORS graded the way the MDN HTTP Observatory grades a site.

Every site starts at 100. Each of the Observatory's tests (CSP, cookies, CORS, redirection,
Referrer-Policy, HSTS, subresource integrity, X-Content-Type-Options, X-Frame-Options,
Cross-Origin-Resource-Policy) contributes one modifier from the Observatory's score table;
bonuses only count when the score without them is already 90 (an A) or more; the letter grade
comes from the score rounded down to a multiple of 5. The modifiers and the letter chart are
the ones of the MDN HTTP Observatory (mdn/mdn-http-observatory, ``src/grader/charts.js``).

Differences from the hosted Observatory, all because postdeploy sees one deployment and not
the public web: the HSTS preload list is not consulted (no +5 for preloading); ``<meta
http-equiv>`` policies are not read (headers only); cookies are those of the graded page and of
the login response (the Observatory only sees the page's); redirection is graded from the
target's configured ``http_url`` (none configured counts as "no plain-HTTP listener", 0).

The same parsing also answers the per-header requirements (:data:`REQUIREMENTS`) that the
security suite reports one by one, naming the header and the URL.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlsplit

# -- the Observatory's tables ---------------------------------------------------------------

#: Lowest score of each grade, best first.
GRADE_CHART: tuple[tuple[int, str], ...] = (
    (100, "A+"),
    (90, "A"),
    (85, "A-"),
    (80, "B+"),
    (70, "B"),
    (65, "B-"),
    (60, "C+"),
    (50, "C"),
    (45, "C-"),
    (40, "D+"),
    (30, "D"),
    (25, "D-"),
    (0, "F"),
)
GRADES = tuple(grade for _, grade in GRADE_CHART)
BASELINE_SCORE = 100
MINIMUM_SCORE_FOR_EXTRA_CREDIT = 90
SCORE_STEP = 5
#: Longest redirect chain followed from a plain-HTTP URL.
MAX_REDIRECTS = 5

#: expectation -> (modifier, what it means)
SCORE_TABLE: dict[str, tuple[int, str]] = {
    # Content Security Policy
    "csp-implemented-with-no-unsafe-default-src-none": (
        10,
        "CSP with default-src 'none' and no 'unsafe-inline'/'unsafe-eval'",
    ),
    "csp-implemented-with-no-unsafe": (5, "CSP without 'unsafe-inline' or 'unsafe-eval'"),
    "csp-implemented-with-unsafe-inline-in-style-src-only": (
        0,
        "CSP with unsafe sources only in style-src",
    ),
    "csp-implemented-with-insecure-scheme-in-passive-content-only": (
        -10,
        "CSP allows images or media over http",
    ),
    "csp-implemented-with-unsafe-eval": (-10, "CSP allows 'unsafe-eval'"),
    "csp-implemented-with-unsafe-inline": (
        -20,
        "CSP allows 'unsafe-inline', data: or overly broad sources in script-src/object-src, "
        "or does not restrict them",
    ),
    "csp-implemented-with-insecure-scheme": (-20, "CSP allows resources over http"),
    "csp-header-invalid": (-25, "Content-Security-Policy cannot be parsed"),
    "csp-not-implemented": (-25, "Content-Security-Policy header not implemented"),
    # Cookies
    "cookies-secure-with-httponly-sessions-and-samesite": (
        5,
        "all cookies Secure, session cookies HttpOnly, SameSite set",
    ),
    "cookies-secure-with-httponly-sessions": (
        0,
        "all cookies Secure and session cookies HttpOnly, but SameSite missing",
    ),
    "cookies-not-found": (0, "no cookies"),
    "cookies-without-secure-flag-but-protected-by-hsts": (
        -5,
        "cookies without Secure, transmission over http prevented by HSTS",
    ),
    "cookies-session-without-secure-flag-but-protected-by-hsts": (
        -10,
        "session cookie without Secure, transmission over http prevented by HSTS",
    ),
    "cookies-without-secure-flag": (-20, "cookies without the Secure flag"),
    "cookies-samesite-flag-invalid": (-20, "SameSite set to something other than Strict or Lax"),
    "cookies-anticsrf-without-samesite-flag": (-20, "anti-CSRF cookie without SameSite"),
    "cookies-session-without-httponly-flag": (-30, "session cookie without HttpOnly"),
    "cookies-session-without-secure-flag": (-40, "session cookie without Secure"),
    # Cross-origin resource sharing
    "cross-origin-resource-sharing-not-implemented": (0, "content not visible through CORS"),
    "cross-origin-resource-sharing-implemented-with-public-access": (
        0,
        "public content visible through CORS (Access-Control-Allow-Origin: *)",
    ),
    "cross-origin-resource-sharing-implemented-with-restricted-access": (
        0,
        "content visible through CORS to specific origins only",
    ),
    "cross-origin-resource-sharing-implemented-with-universal-access": (
        -50,
        "any origin is reflected with Access-Control-Allow-Credentials: true",
    ),
    # Redirection
    "redirection-to-https": (0, "plain HTTP redirects to HTTPS on the same host first"),
    "redirection-not-needed-no-http": (0, "no plain-HTTP listener, so no redirection needed"),
    "redirection-off-host-from-http": (-5, "the first redirection from http goes to another host"),
    "redirection-not-to-https-on-initial-redirection": (
        -10,
        "reaches https eventually, but first redirects to another http URL",
    ),
    "redirection-not-to-https": (-20, "redirects, but not to an https URL"),
    "redirection-missing": (-20, "plain HTTP does not redirect to HTTPS"),
    "redirection-invalid-cert": (-20, "invalid certificate during redirection"),
    # Referrer-Policy
    "referrer-policy-private": (5, "Referrer-Policy keeps URLs private"),
    "referrer-policy-not-implemented": (0, "Referrer-Policy header not implemented"),
    "referrer-policy-unsafe": (-5, "Referrer-Policy leaks URLs (unsafe value)"),
    "referrer-policy-header-invalid": (-5, "Referrer-Policy cannot be recognized"),
    # Strict-Transport-Security
    "hsts-implemented-max-age-at-least-six-months": (0, "HSTS max-age of at least six months"),
    "hsts-implemented-max-age-less-than-six-months": (-10, "HSTS max-age under six months"),
    "hsts-not-implemented": (-20, "Strict-Transport-Security header not implemented"),
    "hsts-header-invalid": (-20, "Strict-Transport-Security cannot be recognized"),
    "hsts-not-implemented-no-https": (-20, "HSTS cannot be set without https"),
    "hsts-invalid-cert": (-20, "HSTS cannot work with an invalid certificate chain"),
    # Subresource integrity
    "sri-implemented-and-all-scripts-loaded-securely": (
        5,
        "SRI implemented and all scripts loaded from a similar origin",
    ),
    "sri-implemented-and-external-scripts-loaded-securely": (
        5,
        "SRI implemented and all scripts loaded securely",
    ),
    "sri-not-implemented-response-not-html": (0, "not an HTML response"),
    "sri-not-implemented-but-no-scripts-loaded": (0, "no script tags"),
    "sri-not-implemented-but-all-scripts-loaded-from-secure-origin": (
        0,
        "no SRI, but all scripts come from a similar origin",
    ),
    "sri-not-implemented-but-external-scripts-loaded-securely": (
        -5,
        "no SRI on external scripts loaded over https",
    ),
    "sri-implemented-but-external-scripts-not-loaded-securely": (
        -20,
        "SRI implemented, but external scripts loaded over http",
    ),
    "sri-not-implemented-and-external-scripts-not-loaded-securely": (
        -50,
        "no SRI and external scripts loaded over http",
    ),
    # X-Content-Type-Options
    "x-content-type-options-nosniff": (0, "X-Content-Type-Options: nosniff"),
    "x-content-type-options-not-implemented": (-5, "X-Content-Type-Options not implemented"),
    "x-content-type-options-header-invalid": (-5, "X-Content-Type-Options cannot be recognized"),
    # X-Frame-Options
    "x-frame-options-implemented-via-csp": (5, "framing controlled by CSP frame-ancestors"),
    "x-frame-options-sameorigin-or-deny": (0, "X-Frame-Options SAMEORIGIN or DENY"),
    "x-frame-options-allow-from-origin": (0, "X-Frame-Options ALLOW-FROM"),
    "x-frame-options-not-implemented": (-20, "X-Frame-Options not implemented"),
    "x-frame-options-header-invalid": (-20, "X-Frame-Options cannot be recognized"),
    # Cross-Origin-Resource-Policy
    "cross-origin-resource-policy-not-implemented": (0, "CORP not implemented"),
    "cross-origin-resource-policy-implemented-with-same-origin": (10, "CORP same-origin"),
    "cross-origin-resource-policy-implemented-with-same-site": (10, "CORP same-site"),
    "cross-origin-resource-policy-implemented-with-cross-origin": (0, "CORP cross-origin"),
    "cross-origin-resource-policy-header-invalid": (-5, "CORP cannot be recognized"),
}

#: HSTS max-age the Observatory accepts as six months (it tolerates 180 days).
SIX_MONTHS_S = 15_552_000
DANGEROUSLY_BROAD = frozenset(
    {"ftp:", "http:", "https:", "*", "http://*", "http://*.*", "https://*", "https://*.*"}
)
UNSAFE_INLINE = frozenset({"'unsafe-inline'", "data:"})
NONCE_OR_HASH = ("'sha256-", "'sha384-", "'sha512-", "'nonce-")
PASSIVE_DIRECTIVES = ("img-src", "media-src")
PRIVATE_REFERRER_POLICIES = frozenset(
    {"no-referrer", "same-origin", "strict-origin", "strict-origin-when-cross-origin"}
)
UNSAFE_REFERRER_POLICIES = frozenset(
    {"origin", "origin-when-cross-origin", "unsafe-url", "no-referrer-when-downgrade"}
)
SESSION_COOKIE_HINTS = ("login", "sess")
CSRF_COOKIE_HINT = "csrf"
VALID_SAMESITE = frozenset({"lax", "strict", "none"})
#: A version number in a header value: "uvicorn/0.29", "Python 3.11.7", "Apache/2.4".
VERSION_PATTERN = re.compile(r"\d+\.\d+|/\s*\d")
BANNER_HEADERS = ("Server", "X-Powered-By", "X-AspNet-Version", "X-AspNetMvc-Version")


class GradeError(ValueError):
    """A grade that is not on the Observatory's chart."""


def check_grade(grade: str) -> str:
    """``grade`` normalised (``"b+"`` -> ``"B+"``); GradeError names the valid grades."""
    normalised = grade.strip().upper()
    if normalised not in GRADES:
        raise GradeError(f"{grade!r} is not a grade; use one of {', '.join(GRADES)}")
    return normalised


def meets(grade: str, minimum: str) -> bool:
    """Is ``grade`` at least as good as ``minimum``?"""
    return GRADES.index(check_grade(grade)) <= GRADES.index(check_grade(minimum))


def grade_for(score: int) -> str:
    rounded = min(max(score, 0) - max(score, 0) % SCORE_STEP, BASELINE_SCORE)
    return next(grade for lowest, grade in GRADE_CHART if rounded >= lowest)


# -- what is graded -------------------------------------------------------------------------


class Headers:
    """Case-insensitive, multi-valued response headers, independent of any HTTP client."""

    def __init__(self, items: Sequence[tuple[str, str]] | Mapping[str, str] = ()) -> None:
        pairs = list(items.items()) if isinstance(items, Mapping) else list(items)
        self._items = [(name.lower(), value) for name, value in pairs]

    def get_all(self, name: str) -> list[str]:
        wanted = name.lower()
        return [value for key, value in self._items if key == wanted]

    def get(self, name: str) -> str | None:
        values = self.get_all(name)
        return values[0] if values else None


@dataclass
class Observation:
    """What the grader looks at: one page, the cookies set around it, a CORS probe, redirects.

    ``redirects`` is the chain of ``Location`` URLs followed from the target's plain-HTTP URL
    (``http_url`` first); ``None`` when the target has no plain-HTTP URL configured.
    """

    url: str
    headers: Headers
    body: str = ""
    set_cookies: list[str] = field(default_factory=list)
    cors_origin: str | None = None
    cors_headers: Headers | None = None
    redirects: list[str] | None = None
    certificate_valid: bool = True

    @property
    def https(self) -> bool:
        return urlsplit(self.url).scheme == "https"

    @property
    def content_type(self) -> str:
        return (self.headers.get("content-type") or "").lower()


@dataclass(frozen=True)
class TestResult:
    """One Observatory test: the expectation it reached and what that is worth."""

    test: str
    expectation: str
    passed: bool

    @property
    def modifier(self) -> int:
        return SCORE_TABLE[self.expectation][0]

    @property
    def description(self) -> str:
        return SCORE_TABLE[self.expectation][1]


@dataclass(frozen=True)
class Grade:
    url: str
    score: int
    grade: str
    results: tuple[TestResult, ...]

    def deductions(self) -> list[TestResult]:
        return sorted((r for r in self.results if r.modifier < 0), key=lambda r: r.modifier)

    def describe(self) -> str:
        lines = [f"{self.grade} ({self.score}/100) for {self.url}"]
        lines += [
            f"  [{r.modifier:+d}] {r.test}: {r.expectation} - {r.description}"
            for r in sorted(self.results, key=lambda r: r.modifier)
            if r.modifier
        ]
        return "\n".join(lines)


# -- Content-Security-Policy ----------------------------------------------------------------

Policy = dict[str, set[str]]


class CspError(ValueError):
    """The policy cannot be parsed."""


def parse_csp(values: Sequence[str]) -> Policy:
    """Directives -> sources of the policies in ``values`` (several headers enforce all)."""
    policy: Policy = {}
    for header in values:
        for one in header.split(","):
            seen: set[str] = set()
            for part in one.split(";"):
                tokens = part.strip().split()
                if not tokens:
                    continue
                directive = tokens[0].lower()
                if not re.fullmatch(r"[a-z0-9-]+", directive):
                    raise CspError(f"invalid directive name {tokens[0]!r}")
                if directive in seen:
                    continue  # browsers ignore a repeated directive within one policy
                seen.add(directive)
                sources = {t.lower() if t.startswith("'") else t for t in tokens[1:]}
                if directive in policy:
                    # Several policies are all enforced; keep the strictest sources seen first.
                    continue
                policy[directive] = sources or {"'none'"}
    return policy


def _effective(policy: Policy, directive: str, fallback: str = "default-src") -> set[str]:
    return set(policy.get(directive) or policy.get(fallback) or {"*"})


def _without_nonce_neutralised_inline(sources: set[str]) -> set[str]:
    if any(s.startswith(NONCE_OR_HASH) for s in sources):
        return sources - {"'unsafe-inline'"}
    return sources


def csp_test(observation: Observation) -> tuple[TestResult, Policy | None]:
    name = "content-security-policy"
    values = observation.headers.get_all("content-security-policy")
    if not values:
        return TestResult(name, "csp-not-implemented", False), None
    try:
        policy = parse_csp(values)
    except CspError:
        return TestResult(name, "csp-header-invalid", False), None
    if not policy:
        return TestResult(name, "csp-not-implemented", False), None
    script = _without_nonce_neutralised_inline(_effective(policy, "script-src"))
    style = _without_nonce_neutralised_inline(_effective(policy, "style-src"))
    objects = _effective(policy, "object-src")
    if any(s.startswith(NONCE_OR_HASH) for s in script) and "'strict-dynamic'" in script:
        script = {
            s
            for s in script
            if not (s.startswith(tuple(DANGEROUSLY_BROAD)) or s in ("'self'", "'unsafe-inline'"))
        }
    active_sources = [
        source
        for directive, sources in policy.items()
        if directive not in (*PASSIVE_DIRECTIVES, "script-src")
        for source in sources
    ] + sorted(script)
    passive_sources = [s for d in PASSIVE_DIRECTIVES for s in _effective(policy, d, "default-src")]
    https = observation.https
    if script & (DANGEROUSLY_BROAD | UNSAFE_INLINE) or objects & DANGEROUSLY_BROAD:
        expectation = "csp-implemented-with-unsafe-inline"
    elif https and any(s.startswith(("http:", "ftp:")) for s in active_sources):
        expectation = "csp-implemented-with-insecure-scheme"
    elif "'unsafe-eval'" in script | style:
        expectation = "csp-implemented-with-unsafe-eval"
    elif https and any(s.startswith(("http:", "ftp:")) for s in passive_sources):
        expectation = "csp-implemented-with-insecure-scheme-in-passive-content-only"
    elif style & (DANGEROUSLY_BROAD | UNSAFE_INLINE):
        expectation = "csp-implemented-with-unsafe-inline-in-style-src-only"
    elif policy.get("default-src") == {"'none'"}:
        expectation = "csp-implemented-with-no-unsafe-default-src-none"
    else:
        expectation = "csp-implemented-with-no-unsafe"
    passed = expectation in (
        "csp-implemented-with-no-unsafe",
        "csp-implemented-with-no-unsafe-default-src-none",
        "csp-implemented-with-unsafe-inline-in-style-src-only",
        "csp-implemented-with-insecure-scheme-in-passive-content-only",
    )
    return TestResult(name, expectation, passed), policy


# -- the other tests ------------------------------------------------------------------------


@dataclass(frozen=True)
class Cookie:
    name: str
    secure: bool
    httponly: bool
    samesite: str | None

    @property
    def is_session(self) -> bool:
        return any(hint in self.name.lower() for hint in SESSION_COOKIE_HINTS)

    @property
    def is_anticsrf(self) -> bool:
        return CSRF_COOKIE_HINT in self.name.lower()


def parse_set_cookie(header: str) -> Cookie | None:
    """The attributes that matter of one ``Set-Cookie`` value (None if it is not a cookie)."""
    first, _, rest = header.partition(";")
    name = first.split("=", 1)[0].strip()
    if not name:
        return None
    attributes: dict[str, str] = {}
    for part in rest.split(";"):
        key, _, value = part.strip().partition("=")
        if key:
            attributes[key.strip().lower()] = value.strip()
    with_value = "samesite" in attributes
    return Cookie(
        name=name,
        secure="secure" in attributes,
        httponly="httponly" in attributes,
        samesite=attributes.get("samesite", "") if with_value else None,
    )


def cookies(set_cookies: Sequence[str]) -> list[Cookie]:
    parsed = [parse_set_cookie(header) for header in set_cookies]
    return [cookie for cookie in parsed if cookie is not None]


#: Cookie expectations from best to worst (the worst one found wins).
_COOKIE_BADNESS = (
    "cookies-without-secure-flag-but-protected-by-hsts",
    "cookies-without-secure-flag",
    "cookies-session-without-secure-flag-but-protected-by-hsts",
    "cookies-samesite-flag-invalid",
    "cookies-anticsrf-without-samesite-flag",
    "cookies-session-without-httponly-flag",
    "cookies-session-without-secure-flag",
)


def cookies_test(observation: Observation, hsts_passed: bool) -> TestResult:
    name = "cookies"
    found = cookies(observation.set_cookies)
    if not found:
        return TestResult(name, "cookies-not-found", True)
    worst = -1

    def worse(expectation: str) -> None:
        nonlocal worst
        worst = max(worst, _COOKIE_BADNESS.index(expectation))

    missing_samesite = False
    for cookie in found:
        samesite = (cookie.samesite or "").lower()
        if cookie.samesite is not None and samesite not in VALID_SAMESITE:
            worse("cookies-samesite-flag-invalid")
        if not cookie.secure and samesite == "none":
            worse("cookies-samesite-flag-invalid")
        if not cookie.secure:
            worse(
                "cookies-without-secure-flag-but-protected-by-hsts"
                if hsts_passed
                else "cookies-without-secure-flag"
            )
        if cookie.is_anticsrf and not samesite:
            worse("cookies-anticsrf-without-samesite-flag")
        if cookie.is_session and not cookie.secure:
            worse(
                "cookies-session-without-secure-flag-but-protected-by-hsts"
                if hsts_passed
                else "cookies-session-without-secure-flag"
            )
        if cookie.is_session and not cookie.httponly:
            worse("cookies-session-without-httponly-flag")
        missing_samesite = missing_samesite or not samesite
    if worst >= 0:
        return TestResult(name, _COOKIE_BADNESS[worst], False)
    if missing_samesite:
        return TestResult(name, "cookies-secure-with-httponly-sessions", True)
    return TestResult(name, "cookies-secure-with-httponly-sessions-and-samesite", True)


def cors_test(observation: Observation) -> TestResult:
    name = "cross-origin-resource-sharing"
    headers = observation.cors_headers
    allow_origin = headers.get("access-control-allow-origin") if headers else None
    if headers is None or not allow_origin:
        return TestResult(name, "cross-origin-resource-sharing-not-implemented", True)
    allow_origin = allow_origin.strip()
    credentials = (headers.get("access-control-allow-credentials") or "").strip().lower()
    if allow_origin == "*":
        return TestResult(
            name, "cross-origin-resource-sharing-implemented-with-public-access", True
        )
    if allow_origin == observation.cors_origin and credentials == "true":
        return TestResult(
            name, "cross-origin-resource-sharing-implemented-with-universal-access", False
        )
    return TestResult(
        name, "cross-origin-resource-sharing-implemented-with-restricted-access", True
    )


def redirection_test(observation: Observation) -> TestResult:
    name = "redirection"
    chain = observation.redirects
    if chain is None:
        return TestResult(name, "redirection-not-needed-no-http", True)
    if len(chain) < 2:
        return TestResult(name, "redirection-missing", False)
    start, first, final = urlsplit(chain[0]), urlsplit(chain[1]), urlsplit(chain[-1])
    if final.scheme != "https":
        return TestResult(name, "redirection-not-to-https", False)
    if first.scheme != "https":
        return TestResult(name, "redirection-not-to-https-on-initial-redirection", False)
    if first.hostname != start.hostname:
        return TestResult(name, "redirection-off-host-from-http", False)
    return TestResult(name, "redirection-to-https", True)


def referrer_policy_test(observation: Observation) -> TestResult:
    name = "referrer-policy"
    values = observation.headers.get_all("referrer-policy")
    if not values:
        return TestResult(name, "referrer-policy-not-implemented", True)
    known = PRIVATE_REFERRER_POLICIES | UNSAFE_REFERRER_POLICIES
    tokens = [t.strip().lower() for t in ",".join(values).split(",")]
    valid = [t for t in tokens if t in known]
    policy = valid[-1] if valid else ""
    if policy in PRIVATE_REFERRER_POLICIES:
        return TestResult(name, "referrer-policy-private", True)
    if policy in UNSAFE_REFERRER_POLICIES:
        return TestResult(name, "referrer-policy-unsafe", False)
    return TestResult(name, "referrer-policy-header-invalid", False)


def hsts_max_age(value: str) -> int | None:
    """``max-age`` of a Strict-Transport-Security value; None when it cannot be recognized."""
    if "," in value:
        return None  # the header was sent more than once
    for parameter in value.split(";"):
        key, _, number = parameter.strip().lower().partition("=")
        if key == "max-age":
            number = number.strip().strip('"')
            return int(number) if number.isdecimal() else None
    return None


def hsts_test(observation: Observation) -> TestResult:
    name = "strict-transport-security"
    if not observation.https:
        return TestResult(name, "hsts-not-implemented-no-https", False)
    if not observation.certificate_valid:
        return TestResult(name, "hsts-invalid-cert", False)
    values = observation.headers.get_all("strict-transport-security")
    if not values:
        return TestResult(name, "hsts-not-implemented", False)
    max_age = hsts_max_age(values[0])
    if max_age is None:
        return TestResult(name, "hsts-header-invalid", False)
    if max_age < SIX_MONTHS_S:
        return TestResult(name, "hsts-implemented-max-age-less-than-six-months", False)
    return TestResult(name, "hsts-implemented-max-age-at-least-six-months", True)


class _ScriptCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.scripts: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script":
            self.scripts.append(dict(attrs))


def sri_test(observation: Observation) -> TestResult:
    name = "subresource-integrity"
    if "html" not in observation.content_type:
        return TestResult(name, "sri-not-implemented-response-not-html", True)
    collector = _ScriptCollector()
    collector.feed(observation.body)
    sources = [s for s in collector.scripts if s.get("src")]
    if not sources:
        return TestResult(name, "sri-not-implemented-but-no-scripts-loaded", True)
    page = urlsplit(observation.url)
    external = []
    for script in sources:
        src = urlsplit(str(script["src"]))
        same_origin = not src.netloc or (src.hostname == page.hostname and src.scheme)
        if not same_origin or str(script["src"]).startswith("//"):
            external.append(script)
    with_integrity = all(s.get("integrity") for s in sources)
    insecure = any(
        str(s["src"]).startswith("//") or urlsplit(str(s["src"])).scheme == "http" for s in external
    )
    if not external:
        if with_integrity:
            return TestResult(name, "sri-implemented-and-all-scripts-loaded-securely", True)
        return TestResult(
            name, "sri-not-implemented-but-all-scripts-loaded-from-secure-origin", True
        )
    external_integrity = all(s.get("integrity") for s in external)
    if external_integrity:
        if insecure:
            return TestResult(
                name, "sri-implemented-but-external-scripts-not-loaded-securely", False
            )
        return TestResult(name, "sri-implemented-and-external-scripts-loaded-securely", True)
    if insecure:
        return TestResult(
            name, "sri-not-implemented-and-external-scripts-not-loaded-securely", False
        )
    return TestResult(name, "sri-not-implemented-but-external-scripts-loaded-securely", False)


def x_content_type_options_test(observation: Observation) -> TestResult:
    name = "x-content-type-options"
    value = observation.headers.get("x-content-type-options")
    if value is None:
        return TestResult(name, "x-content-type-options-not-implemented", False)
    if value.strip().lower() == "nosniff":
        return TestResult(name, "x-content-type-options-nosniff", True)
    return TestResult(name, "x-content-type-options-header-invalid", False)


def x_frame_options_test(observation: Observation, policy: Policy | None) -> TestResult:
    name = "x-frame-options"
    if policy is not None and "frame-ancestors" in policy:
        return TestResult(name, "x-frame-options-implemented-via-csp", True)
    value = observation.headers.get("x-frame-options")
    if value is None:
        return TestResult(name, "x-frame-options-not-implemented", False)
    value = value.strip().lower()
    if value in ("deny", "sameorigin"):
        return TestResult(name, "x-frame-options-sameorigin-or-deny", True)
    if value.startswith("allow-from"):
        return TestResult(name, "x-frame-options-allow-from-origin", True)
    return TestResult(name, "x-frame-options-header-invalid", False)


def corp_test(observation: Observation) -> TestResult:
    name = "cross-origin-resource-policy"
    value = observation.headers.get("cross-origin-resource-policy")
    if value is None:
        return TestResult(name, "cross-origin-resource-policy-not-implemented", True)
    expectation = {
        "same-site": "cross-origin-resource-policy-implemented-with-same-site",
        "same-origin": "cross-origin-resource-policy-implemented-with-same-origin",
        "cross-origin": "cross-origin-resource-policy-implemented-with-cross-origin",
    }.get(value.strip().lower(), "cross-origin-resource-policy-header-invalid")
    return TestResult(name, expectation, not expectation.endswith("invalid"))


def grade(observation: Observation) -> Grade:
    """Score and letter grade of ``observation``, the way the Observatory computes them."""
    csp, policy = csp_test(observation)
    hsts = hsts_test(observation)
    results = (
        csp,
        cookies_test(observation, hsts.passed),
        cors_test(observation),
        redirection_test(observation),
        referrer_policy_test(observation),
        hsts,
        sri_test(observation),
        x_content_type_options_test(observation),
        x_frame_options_test(observation, policy),
        corp_test(observation),
    )
    with_extra_credit = BASELINE_SCORE + sum(r.modifier for r in results)
    uncurved = BASELINE_SCORE + sum(r.modifier for r in results if r.modifier < 0)
    score = with_extra_credit if uncurved >= MINIMUM_SCORE_FOR_EXTRA_CREDIT else uncurved
    score = max(score, 0)
    return Grade(observation.url, score, grade_for(score), results)


# -- per-header requirements ------------------------------------------------------------------

#: A requirement looks at one response's headers and returns its problem, or None.
Requirement = Callable[[Headers, int], str | None]


def require_csp(headers: Headers, hsts_min_age_s: int) -> str | None:
    values = headers.get_all("content-security-policy")
    if not values:
        return "Content-Security-Policy is missing"
    try:
        policy = parse_csp(values)
    except CspError as exc:
        return f"Content-Security-Policy cannot be parsed ({exc})"
    script = _without_nonce_neutralised_inline(_effective(policy, "script-src"))
    unsafe = sorted(script & {"'unsafe-inline'", "'unsafe-eval'"})
    if unsafe:
        return f"Content-Security-Policy allows {' and '.join(unsafe)} in script sources"
    broad = sorted(script & DANGEROUSLY_BROAD)
    if broad:
        return f"Content-Security-Policy allows scripts from anywhere ({', '.join(broad)})"
    return None


def require_hsts(headers: Headers, hsts_min_age_s: int) -> str | None:
    value = headers.get("strict-transport-security")
    if value is None:
        return "Strict-Transport-Security is missing"
    max_age = hsts_max_age(value)
    if max_age is None:
        return f"Strict-Transport-Security {value!r} has no valid max-age"
    if max_age < hsts_min_age_s:
        return (
            f"Strict-Transport-Security max-age={max_age} is shorter than {hsts_min_age_s} s "
            "(six months)"
        )
    return None


def require_nosniff(headers: Headers, hsts_min_age_s: int) -> str | None:
    value = headers.get("x-content-type-options")
    if value is None:
        return "X-Content-Type-Options is missing"
    if value.strip().lower() != "nosniff":
        return f"X-Content-Type-Options is {value!r}, not 'nosniff'"
    return None


def require_framing_denied(headers: Headers, hsts_min_age_s: int) -> str | None:
    try:
        policy = parse_csp(headers.get_all("content-security-policy"))
    except CspError:
        policy = {}
    ancestors = policy.get("frame-ancestors")
    if ancestors is not None and not ancestors & DANGEROUSLY_BROAD:
        return None
    value = (headers.get("x-frame-options") or "").strip().lower()
    if value in ("deny", "sameorigin"):
        return None
    return "framing is not denied: no X-Frame-Options DENY/SAMEORIGIN or CSP frame-ancestors"


def require_referrer_policy(headers: Headers, hsts_min_age_s: int) -> str | None:
    values = headers.get_all("referrer-policy")
    if not values:
        return "Referrer-Policy is missing"
    tokens = [t.strip().lower() for t in ",".join(values).split(",")]
    valid = [t for t in tokens if t in PRIVATE_REFERRER_POLICIES | UNSAFE_REFERRER_POLICIES]
    if not valid or valid[-1] not in PRIVATE_REFERRER_POLICIES:
        return f"Referrer-Policy {', '.join(values)!r} leaks URLs to other sites"
    return None


def require_no_version_banner(headers: Headers, hsts_min_age_s: int) -> str | None:
    revealing = [
        f"{name}: {value}"
        for name in BANNER_HEADERS
        for value in headers.get_all(name)
        if VERSION_PATTERN.search(value)
    ]
    return f"reveals software versions ({'; '.join(revealing)})" if revealing else None


#: Header requirement name -> check; each is its own test case in the suite.
REQUIREMENTS: dict[str, Requirement] = {
    "Content-Security-Policy": require_csp,
    "Strict-Transport-Security": require_hsts,
    "X-Content-Type-Options": require_nosniff,
    "X-Frame-Options or frame-ancestors": require_framing_denied,
    "Referrer-Policy": require_referrer_policy,
    "Server and X-Powered-By": require_no_version_banner,
}


def cookie_problems(
    set_cookie: str, *, session_cookie: str = "", from_auth_route: bool = False
) -> list[str]:
    """What is missing from one ``Set-Cookie``: Secure, SameSite, and HttpOnly for a cookie
    that carries a session - the contract's session cookie by name (``session_cookie``),
    every cookie an auth route sets (``from_auth_route``: login, register, logout), and any
    cookie whose name says so."""
    cookie = parse_set_cookie(set_cookie)
    if cookie is None:
        return []
    problems = []
    if not cookie.secure:
        problems.append(f"cookie {cookie.name!r} lacks Secure")
    named = bool(session_cookie) and cookie.name == session_cookie
    if (named or from_auth_route or cookie.is_session) and not cookie.httponly:
        what = "session cookie" if named or cookie.is_session else "cookie set by an auth route"
        problems.append(f"{what} {cookie.name!r} lacks HttpOnly")
    samesite = (cookie.samesite or "").lower()
    if not samesite:
        problems.append(f"cookie {cookie.name!r} lacks SameSite")
    elif samesite not in VALID_SAMESITE:
        problems.append(f"cookie {cookie.name!r} has an invalid SameSite={cookie.samesite}")
    elif samesite == "none" and not cookie.secure:
        problems.append(f"cookie {cookie.name!r} is SameSite=None without Secure")
    return problems


def redirect_chain(client: Any, url: str, max_redirects: int = MAX_REDIRECTS) -> list[str]:
    """The URLs visited from plain-HTTP ``url`` following redirects (``client``: httpx)."""
    chain = [url]
    while len(chain) <= max_redirects:
        response = client.get(chain[-1], follow_redirects=False)
        location = response.headers.get("location")
        if not response.is_redirect or not location:
            break
        chain.append(str(response.url.join(location)))
        if urlsplit(chain[-1]).scheme == "https":
            break
    return chain
