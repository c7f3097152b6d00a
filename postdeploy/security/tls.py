"""One sslyze scan of a target -> a :class:`TlsReport` of plain facts -> problems per check.

The scan runs once per target and run (see :func:`cached_scan`): certificate chain and
hostname, every protocol version from SSL 2.0 to TLS 1.3 with its accepted cipher suites,
Heartbleed, ROBOT, OpenSSL CCS injection, renegotiation, compression, TLS_FALLBACK_SCSV,
elliptic curves and extended master secret, and Mozilla's TLS configuration checker on top.
A target with a ``ca_file`` (the local platform's own CA) is trusted through that file only;
any other target through Mozilla's root store.

The report is plain data so it can be cached as JSON and shared by xdist workers; the full
sslyze result is kept as JSON (``scan_json``) for the report. Nothing here raises for a
target that cannot be scanned: :attr:`TlsReport.error` says why, once, and every check
returns that one sentence.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import json
import math
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from cryptography.utils import CryptographyDeprecationWarning

from postdeploy.sysutil import LockTimeout, exclusive_lock

if TYPE_CHECKING:
    from collections.abc import Iterator

    from sslyze import ServerScanResult
    from sslyze.plugins.certificate_info._cert_chain_analyzer import (
        CertificateDeploymentAnalysisResult,
    )

    from postdeploy.config import Target

DEFAULT_HTTPS_PORT = 443
#: Connection attempts per TLS handshake sslyze makes before giving up on it.
NETWORK_MAX_RETRIES = 2
#: Timeout of each of the scan's network operations (sslyze's default), unless the target's
#: own request timeout is shorter.
NETWORK_TIMEOUT_S = 5.0
MOZILLA_STORE = "Mozilla"
SUPPLIED_CA_STORE = "Supplied CA file"
MOZILLA_PROFILES = ("modern", "intermediate", "old")
#: sslyze result field -> protocol name shown to people.
PROTOCOLS = {
    "ssl_2_0_cipher_suites": "SSL 2.0",
    "ssl_3_0_cipher_suites": "SSL 3.0",
    "tls_1_0_cipher_suites": "TLS 1.0",
    "tls_1_1_cipher_suites": "TLS 1.1",
    "tls_1_2_cipher_suites": "TLS 1.2",
    "tls_1_3_cipher_suites": "TLS 1.3",
}
LEGACY_PROTOCOLS = ("SSL 2.0", "SSL 3.0", "TLS 1.0", "TLS 1.1")
SECONDS_PER_DAY = 86400.0
CACHE_LOCK_TIMEOUT_S = 300.0
CACHE_POLL_S = 0.1


class TlsScanError(Exception):
    """The scan could not be set up (bad URL, unknown profile); the message says why."""


@dataclass
class CertificateFacts:
    """One certificate deployment as seen by sslyze (most servers have one)."""

    subject: str
    identities: list[str]
    not_after: str
    days_left: float
    trust_store: str
    trusted: bool
    trust_error: str = ""
    hostname: str = ""
    hostname_matches: bool = False


@dataclass
class TlsReport:
    """What one scan of ``host:port`` found; ``error`` is set when nothing could be scanned."""

    target: str
    host: str
    port: int
    error: str = ""
    certificates: list[CertificateFacts] = field(default_factory=list)
    #: protocol -> accepted cipher suites (empty: refused); a protocol missing was not tested
    protocols: dict[str, list[str]] = field(default_factory=dict)
    #: scan command -> why it could not run
    command_errors: dict[str, str] = field(default_factory=dict)
    mozilla_profile: str = "intermediate"
    mozilla_issues: dict[str, str] = field(default_factory=dict)
    mozilla_error: str = ""
    #: vulnerability -> what was found (empty dict: none)
    vulnerabilities: dict[str, str] = field(default_factory=dict)
    scan_json: str = ""
    duration_s: float = 0.0

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> TlsReport:
        data = json.loads(text)
        data["certificates"] = [CertificateFacts(**c) for c in data.get("certificates", [])]
        return cls(**data)


# -- the scan -------------------------------------------------------------------------------


def endpoint(url: str) -> tuple[str, int]:
    """``(host, port)`` of an https URL; raises TlsScanError for anything else."""
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise TlsScanError(f"{url!r} is not an https:// URL; there is no TLS to scan")
    return parts.hostname, parts.port or DEFAULT_HTTPS_PORT


def scan_target(target: Target) -> TlsReport:
    """Scan ``target.url`` with the target's CA file, timeouts and Mozilla profile."""
    parts = urlsplit(target.url)
    if parts.scheme != "https":
        return TlsReport(
            target=target.name,
            host=parts.hostname or target.url,
            port=parts.port or 80,
            error=f"{target.url} is plain HTTP: there is no TLS at all",
        )
    return scan_url(
        target.url,
        name=target.name,
        ca_file=target.ca_file or None,
        timeout_s=min(target.timeout_s, NETWORK_TIMEOUT_S),
        profile=target.tls.mozilla_profile,
    )


