"""What reading a trace can raise: one base class, and types for damage and truncation."""

from __future__ import annotations

from tracer.errors import TracerError

__all__ = ["LimitExceeded", "TraceDamaged", "TraceError", "TraceTruncated"]


class TraceError(TracerError):
    """A trace file is not a trace, is damaged, or is of a version this tracer cannot read."""


class TraceDamaged(TraceError):
    """A trace holds bytes that do not decode as its format says: ``what`` is wrong,
    ``offset`` is near where (compressed bytes of the file, when known) and ``records`` how
    many records were read before it."""

    def __init__(self, what: str, *, offset: int | None = None, records: int | None = None):
        self.what = what
        self.offset = offset
        self.records = records
        where = "" if offset is None else f" at byte {offset} (after record {records})"
        super().__init__(f"damaged{where}: {what}")


class TraceTruncated(TraceError):
    """A trace ends before anything of it can be read (inside its preamble or header); a
    trace cut later reads up to the cut, with ``TraceReader.truncated`` set."""


class LimitExceeded(TraceError):
    """A trace holds more than a documented cap allows (``docs/security.md``): the message
    names the cap and how to raise it. Caps bound a command's time and memory by what it is
    willing to do, not by what a (hostile) trace claims."""
