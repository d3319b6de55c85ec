"""Recordings made by other tools, read as traces (no I/O beyond reading the file): a HAR
(JSON), a VCR.py/pytest-recording or cassetter cassette (YAML; cassetter's TOML too) or a
mitmproxy flow file (tnetstrings), told apart by their content."""

from __future__ import annotations

import dataclasses
import io
import os
from typing import TYPE_CHECKING, Any

import orjson

from tracer.trace.format import TraceError, encode_preamble
from tracer.trace.records import Close, Frame, Open, Record

if TYPE_CHECKING:  # the HAR importer loads when a file is imported, not to tell a trace
    from tracer.export.har import HarImport

__all__ = ["ZSTD_MAGIC", "import_recording", "is_trace_file", "merge_imports"]

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_PREAMBLE_START = encode_preamble()[:14]  # a trace's preamble, all but its version
"""How a trace file starts (a zstd frame)."""

MAX_FOREIGN_BYTES = 512 * 1024 * 1024
"""A HAR or cassette is read whole: larger ones are refused, not read into memory."""


FOREIGN_SUFFIXES = (".har", ".json", ".jsonl", ".yaml", ".yml", ".toml")
"""Files read as other tools' recordings when they do not start as a trace does."""


def is_trace_file(path: str | os.PathLike[str]) -> bool:
    """Whether a file is to be read as a trace: it starts as one does, or is neither named
    as a HAR or a cassette nor starts as a flow file (the trace reader then says what is
    wrong with it)."""
    try:
        with open(path, "rb") as f:
            start = f.read(64)
    except OSError:
        return True
    if start[:4] == ZSTD_MAGIC or start[:14] == _PREAMBLE_START:
        return True
    if os.fspath(path).lower().endswith(FOREIGN_SUFFIXES):
        return False
    from tracer.export.mitmproxy import is_flow_file

    with open(path, "rb") as f:
        return not is_flow_file(f)


def import_recording(path: str | os.PathLike[str]) -> HarImport:
    """A HAR or a cassette as trace records; ``TraceError`` (one line) for anything else."""
    name = os.fspath(path)
    try:
        if os.path.getsize(name) > MAX_FOREIGN_BYTES:
            raise TraceError(f"{name}: over {MAX_FOREIGN_BYTES >> 20} MiB: import it in parts")
        with open(name, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise TraceError(f"cannot open {name!r}: {exc.strerror}") from None
    source = os.path.basename(name)
    from tracer.export.har import import_har
    from tracer.export.mitmproxy import import_flows, is_flow_file

    if is_flow_file(io.BytesIO(data)):
        return import_flows(data, source=source)
    if data.lstrip()[:1] == b"{":
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            return _json_lines(data, source, exc)
        if _is_opencode_export(doc):
            raise TraceError(
                "an opencode session export holds the session's messages, not its traffic"
                " (no requests, response ids or event times): record the agent instead,"
                " e.g. tracer record -- opencode run ..."
            )
        return import_har(doc, source=source)
    from tracer.export.cassetter import import_cassetter, is_cassetter
    from tracer.export.vcr import import_vcr, is_cassette, load_cassette

    doc = _toml(data) if name.lower().endswith(".toml") else load_cassette(data)
    if is_cassetter(doc):
        return import_cassetter(doc, source=source)
    from tracer.export.pydantic_ws import import_pydantic_ws, is_pydantic_ws

    if is_pydantic_ws(doc):
        return import_pydantic_ws(doc, source=source)
    if not is_cassette(doc):
        raise TraceError(
            "not a trace, a HAR file, a VCR.py or cassetter cassette or a mitmproxy flow file"
            " (none of their shapes)"
        )
    return import_vcr(doc, source=source)


def _json_lines(data: bytes, source: str, exc: orjson.JSONDecodeError) -> HarImport:
    """A file of one JSON object per line: claude-tap's trace, else not a format we read."""
    from tracer.export.claude_tap import import_claude_tap, is_claude_tap, read_json_lines

    first = data.lstrip().split(b"\n", 1)[0]
    try:
        orjson.loads(first)
    except orjson.JSONDecodeError:
        raise TraceError(f"not a HAR file: invalid JSON ({exc})") from None
    records = read_json_lines(data)
    if is_claude_tap(records):
        return import_claude_tap(records, source=source)
    raise TraceError(
        "JSON lines of a shape tracer does not read (it reads claude-tap's traces;"
        " see docs/import.md)"
    )


def _is_opencode_export(doc: Any) -> bool:
    """`opencode export`'s JSON: the session's ``info`` and its ``messages``."""
    info = doc.get("info") if isinstance(doc, dict) else None
    return (
        isinstance(info, dict)
        and str(info.get("id", "")).startswith("ses_")
        and isinstance(doc.get("messages"), list)
    )


def _toml(data: bytes) -> Any:
    import tomllib

    try:
        return tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise TraceError(f"not a cassette: invalid TOML ({exc})") from None


def merge_imports(named: list[tuple[str, HarImport]]) -> HarImport:
    """Several imported recordings as one trace: connections numbered on, in one time order
    (each file's times kept relative to the earliest), the header's ``times`` synthesised
    when any file's were, its ``sources`` naming each file."""
    from tracer.export.har import HarImport

    parts = [part for _, part in named]
    if len(parts) == 1:
        return parts[0]
    anchor = min(p.header.anchor_unix_ns for p in parts)
    timed: list[tuple[int, int, Record]] = []
    offset = 0
    for part in parts:
        shift = part.header.anchor_unix_ns - anchor
        for rec in part.records:
            moved = _moved(rec, shift, offset)
            timed.append((getattr(moved, "t_ns", 0), len(timed), moved))
        offset += part.connections
    timed.sort(key=lambda x: (x[0], x[1]))
    first = parts[0]
    synthesised = any(p.header.metadata.get("times") == "synthesised" for p in parts)
    metadata = {
        "source": "tracer import",
        "sources": [os.path.basename(name) for name, _ in named],
        "times": "synthesised" if synthesised else "recorded",
    }
    return HarImport(
        header=dataclasses.replace(first.header, anchor_unix_ns=anchor, metadata=metadata),
        records=[rec for _, _, rec in timed],
        connections=sum(p.connections for p in parts),
        frames=sum(p.frames for p in parts),
        skipped_entries=sum(p.skipped_entries for p in parts),
        spread_entries=sum(p.spread_entries for p in parts),
    )


def _moved(rec: Record, shift: int, offset: int) -> Record:
    """A record ``shift`` ns later, its connection numbered ``offset`` on."""
    if isinstance(rec, Frame):
        return rec._replace(t_ns=rec.t_ns + shift, conn=rec.conn + offset)
    if isinstance(rec, Open | Close):
        return dataclasses.replace(rec, t_ns=rec.t_ns + shift, conn=rec.conn + offset)
    return rec