def scan_url(
    url: str,
    *,
    name: str = "",
    ca_file: str | None = None,
    timeout_s: float = NETWORK_TIMEOUT_S,
    profile: str = "intermediate",
) -> TlsReport:
    """Scan the TLS endpoint of ``url``; never raises for a server that misbehaves."""
    if profile not in MOZILLA_PROFILES:
        raise TlsScanError(
            f"unknown Mozilla TLS profile {profile!r}; use one of {', '.join(MOZILLA_PROFILES)}"
        )
    host, port = endpoint(url)
    report = TlsReport(target=name or host, host=host, port=port, mozilla_profile=profile)
    started = time.monotonic()
    try:
        with warnings.catch_warnings():
            # sslyze's bundled root stores hold old roots that cryptography warns about.
            warnings.simplefilter("ignore", CryptographyDeprecationWarning)
            result = _run_sslyze(host, port, ca_file, timeout_s)
    except Exception as exc:  # resolution failures and the like: one clear sentence
        report.error = f"cannot scan {host}:{port}: {type(exc).__name__}: {exc}"
        report.duration_s = time.monotonic() - started
        return report
    report.duration_s = time.monotonic() - started
    _fill(report, result, ca_file is not None)
    return report


def _run_sslyze(host: str, port: int, ca_file: str | None, timeout_s: float) -> ServerScanResult:
    from sslyze import (
        CertificateInfoExtraArgument,
        ScanCommandsExtraArguments,
        Scanner,
        ServerNetworkConfiguration,
        ServerNetworkLocation,
        ServerScanRequest,
    )
    from sslyze.mozilla_tls_profile.tls_config_checker import (
        SCAN_COMMANDS_NEEDED_BY_MOZILLA_CHECKER,
    )

    ip_address = host if _is_ip(host) else None
    location = ServerNetworkLocation(host, port, ip_address=ip_address)
    configuration = ServerNetworkConfiguration(
        tls_server_name_indication=host,
        network_timeout=max(1, math.ceil(timeout_s)),
        network_max_retries=NETWORK_MAX_RETRIES,
    )
    extra = ScanCommandsExtraArguments(
        certificate_info=CertificateInfoExtraArgument(custom_ca_file=Path(ca_file))
        if ca_file
        else None
    )
    request = ServerScanRequest(
        server_location=location,
        network_configuration=configuration,
        scan_commands=set(SCAN_COMMANDS_NEEDED_BY_MOZILLA_CHECKER),
        scan_commands_extra_arguments=extra,
    )
    scanner = Scanner()
    scanner.queue_scans([request])
    return next(iter(scanner.get_results()))


