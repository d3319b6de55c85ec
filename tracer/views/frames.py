"""Frame listings: one line per frame, for terminals and as JSON Lines."""

from __future__ import annotations

from rich.markup import escape

from tracer.export.jsonl import frame_json
from tracer.trace.records import Direction, Frame, Opcode

__all__ = ["frame_json", "frame_line", "payload_preview"]

_ARROWS = {Direction.CLIENT: "C→S", Direction.SERVER: "S→C"}  # who sent it, to whom


def payload_preview(frame: Frame, width: int = 80) -> str:
    """A one-line, printable preview of a frame's payload."""
    data = frame.payload[: width * 4]
    if frame.opcode in (Opcode.TEXT, Opcode.CONT):
        text = data.decode("utf-8", errors="replace")
    elif frame.opcode is Opcode.CLOSE and len(frame.payload) >= 2:
        code = int.from_bytes(frame.payload[:2], "big")
        text = f"{code} {frame.payload[2:].decode('utf-8', errors='replace')}"
    else:
        text = data.hex(" ")
    text = text.encode("unicode_escape").decode("ascii") if not text.isprintable() else text
    return text if len(text) <= width else text[: width - 1] + "…"


def frame_line(frame: Frame, *, markup: bool, width: int | None = None) -> str:
    """One listing line: time, connection, who sent it to whom (C→S: client to server),
    opcode, size, preview; within ``width`` cells when given (a terminal)."""
    arrow = _ARROWS[frame.direction]
    line = (
        f"{frame.t_ns / 1e9:12.6f}  c{frame.conn:<4} {arrow} "
        f"{frame.opcode.label:<6} {len(frame.payload):>8}  "
    )
    preview = payload_preview(frame, 80 if width is None else max(8, width - len(line)))
    if not markup:
        return line + preview
    colour = "cyan" if frame.direction is Direction.CLIENT else "green"
    return f"[{colour}]{escape(line)}[/{colour}]{escape(preview)}"
