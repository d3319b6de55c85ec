"""The forward proxy's parts with no client: its CA, its option parsing, a launch's
environment."""

from __future__ import annotations

import asyncio
import ssl
import stat
from pathlib import Path

import pytest

from tracer.capture.ca import RunCA
from tracer.capture.forward import (
    DEFAULT_INTERCEPT,
    intercepts,
    parse_authority,
    parse_connect_to,
)
from tracer.capture.launch import Forwarding, plan_launch


def _handshake(ca: RunCA, name: str, trust: Path) -> str:
    """A real TLS handshake on 127.0.0.1: a server with ``ca``'s certificate for ``name``,
    a client verifying ``name`` against ``trust``; the server name the client saw."""

    async def main() -> str:
        server = await asyncio.start_server(
            lambda r, w: w.close(), "127.0.0.1", 0, ssl=ca.server_context(name)
        )
        port = server.sockets[0].getsockname()[1]
        client = ssl.create_default_context(cafile=str(trust))
        try:
            _, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=client, server_hostname=name
            )
            cert = writer.get_extra_info("peercert")
            writer.close()
        finally:
            server.close()
        return dict(x[0] for x in cert["subject"])["commonName"]

    return asyncio.run(main())


def test_the_run_ca_issues_certificates_clients_verify_and_is_removed(tmp_path: Path):
    with RunCA() as ca:
        directory = ca.directory
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
        assert _handshake(ca, "api.openai.com", ca.cert_file) == "api.openai.com"
        assert _handshake(ca, "127.0.0.1", ca.bundle) == "127.0.0.1"  # an IP address too
        # The bundle starts with the system's CAs: a real host still verifies through it.
        system = ssl.create_default_context(cafile=str(ca.bundle)).get_ca_certs()
        assert len(system) > 1
        # Another name is not this certificate's: the client refuses it.
        with pytest.raises(ssl.SSLCertVerificationError):
            _handshake_mismatch(ca)
        # No key is ever on disk, the CA's or a leaf's: only the public files.
        assert sorted(p.name for p in directory.iterdir()) == ["bundle.pem", "ca.pem"]
        for path in directory.iterdir():
            assert b"PRIVATE KEY" not in path.read_bytes()
    assert not directory.exists()
    ca.close()  # idempotent


def _handshake_mismatch(ca: RunCA) -> None:
    async def main() -> None:
        server = await asyncio.start_server(
            lambda r, w: w.close(), "127.0.0.1", 0, ssl=ca.server_context("chatgpt.com")
        )
        port = server.sockets[0].getsockname()[1]
        client = ssl.create_default_context(cafile=str(ca.cert_file))
        try:
            await asyncio.open_connection(
                "127.0.0.1", port, ssl=client, server_hostname="api.openai.com"
            )
        finally:
            server.close()

    asyncio.run(main())


def test_the_ca_vouches_for_the_intercepted_hosts_alone():
    """Name constraints: a client verifying with the run's CA accepts a leaf for an
    intercepted host (or a subdomain of a *. pattern) and refuses one for any other name or
    address, even though the run's CA signed it."""
    from cryptography import x509

    with RunCA(permitted=["api.openai.com", "*.openai.azure.com"]) as ca:
        ext = ca.certificate.extensions.get_extension_for_class(x509.NameConstraints)
        assert ext.critical
        assert _handshake(ca, "api.openai.com", ca.cert_file) == "api.openai.com"
        assert _handshake(ca, "res.openai.azure.com", ca.cert_file) == "res.openai.azure.com"
        for other in ("bank.example", "127.0.0.1"):
            with pytest.raises(ssl.SSLCertVerificationError):
                _handshake(ca, other, ca.cert_file)
    with RunCA(permitted=["127.0.0.1"]) as ca:  # an address named by --intercept
        assert _handshake(ca, "127.0.0.1", ca.cert_file) == "127.0.0.1"
        with pytest.raises(ssl.SSLCertVerificationError):
            _handshake(ca, "127.0.0.2", ca.cert_file)


