"""How a launched command is pointed at the recording proxy (no I/O): launch presets.

Clients read their endpoint from different places. ``tracer record -- CMD`` sets every one
of them that the clients in ``docs/clients.md`` read, and says so when it overrides a value
the user had set; ``--no-preset`` leaves only ``OPENAI_BASE_URL``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["PRESETS", "Launch", "plan_launch"]

PRESETS = (
    ("OPENAI_BASE_URL", "the proxy's HTTP base URL (the openai SDKs, most frameworks; always set)"),
    ("OPENAI_API_BASE", "the same, for older SDKs and tools"),
    ("OPENAI_WEBSOCKET_BASE_URL", "the proxy's WebSocket base URL (openai-agents, @openai/agents)"),
    ("codex", "for a command whose program is codex: -c openai_base_url=... after the subcommand"),
)
"""What the launch presets set, for ``--help`` and the docs."""


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
) -> Launch:
    """Point ``command`` at the proxy listening on ``base_url`` (``http://HOST:PORT/v1``)."""
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
