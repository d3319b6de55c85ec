"""The script format of the scripted upstream: what the "model" answers, turn by turn.

A script is a JSON or TOML document (docs/upstream.md). This module parses and validates
it; it does no I/O beyond reading the file it is given.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from tracer.errors import TracerError
from tracer.files import read_table
from tracer.upstream.realtime import RealtimeScript

__all__ = [
    "PROFILES",
    "Call",
    "Fault",
    "Profile",
    "Script",
    "ScriptError",
    "Timing",
    "TurnScript",
    "default_script",
    "parse_profile",
]


class ScriptError(TracerError, ValueError):
    """A script file that cannot be used; the message says what is wrong and where."""


@dataclass(frozen=True, slots=True)
class Timing:
    """How fast the scripted model answers."""

    ttfe_ms: float = 5.0  # create received -> response.created
    ttft_ms: float = 30.0  # create received -> first output delta
    tokens_per_s: float = 500.0  # output deltas per second after the first
    jitter: float = 0.2  # each delay varies by up to this fraction (seeded)


@dataclass(frozen=True, slots=True)
class Call:
    """A function call the model makes. ``name`` "*" means the client's first function tool."""

    name: str
    arguments: str  # JSON text, as the API streams it


@dataclass(frozen=True, slots=True)
class Fault:
    """Something going wrong during a turn, injected by the script."""

    kind: str  # "error", "close", "drop" or "stall"
    after_events: int = 0  # events of the turn sent before the fault
    code: int = 1011  # close code, for "close"
    reason: str = ""
    error_code: str = "server_error"  # for "error"
    message: str = "The scripted upstream failed this turn on purpose."
    status: int = 500
    stall_ms: float = 0.0  # for "stall": a pause before the remaining events
    repeat: bool = False  # fire every time the turn is reached, not only the first time
    transport: str = ""  # "websocket" or "http": fire only over that transport ("": both)


@dataclass(frozen=True, slots=True)
class TurnScript:
    """One model answer: optional text, then zero or more function calls."""

    text: str = ""
    calls: tuple[Call, ...] = ()
    timing: Timing | None = None
    fault: Fault | None = None
    status: str = "completed"  # or "incomplete" / "failed"


@dataclass(frozen=True, slots=True)
class Profile:
    """Which variants of real services the upstream plays (see "What real traffic looks
    like" in the protocol notes); the default is the clean case."""

    empty_completed_output: bool = False  # completed.output is [] (the Codex backend)
    vendor_events: bool = False  # codex.rate_limits before response.created
    handshake_headers: bool = False  # x-codex-turn-state and openai-model on the upgrade
    reasoning: bool = False  # a reasoning item first; encrypted_content differs per copy
    obfuscation: bool = False  # an obfuscation padding field on delta events
    phase: bool = False  # "phase" on assistant messages
    usage: bool = True  # False: responses carry no usage
    stored: bool = False  # store=true responses resolve from any connection, WS or HTTP
    cache_writes: bool = False  # usage reports cache_write_tokens (the gpt-5.6 generation)
    multi_agent: bool = False  # output items carry agent.agent_name (/root; calls: a worker)
    prefix_cache: bool = False  # a create's longest prefix seen before is cached (any conn)

    def merge(self, other: Profile) -> Profile:
        """Both profiles' variants (usage stays on only if both keep it)."""
        values = {
            name: (getattr(self, name) and getattr(other, name))
            if name == "usage"
            else (getattr(self, name) or getattr(other, name))
            for name in self.__slots__
        }
        return Profile(**values)


PROFILES: dict[str, Profile] = {
    "openai": Profile(),
    "codex": Profile(
        empty_completed_output=True,
        vendor_events=True,
        handshake_headers=True,
        reasoning=True,
        phase=True,
    ),
    "reasoning": Profile(reasoning=True, obfuscation=True, phase=True),
    "no-usage": Profile(usage=False),
    "stored": Profile(stored=True),
    "cache-write": Profile(cache_writes=True),
    "multi-agent": Profile(multi_agent=True),
    "prefix-cache": Profile(prefix_cache=True),
}
"""Named profiles for ``tracer upstream --profile`` and a script's ``profile`` key."""


def parse_profile(text: str) -> Profile:
    """A profile from names joined by commas (``codex,no-usage``)."""
    profile = Profile()
    for name in (n.strip() for n in text.split(",")):
        if name not in PROFILES:
            raise ScriptError(f"unknown profile {name!r} (known: {', '.join(PROFILES)})")
        profile = profile.merge(PROFILES[name])
    return profile


