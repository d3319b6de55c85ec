"""Recordings made by other tools, read as traces (no I/O beyond reading the file): a HAR
(JSON) or a VCR.py/pytest-recording cassette (YAML), told apart by their content."""

from __future__ import annotations

import os

import orjson

from tracer.export.har import HarImport, import_har
from tracer.trace.format import TraceError

__all__ = ["ZSTD_MAGIC", "import_recording", "is_trace_file"]

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
"""How a trace file starts (a zstd frame)."""

MAX_FOREIGN_BYTES = 512 * 1024 * 1024
"""A HAR or cassette is read whole: larger ones are refused, not read into memory."""


FOREIGN_SUFFIXES = (".har", ".json", ".yaml", ".yml")
"""Files read as other tools' recordings when they do not start as a trace does."""


def is_trace_file(path: str | os.PathLike[str]) -> bool:
    """Whether a file is to be read as a trace: it starts as one does, or is not named as a
    HAR or a cassette (the trace reader then says what is wrong with it)."""
    if not os.fspath(path).lower().endswith(FOREIGN_SUFFIXES):
        return True
    try:
        with open(path, "rb") as f:
            return f.read(4) == ZSTD_MAGIC
    except OSError:
        return True


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
    if data.lstrip()[:1] == b"{":
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise TraceError(f"not a HAR file: invalid JSON ({exc})") from None
        return import_har(doc, source=source)
    from tracer.export.vcr import import_vcr, is_cassette, load_cassette

    doc = load_cassette(data)
    if not is_cassette(doc):
        raise TraceError("not a trace, a HAR file or a VCR.py cassette (none of their shapes)")
    return import_vcr(doc, source=source)
