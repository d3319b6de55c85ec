"""How much slower this machine runs now than the one the tests' hang guards were set on.

A test bounds what does not depend on the machine's speed; where a command could hang on
hostile input, its guard is a generous multiple of the time it took on the reference
machine, scaled by this factor measured side by side in the same process (a slow or busy
machine gets a longer guard). Speed targets live in bench/.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path

from tracer.analysis import analyse
from tracer.trace import open_trace

SAMPLE = Path(__file__).resolve().parents[1] / "traces" / "incremental.trace"
REPEATS = 30
# Best of three runs of the workload below on the 2-core reference machine, quiet.
REFERENCE_S = 0.065


def _workload() -> float:
    start = time.perf_counter()
    for _ in range(REPEATS):
        with open_trace(SAMPLE) as reader:
            records = list(reader)
        analyse(records)
    return time.perf_counter() - start


@functools.cache
def slowness() -> float:
    """This machine's time for a fixed piece of tracer's work over the reference's (>= 1)."""
    return max(1.0, min(_workload() for _ in range(3)) / REFERENCE_S)


def guard_s(reference_s: float) -> float:
    """A hang guard: `reference_s` on the reference machine, scaled to this one."""
    return reference_s * slowness()
