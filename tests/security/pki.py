"""A throw-away PKI for the TLS tests: a CA, a server certificate for 127.0.0.1 and client certificates.

Made with the ``cryptography`` package when it is importable, else with the ``openssl`` command;
without either the TLS tests skip (fail under CI=true).
"""

from __future__ import annotations

import datetime
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class Pair:
    cert: Path
    key: Path


@dataclass(frozen=True)
class PKI:
    ca: Pair
    server: Pair  # SAN 127.0.0.1 and localhost, signed by ca
    client: Pair  # SAN DNS:scraper, signed by ca
    other_client: Pair  # SAN DNS:intruder, signed by other_ca (not trusted)
    other_ca: Pair


def _have_cryptography() -> bool:
    try:
        import cryptography  # noqa: F401
    except ImportError:
        return False
    return True


def make_pki(directory: Path) -> PKI:
    """Create the whole PKI under ``directory``; skips (or fails under CI=true) without tools."""
    if _have_cryptography():
        return _with_cryptography(directory)
    if shutil.which("openssl"):
        return _with_openssl(directory)
    reason = "neither the cryptography package nor the openssl command is available"
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def _with_cryptography(d: Path) -> PKI:
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)

    def write(name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> Pair:
        pair = Pair(d / f"{name}.crt", d / f"{name}.key")
        pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        pair.key.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return pair

    def issue(cn: str, issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None, sans=(), eku=None):  # type: ignore[no-untyped-def]
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer[0].subject if issuer else subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
        )
        if issuer is None:
            builder = builder.add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
            ).add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        else:
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer[1].public_key()), critical=False
            )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
        if eku:
            builder = builder.add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
        cert = builder.sign(issuer[1] if issuer else key, hashes.SHA256())
        return cert, key

    ca = issue("test CA", None)
    other_ca = issue("other CA", None)
    server = issue(
        "127.0.0.1",
        ca,
        [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")],
        ExtendedKeyUsageOID.SERVER_AUTH,
    )
    client = issue("scraper", ca, [x509.DNSName("scraper")], ExtendedKeyUsageOID.CLIENT_AUTH)
    intruder = issue("intruder", other_ca, [x509.DNSName("intruder")], ExtendedKeyUsageOID.CLIENT_AUTH)
    return PKI(
        ca=write("ca", *ca),
        server=write("server", *server),
        client=write("client", *client),
        other_client=write("intruder", *intruder),
        other_ca=write("other-ca", *other_ca),
    )


def _with_openssl(d: Path) -> PKI:
    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=d)

    def ca(name: str) -> Pair:
        run(
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.crt",
            "-days",
            "2",
            "-subj",
            f"/CN={name}",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        )
        return Pair(d / f"{name}.crt", d / f"{name}.key")

    def leaf(name: str, issuer: Pair, san: str, eku: str) -> Pair:
        run(
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
            "-subj",
            f"/CN={name}",
        )
        (d / f"{name}.ext").write_text(f"subjectAltName={san}\nextendedKeyUsage={eku}\n")
        run(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            str(issuer.cert),
            "-CAkey",
            str(issuer.key),
            "-CAcreateserial",
            "-out",
            f"{name}.crt",
            "-days",
            "2",
            "-extfile",
            f"{name}.ext",
        )
        return Pair(d / f"{name}.crt", d / f"{name}.key")

    root, other = ca("ca"), ca("other-ca")
    return PKI(
        ca=root,
        server=leaf("server", root, "IP:127.0.0.1,DNS:localhost", "serverAuth"),
        client=leaf("client", root, "DNS:scraper", "clientAuth"),
        other_client=leaf("intruder", other, "DNS:intruder", "clientAuth"),
        other_ca=other,
    )
