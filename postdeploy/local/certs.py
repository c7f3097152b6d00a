"""TLS material for the local platform: a persistent local CA (trustme) and server certificates.

The CA lives in the state directory and is trusted by the harness for the local target only;
nothing is added to the system trust store.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import trustme

CA_CERT = "ca.pem"
CA_KEY = "ca-key.pem"
SERVER_CERT = "server.pem"
SERVER_KEY = "server-key.pem"
#: Validity of a normal server certificate.
SERVER_CERT_DAYS = 90
SERVER_IDENTITIES = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class ServerTLS:
    ca_file: Path
    cert_file: Path
    key_file: Path


def _load_or_create_ca(state_dir: Path) -> trustme.CA:
    cert, key = state_dir / CA_CERT, state_dir / CA_KEY
    if cert.exists() and key.exists():
        return trustme.CA.from_pem(cert.read_bytes(), key.read_bytes())
    ca = trustme.CA(organization_name="postdeploy local CA")
    key.touch(mode=0o600)
    key.write_bytes(ca.private_key_pem.bytes())
    cert.write_bytes(ca.cert_pem.bytes())
    return ca


def issue_server_tls(
    state_dir: Path, *, valid_days: float = SERVER_CERT_DAYS, identities: tuple[str, ...] = ()
) -> ServerTLS:
    """Issue a fresh server certificate signed by the local CA, valid ``valid_days`` from now."""
    state_dir.mkdir(parents=True, exist_ok=True)
    ca = _load_or_create_ca(state_dir)
    now = dt.datetime.now(dt.UTC)
    leaf = ca.issue_cert(
        *(identities or SERVER_IDENTITIES),
        common_name=(identities or SERVER_IDENTITIES)[0],
        organization_name="postdeploy local platform",
        not_before=now - dt.timedelta(minutes=5),
        not_after=now + dt.timedelta(days=valid_days),
    )
    cert_file, key_file = state_dir / SERVER_CERT, state_dir / SERVER_KEY
    key_file.touch(mode=0o600)
    key_file.write_bytes(leaf.private_key_pem.bytes())
    cert_file.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    return ServerTLS(state_dir / CA_CERT, cert_file, key_file)


def ca_file(state_dir: Path) -> Path:
    """The CA certificate the harness trusts for the local target (created on first use)."""
    path = state_dir / CA_CERT
    if not path.exists():
        state_dir.mkdir(parents=True, exist_ok=True)
        _load_or_create_ca(state_dir)
    return path
