"""Gemini Live (``BidiGenerateContent``): its protocol model (``tracer.gemini.model``)."""
