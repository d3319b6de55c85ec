"""Format version 1: single frame records (kind 2), which version 2 writes in batches.

A v1 frame is ``[2, conn, dt, direction, opcode, payload(, fin)]``, ``dt`` the time since
the previous timed record in the header's unit (ns in v1). Version 2 readers still read
them (``docs/format.md``), and ``tracer compact`` turns a v1 trace into v2.
"""

from __future__ import annotations

from typing import Any

from tracer.trace.errors import TraceDamaged
from tracer.trace.records import Direction, Frame, Kind, Opcode

__all__ = ["FRAME_V1", "v1_frame"]

FRAME_V1 = int(Kind.FRAME)
_DIRECTIONS = {0: Direction.CLIENT, 1: Direction.SERVER}
_OPCODES = {int(op): op for op in Opcode}
_new_frame = tuple.__new__  # skips NamedTuple's Python-level __new__


def v1_frame(obj: list[Any], last_q: int, unit: int, lo: int, hi: int) -> tuple[Frame, int]:
    """The frame of a v1 frame record and the running time after it (in units); ``lo`` and
    ``hi`` bound the running time (exclusive). A malformed record raises TraceDamaged."""
    if len(obj) in (6, 7):
        conn, dt, d, op, payload = obj[1], obj[2], obj[3], obj[4], obj[5]
        fin = obj[6] if len(obj) == 7 else True
        if (
            type(conn) is int
            and -(2**63) <= conn < 2**63
            and type(dt) is int
            and type(payload) is bytes
            and d in _DIRECTIONS
            and op in _OPCODES
            and (fin is True or fin is False)
        ):
            last_q += dt
            if not lo < last_q < hi:
                raise TraceDamaged("a time out of range")
            fields = (conn, last_q * unit, _DIRECTIONS[d], _OPCODES[op], payload, fin)
            return _new_frame(Frame, fields), last_q
    raise TraceDamaged("a frame record is malformed")
