"""The sslyze scan against real TLS servers: a closed port, a server that does not speak TLS
and a certificate for another host each give one clear problem, never an exception."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from postdeploy.config import load_targets
from postdeploy.local import certs
from postdeploy.local.tls_profiles import INTERMEDIATE_CIPHERS
from postdeploy.security import tls
from postdeploy.sysutil import free_port
from tests.conftest import serving

#: Network timeouts: short where the server is meant to fail, roomier where every probe must
#: get its answer on a busy machine.
FAILING_TIMEOUT_S = 1.0
TIMEOUT_S = 5.0
CHECKS = (
    tls.trust_problems,
    tls.hostname_problems,
    tls.protocol_problems,
    tls.mozilla_problems,
    tls.vulnerability_problems,
)


class _Quiet(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # sslyze's probes break handshakes on purpose


class _TlsServer(_QuietServer):
    """Handshakes in each connection's own thread, as a real server does."""

    context: ssl.SSLContext

    def finish_request(self, request: socket.socket, client_address: object) -> None:
        try:
            wrapped = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        super().finish_request(wrapped, client_address)  # type: ignore[arg-type]


def _serve(server: ThreadingHTTPServer) -> Iterator[int]:
    with serving(server):
        yield server.server_address[1]


@pytest.fixture(scope="module")
def plaintext_port() -> Iterator[int]:
    """A server that answers plain HTTP where TLS is expected."""
    yield from _serve(_QuietServer(("127.0.0.1", 0), _Quiet))


@pytest.fixture(scope="module")
def other_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """A TLS server whose (trusted) certificate is for other.example only: (port, CA file)."""
    material = certs.issue_server_tls(tmp_path_factory.mktemp("tls"), identities=("other.example",))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(material.cert_file, material.key_file)
    context.set_ciphers(INTERMEDIATE_CIPHERS)
    server = _TlsServer(("127.0.0.1", 0), _Quiet)
    server.context = context
    for port in _serve(server):
        yield port, material.ca_file


def _one_clear_problem_each(report: tls.TlsReport, words: str) -> None:
    for check in CHECKS:
        problems = check(report)
        assert len(problems) == 1, (check.__name__, problems)
        assert words in problems[0]
    assert tls.expiry_problems(report, 14) == tls.trust_problems(report)


def test_a_closed_port_is_one_clear_failure():
    report = tls.scan_url(f"https://127.0.0.1:{free_port()}", timeout_s=FAILING_TIMEOUT_S)
    assert "rejected the connection" in report.error
    _one_clear_problem_each(report, "rejected the connection")


def test_a_server_without_tls_is_one_clear_failure(plaintext_port):
    report = tls.scan_url(f"https://127.0.0.1:{plaintext_port}", timeout_s=FAILING_TIMEOUT_S)
    assert "TLS probing failed" in report.error
    _one_clear_problem_each(report, "could not find a TLS version")


def test_an_unresolvable_host_is_one_clear_failure():
    report = tls.scan_url("https://no-such-host.invalid", timeout_s=FAILING_TIMEOUT_S)
    assert "Could not resolve" in report.error
    _one_clear_problem_each(report, "no-such-host.invalid")


def test_a_certificate_for_another_host_is_a_hostname_problem_only(other_host):
    port, ca_file = other_host
    report = tls.scan_url(f"https://127.0.0.1:{port}", ca_file=str(ca_file), timeout_s=TIMEOUT_S)
    assert report.error == ""
    assert tls.hostname_problems(report) == [
        f"127.0.0.1:{port}: the certificate is for other.example, not for 127.0.0.1"
    ]
    assert tls.trust_problems(report) == []  # signed by the CA it is checked against
    assert tls.protocol_problems(report) == []
    assert report.scan_json.startswith("{")


def test_without_its_ca_the_certificate_is_untrusted(other_host):
    port, _ = other_host
    report = tls.scan_url(f"https://127.0.0.1:{port}", timeout_s=TIMEOUT_S)
    (problem,) = tls.trust_problems(report)
    assert "is not trusted by the Mozilla store" in problem


@pytest.mark.parametrize(
    ("host", "identities", "matches"),
    [
        ("127.0.0.1", ["localhost", "127.0.0.1"], True),
        ("::1", ["::1"], True),
        ("127.0.0.2", ["127.0.0.1"], False),
        ("app.example.com", ["APP.example.com"], True),
        ("a.example.com", ["*.example.com"], True),
        ("a.b.example.com", ["*.example.com"], False),
        ("example.com", ["*.example.com"], False),
        ("evil.com", ["*.com"], False),
        ("localhost", ["127.0.0.1"], False),
    ],
)
def test_hostname_matching(host, identities, matches):
    assert tls.hostname_matches(host, identities) is matches