@dataclass(frozen=True, slots=True)
class ServerTiming:
    """What the upstream says of its own time when a request asks for timing metrics
    (``x-responsesapi-include-timing-metrics: true``): its pre-inference and queue time
    as given here; the engine's, the rest of the time it measured to the first token."""

    pre_inference_ms: float = 4.0
    engine_queue_max_ms: float = 1.0


@dataclass(frozen=True, slots=True)
class Script:
    """A whole script: the turns in conversation order, timing, model name and seed."""

    turns: tuple[TurnScript, ...]
    timing: Timing = field(default_factory=Timing)
    model: str = "tracer-scripted-1"
    seed: int = 0
    final_text: str = "Done."  # the answer once the conversation outgrows the script
    profile: Profile = field(default_factory=Profile)
    realtime: RealtimeScript = field(default_factory=RealtimeScript)  # /v1/realtime's play
    server_timing: ServerTiming = field(default_factory=ServerTiming)

    def turn(self, depth: int) -> TurnScript:
        """The answer for the ``depth``-th model response of a conversation (from 0)."""
        if depth < len(self.turns):
            return self.turns[depth]
        return TurnScript(text=self.final_text)

    @classmethod
    def load(cls, path: str | Path) -> Script:
        """Read a script from a ``.json`` or ``.toml`` file."""
        data = read_table(path, "script", ScriptError)
        return cls.from_dict(data, where=str(path))

    @classmethod
    def from_dict(cls, data: Any, where: str = "script") -> Script:
        if not isinstance(data, dict):
            raise ScriptError(f"{where}: the top level must be a table/object")
        turns = data.get("turns", [])
        if not isinstance(turns, list):
            raise ScriptError(f"{where}: 'turns' must be a list")
        return cls(
            turns=tuple(_turn(t, f"{where}: turns[{i}]") for i, t in enumerate(turns)),
            timing=_timing(data.get("timing", {}), f"{where}: timing") or Timing(),
            model=_get(data, "model", str, "tracer-scripted-1", where),
            seed=_get(data, "seed", int, 0, where),
            final_text=_get(data, "final_text", str, "Done.", where),
            profile=parse_profile(_get(data, "profile", str, "openai", where)),
            realtime=_realtime(data.get("realtime", {}), f"{where}: realtime"),
            server_timing=_server_timing(data.get("server_timing", {}), f"{where}: server_timing"),
        )


def _get(d: dict[str, Any], key: str, typ: type, default: Any, where: str) -> Any:
    value = d.get(key, default)
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
        raise ScriptError(f"{where}: '{key}' must be {typ.__name__}")
    return value


def _server_timing(d: Any, where: str) -> ServerTiming:
    if not isinstance(d, dict):
        raise ScriptError(f"{where} must be a table/object")
    unknown = set(d) - {"pre_inference_ms", "engine_queue_max_ms"}
    if unknown:
        raise ScriptError(f"{where}: unknown key(s) {sorted(unknown)}")
    values = {k: _get(d, k, float, 0.0, where) for k in d}
    if any(v < 0 for v in values.values()):
        raise ScriptError(f"{where}: times must be >= 0")
    return replace(ServerTiming(), **values)


def _realtime(d: Any, where: str) -> RealtimeScript:
    """The ``realtime`` table: any of ``RealtimeScript``'s fields, of its types."""
    if not isinstance(d, dict):
        raise ScriptError(f"{where} must be a table/object")
    default = RealtimeScript()
    known = {f.name for f in fields(RealtimeScript)}
    unknown = set(d) - known
    if unknown:
        raise ScriptError(f"{where}: unknown key(s) {sorted(unknown)}")
    values: dict[str, Any] = {}
    for key, value in d.items():
        if key == "answers":
            if (
                not isinstance(value, list)
                or not value
                or not all(isinstance(a, str) for a in value)
            ):
                raise ScriptError(f"{where}: 'answers' must be a non-empty list of strings")
            values[key] = tuple(value)
        elif key == "close_on_response":
            values[key] = None if value is None else _get(d, key, int, None, where)
        else:
            values[key] = _get(d, key, type(getattr(default, key)), None, where)
            if isinstance(values[key], int | float) and values[key] < 0:
                raise ScriptError(f"{where}: '{key}' must be >= 0")
    if values.get("chunk_ms", 1) <= 0:
        raise ScriptError(f"{where}: 'chunk_ms' must be > 0")
    return replace(default, **values)


