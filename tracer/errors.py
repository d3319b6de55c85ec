"""The base of every error tracer raises on purpose (no I/O).

A ``TracerError`` is a failure a user can act on: its message is one line that says what
went wrong and where, its attributes carry the facts (a path, an offset, a status), and
``exit_code`` is the code a command exits with for it (1 by default; 2 for a usage error,
as for a bad option). The CLI prints any of them as ``tracer: error: MESSAGE``; anything
else that escapes is a bug and says so.
"""

from __future__ import annotations

__all__ = ["USAGE", "TracerError"]

USAGE = 2
"""The exit code of a usage error (a bad option or argument), as click uses it."""


class TracerError(Exception):
    """A failure a user can act on: one line of message and an exit-code hint."""

    exit_code: int = 1
