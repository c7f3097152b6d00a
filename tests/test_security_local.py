"""The security suite against the real reference app: green when healthy, each security fault
caught by its check (and only by the checks it should be), and bad TLS endpoints reported as
one clear failure."""

from __future__ import annotations

from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.conftest import free_port, serving

SECURITY = ("suites/security",)
TLS = ("suites/security/test_tls.py",)
HEADERS = ("suites/security/test_headers.py",)
AUTH = ("suites/security/test_auth.py",)
INPUTS = ("suites/security/test_input_validation.py",)
RATE = ("suites/security/test_rate_limiting.py",)
#: The corpus checks without schemathesis (the faults below are about the corpus' findings).
NOT_FUZZED = ("-k", "not fuzzed")

TRUSTED = "test_certificate_chain_is_valid_and_trusted"
HOSTNAME = "test_certificate_matches_the_hostname"
EXPIRY = "test_certificate_does_not_expire_soon"
PROTOCOLS = "test_no_legacy_protocol_is_accepted"
MOZILLA = "test_tls_configuration_complies_with_mozilla_guidelines"
VULNERABILITIES = "test_no_known_tls_vulnerability"
GRADE = "test_security_headers_grade_meets_the_minimum"
HEADER = "test_security_header_is_set_on_every_response"
COOKIES = "test_cookies_are_secure_httponly_and_samesite"
CORS = "test_an_arbitrary_origin_is_never_trusted_with_credentials"
FORGED = "test_protected_routes_refuse_missing_and_forged_credentials"
IDOR_READ = "test_one_user_cannot_read_another_users_data"
IDOR_WRITE = "test_one_user_cannot_change_another_users_data"
LOGOUT = "test_logout_revokes_both_the_token_and_the_cookie"
TOKEN_EXPIRY = "test_a_token_is_refused_after_its_lifetime"
CSRF = "test_cookie_authenticated_writes_need_the_csrf_token"
SERVER_ERRORS = "test_hostile_input_never_causes_a_server_error"
REFUSED = "test_invalid_input_is_refused_with_a_client_error"
REFLECTED = "test_no_payload_is_reflected_unescaped_in_html"
LEAKS = "test_no_stack_trace_or_error_detail_leaks"
RATE_LIMIT = "test_login_is_rate_limited_with_retry_after"
FUZZ_5XX = "test_fuzzed_requests_never_cause_a_server_error"
FUZZ_SCHEMA = "test_fuzzed_responses_match_the_openapi_document"
#: Only the schemathesis checks.
FUZZED = ("-k", "fuzzed")

REDIRECT = "test_plain_http_redirects_to_https"

#: Faults that break disjoint checks share a release (one deployment and one run per group
#: instead of one per fault): every fault's checks must fail, with a message that names that
#: fault's defect, and every check that no fault of the group touches must still pass.
#: group -> (suites and options, {fault: {check: words its failure message must contain}},
#:           checks that must pass)
GROUPS: dict[str, tuple[tuple[str, ...], dict[str, dict[str, str]], set[str]]] = {
    "transport-cookies-cors-idor-sqli-ratelimit": (
        (*TLS, *HEADERS, *AUTH, *INPUTS, *RATE, *NOT_FUZZED),
        {
            "weak_tls": {
                PROTOCOLS: "accepts TLS 1.0",
                MOZILLA: "TLSv1",
                VULNERABILITIES: "client-initiated renegotiation",
            },
            "insecure_cookies": {COOKIES: "lacks Secure"},
            "cors_reflect_origin": {
                CORS: "Access-Control-Allow-Credentials: true",
                GRADE: "universal-access",
            },
            "idor": {IDOR_READ: "returned the owner's data", IDOR_WRITE: "changed the owner's"},
            "sqli_500": {SERVER_ERRORS: "HTTP 500", LEAKS: "OperationalError"},
            "no_rate_limit": {RATE_LIMIT: "never refused with 429"},
            # platform: the plain-HTTP listener serves instead of redirecting (a stand-in)
            "http_not_redirected": {REDIRECT: "does not redirect to HTTPS"},
        },
        {TRUSTED, HOSTNAME, EXPIRY, HEADER, FORGED, LOGOUT, CSRF, REFLECTED, REFUSED,
         TOKEN_EXPIRY},
    ),
    "expiry-headers-bypass-csrf-xss": (
        (*TLS, *HEADERS, *AUTH, *INPUTS, *RATE, *NOT_FUZZED),
        {
            "cert_expiring": {EXPIRY: "expires in 3.0 days"},
            "missing_security_headers": {
                HEADER: "Content-Security-Policy is missing",
                GRADE: "csp-not-implemented",
            },
            "auth_bypass": {FORGED: "GET /api/learning/progress", LOGOUT: "logged-out token"},
            "csrf_not_enforced": {CSRF: "no X-CSRF-Token"},
            "expiry_ignored": {TOKEN_EXPIRY: "the target accepts expired tokens"},
            "xss_reflected": {REFLECTED: "unescaped in the HTML"},
        },
        {
            TRUSTED, HOSTNAME, PROTOCOLS, MOZILLA, VULNERABILITIES, COOKIES, CORS,
            IDOR_READ, IDOR_WRITE, SERVER_ERRORS, LEAKS, REFUSED, RATE_LIMIT,
        },
    ),
    # each fuzz check can fail: a 500 only generated inputs reach; a response off its schema
    "fuzz-500": (
        (*INPUTS, *FUZZED),
        {"zero_duration_500": {FUZZ_5XX: "POST /api/learning/session"}},
        {FUZZ_SCHEMA},
    ),
    "fuzz-schema": (
        (*INPUTS, *FUZZED),
        {"me_schema_drift": {FUZZ_SCHEMA: "GET /api/auth/me"}},
        {FUZZ_5XX},
    ),
}  # fmt: skip
#: Faults the self-tests simulate outside the app's catalogue (the platform's HTTP listener).
STAND_IN_FAULTS = frozenset({"http_not_redirected"})