def test_expiry_uses_the_threshold():
    facts = tls.CertificateFacts("CN=x", ["x"], "2030-01-01T00:00:00+00:00", 3.0, "s", True)
    report = tls.TlsReport(target="t", host="x", port=443, certificates=[facts])
    (problem,) = tls.expiry_problems(report, 14)
    assert "expires in 3.0 days" in problem
    assert "14-day threshold" in problem
    assert tls.expiry_problems(report, 2) == []
    facts.days_left = -1
    assert "expired on" in tls.expiry_problems(report, 2)[0]


def test_only_https_urls_and_known_profiles_are_scanned():
    with pytest.raises(tls.TlsScanError, match="not an https:// URL"):
        tls.scan_url("http://127.0.0.1:80")
    with pytest.raises(tls.TlsScanError, match="unknown Mozilla TLS profile 'strict'"):
        tls.scan_url("https://127.0.0.1:443", profile="strict")


def test_the_scan_runs_once_per_target_and_run(tmp_path, monkeypatch):
    targets = tmp_path / "targets.toml"
    targets.write_text('[targets.web]\nplatform = "local"\nurl = "https://127.0.0.1:9"\n')
    target = load_targets(targets, environ={}).targets["web"]
    scans = []

    def fake_scan(scanned):
        scans.append(scanned.name)
        return tls.TlsReport(target=scanned.name, host="127.0.0.1", port=9, error="down")

    monkeypatch.setattr(tls, "scan_target", fake_scan)
    first = tls.cached_scan(target, tmp_path / "run")
    second = tls.cached_scan(target, tmp_path / "run")
    assert scans == ["web"]
    assert second == first


def test_a_plain_http_target_has_no_tls_and_fails_every_check(tmp_path):
    targets = tmp_path / "targets.toml"
    targets.write_text('[targets.web]\nplatform = "local"\nurl = "http://127.0.0.1:9"\n')
    report = tls.scan_target(load_targets(targets, environ={}).targets["web"])
    _one_clear_problem_each(report, "is plain HTTP: there is no TLS at all")


def _target(tmp_path: Path, url: str, ca_file: Path | None = None):
    targets = tmp_path / "targets.toml"
    ca = f'ca_file = "{ca_file}"\n' if ca_file else ""
    targets.write_text(f'[targets.web]\nplatform = "local"\nurl = "{url}"\n{ca}')
    return load_targets(targets, environ={}).targets["web"]


def test_the_scan_in_a_child_process_is_the_runs_one_scan(tmp_path, other_host, monkeypatch):
    from postdeploy.security import tls_process

    port, ca_file = other_host
    target = _target(tmp_path, f"https://127.0.0.1:{port}", ca_file)
    monkeypatch.setattr(tls, "scan_target", lambda _: pytest.fail("scanned in the harness"))
    report = tls_process.cached_scan_in_process(target, tmp_path / "run")
    assert report.error == ""
    assert report.certificates  # scanned by the child, read back from the run's scan file
    assert tls.scan_file(target, tmp_path / "run").exists()
    assert tls.hostname_problems(report)  # the certificate is for other.example only
    assert tls_process.cached_scan_in_process(target, tmp_path / "run") == report


def test_a_child_that_ends_without_a_scan_only_costs_time(tmp_path, monkeypatch):
    from postdeploy.security import tls_process

    target = _target(tmp_path, "https://127.0.0.1:9")
    monkeypatch.setattr(tls_process.sys, "executable", "/bin/false")  # dies at once
    scanned = []
    monkeypatch.setattr(
        tls,
        "scan_target",
        lambda t: scanned.append(t.name) or tls.TlsReport(t.name, "127.0.0.1", 9, error="down"),
    )
    report = tls_process.cached_scan_in_process(target, tmp_path / "run")
    assert scanned == ["web"]  # the harness scanned itself
    assert report.error == "down"


def test_a_child_out_of_time_is_stopped_and_says_so(tmp_path):
    from postdeploy.security import tls_process

    target = _target(tmp_path, "https://127.0.0.1:9")
    with pytest.raises(tls.TlsScanError, match=r"was stopped after 0.01 s"):
        tls_process.cached_scan_in_process(target, tmp_path / "run", timeout_s=0.01)
