"""How a launched command is pointed at the recording proxy (no I/O): launch presets.

Clients read their endpoint from different places. ``tracer record -- CMD`` sets every one
of them that the clients in ``docs/clients.md`` read, and says so when it overrides a value
the user had set; ``--no-preset`` leaves only ``OPENAI_BASE_URL``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

__all__ = ["DEFAULT_INTERCEPT", "FORWARD_PRESETS", "PRESETS", "Forwarding", "Launch", "plan_launch"]

PRESETS = (
    ("OPENAI_BASE_URL", "the proxy's HTTP base URL (the openai SDKs, most frameworks; always set)"),
    ("OPENAI_API_BASE", "the same, for older SDKs and tools"),
    ("OPENAI_WEBSOCKET_BASE_URL", "the proxy's WebSocket base URL (openai-agents, @openai/agents)"),
    ("codex", "for a command whose program is codex: -c openai_base_url=... after the subcommand"),
)
"""What the launch presets set, for ``--help`` and the docs."""

FORWARD_PRESETS = (
    ("HTTPS_PROXY, HTTP_PROXY", "the proxy's address (and https_proxy, http_proxy)"),
    ("NO_PROXY", "localhost, 127.0.0.1 and ::1 added (and no_proxy)"),
    ("NODE_USE_ENV_PROXY", "1: Node 24 (and 22.21) fetch honours the proxy variables"),
    ("SSL_CERT_FILE, REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE", "the system CAs plus the run's CA"),
    ("NODE_EXTRA_CA_CERTS, CODEX_CA_CERTIFICATE", "the same bundle"),
)
"""What ``--forward`` sets for a launched command instead of the base URLs."""

_LOCAL = ("localhost", "127.0.0.1", "::1")

DEFAULT_INTERCEPT = (
    "api.openai.com",
    "*.openai.azure.com",
    "*.cognitiveservices.azure.com",
    "*.services.ai.azure.com",
    "chatgpt.com",
    "*.chatgpt.com",
    "generativelanguage.googleapis.com",
)
"""Hosts recorded by default: the OpenAI API, Azure OpenAI, the ChatGPT backend (Codex
signed in with ChatGPT) and the Gemini API (Gemini Live)."""


@dataclass(frozen=True, slots=True)
class Forwarding:
    """The forward proxy a launched command goes through, and the CA bundle it trusts."""

    proxy_url: str  # http://HOST:PORT
    bundle: str  # the system CAs and the run's CA, PEM
    intercepted: Callable[[str], bool]  # whether a host name is recorded


@dataclass(slots=True)
class Launch:
    """The command as launched, its environment, and what to tell the user about them."""

    command: list[str]
    env: dict[str, str]
    notes: list[str] = field(default_factory=list)


def plan_launch(
    command: list[str],
    environ: dict[str, str],
    base_url: str,
    origin: str,
    *,
    presets: bool = True,
    forward: Forwarding | None = None,
) -> Launch:
    """Point ``command`` at the proxy listening on ``base_url`` (``http://HOST:PORT/v1``);
    with ``forward``, at the forward proxy instead, keeping the hosts the client names."""
    if forward is not None:
        return _forward(command, environ, forward)
    env = dict(environ)
    env["OPENAI_BASE_URL"] = base_url
    env["TRACER_PROXY_URL"] = origin
    launch = Launch(list(command), env)
    if not presets:
        return launch
    env["OPENAI_API_BASE"] = base_url
    ws_url = "ws" + base_url.removeprefix("http")  # http -> ws, https -> wss
    previous = environ.get("OPENAI_WEBSOCKET_BASE_URL")
    if previous and previous.rstrip("/") != ws_url:
        launch.notes.append(
            "OPENAI_WEBSOCKET_BASE_URL was set to another address; the command gets the "
            "proxy's, so that its WebSocket traffic is recorded (--no-preset keeps yours)"
        )
    env["OPENAI_WEBSOCKET_BASE_URL"] = ws_url
    if command and Path(command[0]).name in ("codex", "codex.exe"):
        launch.command = _codex(command, base_url)
    return launch


def _codex(command: list[str], base_url: str) -> list[str]:
    """Codex's built-in provider ignores OPENAI_BASE_URL: give it a config override, after
    the subcommand (``codex exec -c openai_base_url="..." ...``)."""
    override = ["-c", f'openai_base_url="{base_url}"']
    if any(a.startswith("openai_base_url=") for a in command):
        return list(command)  # the user chose one
    at = 2 if len(command) > 1 and not command[1].startswith("-") else 1
    return [*command[:at], *override, *command[at:]]


def _forward(command: list[str], environ: dict[str, str], forward: Forwarding) -> Launch:
    env = dict(environ)
    launch = Launch(list(command), env)
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"):
        env[name] = forward.proxy_url
    env.pop("ALL_PROXY", None)
    env.pop("all_proxy", None)
    entries = [
        h.strip()
        for h in (environ.get("NO_PROXY") or environ.get("no_proxy") or "").split(",")
        if h.strip()
    ]
    kept = [h for h in entries if h != "*" and not forward.intercepted(h.lstrip("*."))]
    if len(kept) < len(entries):
        launch.notes.append(
            "NO_PROXY named a recorded host (or *); the command gets it without that entry"
        )
    no_proxy = ",".join(dict.fromkeys([*kept, *_LOCAL]))
    env["NO_PROXY"] = env["no_proxy"] = no_proxy
    env["NODE_USE_ENV_PROXY"] = "1"
    for name in (
        "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "NODE_EXTRA_CA_CERTS",
        "CODEX_CA_CERTIFICATE",
    ):  # fmt: skip
        env[name] = forward.bundle
    env["TRACER_PROXY_URL"] = forward.proxy_url
    for name in ("OPENAI_BASE_URL", "OPENAI_WEBSOCKET_BASE_URL"):
        value = environ.get(name)
        host = urlsplit(value).hostname if value else None
        if value and host and not forward.intercepted(host):
            launch.notes.append(
                f"{name} points at {host}, which --forward passes through unrecorded "
                "(--intercept HOST records it)"
            )
    return launch
