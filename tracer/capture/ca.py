"""The certificate authority of one forward-proxy run (``tracer record --forward``).

A new CA is generated for every run. Its private key lives in this process's memory only:
never on disk, so a recorder killed with SIGKILL leaves no key behind. Its certificate
carries name constraints: it can vouch for the intercepted hosts alone (``permitted``), so
a copy of it left in a bundle trusts nothing else. The public files (the CA's certificate
and the bundle) are in a private directory (0700) that ``close`` removes. For each
intercepted host the proxy presents a leaf certificate this CA issues on first use; its key
reaches ``ssl`` through an anonymous memory file (Linux), never a named file. A launched
command, and only it, is told to trust the CA through ``bundle``: the system's trusted CAs
followed by this run's, so that hosts tunnelled untouched still verify.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
import ssl
import tempfile
from collections.abc import Iterable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["RunCA", "name_constraints", "system_ca_pem"]

_VALID = datetime.timedelta(days=7)  # a run's CA; clocks a little off still verify
_SKEW = datetime.timedelta(hours=1)
_CA_USAGE = x509.KeyUsage(
    digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
    key_encipherment=False, data_encipherment=False, key_agreement=False,
    encipher_only=False, decipher_only=False,
)  # fmt: skip


def system_ca_pem() -> bytes:
    """The PEM text of the CAs this machine trusts (OpenSSL's default file, or certifi's)."""
    paths = ssl.get_default_verify_paths()
    for candidate in (os.environ.get("SSL_CERT_FILE"), paths.cafile, paths.openssl_cafile):
        if candidate and os.path.isfile(candidate):
            return Path(candidate).read_bytes()
    try:
        import certifi
    except ImportError:  # no trust store found: the bundle holds the run's CA alone
        return b""
    return Path(certifi.where()).read_bytes()


def name_constraints(patterns: Iterable[str]) -> x509.NameConstraints | None:
    """The constraints that let a CA vouch for these host patterns alone (``*.example.com``
    permits the subtree ``example.com``); IP addresses other than those listed are excluded.
    None when a pattern cannot be expressed as a subtree (``api*``)."""
    dns: list[x509.GeneralName] = []
    ips: list[x509.GeneralName] = []
    for pattern in patterns:
        name = pattern.lower().rstrip(".").removeprefix("*.")
        try:
            address = ipaddress.ip_address(name)
        except ValueError:
            if not name or "*" in name or "?" in name or "[" in name:
                return None
            dns.append(x509.DNSName(name))
            continue
        ips.append(x509.IPAddress(ipaddress.ip_network(address)))
    excluded: list[x509.GeneralName] = []
    if not ips:  # no address may be vouched for
        excluded = [
            x509.IPAddress(ipaddress.ip_network("0.0.0.0/0")),
            x509.IPAddress(ipaddress.ip_network("::/0")),
        ]
    return x509.NameConstraints(
        permitted_subtrees=dns + ips or None, excluded_subtrees=excluded or None
    )


class RunCA:
    """A CA made for this run, its directory, and the TLS server contexts it issues."""

    def __init__(
        self,
        directory: str | os.PathLike[str] | None = None,
        *,
        permitted: Iterable[str] | None = None,
    ) -> None:
        self.directory = Path(directory or tempfile.mkdtemp(prefix="tracer-ca-"))
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)
        now = datetime.datetime.now(datetime.UTC)
        self._key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "tracer record --forward"),
                x509.NameAttribute(NameOID.COMMON_NAME, f"tracer run CA {now:%Y-%m-%d %H:%M}"),
            ]
        )
        public = self._key.public_key()
        self.permitted = tuple(permitted) if permitted is not None else None
        constraints = name_constraints(self.permitted) if self.permitted is not None else None
        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _SKEW)
            .not_valid_after(now + _VALID)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_CA_USAGE, critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        )
        if constraints is not None:
            builder = builder.add_extension(constraints, critical=True)
        self.certificate = builder.sign(self._key, hashes.SHA256())
        pem = self.certificate.public_bytes(serialization.Encoding.PEM)
        self.cert_file = self._write("ca.pem", pem)
        system = system_ca_pem()
        joined = system + (b"" if not system or system.endswith(b"\n") else b"\n") + pem
        self.bundle = self._write("bundle.pem", joined)
        self._contexts: dict[str, ssl.SSLContext] = {}

    def _write(self, name: str, data: bytes) -> Path:
        path = self.directory / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return path

    def issue(self, host: str) -> tuple[bytes, bytes]:
        """A leaf certificate for ``host`` (a DNS name or an IP address) and its key, PEM."""
        now = datetime.datetime.now(datetime.UTC)
        key = ec.generate_private_key(ec.SECP256R1())
        try:
            alt: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
        except ValueError:
            alt = x509.DNSName(host)
        ca_public = self._key.public_key()
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host[:64])]))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _SKEW)
            .not_valid_after(now + _VALID)
            .add_extension(x509.SubjectAlternativeName([alt]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_public), critical=False
            )
            .sign(self._key, hashes.SHA256())
        )
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return cert.public_bytes(serialization.Encoding.PEM), key_pem

    def server_context(self, host: str) -> ssl.SSLContext:
        """The TLS server context presenting ``host``'s certificate (issued once, kept)."""
        ctx = self._contexts.get(host)
        if ctx is not None:
            return ctx
        cert, key = self.issue(host)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_alpn_protocols(["http/1.1"])  # the proxy speaks HTTP/1.1 (and WebSocket)
        _load_chain(ctx, cert + key, self.directory)
        self._contexts[host] = ctx
        return ctx

    def close(self) -> None:
        """Remove the directory with the CA's certificate and bundle. Idempotent."""
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> RunCA:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _load_chain(ctx: ssl.SSLContext, pem: bytes, directory: Path) -> None:
    """``load_cert_chain`` from bytes: it reads files only. An anonymous memory file
    (``memfd_create``) keeps the key off every file system; elsewhere a 0600 file in the
    private directory is written, read and removed at once."""
    memfd = getattr(os, "memfd_create", None)
    if memfd is not None:
        fd = memfd("tracer-leaf", getattr(os, "MFD_CLOEXEC", 0))
        try:
            os.write(fd, pem)
            ctx.load_cert_chain(f"/proc/self/fd/{fd}")
        finally:
            os.close(fd)
        return
    path = directory / "leaf.pem"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        ctx.load_cert_chain(path)
    finally:
        path.unlink(missing_ok=True)
