"""What a recorder counts as it goes, and which frames it could not record."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["RecorderStats", "Unrecorded"]

_MAX_RANGES = 64  # per connection; past it the last range grows to cover later drops


class Unrecorded:
    """Which frames of one connection were not recorded: numbered from 1 per connection."""

    __slots__ = ("conn", "count", "exact", "ranges")

    def __init__(self, conn: int) -> None:
        self.conn = conn
        self.count = 0
        self.ranges: list[list[int]] = []  # [first, last] frame numbers, inclusive
        self.exact = True  # False once ranges were merged (they then cover recorded ones too)

    def add(self, seq: int) -> None:
        self.count += 1
        ranges = self.ranges
        if ranges and seq == ranges[-1][1] + 1:
            ranges[-1][1] = seq
        elif len(ranges) < _MAX_RANGES:
            ranges.append([seq, seq])
        else:
            ranges[-1][1] = seq
            self.exact = False

    def spans(self) -> list[list[int]]:
        """The ranges in order, adjacent ones merged (frames settled late come out of order)."""
        out: list[list[int]] = []
        for a, b in sorted(self.ranges):
            if out and a <= out[-1][1] + 1:
                out[-1][1] = max(out[-1][1], b)
            else:
                out.append([a, b])
        return out

    def describe(self) -> str:
        spans = ", ".join(f"#{a}" if a == b else f"#{a}-#{b}" for a, b in self.spans())
        return f"connection {self.conn}: {self.count} frames ({spans})"

    def to_json(self) -> dict[str, Any]:
        return {"conn": self.conn, "frames": self.count, "ranges": self.spans(),
                "exact": self.exact}  # fmt: skip


@dataclass(slots=True)
class RecorderStats:
    """Live counts for status lines; read from any thread."""

    connections: int = 0
    open_connections: int = 0
    frames: int = 0
    bytes: int = 0
    creates: int = 0  # messages that start a turn, by their protocol (a response.create)
    dropped_frames: int = 0
    write_error: str | None = None
    unrecorded: dict[int, Unrecorded] = field(default_factory=dict)  # conn -> frames lost
