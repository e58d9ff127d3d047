"""Throw-away CA and the server certificate of the emulated Google API hosts.

The CA signs only the emulator's certificate (container.googleapis.com and the
other hosts the emulator answers for); requests trusts it through
REQUESTS_CA_BUNDLE. Private keys are written 0600.
"""

import datetime
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

GKE_HOST = "container.googleapis.com"
VALIDITY = datetime.timedelta(days=365)


def _write(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(path, mode)


def _key_pem(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_ca(common_name: str = "dask-gke sandbox CA"):
    """Return (key, certificate) of a new self-signed CA."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def make_server_cert(ca_key, ca_cert, hosts: tuple[str, ...] = (GKE_HOST,)):
    """Return (key, certificate) for `hosts` (the first is the subject), signed by the CA."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(hosts[0]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(host) for host in hosts]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


def ca_paths(sandbox_dir: Path) -> dict[str, Path]:
    ca_dir = sandbox_dir / "ca"
    return {
        "ca_cert": ca_dir / "ca.pem",
        "ca_key": ca_dir / "ca-key.pem",
        "server_cert": ca_dir / "server.pem",
        "server_key": ca_dir / "server-key.pem",
    }


def _names_of(cert_path: Path) -> set[str]:
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return set(names.get_values_for_type(x509.DNSName))


def ensure_ca(sandbox_dir: Path, hosts: tuple[str, ...] = (GKE_HOST,)) -> dict[str, Path]:
    """Create the CA and a server certificate for `hosts` under <sandbox>/ca.

    Kept when every file exists; a server certificate that lacks one of `hosts`
    (made by an older sandbox) is made again with the same CA."""
    paths = ca_paths(sandbox_dir)
    pem = serialization.Encoding.PEM
    if all(p.exists() for p in paths.values()):
        if set(hosts) <= _names_of(paths["server_cert"]):
            return paths
        ca_key = serialization.load_pem_private_key(paths["ca_key"].read_bytes(), None)
        ca_cert = x509.load_pem_x509_certificate(paths["ca_cert"].read_bytes())
    else:
        ca_key, ca_cert = make_ca()
        _write(paths["ca_key"], _key_pem(ca_key), 0o600)
        _write(paths["ca_cert"], ca_cert.public_bytes(pem), 0o644)
    server_key, server_cert = make_server_cert(ca_key, ca_cert, hosts)
    _write(paths["server_key"], _key_pem(server_key), 0o600)
    _write(paths["server_cert"], server_cert.public_bytes(pem), 0o644)
    return paths