def _fill(report: TlsReport, result: ServerScanResult, custom_ca: bool) -> None:
    from sslyze import ScanCommandAttemptStatusEnum, ServerScanStatusEnum
    from sslyze.json.json_output import ServerScanResultAsJson

    with contextlib.suppress(Exception):  # the JSON is for people; the facts do not need it
        report.scan_json = ServerScanResultAsJson.model_validate(result).model_dump_json()
    if result.scan_status != ServerScanStatusEnum.COMPLETED or result.scan_result is None:
        trace = result.connectivity_error_trace
        reason = str(trace).strip() if trace else str(result.scan_status.value)
        report.error = f"cannot establish a TLS connection to {report.where}: {reason}"
        return
    attempts = result.scan_result
    for attribute, protocol in PROTOCOLS.items():
        attempt = getattr(attempts, attribute)
        if attempt.status == ScanCommandAttemptStatusEnum.COMPLETED and attempt.result:
            report.protocols[protocol] = [
                accepted.cipher_suite.name for accepted in attempt.result.accepted_cipher_suites
            ]
        else:
            report.command_errors[protocol] = _attempt_error(attempt)
    certificate_info = attempts.certificate_info
    if (
        certificate_info.status == ScanCommandAttemptStatusEnum.COMPLETED
        and certificate_info.result
    ):
        store = SUPPLIED_CA_STORE if custom_ca else MOZILLA_STORE
        report.certificates = [
            _certificate_facts(deployment, store, report.host)
            for deployment in certificate_info.result.certificate_deployments
        ]
    else:
        report.command_errors["certificate"] = _attempt_error(certificate_info)
    report.vulnerabilities = _vulnerabilities(attempts, report.command_errors)
    _check_mozilla(report, result)


def _attempt_error(attempt: Any) -> str:
    reason = getattr(attempt.error_reason, "value", None) or "not run"
    trace = attempt.error_trace
    detail = f": {str(trace).strip()}" if trace else ""
    return f"{reason}{detail}"


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _identities(certificate: Any) -> list[str]:
    from cryptography import x509

    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [str(v) for v in names.get_values_for_type(x509.DNSName)] + [
        str(v) for v in names.get_values_for_type(x509.IPAddress)
    ]


def hostname_matches(hostname: str, identities: list[str]) -> bool:
    """Does a certificate naming ``identities`` (subjectAltName) cover ``hostname``?

    IP addresses compare as addresses; DNS names case-insensitively, with a wildcard allowed
    as the whole left-most label only (``*.example.com`` covers ``a.example.com``).
    """
    if _is_ip(hostname):
        wanted = ipaddress.ip_address(hostname)
        return any(_is_ip(i) and ipaddress.ip_address(i) == wanted for i in identities)
    host_labels = hostname.lower().rstrip(".").split(".")
    for identity in identities:
        if _is_ip(identity):
            continue
        labels = identity.lower().rstrip(".").split(".")
        if len(labels) != len(host_labels):
            continue
        if labels[0] == "*" and len(labels) > 2 and labels[1:] == host_labels[1:]:
            return True
        if labels == host_labels:
            return True
    return False


def _certificate_facts(
    deployment: CertificateDeploymentAnalysisResult, store_name: str, host: str
) -> CertificateFacts:
    from cryptography.x509 import DNSName, IPAddress

    leaf = deployment.received_certificate_chain[0]
    identities = _identities(leaf)
    not_after = leaf.not_valid_after_utc
    days_left = (not_after - dt.datetime.now(dt.UTC)).total_seconds() / SECONDS_PER_DAY
    facts = CertificateFacts(
        subject=leaf.subject.rfc4514_string(),
        identities=identities,
        not_after=not_after.isoformat(),
        days_left=round(days_left, 2),
        trust_store=store_name,
        trusted=False,
        hostname=host,
        hostname_matches=hostname_matches(host, identities),
    )
    result = next(
        (r for r in deployment.path_validation_results if r.trust_store.name == store_name),
        None,
    )
    if result is None:
        facts.trust_error = f"sslyze did not validate the chain against the {store_name} store"
        return facts
    # Trust is judged for a name the certificate claims, so that a wrong hostname shows up
    # once, as a hostname problem, and not again as a trust problem.
    subject_name = identities[0] if identities else host
    subject = (
        IPAddress(ipaddress.ip_address(subject_name))
        if _is_ip(subject_name)
        else DNSName(subject_name)
    )
    verified = result.trust_store.verify_certificate_chain(
        deployment.received_certificate_chain_as_pem, subject
    )
    facts.trusted = verified.was_validation_successful
    facts.trust_error = verified.validation_error or ""
    return facts


