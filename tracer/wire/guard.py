"""Which requests a local server answers: local agents, not web pages (no I/O).

WebSockets are not subject to CORS, and a web page can reach 127.0.0.1, also through a host
name it maps there (DNS rebinding). So every local server of tracer (the recording proxy,
replay, the scripted upstream) refuses a request whose ``Host`` does not name this machine
and one that carries an ``Origin`` (browsers always send it; agents do not) not on its
allow-list. Replay can also require a token (``Authorization: Bearer TOKEN``, the header
``x-tracer-token``, or a path that starts with ``/t/TOKEN``).
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tracer.wire.http import RequestHead

__all__ = ["LOCAL_NAMES", "Guard", "is_loopback"]

LOCAL_NAMES = frozenset(["localhost", "127.0.0.1", "::1"])
FORWARD_DROPPED = frozenset(["cookie", "origin", "proxy-authorization", "x-tracer-token"])
"""Request headers the recording proxy does not forward upstream unless told to keep them:
a browser's cookies and origin, and credentials meant for a proxy (or for tracer itself)."""


def _host_name(host: str) -> str:
    """The name part of a Host header value: without the port, brackets removed."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host[1:]
    if host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.rstrip(".")


def is_loopback(name: str) -> bool:
    """A name or address that stays on this machine (localhost, 127.0.0.0/8, ::1)."""
    if name in LOCAL_NAMES or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class Guard:
    """The policy of one server: the host it listens on, the origins it admits, a token."""

    listen_host: str = "127.0.0.1"
    allowed_origins: frozenset[str] = frozenset()
    token: str | None = None
    names: frozenset[str] = frozenset()  # other Host names it answers (a TLS certificate's)

    @classmethod
    def of(
        cls,
        listen_host: str,
        origins: Iterable[str] = (),
        token: str | None = None,
        names: Iterable[str] = (),
    ) -> Guard:
        return cls(
            listen_host.lower(),
            frozenset(o.rstrip("/") for o in origins),
            token,
            frozenset(n.lower().rstrip(".") for n in names),
        )

    def refuse(self, head: RequestHead) -> str | None:
        """Why ``head`` must be refused (answered 403), or None to serve it. The reason
        names what was wrong, never a secret."""
        if not head.target.startswith("/"):  # "@other:port/..." would change the upstream
            return "a request target that is not a path"
        host = head.header("Host")
        if host is not None:
            name = _host_name(host)
            if not (is_loopback(name) or name == self.listen_host or name in self.names):
                return f"Host {host[:100]!r} is not this machine (a web page's request?)"
        why = self.refuse_origin(head)
        if why is not None:
            return why
        if self.token is not None and not self._has_token(head):
            return "a missing or wrong token (see --token)"
        return None

    def refuse_origin(self, head: RequestHead) -> str | None:
        """Why ``head``'s ``Origin`` must be refused (a web page's request), or None."""
        origin = head.header("Origin")
        if origin is not None and origin.rstrip("/") not in self.allowed_origins:
            return f"Origin {origin[:100]!r} is not allowed (see --allow-origin)"
        return None

    def _has_token(self, head: RequestHead) -> bool:
        assert self.token is not None
        offered = [head.header("x-tracer-token") or ""]
        scheme, _, credentials = (head.header("Authorization") or "").partition(" ")
        if scheme.lower() == "bearer":
            offered.append(credentials.strip())
        if head.path.startswith("/t/"):
            offered.append(head.path[3:].split("/", 1)[0])
        return any(hmac.compare_digest(o.encode(), self.token.encode()) for o in offered if o)

    def strip_token_path(self, target: str) -> str:
        """The request target without a ``/t/TOKEN`` prefix."""
        if self.token is not None and target.startswith(f"/t/{self.token}/"):
            return target[len(self.token) + 3 :]
        return target
