"""``python -m tracer``."""

from tracer.cli import run

run()