def _timing(d: Any, where: str) -> Timing | None:
    if d is None:
        return None
    if not isinstance(d, dict):
        raise ScriptError(f"{where} must be a table/object")
    unknown = set(d) - {"ttfe_ms", "ttft_ms", "tokens_per_s", "jitter"}
    if unknown:
        raise ScriptError(f"{where}: unknown key(s) {sorted(unknown)}")
    t = Timing()
    values = {k: _get(d, k, float, getattr(t, k), where) for k in d}
    if any(v < 0 for v in values.values()) or values.get("tokens_per_s", 1) <= 0:
        raise ScriptError(f"{where}: times must be >= 0 and tokens_per_s > 0")
    return replace(t, **values)


def _turn(d: Any, where: str) -> TurnScript:
    if isinstance(d, str):
        return TurnScript(text=d)
    if not isinstance(d, dict):
        raise ScriptError(f"{where} must be a table/object or a string")
    calls = d.get("calls", [])
    if not isinstance(calls, list):
        raise ScriptError(f"{where}: 'calls' must be a list")
    status = _get(d, "status", str, "completed", where)
    if status not in ("completed", "incomplete", "failed"):
        raise ScriptError(f"{where}: 'status' must be completed, incomplete or failed")
    return TurnScript(
        text=_get(d, "text", str, "", where),
        calls=tuple(_call(c, f"{where}.calls[{i}]") for i, c in enumerate(calls)),
        timing=_timing(d.get("timing"), f"{where}.timing"),
        fault=_fault(d.get("fault"), f"{where}.fault"),
        status=status,
    )


def _call(d: Any, where: str) -> Call:
    if not isinstance(d, dict) or not isinstance(d.get("name"), str):
        raise ScriptError(f"{where} needs a 'name'")
    args = d.get("arguments", {})
    if not isinstance(args, str):
        args = json.dumps(args, separators=(",", ":"))
    return Call(name=d["name"], arguments=args)


def _fault(d: Any, where: str) -> Fault | None:
    if d is None:
        return None
    if not isinstance(d, dict):
        raise ScriptError(f"{where} must be a table/object")
    kind = d.get("kind")
    if kind not in ("error", "close", "drop", "stall"):
        raise ScriptError(f"{where}: 'kind' must be error, close, drop or stall")
    f = Fault(kind=kind)
    fields = {
        "after_events": int,
        "code": int,
        "reason": str,
        "error_code": str,
        "message": str,
        "status": int,
        "stall_ms": float,
        "repeat": bool,
        "transport": str,
    }
    unknown = set(d) - set(fields) - {"kind"}
    if unknown:
        raise ScriptError(f"{where}: unknown key(s) {sorted(unknown)}")
    values = {k: _get(d, k, typ, getattr(f, k), where) for k, typ in fields.items() if k in d}
    if values.get("transport", "") not in ("", "websocket", "http"):
        raise ScriptError(f"{where}: 'transport' must be websocket or http")
    return replace(f, **values)


_AGENT_STEPS = [
    ("Let me look at the repository first.", "pwd"),
    ("I'll list the files.", "ls -la"),
    ("Checking which Python is available.", "python3 --version"),
    ("Let me see the environment's shell.", "echo $SHELL"),
    ("I'll count the files here.", "ls | wc -l"),
    ("Looking for a README.", "ls README* 2>/dev/null || echo 'no README'"),
    ("Checking the date for the log.", "date -u +%Y-%m-%d"),
    ("Let me check the disk space.", "df -h . | tail -n 1"),
    ("I'll check the user.", "id -un"),
    ("Searching for TODO markers.", "grep -rn TODO . 2>/dev/null | head -n 5 || true"),
    ("Confirming the working directory again.", "pwd"),
    ("One last check of the files.", "ls -1"),
]


def default_script() -> Script:
    """The built-in script: a coding agent's loop of a dozen ``exec_command`` calls."""
    turns = [
        TurnScript(
            text=text,
            calls=(Call(name="exec_command", arguments=json.dumps({"cmd": cmd})),),
        )
        for text, cmd in _AGENT_STEPS
    ]
    turns.append(
        TurnScript(
            text=(
                "I have inspected the workspace: it is a small project with no failing checks. "
                "Nothing else needs to change."
            )
        )
    )
    return Script(turns=tuple(turns), seed=7)
