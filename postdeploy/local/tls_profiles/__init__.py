"""TLS settings of a local release: Mozilla intermediate when healthy, weakened by faults.

The local platform asks :func:`server_tls` how to start uvicorn for a release. A healthy
release serves what Mozilla's *intermediate* configuration asks for (TLS 1.2 and 1.3, AEAD
ciphers with forward secrecy, X25519/P-256/P-384); two platform-level faults of the reference
app's catalogue weaken it the way a misconfigured deployment would:

* ``weak_tls``: TLS 1.0 and 1.1 accepted, CBC/SHA-1 cipher suites, client-initiated
  renegotiation (``legacy.cnf`` + ``legacy/sitecustomize.py``);
* ``cert_expiring``: a certificate valid for only :data:`EXPIRING_CERT_DAYS` days.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

PROFILES_DIR = Path(__file__).resolve().parent
INTERMEDIATE_CONF = PROFILES_DIR / "intermediate.cnf"
LEGACY_CONF = PROFILES_DIR / "legacy.cnf"
LEGACY_SITE_DIR = PROFILES_DIR / "legacy"
#: Mozilla intermediate (v5.7) TLS 1.2 cipher suites, in OpenSSL names.
INTERMEDIATE_CIPHERS = ":".join(
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
        "DHE-RSA-AES128-GCM-SHA256",
        "DHE-RSA-AES256-GCM-SHA384",
        "DHE-RSA-CHACHA20-POLY1305",
    )
)
#: Everything OpenSSL still implements; security level 0 is what TLS 1.0/1.1 need in OpenSSL 3.
LEGACY_CIPHERS = "DEFAULT:@SECLEVEL=0"
LEGACY_MINIMUM_VERSION = "TLSv1"
MINIMUM_VERSION_ENV = "POSTDEPLOY_TLS_MINIMUM_VERSION"
#: Validity of the certificate of a release with the ``cert_expiring`` fault.
EXPIRING_CERT_DAYS = 3.0


@dataclass
class ServerTLS:
    """uvicorn arguments, environment and certificate validity for one release."""

    uvicorn_args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    cert_valid_days: float | None = None


def server_tls(faults: Sequence[str]) -> ServerTLS:
    """How TLS is served for a release carrying ``faults``."""
    tls = ServerTLS(
        uvicorn_args=["--ssl-ciphers", INTERMEDIATE_CIPHERS],
        env={"OPENSSL_CONF": str(INTERMEDIATE_CONF)},
    )
    # FAULT weak_tls: a terminator still configured for legacy clients.
    if "weak_tls" in faults:
        python_path = os.environ.get("PYTHONPATH", "")
        tls.uvicorn_args = ["--ssl-ciphers", LEGACY_CIPHERS]
        tls.env = {
            "OPENSSL_CONF": str(LEGACY_CONF),
            "PYTHONPATH": os.pathsep.join(p for p in (str(LEGACY_SITE_DIR), python_path) if p),
            MINIMUM_VERSION_ENV: LEGACY_MINIMUM_VERSION,
        }
    # FAULT cert_expiring: a certificate that runs out in a few days.
    if "cert_expiring" in faults:
        tls.cert_valid_days = EXPIRING_CERT_DAYS
    return tls
