"""Deploy-misconfiguration checks (issue 15): the judges on their own, then the checks against
the real reference app - green when healthy, each fault caught by its check with kind
``failed`` and a message naming the defect, the gating ones gating, and gating configurable
per target."""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

import httpx
import pytest

from postdeploy.security import caching, exposure, listing, methods, mixed_content, redirects
from postdeploy.security.gating import DEPLOY_CHECKS, GatingConfigError, gating_checks
from postdeploy.security.host_header import HostProbe, reflection_problem
from tests.conftest import serving
from tests.test_security_local import failures

BASE = "https://app.example:8443"
OWN = redirects.origin_of(BASE)
FOREIGN = "evil.example"

# -- open redirects ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"), list(redirects.spellings(FOREIGN, "app.example:8443").items())
)
def test_every_bypass_spelling_leaves_the_site_in_a_browser(name, value):
    # an encoded spelling leaves the site once an app decodes it a second time
    seen = unquote(value) if "encoded" in name else value
    assert redirects.browser_destination(f"{BASE}/continue", seen).host == FOREIGN, value


@pytest.mark.parametrize(
    "location",
    ["/dashboard", "dashboard", "/lessons/1?next=//x", "https:dashboard", f"{BASE}/x",
     "/%2F%2Fevil.example", "/%5Cevil.example", "?next=1"],
)  # fmt: skip
def test_paths_on_the_site_stay_on_the_site(location):
    assert redirects.browser_destination(f"{BASE}/continue", location) == OWN


@pytest.mark.parametrize("location", ["https://app.example/", "http://app.example:8443/"])
def test_another_port_or_scheme_is_another_origin(location):
    assert redirects.browser_destination(f"{BASE}/continue", location) != OWN


def _response(
    status: int, headers: dict[str, str], url: str = f"{BASE}/continue"
) -> httpx.Response:
    return httpx.Response(status, headers=headers, request=httpx.Request("GET", url))


def test_a_refresh_header_to_another_site_is_an_open_redirect():
    probe = redirects.Probe("/continue", "next", "absolute https URL", f"https://{FOREIGN}/")
    answer = _response(200, {"Refresh": f"0; url=https://{FOREIGN}/"})
    problem = redirects.foreign_redirect(probe, answer, OWN)
    assert problem is not None
    assert "Refresh" in problem
    assert "open redirect to https://evil.example" in problem


def test_an_injected_header_is_reported_and_an_encoded_location_is_not():
    probe = redirects.Probe("/continue", "next", "raw CR LF", "/\r\nX-Postdeploy-Injected: t0k")
    injected = _response(303, {"Location": "/", "X-Postdeploy-Injected": "t0k"})
    problem = redirects.injected_header(probe, injected, "t0k")
    assert problem is not None
    assert "CR LF header injection" in problem
    encoded = _response(303, {"Location": "/%0D%0AX-Postdeploy-Injected:%20t0k"})
    assert redirects.injected_header(probe, encoded, "t0k") is None


# -- exposed files -------------------------------------------------------------------------

INDEX_HTML = b"<!doctype html><html><head><title>App</title></head><body>app</body></html>"
LIVE_JS = b"// app.js\n" + b"document.addEventListener('DOMContentLoaded', start);\n" * 3


def _client(handler) -> httpx.Client:
    return httpx.Client(base_url=BASE, transport=httpx.MockTransport(handler))


