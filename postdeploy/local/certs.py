"""TLS material for the local platform: a persistent local CA (trustme) and server certificates.

The CA lives in the state directory and is trusted by the harness for the local target only;
nothing is added to the system trust store.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_CERT = "ca.pem"
CA_KEY = "ca-key.pem"
SERVER_CERT = "server.pem"
SERVER_KEY = "server-key.pem"
#: Validity of a normal server certificate.
SERVER_CERT_DAYS = 90
SERVER_IDENTITIES = ("127.0.0.1", "localhost", "::1")
#: An ECDSA server key signs the handshake and does nothing else.
SERVER_KEY_USAGE = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=False,
    crl_sign=False,
    encipher_only=False,
    decipher_only=False,
)


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
    key_pem, cert_pem = _issue_leaf(
        ca,
        identities or SERVER_IDENTITIES,
        not_before=now - dt.timedelta(minutes=5),
        not_after=now + dt.timedelta(days=valid_days),
    )
    cert_file, key_file = state_dir / SERVER_CERT, state_dir / SERVER_KEY
    key_file.touch(mode=0o600)
    key_file.write_bytes(key_pem)
    cert_file.write_bytes(cert_pem)
    return ServerTLS(state_dir / CA_CERT, cert_file, key_file)


def _issue_leaf(
    ca: trustme.CA, identities: tuple[str, ...], *, not_before: dt.datetime, not_after: dt.datetime
) -> tuple[bytes, bytes]:
    """A server certificate signed by ``ca``: (private key PEM, certificate PEM).

    Built here rather than with ``trustme.CA.issue_cert`` because trustme marks the
    subjectAltName critical next to a non-empty subject, which RFC 5280 path validation
    (cryptography's verifier, used by sslyze) rejects; a real CA's certificate would not.
    """
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem.bytes())
    ca_key = serialization.load_pem_private_key(ca.private_key_pem.bytes(), password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    names = [_general_name(identity) for identity in identities]
    cert = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "postdeploy local platform"),
                    x509.NameAttribute(NameOID.COMMON_NAME, identities[0]),
                ]
            )
        )
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(SERVER_KEY_USAGE, critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return key_pem, cert.public_bytes(serialization.Encoding.PEM)


def _general_name(identity: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(identity))
    except ValueError:
        return x509.DNSName(identity)


def ca_file(state_dir: Path) -> Path:
    """The CA certificate the harness trusts for the local target (created on first use)."""
    path = state_dir / CA_CERT
    if not path.exists():
        state_dir.mkdir(parents=True, exist_ok=True)
        _load_or_create_ca(state_dir)
    return path
