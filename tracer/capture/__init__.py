"""Capture: the recorder, the recording proxy and in-process taps (asyncio shells)."""