def failures(run) -> dict[str, dict]:
    """Failed tests of the run's verdict by test function name (messages of all cases)."""
    found: dict[str, dict] = {}
    for failure in run.target().get("failures", []):
        name = failure["test"].split("::")[-1].split("[")[0]
        merged = found.setdefault(name, {"kind": failure["kind"], "message": ""})
        merged["message"] += failure["message"] + "\n"
        if failure["kind"] != "failed":
            merged["kind"] = failure["kind"]
    return found


def _suites_and_args(spec: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    suites = tuple(part for part in spec if part.startswith("suites/"))
    return suites, tuple(part for part in spec if not part.startswith("suites/"))


def test_a_healthy_release_passes_the_whole_security_suite(local_env, plain_http, monkeypatch):
    local_env.platform.deploy("1.0.0")
    plain_http.location = local_env.url
    monkeypatch.setenv("POSTDEPLOY_LOCAL_HTTP_URL", plain_http.url)
    run = local_env.run(suites=SECURITY)
    assert run.returncode == 0, run.output[-4000:]
    assert run.target()["gate"] == "passed"
    assert not run.failed(), run.output[-4000:]
    assert REDIRECT in run.passed()
    results = local_env.reports_root / f"run-{local_env.runs}" / "allure-results"
    attachments = [path.read_text(errors="replace") for path in results.glob("*-attachment*")]
    assert any('"server_location"' in text for text in attachments), "no sslyze JSON attached"


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_each_security_fault_is_caught_by_its_check(local_env, plain_http, monkeypatch, group):
    spec, caught_by, must_pass = GROUPS[group]
    suites, args = _suites_and_args(spec)
    app_faults = sorted(set(caught_by) - STAND_IN_FAULTS)
    local_env.platform.deploy("1.1.0", app_faults)
    plain_http.location = "" if "http_not_redirected" in caught_by else local_env.url
    monkeypatch.setenv("POSTDEPLOY_LOCAL_HTTP_URL", plain_http.url)
    run = local_env.run(*args, suites=suites)
    recorded = failures(run)
    for fault, checks in caught_by.items():
        for check, words in checks.items():
            assert check in recorded, f"{fault} not caught by {check}\n{run.output[-4000:]}"
            assert recorded[check]["kind"] == "failed", f"{check} broken: {recorded[check]}"
            assert words in recorded[check]["message"], (
                f"{check} failed, but not for {fault} ({words!r}): {recorded[check]['message']}"
            )
    assert must_pass <= run.passed(), f"collateral: {must_pass - run.passed()}"
    gating_failed = any(f["gating"] and f["kind"] == "failed" for f in run.target()["failures"])
    assert gating_failed or group == "fuzz-schema"  # only the schema check does not gate
    assert run.target()["gate"] == ("failed" if gating_failed else "passed")


def test_every_security_fault_of_the_catalogue_has_a_self_test():
    from postdeploy.local.platform import load_faults

    covered = {fault for _, caught_by, _ in GROUPS.values() for fault in caught_by}
    security = {"weak_tls", "cert_expiring", "missing_security_headers", "insecure_cookies",
                "cors_reflect_origin", "auth_bypass", "idor", "sqli_500", "xss_reflected",
                "no_rate_limit", "csrf_not_enforced", "zero_duration_500", "expiry_ignored",
                "me_schema_drift"}  # fmt: skip
    assert security <= set(load_faults())
    assert security <= covered


def test_an_unreachable_tls_port_is_one_clear_failure_per_check(local_env):
    local_env.platform.deploy("1.0.0")
    run = local_env.run("--base-url", f"https://127.0.0.1:{free_port()}", suites=TLS)
    assert run.returncode == 1
    assert run.target()["gate"] == "failed"
    recorded = failures(run)
    assert {TRUSTED, HOSTNAME, EXPIRY, PROTOCOLS, MOZILLA, VULNERABILITIES} <= set(recorded)
    messages = {failure["message"].splitlines()[0] for failure in recorded.values()}
    assert all("unreachable" in message for message in messages), messages
    assert {failure["kind"] for failure in recorded.values()} == {"failed"}
    assert "Traceback" not in run.output


class _PlainHttp(BaseHTTPRequestHandler):
    """The platform's plain-HTTP listener (a stand-in): redirects to ``location`` if set."""

    location = ""
    url = ""

    def do_GET(self) -> None:
        if self.location:
            self.send_response(301)
            self.send_header("Location", self.location + self.path)
        else:
            self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def plain_http() -> Iterator[type[_PlainHttp]]:
    """A stand-in of the platform's plain-HTTP listener; set ``location`` to redirect."""
    handler = type("Handler", (_PlainHttp,), {"location": "", "url": ""})
    with serving(ThreadingHTTPServer(("127.0.0.1", 0), handler)) as url:
        handler.url = url
        yield handler
