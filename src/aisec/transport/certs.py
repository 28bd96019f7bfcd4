"""A small certificate authority and per-party certificates for mutual TLS.

``make_certs(dir, parties)`` writes ``ca.pem`` (the CA certificate, public), ``ca.key`` (the CA
key, 0600; keep it offline) and for each party ``<party>.pem`` and ``<party>.key`` (0600). The
party name is the certificate's common name; channels check it, so a party holding another
CA's certificate, or another party's name, is refused. Give each host ``ca.pem`` and its own pair.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from collections.abc import Sequence
from pathlib import Path

from aisec.errors import InputFileError, ParameterError
from aisec.io import atomic_write_bytes, write_private

__all__ = ["make_certs", "party_files", "PARTY_NAME"]

PARTY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


def _check_name(name: str) -> None:
    if not PARTY_NAME.match(name) or name.lower() == "ca":
        raise ParameterError(
            "party", "must be 1-63 letters, digits, '_', '.', '-' (not 'ca')", name
        )


def party_files(certs_dir: str | Path, party: str) -> tuple[Path, Path, Path]:
    """``(ca.pem, <party>.pem, <party>.key)`` in ``certs_dir``; raises if one is missing."""
    d = Path(certs_dir)
    files = (d / "ca.pem", d / f"{party}.pem", d / f"{party}.key")
    for f in files:
        if not f.is_file():
            raise InputFileError(f, f"missing; create it with `aisec mpc certs {d}`")
    return files


def make_certs(
    out_dir: str | Path,
    parties: Sequence[str] = ("A", "B"),
    hosts: Sequence[str] = ("localhost", "127.0.0.1"),
    days: int = 365,
) -> dict[str, str]:
    """Create a CA and one certificate per party.

    Args:
        out_dir: directory to write to (created).
        parties: party names (certificate common names).
        hosts: DNS names or IP addresses put in each certificate's subjectAltName.
        days: validity.
    Returns:
        a map from file role to path.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    for p in parties:
        _check_name(p)
    if len(set(parties)) != len(parties):
        raise ParameterError("parties", "must be distinct", list(parties))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "aisec-mpc-ca")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    key_fmt = (pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    written = {"ca.pem": str(atomic_write_bytes(out / "ca.pem", ca_cert.public_bytes(pem)))}
    written["ca.key"] = str(write_private(out / "ca.key", ca_key.private_bytes(*key_fmt)))
    sans: list[x509.GeneralName] = []
    for h in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            sans.append(x509.DNSName(h))
    for party in parties:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, party)]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(
                x509.SubjectAlternativeName(sans + [x509.DNSName(party)]), critical=False
            )
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        written[f"{party}.pem"] = str(
            atomic_write_bytes(out / f"{party}.pem", cert.public_bytes(pem))
        )
        written[f"{party}.key"] = str(
            write_private(out / f"{party}.key", key.private_bytes(*key_fmt))
        )
    return written