def test_a_catch_all_page_answering_200_everywhere_is_not_an_exposed_file():
    with _client(lambda request: httpx.Response(200, content=INDEX_HTML)) as client:
        candidates = exposure.exposures(client, ("/static/app.js", "/app.py"), True)
        assert exposure.exposed(client, candidates) == []


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/.env", b"# comment\nSECRET_KEY=abc\nexport DEBUG=1\n"),
        ("/.git/config", b"[core]\n\tbare = false\n"),
        ("/.git/HEAD", b"ref: refs/heads/main\n"),
        ("/.git/HEAD", b"0123456789abcdef0123456789abcdef01234567\n"),
        ("/.DS_Store", b"\x00\x00\x00\x01Bud1\x00\x00"),
        ("/server-status", b"<html><h1>Apache Server Status for x</h1></html>"),
        ("/static/app.js~", LIVE_JS),
        ("/static/.app.js.swp", LIVE_JS),
        ("/main.py.orig", b"import os\n\ndef main():\n    pass\n"),
        ("/static/app.js.map", b'{"version": 3, "sources": ["a.ts"], "mappings": "AAAA"}'),
    ],
)
def test_a_file_served_with_its_own_content_is_reported(path, body):
    def serve(request: httpx.Request) -> httpx.Response:
        if request.url.path == path:
            return httpx.Response(200, content=body)
        if request.url.path == "/static/app.js":
            return httpx.Response(200, content=LIVE_JS)
        return httpx.Response(404)

    with _client(serve) as client:
        candidates = exposure.exposures(client, ("/static/app.js", "/main.py"), True)
        found = exposure.exposed(client, candidates)
    assert [e.path for e, _ in found] == [path]
    assert path in found[0][1]
    assert "SECRET_KEY=abc" not in found[0][1]  # what the file holds is never quoted


def test_source_maps_are_probed_only_when_the_target_says_they_are_private():
    with _client(lambda request: httpx.Response(404)) as client:
        public = {e.path for e in exposure.exposures(client, ("/static/app.js",), False)}
        private = {e.path for e in exposure.exposures(client, ("/static/app.js",), True)}
    assert private - public == {"/static/app.js.map"}


# -- HTTP methods, listing, mixed content, Host --------------------------------------------


def test_a_405_without_allow_and_a_500_are_both_reported():
    def serve(request: httpx.Request) -> httpx.Response:
        return httpx.Response(405 if request.url.path == "/a" else 500)

    with _client(serve) as client:
        problems = methods.unexpected_method_problems(
            client, [("/a", frozenset({"GET"})), ("/b", frozenset({"GET"}))]
        )
    assert "without the Allow header" in problems[0]
    assert "HTTP 500" in problems[1]
    assert "breaks on a method" in problems[1]


@pytest.mark.parametrize(
    "page",
    [
        "<html><head><title>Index of /static/</title></head></html>",
        "<title>Directory listing for /static/</title>",
        "<pre>[To Parent Directory]</pre>",
    ],
)
def test_directory_listings_of_common_servers_are_recognised(page):
    with _client(lambda request: httpx.Response(200, text=page)) as client:
        assert listing.listing_problems(client, ("/static/",))


def test_mixed_content_is_found_in_subresources_but_not_in_links():
    page = """<html><head><link rel="canonical" href="http://a.example/">
    <link rel="stylesheet" href="http://cdn.example/x.css"></head><body>
    <a href="http://other.example/">a link is navigation</a>
    <img srcset="/a.png 1x, http://cdn.example/b.png 2x">
    <div style="background: url('http://cdn.example/bg.png')"></div>
    <form action="http://app.example/login"></form><script src="https://ok.example/a.js"></script>
    </body></html>"""
    found = mixed_content.insecure_subresources(page)
    assert len(found) == 4, found
    assert not any("other.example" in item or "canonical" in item for item in found)


def test_the_foreign_host_is_found_in_headers_and_bodies():
    probe = HostProbe("/", "X-Forwarded-Host", "pd-host.example")
    moved = _response(302, {"Location": "https://pd-host.example/login"})
    assert "Location" in (reflection_problem(probe, moved) or "")
    page = httpx.Response(200, text='<a href="https://pd-host.example/x">', request=moved.request)
    assert "in its body" in (reflection_problem(probe, page) or "")
    assert reflection_problem(probe, _response(200, {"Location": "/login"})) is None


# -- private caching (RFC 9111) ------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "storable"),
    [
        ({"Cache-Control": "no-store"}, False),
        ({"Cache-Control": "private, max-age=60"}, False),
        ({"Cache-Control": "no-cache, no-store, must-revalidate"}, False),
        ({"Cache-Control": "max-age=0", "Vary": "*"}, False),
        ({"Cache-Control": "public, max-age=300"}, True),
        ({"Cache-Control": "s-maxage=60, private"}, True),
        ({"Cache-Control": 'private="Set-Cookie", max-age=60'}, True),
        ({"Cache-Control": "max-age=60", "Vary": "Authorization, Cookie"}, True),
        ({"Expires": "Thu, 01 Jan 2099 00:00:00 GMT"}, True),
        ({"Pragma": "no-cache"}, True),
        ({}, True),
    ],
)
def test_shared_cache_storability_follows_rfc_9111(headers, storable):
    reason = caching.shared_cache_storable(httpx.Headers(headers))
    assert (reason is not None) == storable, (headers, reason)


