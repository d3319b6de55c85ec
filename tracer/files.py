"""Writing files whole or not at all, readable by their owner only; reading the small
settings files (scripts, pricing tables) a user gives."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from tracer.errors import TracerError

__all__ = ["Spill", "atomic_write", "read_table"]


def read_table(path: str | os.PathLike[str], what: str, error: type[TracerError]) -> Any:
    """A ``.toml`` file (else JSON) parsed; ``error`` with one line saying why it cannot be
    read or parsed (``what``: what the file is, as the message names it)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise error(f"cannot read {what} {str(p)!r}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise error(f"{what} {str(p)!r} is not UTF-8 text") from None
    try:
        return tomllib.loads(text) if p.suffix == ".toml" else json.loads(text)
    except (ValueError, RecursionError) as exc:  # tomllib's and json's errors are ValueErrors
        raise error(f"{what} {str(p)!r} does not parse: {exc}") from None


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """A binary file to write ``path`` through: it is written beside the target and renamed
    over it only when the block ends without an error, so a failure never leaves a
    half-written file (or harms the one already there). The file is created 0600: a trace,
    a report or an export can hold what a session said."""
    target = os.fspath(path)
    directory, name = os.path.split(target)
    fd, tmp = tempfile.mkstemp(dir=directory or ".", prefix=f".{name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class Spill:
    """Payloads kept in an anonymous temporary file (0600, unlinked at once) and read back
    on demand: a command holds where each payload lies, not the payloads."""

    def __init__(self) -> None:
        self.file = tempfile.TemporaryFile()  # noqa: SIM115 - closed by close()
        self._size = 0

    def add(self, payload: bytes) -> tuple[int, int]:
        """Keep ``payload``; its offset and size, for ``read``."""
        self.file.seek(self._size)
        self.file.write(payload)
        at, self._size = self._size, self._size + len(payload)
        return at, len(payload)

    def read(self, offset: int, size: int) -> bytes:
        self.file.seek(offset)
        return self.file.read(size)

    def close(self) -> None:
        self.file.close()
