"""Security validation - SSL/TLS certificates valid and secure (sslyze, one scan per run).

Every check reads the same scan (``tls_report``); a target that cannot be scanned at all
(port closed, no TLS, handshake failure) fails each check with the same one sentence.
"""

from __future__ import annotations

import pytest

from postdeploy.http import new_client
from postdeploy.security.headers import Headers, Observation, redirect_chain, redirection_test
from postdeploy.security.tls import (
    expiry_problems,
    hostname_problems,
    mozilla_problems,
    protocol_problems,
    trust_problems,
    vulnerability_problems,
)


def _verdict(problems: list[str]) -> None:
    assert not problems, "\n".join(problems)


@pytest.mark.gating
def test_certificate_chain_is_valid_and_trusted(tls_report):
    _verdict(trust_problems(tls_report))


@pytest.mark.gating
def test_certificate_matches_the_hostname(tls_report):
    _verdict(hostname_problems(tls_report))


@pytest.mark.gating
def test_certificate_does_not_expire_soon(tls_report, target):
    _verdict(expiry_problems(tls_report, target.tls.cert_min_days))


@pytest.mark.gating
def test_no_legacy_protocol_is_accepted(tls_report):
    """No SSL 2.0/3.0, TLS 1.0 or TLS 1.1."""
    _verdict(protocol_problems(tls_report))


def test_tls_configuration_complies_with_mozilla_guidelines(tls_report):
    """Mozilla's TLS configuration (``tls.mozilla_profile``, default intermediate)."""
    _verdict(mozilla_problems(tls_report))


@pytest.mark.gating
def test_no_known_tls_vulnerability(tls_report):
    """No Heartbleed, ROBOT, CCS injection, insecure renegotiation or TLS compression."""
    _verdict(vulnerability_problems(tls_report))


def test_plain_http_redirects_to_https(target, recorder):
    if not target.http_url:
        pytest.skip(
            f"target {target.name!r} has no http_url configured: nothing to check the "
            "HTTP -> HTTPS redirect on (set http_url in targets.toml to check it)"
        )
    with new_client(target, recorder, base_url="") as client:
        chain = redirect_chain(client, target.http_url)
    result = redirection_test(Observation(url=target.url, headers=Headers(), redirects=chain))
    assert result.passed, (
        f"{target.http_url}: {result.description} (redirects: {' -> '.join(chain)})"
    )
