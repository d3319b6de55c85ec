"""Where a recording proxy sends one client connection's traffic (no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    import ssl

__all__ = ["MAX_BODY_BYTES", "UPSTREAM_TIMEOUT", "Upstream", "upstream_ws_base"]


def upstream_ws_base(url: str) -> str:
    """The WebSocket origin and path prefix of ``--upstream`` (http(s) becomes ws(s))."""
    parts = urlsplit(url)
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme)
    if "@" in parts.netloc:  # never echo it: it holds a credential
        raise ValueError(
            "--upstream must not hold credentials (user:password@host): the client's own "
            "Authorization header reaches the upstream"
        )
    if scheme is None or not parts.netloc:
        raise ValueError(
            f"--upstream must be a ws://, wss://, http:// or https:// URL, not {url!r}"
        )
    return f"{scheme}://{parts.netloc}{parts.path.rstrip('/')}"


@dataclass(frozen=True, slots=True)
class Upstream:
    """Where one client connection's requests go: an origin and path prefix, how TLS to it
    is verified, and (``--connect-to``) another address to reach it at."""

    ws_base: str  # ws(s)://host[:port][/prefix]
    ssl: ssl.SSLContext | None = None  # None: the default context (for wss and https)
    address: tuple[str, int] | None = None  # connect here; TLS name and Host stay ws_base's
    record: bool = True  # False: forwarded only (a forward proxy's host not intercepted)

    @property
    def http_base(self) -> str:
        return "http" + self.ws_base.removeprefix("ws")  # ws -> http, wss -> https


UPSTREAM_TIMEOUT = 600.0
"""Seconds an HTTP upstream may stay silent (before its answer, or inside it) before the
client gets 502 (nginx: proxy_read_timeout). A reasoning model's non-streamed answer can
take minutes before its first byte."""
MAX_BODY_BYTES = 256 * 1024 * 1024
"""Request bytes the proxy holds for the recorder at once, over all requests in flight."""
