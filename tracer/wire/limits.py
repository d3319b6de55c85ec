"""The wire's limits, apart from its I/O: the CLI's options name them without loading it."""

from __future__ import annotations

__all__ = ["DEFAULT_MAX_SIZE"]

DEFAULT_MAX_SIZE = 64 * 1024 * 1024
"""The largest message accepted from a peer, in bytes (the load tests send 1 MB frames)."""