def _vulnerabilities(attempts: Any, command_errors: dict[str, str]) -> dict[str, str]:
    from sslyze import RobotScanResultEnum, ScanCommandAttemptStatusEnum

    found: dict[str, str] = {}

    def result_of(name: str) -> Any:
        attempt = getattr(attempts, name)
        if attempt.status != ScanCommandAttemptStatusEnum.COMPLETED or attempt.result is None:
            command_errors[name] = _attempt_error(attempt)
            return None
        return attempt.result

    if (heartbleed := result_of("heartbleed")) and heartbleed.is_vulnerable_to_heartbleed:
        found["Heartbleed"] = "the server leaks memory through TLS heartbeats (CVE-2014-0160)"
    if (robot := result_of("robot")) and robot.robot_result in (
        RobotScanResultEnum.VULNERABLE_STRONG_ORACLE,
        RobotScanResultEnum.VULNERABLE_WEAK_ORACLE,
    ):
        found["ROBOT"] = f"RSA padding oracle: {robot.robot_result.value}"
    if (ccs := result_of("openssl_ccs_injection")) and ccs.is_vulnerable_to_ccs_injection:
        found["CCS injection"] = "vulnerable to OpenSSL CCS injection (CVE-2014-0224)"
    if renegotiation := result_of("session_renegotiation"):
        if not renegotiation.supports_secure_renegotiation:
            found["insecure renegotiation"] = "secure renegotiation (RFC 5746) is not supported"
        elif renegotiation.is_vulnerable_to_client_renegotiation_dos:
            found["client-initiated renegotiation"] = (
                f"the server accepted {renegotiation.client_renegotiations_success_count} "
                "client-initiated renegotiations in a row (denial-of-service vector)"
            )
    if (compression := result_of("tls_compression")) and compression.supports_compression:
        found["TLS compression"] = "compression is enabled (CRIME)"
    return found


def _check_mozilla(report: TlsReport, result: ServerScanResult) -> None:
    from sslyze.mozilla_tls_profile.tls_config_checker import (
        MozillaTlsConfiguration,
        ServerNotCompliantWithTlsConfiguration,
        ServerScanResultIncomplete,
        TlsConfigurationEnum,
        check_server_against_tls_configuration,
    )

    configuration = MozillaTlsConfiguration.get(TlsConfigurationEnum(report.mozilla_profile))
    try:
        check_server_against_tls_configuration(result, configuration)
    except ServerNotCompliantWithTlsConfiguration as exc:
        report.mozilla_issues = dict(exc.issues)
    except ServerScanResultIncomplete as exc:
        report.mozilla_error = f"the scan is incomplete: {exc}"


# -- one scan per target and run -------------------------------------------------------------


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    try:
        with exclusive_lock(path.with_suffix(".lock"), CACHE_LOCK_TIMEOUT_S, CACHE_POLL_S):
            yield
    except LockTimeout:
        raise TlsScanError(f"gave up waiting for the TLS scan behind {path}") from None


def scan_file(target: Target, cache_dir: Path) -> Path:
    """Where the run's scan of ``target`` is kept (``cache_dir``: the run's folder)."""
    return cache_dir / f"tls-{target.name}.json"


