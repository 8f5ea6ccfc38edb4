"""A self-signed certificate authority and a server certificate for the fake Kubernetes API."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

VALIDITY = datetime.timedelta(days=3650)


@dataclass(frozen=True)
class ServerCertificates:
    ca_cert: Path
    server_cert: Path
    server_key: Path

    def ca_pem(self) -> bytes:
        return self.ca_cert.read_bytes()


def ensure_certificates(directory: Path, hosts: list[str]) -> ServerCertificates:
    """Reuse the CA and server certificate in `directory`, making them on first start.

    The CA is kept across restarts so kubeconfigs written earlier stay valid; the server
    certificate is re-issued by the same CA when it does not cover every host asked for.
    """
    directory.mkdir(parents=True, exist_ok=True)
    certs = ServerCertificates(
        ca_cert=directory / "ca.crt",
        server_cert=directory / "server.crt",
        server_key=directory / "server.key",
    )
    ca_key_path = directory / "ca.key"
    if not certs.ca_cert.exists() or not ca_key_path.exists():
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_cert = _issue_ca(ca_key)
        _write_key(ca_key_path, ca_key)
        certs.ca_cert.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
        certs.server_cert.unlink(missing_ok=True)
    loaded_ca_key = serialization.load_pem_private_key(ca_key_path.read_bytes(), password=None)
    assert isinstance(loaded_ca_key, ec.EllipticCurvePrivateKey)
    ca_cert = x509.load_pem_x509_certificate(certs.ca_cert.read_bytes())
    wanted = sorted(set(hosts) | {"127.0.0.1", "localhost"})
    if not certs.server_cert.exists() or _covered_hosts(certs.server_cert) != wanted:
        server_key = ec.generate_private_key(ec.SECP256R1())
        server_cert = _issue_server(server_key, ca_cert, loaded_ca_key, wanted)
        _write_key(certs.server_key, server_key)
        certs.server_cert.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    return certs


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _issue_ca(key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "shipyard-sandbox-ca")])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - datetime.timedelta(hours=1))
        .not_valid_after(_now() + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


def _issue_server(
    key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    hosts: list[str],
) -> x509.Certificate:
    alt_names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            alt_names.append(x509.DNSName(host))
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - datetime.timedelta(hours=1))
        .not_valid_after(_now() + VALIDITY)
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )


def _covered_hosts(cert_path: Path) -> list[str]:
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    hosts = [str(ip) for ip in names.get_values_for_type(x509.IPAddress)]
    hosts += names.get_values_for_type(x509.DNSName)
    return sorted(hosts)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)
