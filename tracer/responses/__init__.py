"""The Responses protocol model: frames -> turn events (sans-I/O)."""

from __future__ import annotations

from tracer.responses.model import RESPONSES, ResponsesProtocol, ResponsesReader, output_text

__all__ = ["RESPONSES", "ResponsesProtocol", "ResponsesReader", "output_text"]