def test_non_public_addresses_are_named():
    from tracer.capture.forward import non_public

    cases = {"127.0.0.1": "loopback", "::1": "loopback", "::ffff:127.0.0.1": "loopback",
             "10.1.2.3": "private", "172.16.0.1": "private", "192.168.0.1": "private",
             "fd00::1": "private", "169.254.169.254": "link-local", "fe80::1%eth0": "link-local",
             "0.0.0.0": "unspecified", "224.0.0.1": "multicast", "240.0.0.1": "private",
             "8.8.8.8": None, "2606:4700::1111": None, "api.openai.com": None}  # fmt: skip
    for address, kind in cases.items():
        assert non_public(address) == kind, address


def test_each_run_has_its_own_ca():
    with RunCA() as a, RunCA() as b:
        assert a.cert_file.read_bytes() != b.cert_file.read_bytes()
        assert a.directory != b.directory


def test_intercept_patterns():
    assert intercepts("api.openai.com", DEFAULT_INTERCEPT)
    assert intercepts("API.OpenAI.com.", DEFAULT_INTERCEPT)
    assert intercepts("myres.openai.azure.com", DEFAULT_INTERCEPT)
    assert intercepts("chatgpt.com", DEFAULT_INTERCEPT)
    assert intercepts("generativelanguage.googleapis.com", DEFAULT_INTERCEPT)
    assert not intercepts("storage.googleapis.com", DEFAULT_INTERCEPT)
    assert not intercepts("openai.azure.com.evil.test", DEFAULT_INTERCEPT)
    assert not intercepts("files.pythonhosted.org", DEFAULT_INTERCEPT)
    assert not intercepts("xapi.openai.com", ["api.openai.com"])


def test_authorities_and_connect_to():
    assert parse_authority("api.openai.com:443") == ("api.openai.com", 443)
    assert parse_authority("[::1]:8443") == ("::1", 8443)
    assert parse_authority("example.com") == ("example.com", 443)
    for bad in ("", ":443", "a@b:443", "host:0", "host:99999", "[::1"):
        with pytest.raises(ValueError):
            parse_authority(bad)
    assert parse_connect_to(["api.openai.com:443:127.0.0.1:8443"]) == {
        ("api.openai.com", 443): ("127.0.0.1", 8443)
    }
    assert parse_connect_to(["h:443:[::1]:9"]) == {("h", 443): ("::1", 9)}
    for bad in ("api.openai.com:443", "a:b:c:d", "a:443::9"):
        with pytest.raises(ValueError):
            parse_connect_to([bad])


def test_a_forward_launch_points_the_child_at_the_proxy_and_the_bundle(tmp_path: Path):
    forwarding = Forwarding(
        "http://127.0.0.1:4000", str(tmp_path / "bundle.pem"),
        lambda host: intercepts(host, DEFAULT_INTERCEPT),
    )  # fmt: skip
    environ = {
        "PATH": "/bin",
        "NO_PROXY": "internal.test,api.openai.com,*",
        "ALL_PROXY": "socks5://elsewhere:1080",
        "OPENAI_BASE_URL": "https://gateway.internal.test/v1",
    }
    launch = plan_launch(["agent"], environ, "unused", "unused", forward=forwarding)
    env = launch.env
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"):
        assert env[name] == "http://127.0.0.1:4000"
    for name in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "NODE_EXTRA_CA_CERTS",
                 "CODEX_CA_CERTIFICATE", "CURL_CA_BUNDLE"):  # fmt: skip
        assert env[name] == str(tmp_path / "bundle.pem")
    assert env["NO_PROXY"].split(",") == ["internal.test", "localhost", "127.0.0.1", "::1"]
    assert "ALL_PROXY" not in env
    assert env["OPENAI_BASE_URL"] == environ["OPENAI_BASE_URL"]  # the client keeps its host
    assert env["NODE_USE_ENV_PROXY"] == "1"
    assert len(launch.notes) == 2  # NO_PROXY, and a base URL that is passed through
    assert "gateway.internal.test" in launch.notes[1]
    assert launch.command == ["agent"]
