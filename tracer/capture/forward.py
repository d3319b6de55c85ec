"""The forward recording proxy: ``tracer record --forward``.

Clients reach it through ``HTTPS_PROXY``: each connection asks ``CONNECT host:port``. For a
host on the intercept list (the OpenAI, Azure OpenAI and ChatGPT-backend hosts, and
``--intercept``) the proxy answers 200, terminates TLS with a certificate the run's CA
(``tracer.capture.ca``) issues for that host, and serves the connection exactly as the
reverse proxy does, toward the real host with certificate verification. The client keeps
the real host name, so it behaves as it does in production. Any other host is tunnelled
untouched and unrecorded. A client that does not trust the run's CA fails its handshake:
nothing is ever passed through in its place.

Plain ``http://`` requests in proxy form (``GET http://host/path``) are forwarded the same
way, recorded for intercepted hosts.

It relays for the launched command alone: every request must carry the run's proxy
credentials (``Proxy-Authorization: Basic``, random per run, in the proxy URL the command
is given), or it gets 407; and targets on loopback, private, link-local and other
non-public addresses are refused (403) unless ``--connect-to`` names them, so no local
process can reach the machine's own services through it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import dataclasses
import fnmatch
import hmac
import ipaddress
import secrets
import socket
import ssl
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from tracer.capture.http_proxy import reason_of
from tracer.capture.launch import DEFAULT_INTERCEPT
from tracer.capture.proxy import UPSTREAM_TIMEOUT, RecordingProxy, Upstream
from tracer.capture.recorder import Recorder
from tracer.wire import DEFAULT_MAX_SIZE, RequestHead, write_response
from tracer.wire.guard import Guard
from tracer.wire.http import response_head

if TYPE_CHECKING:
    from tracer.capture.ca import RunCA

__all__ = [
    "DEFAULT_INTERCEPT",
    "ForwardProxy",
    "intercepts",
    "parse_authority",
    "parse_connect_to",
]

_TUNNEL_PIECE = 256 * 1024
_TLS_TIMEOUT = 10.0
_RESOLVE_TIMEOUT = 10.0
PROXY_USER = "tracer"


def non_public(address: str) -> str | None:
    """What kind of non-public address ``address`` (an IP literal) is, or None."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for kind, test in (
        ("loopback", ip.is_loopback),
        ("unspecified", ip.is_unspecified),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("private", ip.is_private),
        ("reserved", ip.is_reserved),
    ):
        if test:
            return kind
    return None


def intercepts(host: str, patterns: Iterable[str]) -> bool:
    """Whether ``host`` matches one of ``patterns`` (names; ``*.`` matches subdomains)."""
    host = host.lower().rstrip(".")
    for pattern in patterns:
        pattern = pattern.lower().rstrip(".")
        if host == pattern or ("*" in pattern and fnmatch.fnmatchcase(host, pattern)):
            return True
    return False


def parse_authority(authority: str, default_port: int = 443) -> tuple[str, int]:
    """``host:port`` (``[v6]:port``) as a pair; ValueError when it is not one."""
    authority = authority.strip()
    if authority.startswith("["):
        end = authority.find("]")
        if end < 0:
            raise ValueError(f"no closing bracket in {authority!r}")
        host, rest = authority[1:end], authority[end + 1 :]
        port_text = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port_text = authority.rpartition(":") if ":" in authority else (authority, "", "")
    if not host or any(c in host for c in "/@ \t"):
        raise ValueError(f"not a host: {authority!r}")
    port = int(port_text) if port_text else default_port
    if not 0 < port < 65536:
        raise ValueError(f"port out of range in {authority!r}")
    return host.lower(), port


def parse_connect_to(values: Iterable[str]) -> dict[tuple[str, int], tuple[str, int]]:
    """``HOST:PORT:ADDR:PORT`` items (curl's ``--connect-to``) as a map; ValueError on a
    malformed one."""
    out: dict[tuple[str, int], tuple[str, int]] = {}
    for value in values:
        parts = value.split(":", 2)
        if len(parts) != 3:
            raise ValueError(f"--connect-to takes HOST:PORT:ADDRESS:PORT, not {value!r}")
        host, port, rest = parts
        addr, sep, addr_port = rest.rpartition(":")
        if not (host and port and sep and addr.strip("[]") and addr_port):
            raise ValueError(f"--connect-to takes HOST:PORT:ADDRESS:PORT, not {value!r}")
        try:
            out[(host.lower(), int(port))] = (addr.strip("[]"), int(addr_port))
        except ValueError:
            raise ValueError(f"--connect-to: ports must be numbers in {value!r}") from None
    return out