def cached_scan(target: Target, cache_dir: Path) -> TlsReport:
    """The run's one scan of ``target``: the first process scans, the others read its report."""
    path = scan_file(target, cache_dir)
    with _locked(path):
        if path.exists():
            return TlsReport.from_json(path.read_text(encoding="utf-8"))
        report = scan_target(target)
        path.write_text(report.to_json(), encoding="utf-8")
        return report


# -- the checks --------------------------------------------------------------------------------


def _unscanned(report: TlsReport) -> list[str]:
    return [f"TLS scan of {report.where} failed: {report.error}"] if report.error else []


def _certificates(report: TlsReport) -> tuple[list[str], list[CertificateFacts]]:
    if report.error:
        return _unscanned(report), []
    if not report.certificates:
        reason = report.command_errors.get("certificate", "no certificate was received")
        return [f"{report.where}: the certificate could not be analysed: {reason}"], []
    return [], report.certificates


def trust_problems(report: TlsReport) -> list[str]:
    """The chain validates to a trusted root (the target's own CA file, else Mozilla's)."""
    problems, certificates = _certificates(report)
    for cert in certificates:
        if not cert.trusted:
            problems.append(
                f"{report.where}: the certificate {cert.subject} is not trusted by the "
                f"{cert.trust_store} store: {cert.trust_error or 'validation failed'}"
            )
    return problems


def hostname_problems(report: TlsReport) -> list[str]:
    problems, certificates = _certificates(report)
    for cert in certificates:
        if not cert.hostname_matches:
            names = ", ".join(cert.identities) or "no subjectAltName at all"
            problems.append(
                f"{report.where}: the certificate is for {names}, not for {cert.hostname}"
            )
    return problems


def expiry_problems(report: TlsReport, min_days: float) -> list[str]:
    problems, certificates = _certificates(report)
    for cert in certificates:
        if cert.days_left < 0:
            problems.append(f"{report.where}: the certificate expired on {cert.not_after}")
        elif cert.days_left < min_days:
            problems.append(
                f"{report.where}: the certificate expires in {cert.days_left:.1f} days "
                f"({cert.not_after}), under the {min_days:g}-day threshold"
            )
    return problems


def protocol_problems(report: TlsReport) -> list[str]:
    """No SSL 2.0/3.0, TLS 1.0 or 1.1 accepted (and every one of them actually tested)."""
    if report.error:
        return _unscanned(report)
    problems = []
    for protocol in LEGACY_PROTOCOLS:
        if protocol not in report.protocols:
            problems.append(
                f"{report.where}: {protocol} could not be tested: {report.command_errors[protocol]}"
            )
        elif report.protocols[protocol]:
            ciphers = ", ".join(report.protocols[protocol])
            problems.append(f"{report.where} accepts {protocol} (cipher suites: {ciphers})")
    return problems


def mozilla_problems(report: TlsReport) -> list[str]:
    if report.error:
        return _unscanned(report)
    if report.mozilla_error:
        return [f"{report.where}: Mozilla {report.mozilla_profile} check: {report.mozilla_error}"]
    return [
        f"{report.where} is not Mozilla {report.mozilla_profile} compliant ({name}): {issue}"
        for name, issue in sorted(report.mozilla_issues.items())
    ]


#: The vulnerability scans a complete report has run.
VULNERABILITY_COMMANDS = (
    "heartbleed",
    "robot",
    "openssl_ccs_injection",
    "session_renegotiation",
    "tls_compression",
)


def vulnerability_problems(report: TlsReport) -> list[str]:
    if report.error:
        return _unscanned(report)
    problems = [
        f"{report.where}: {name}: {detail}" for name, detail in report.vulnerabilities.items()
    ]
    problems += [
        f"{report.where}: the {command} scan did not complete: {report.command_errors[command]}"
        for command in VULNERABILITY_COMMANDS
        if command in report.command_errors
    ]
    return problems
