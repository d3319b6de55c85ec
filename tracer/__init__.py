"""tracer: record, replay, diff and explain WebSocket sessions of AI agents."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