def test_another_users_answer_through_the_edge_is_reported():
    answer = _response(200, {"Age": "12"}, url=f"{BASE}/api/auth/me")
    answer = httpx.Response(
        200, headers={"Age": "12"}, json={"email": "a@x.example"}, request=answer.request
    )
    problem = caching.someone_elses_answer(answer, "the second user", {"the first": "a@x.example"})
    assert problem is not None
    assert "the first's data (Age: 12" in problem


# -- gating per target ---------------------------------------------------------------------


@dataclass
class _Target:
    security: object
    name: str = "t"
    source: str = "targets.toml"


def test_gating_checks_accept_a_list_or_a_string_and_name_unknown_classes():
    assert gating_checks(_Target(_Section("open_redirect, host_header"))) == {
        "open_redirect",
        "host_header",
    }
    with pytest.raises(GatingConfigError, match=r"unknown check class 'redirects'.*open_redirect"):
        gating_checks(_Target(_Section(["redirects"])))  # type: ignore[arg-type]


@dataclass
class _Section:
    gating_checks: object


def test_the_default_gating_classes_are_the_issues_four():
    from postdeploy.config import SECTIONS

    default = SECTIONS["security"]["gating_checks"].default
    assert set(default.split(",")) == {
        "open_redirect",
        "exposed_files",
        "debug_pages",
        "private_caching",
    }
    assert set(default.split(",")) <= set(DEPLOY_CHECKS)


# -- against the reference app -------------------------------------------------------------

DEPLOY_SUITES = tuple(
    f"suites/security/test_{name}.py"
    for name in (
        "redirects", "exposure", "debug", "methods", "host_header", "caching", "listing",
        "mixed_content",
    )
)  # fmt: skip

REDIRECT = "test_redirect_parameters_never_send_users_to_another_site"
CRLF = "test_a_crlf_in_a_redirect_target_never_adds_a_header"
SECRETS = "test_no_secret_repository_or_backup_file_is_served"
INFORMATION = "test_no_folder_index_status_page_or_private_source_map_is_served"
DEBUG = "test_a_forced_error_shows_no_debug_page_or_stack_trace"
CONSOLE = "test_no_interactive_api_console_is_served"
OPENAPI = "test_the_openapi_document_is_not_served_when_private"
TRACE = "test_trace_and_track_are_refused"
METHOD_405 = "test_unexpected_methods_are_answered_405_with_allow"
HOST = "test_a_foreign_host_header_never_reaches_urls_or_links"
PRIVATE = "test_a_users_data_is_never_storable_by_a_shared_cache"
EDGE = "test_the_edge_never_serves_one_users_answer_to_another"
LISTING = "test_static_folders_are_not_listed"
MIXED = "test_https_pages_load_no_subresource_over_http"
ALWAYS_RUN = {REDIRECT, CRLF, SECRETS, INFORMATION, DEBUG, CONSOLE, TRACE, METHOD_405, HOST,
              PRIVATE, LISTING, MIXED}  # fmt: skip

#: Faults that break disjoint checks share a release: group -> ({fault: {check: words}},
#: whether the gate fails with the default gating classes).
GROUPS: dict[str, tuple[dict[str, dict[str, str]], bool]] = {
    "gating": (
        {
            "open_redirect": {REDIRECT: "open redirect to https://postdeploy-redirect-"},
            "secrets_exposed": {
                SECRETS: "/.env answered HTTP 200",
                INFORMATION: "/.DS_Store answered HTTP 200",
            },
            "debug_mode": {DEBUG: "Starlette Debugger"},
            "private_cacheable": {PRIVATE: "Cache-Control: public, max-age=300 lets any shared"},
            "directory_listing": {LISTING: "/static/ answered HTTP 200 with a directory listing"},
        },
        True,
    ),
    "non-gating": (
        {
            "api_console_exposed": {CONSOLE: "/docs answered HTTP 200 with an interactive API"},
            "http_methods_open": {
                TRACE: "TRACE is enabled and echoes",
                METHOD_405: "PATCH https://127.0.0.1",
            },
            "host_header_trusted": {HOST: "Location: https://postdeploy-host-"},
            "mixed_content": {MIXED: "http://cdn.learning.example/theme.css"},
        },
        False,
    ),
}