class ForwardProxy(RecordingProxy):
    """An HTTP CONNECT proxy that records the hosts it intercepts (see the module)."""

    def __init__(
        self,
        recorder: Recorder | None,
        ca: RunCA,
        *,
        intercept: Sequence[str] = DEFAULT_INTERCEPT,
        connect_to: Mapping[tuple[str, int], tuple[str, int]] | None = None,
        upstream_ca: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        insecure: bool = False,
        max_size: int | None = DEFAULT_MAX_SIZE,
        allow_origins: Sequence[str] = (),
        keep_headers: Sequence[str] = (),
        add_headers: Sequence[tuple[str, str]] = (),
        upstream_timeout: float = UPSTREAM_TIMEOUT,
        log: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(
            None, recorder, host=host, port=port, insecure=insecure, max_size=max_size,
            allow_origins=allow_origins, keep_headers=keep_headers, add_headers=add_headers,
            upstream_timeout=upstream_timeout, log=log,
        )  # fmt: skip
        self.ca = ca
        self.intercept = tuple(intercept)
        self.connect_to = dict(connect_to or {})
        if self._ssl is None:  # verify the real host, against the system's CAs and these
            self._ssl = ssl.create_default_context()
            if upstream_ca:
                self._ssl.load_verify_locations(upstream_ca)
        self.tunnelled = 0  # connections passed through untouched (hosts not intercepted)
        self.refused_tls = 0  # clients that refused the run's certificate
        self.refused_auth = 0  # requests without the run's proxy credentials
        self.refused_targets = 0  # targets on loopback or private addresses
        self.password = secrets.token_urlsafe(24)  # the run's proxy credentials
        self._authorization = "Basic " + base64.b64encode(
            f"{PROXY_USER}:{self.password}".encode()
        ).decode("ascii")

    @property
    def proxy_url(self) -> str:
        """The proxy's URL with the run's credentials, for the launched command alone."""
        return f"http://{PROXY_USER}:{self.password}@{self.host}:{self.port}"

    def _authorized(self, head: RequestHead) -> bool:
        """Whether the request carries the run's proxy credentials (and drops them: they go
        no further than this proxy)."""
        given = [v for k, v in head.headers if k.lower() == "proxy-authorization"]
        head.headers = [(k, v) for k, v in head.headers if k.lower() != "proxy-authorization"]
        if len(given) != 1:
            return False
        scheme, _, value = given[0].strip().partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(value.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        expected = f"{PROXY_USER}:{self.password}".encode()
        return hmac.compare_digest(decoded, expected)

    async def _refuse_unauthorized(self, head: RequestHead, writer: asyncio.StreamWriter) -> bool:
        if self._authorized(head):
            return False
        self.refused_auth += 1
        self.log(f"refused {head.method} {head.target[:100]}: no proxy credentials of this run")
        _answer(
            writer, 407, "this proxy serves the command tracer launched (its HTTPS_PROXY)",
            [("Proxy-Authenticate", 'Basic realm="tracer record"')],
        )  # fmt: skip
        await writer.drain()
        return True

    async def _address(self, host: str, port: int) -> tuple[tuple[str, int] | None, str | None]:
        """Where to connect for ``host:port``, and why not (a non-public address) or None.
        ``--connect-to`` wins and is never refused; a name is resolved here, and the
        address checked is the one connected to (no second lookup to rebind)."""
        mapped = self.connect_to.get((host, port))
        if mapped is not None:
            return mapped, None
        if host == "localhost" or host.endswith(".localhost"):
            return None, f"{host} is a loopback name"
        kind = non_public(host)
        if kind is not None:
            return None, f"{host} is a {kind} address"
        try:
            ipaddress.ip_address(host)
            return None, None  # a public literal: connect as named
        except ValueError:
            pass
        loop = asyncio.get_running_loop()
        try:
            infos = await asyncio.wait_for(
                loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), _RESOLVE_TIMEOUT
            )
        except (OSError, TimeoutError):
            return None, None  # unresolvable: the connection fails with its own error
        for info in infos:
            kind = non_public(str(info[4][0]))
            if kind is not None:
                return None, f"{host} resolves to a {kind} address ({info[4][0]})"
        return (str(infos[0][4][0]), port) if infos else None, None

    async def _refuse_target(
        self, host: str, port: int, writer: asyncio.StreamWriter
    ) -> tuple[bool, tuple[str, int] | None]:
        address, why = await self._address(host, port)
        if why is None:
            return False, address
        self.refused_targets += 1
        self.log(f"refused {host}:{port}: {why} (--connect-to names such targets)")
        _answer(writer, 403, f"{why}: not relayed (--connect-to names such targets)")
        await writer.drain()
        return True, None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await self.read_head(reader, writer)
        if head is None:
            return
        is_proxy_request = head.method == "CONNECT" or head.target.startswith(
            ("http://", "https://")
        )
        if is_proxy_request and await self._refuse_unauthorized(head, writer):
            return
        if head.method == "CONNECT":
            await self._connect(head, reader, writer)
        elif head.target.startswith(("http://", "https://")):
            await self._absolute(head, reader, writer)
        else:
            self.log(f"refused {head.method} {head.path[:100]}: not a proxy request")
            _answer(writer, 400, "this is a forward proxy: set HTTPS_PROXY to its address")
            await writer.drain()

    def _upstream(
        self, host: str, port: int, address: tuple[str, int] | None, *, tls: bool
    ) -> Upstream:
        default = 443 if tls else 80
        netloc = f"[{host}]" if ":" in host else host
        netloc += "" if port == default else f":{port}"
        return Upstream(
            f"{'wss' if tls else 'ws'}://{netloc}",
            self._ssl if tls else None,
            address,
            record=intercepts(host, self.intercept),
        )

    def _guard(self, host: str) -> Guard:
        """Requests inside an intercepted tunnel name the real host: that is expected."""
        return dataclasses.replace(self.guard, names=self.guard.names | {host})

    async def _connect(
        self, head: RequestHead, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            host, port = parse_authority(head.target)
        except ValueError as exc:
            _answer(writer, 400, f"bad CONNECT target: {exc}")
            await writer.drain()
            return
        why = self.guard.refuse_origin(head)
        if why is not None:
            self.log(f"refused CONNECT {host}:{port}: {why}")  # a web page's request
            _answer(writer, 403, why)
            await writer.drain()
            return
        refused, address = await self._refuse_target(host, port, writer)
        if refused:
            return
        if not intercepts(host, self.intercept):
            await self._tunnel(host, port, address, reader, writer)
            return
        # No await between the answer and start_tls: the client's TLS hello, sent once it
        # reads the answer, must reach the TLS layer, not the plain reader's buffer.
        writer.write(response_head(200, reason="Connection Established"))
        try:
            await writer.start_tls(self.ca.server_context(host), ssl_handshake_timeout=_TLS_TIMEOUT)
        except (ssl.SSLError, OSError, TimeoutError) as exc:
            self.refused_tls += 1
            self.log(
                f"CONNECT {host}:{port}: the client refused tracer's certificate "
                f"({getattr(exc, 'reason', None) or reason_of(exc)}); does it trust the run's "
                "CA (SSL_CERT_FILE, NODE_EXTRA_CA_CERTS)?"
            )
            writer.transport.abort()
            return
        upstream = self._upstream(host, port, address, tls=True)
        await self.serve(reader, writer, upstream, guard=self._guard(host))

    async def _absolute(
        self, head: RequestHead, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """``GET http://host/path HTTP/1.1``: an ``HTTP_PROXY`` request."""
        parts = urlsplit(head.target)
        if parts.scheme != "http" or not parts.hostname or "@" in parts.netloc:
            _answer(writer, 400, "a proxy request must name an http:// URL (https: CONNECT)")
            await writer.drain()
            return
        host, port = parts.hostname.lower(), parts.port or 80
        refused, address = await self._refuse_target(host, port, writer)
        if refused:
            return
        head.target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        upstream = self._upstream(host, port, address, tls=False)
        if not upstream.record:
            self.tunnelled += 1  # forwarded, not recorded
        if not head.is_websocket_upgrade:
            # One request a connection: the next one may name another host.
            head.headers = [(k, v) for k, v in head.headers if k.lower() != "connection"]
            head.headers.append(("Connection", "close"))
        await self.serve(reader, writer, upstream, head=head, guard=self._guard(host))

    async def _tunnel(
        self,
        host: str,
        port: int,
        address: tuple[str, int] | None,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        """Pass the bytes of a host that is not intercepted through, both ways, unrecorded."""
        target = address or (host, port)
        try:
            up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(*target), 30)
        except (OSError, TimeoutError) as exc:
            self.log(f"CONNECT {host}:{port}: 502: {reason_of(exc)}")
            _answer(writer, 502, f"cannot reach {host}:{port}: {reason_of(exc)}")
            await writer.drain()
            return
        self.tunnelled += 1
        writer.write(response_head(200, reason="Connection Established"))
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            up_writer.close()
            with contextlib.suppress(Exception):
                await up_writer.wait_closed()


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while data := await src.read(_TUNNEL_PIECE):
            dst.write(data)
            await dst.drain()
        if dst.can_write_eof():
            dst.write_eof()


def _answer(
    writer: asyncio.StreamWriter,
    status: int,
    message: str,
    extra: Sequence[tuple[str, str]] = (),
) -> None:
    headers = [("Content-Type", "text/plain"), ("Connection", "close"), *extra]
    write_response(writer, status, headers, f"tracer record: {message}\n".encode())
