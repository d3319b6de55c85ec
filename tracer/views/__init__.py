"""Renderings of tracer's report objects: rich for terminals, JSON for machines."""