def _caught(run, caught_by: dict[str, dict[str, str]]) -> None:
    recorded = failures(run)
    for fault, checks in caught_by.items():
        for check, words in checks.items():
            assert check in recorded, f"{fault} not caught by {check}\n{run.output[-4000:]}"
            assert recorded[check]["kind"] == "failed", f"{check} broken: {recorded[check]}"
            assert words in recorded[check]["message"], (
                f"{check} failed, but not for {fault} ({words!r}): {recorded[check]['message']}"
            )


def test_a_healthy_release_passes_every_deploy_check(local_env):
    local_env.platform.deploy("1.0.0")
    run = local_env.run("-rs", suites=DEPLOY_SUITES)
    assert run.returncode == 0, run.output[-4000:]
    assert run.target()["gate"] == "passed"
    assert not run.failed(), run.output[-4000:]
    assert run.passed() >= ALWAYS_RUN, f"not passed: {ALWAYS_RUN - run.passed()}"
    assert "security.edge = false" in run.output  # the edge check says why it did not run


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_each_deploy_fault_is_caught_by_its_check(local_env, group):
    caught_by, gates = GROUPS[group]
    local_env.platform.deploy("1.1.0", sorted(caught_by))
    run = local_env.run(suites=DEPLOY_SUITES)
    _caught(run, caught_by)
    touched = {check for checks in caught_by.values() for check in checks}
    assert ALWAYS_RUN - touched <= run.passed(), (
        f"collateral: {ALWAYS_RUN - touched - run.passed()}"
    )
    assert run.target()["gate"] == ("failed" if gates else "passed"), run.target()


def test_gating_is_configurable_per_target(local_env, monkeypatch):
    local_env.platform.deploy("1.1.0", ["host_header_trusted"])
    monkeypatch.setenv("POSTDEPLOY_LOCAL_SECURITY_GATING_CHECKS", "host_header")
    run = local_env.run("-m", "gating", suites=DEPLOY_SUITES)
    _caught(run, {"host_header_trusted": {HOST: "with Location: https://postdeploy-host-"}})
    assert run.target()["gate"] == "failed"
    assert REDIRECT not in run.outcomes  # no longer gating for this target: not selected


def test_an_unknown_gating_class_is_a_usage_error_naming_the_valid_ones(local_env, monkeypatch):
    monkeypatch.setenv("POSTDEPLOY_LOCAL_SECURITY_GATING_CHECKS", "open_redirect,redirects")
    run = local_env.run(suites=DEPLOY_SUITES[:1])
    assert run.returncode == pytest.ExitCode.USAGE_ERROR, run.output[-2000:]
    assert "gating_checks: unknown check class 'redirects'" in run.output
    assert "valid classes: open_redirect" in run.output


def test_a_private_openapi_document_is_caught_when_served(local_env, monkeypatch):
    local_env.platform.deploy("1.0.0")
    monkeypatch.setenv("POSTDEPLOY_LOCAL_SECURITY_OPENAPI_PUBLIC", "false")
    run = local_env.run("-k", "openapi", suites=("suites/security/test_debug.py",))
    _caught(run, {"(target setting)": {OPENAPI: "/openapi.json answered HTTP 200 with the"}})
    assert run.target()["gate"] != "failed"


def test_every_deploy_fault_of_the_catalogue_has_a_self_test():
    from postdeploy.local.platform import load_faults

    covered = {fault for caught_by, _ in GROUPS.values() for fault in caught_by}
    issue_15 = {"open_redirect", "secrets_exposed", "debug_mode", "api_console_exposed",
                "http_methods_open", "host_header_trusted", "private_cacheable",
                "directory_listing", "mixed_content"}  # fmt: skip
    assert issue_15 <= set(load_faults())
    assert issue_15 <= covered


# -- the two-client check through a caching edge (a stand-in until the production shape) ----


class _CachingEdge(BaseHTTPRequestHandler):
    """A stand-in of a caching edge in front of the app (plain HTTP on loopback).

    It caches the way nginx's ``proxy_cache`` does when told to honour the upstream's headers:
    the key is the request URI alone (``$scheme$proxy_host$request_uri``), a 200 is stored
    when Cache-Control allows a shared cache (public, s-maxage or max-age, without private or
    no-store) and sets no cookie, and a stored answer is served with an ``Age`` header.
    """

    upstream: httpx.Client
    cache: dict[str, tuple[int, list[tuple[str, str]], bytes, float]]
    lock: threading.Lock
    HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length",
                            "content-encoding"})  # fmt: skip

    def do_GET(self) -> None:
        stored = self.cache.get(self.path)
        if stored is not None:
            status, headers, body, at = stored
            self._answer(status, [*headers, ("Age", str(int(time.time() - at)))], body)
            return
        response = self._upstream("GET", b"")
        headers = [(k, v) for k, v in response.headers.multi_items()
                   if k.lower() not in self.HOP_BY_HOP]  # fmt: skip
        control = response.headers.get("cache-control", "").lower()
        shared = ("public" in control or "max-age" in control) and not (
            "private" in control or "no-store" in control or "set-cookie" in response.headers
        )
        if response.status_code == 200 and shared:
            self.cache[self.path] = (200, headers, response.content, time.time())
        self._answer(response.status_code, headers, response.content)

    def _forward(self) -> None:
        """Any other method goes through uncached."""
        length = int(self.headers.get("content-length") or 0)
        response = self._upstream(self.command, self.rfile.read(length))
        headers = [(k, v) for k, v in response.headers.multi_items()
                   if k.lower() not in self.HOP_BY_HOP]  # fmt: skip
        self._answer(response.status_code, headers, response.content)

    do_POST = do_PUT = do_DELETE = _forward

    def _upstream(self, method: str, body: bytes) -> httpx.Response:
        """The request as the client sent it: no cookie of an earlier client is kept."""
        sent = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
        with self.lock:
            self.upstream.cookies.clear()
            return self.upstream.request(method, self.path, headers=sent, content=body)

    def _answer(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def caching_edge(local_env) -> Iterator[str]:
    """The URL of a caching edge stand-in in front of ``local_env``'s deployment."""
    context = ssl.create_default_context(cafile=str(local_env.platform.ca_file))
    upstream = httpx.Client(base_url=local_env.url, verify=context, timeout=10)
    handler = type(
        "Edge", (_CachingEdge,), {"upstream": upstream, "cache": {}, "lock": threading.Lock()}
    )
    with serving(ThreadingHTTPServer(("127.0.0.1", 0), handler)) as url:
        yield url
    upstream.close()


EDGE_TARGETS = """
[targets.edge]
platform = "command"
url = "{url}"
rollback_command = "true"
description = "the local deployment behind a caching edge stand-in"

[targets.edge.security]
edge = true
"""


@pytest.mark.parametrize("release", ["healthy", "private_cacheable"])
def test_the_edge_check_catches_one_users_answer_served_to_another(
    local_env, caching_edge, tmp_path, release
):
    faults = [] if release == "healthy" else [release]
    local_env.platform.deploy("1.0.0" if release == "healthy" else "1.1.0", faults)
    targets = tmp_path / "targets.toml"
    targets.write_text(EDGE_TARGETS.format(url=caching_edge))
    run = local_env.run(
        "--targets-file", str(targets), "--target", "edge", "-k", "edge",
        suites=("suites/security/test_caching.py",),
    )  # fmt: skip
    if release == "healthy":
        assert EDGE in run.passed(), run.output[-4000:]
        return
    recorded = failures(_AsTarget(run, "edge"))
    assert recorded[EDGE]["kind"] == "failed", recorded
    message = recorded[EDGE]["message"]
    assert "the edge served one user's answer to another" in message, message
    assert "Age: " in message


@dataclass
class _AsTarget:
    """A run whose verdict is read for another target than ``local``."""

    run: object
    name: str

    def target(self) -> dict:
        return self.run.target(self.name)  # type: ignore[attr-defined]
