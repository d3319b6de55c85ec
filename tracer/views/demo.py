"""What ``tracer demo`` prints."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console

from tracer.analysis.model import InspectReport
from tracer.trace.verify import Integrity
from tracer.vocab import plural, protocol_label, turns_phrase

if TYPE_CHECKING:
    from tracer.demo.agent import AgentRun

__all__ = ["render_demo", "render_voice_demo"]


def render_demo(
    path: str, run: AgentRun, integrity: Integrity, report: InspectReport | None, console: Console
) -> None:
    """The run in the words every command uses: its turns as the trace counts them (a
    create the server refused is a turn), falling back on the agent's own count when the
    trace could not be read."""
    if report is not None:
        ran = turns_phrase(report.summary.turns, report.summary.warmups)
    else:
        ran = turns_phrase(run.creates, run.warmups)
    console.print(
        f"[bold]tracer demo[/bold]: the demo agent ran {ran} over "
        f"{plural(run.connections, 'connection')} against the scripted upstream"
    )
    if run.errors:
        console.print(f"  errors: {', '.join(run.errors)} (cache losses: {run.cache_losses})")
    state = "[green]ok[/green]" if integrity.ok else "[red]damaged[/red]"
    console.print(
        f"  recorded {plural(integrity.frames, 'frame')}, "
        f"{plural(integrity.payload_bytes, 'payload byte')} "
        f"into {path} ({state})"
    )
    console.print(f"  next: [cyan]tracer inspect {path}[/cyan]  (or tracer frames {path})")


def render_voice_demo(
    path: str,
    spoken: tuple[int, int],
    integrity: Integrity,
    report: InspectReport | None,
    console: Console,
    protocol: str = "realtime",
) -> None:
    """``tracer demo --protocol P``: the voice agent's run (``spoken``: the answers it got
    and the times it spoke), and where it was recorded."""
    answers, spoken_turns = spoken
    turns = report.summary.turns if report is not None else answers
    console.print(
        f"[bold]tracer demo --protocol {protocol}[/bold]: the voice agent ran "
        f"{plural(turns, 'turn')}, {spoken_turns} of them spoken, against the scripted "
        f"{protocol_label(protocol)} endpoint"
    )
    state = "[green]ok[/green]" if integrity.ok else "[red]damaged[/red]"
    console.print(
        f"  recorded {plural(integrity.frames, 'frame')}, "
        f"{plural(integrity.payload_bytes, 'payload byte')} into {path} ({state})"
    )
    console.print(f"  next: [cyan]tracer latency {path}[/cyan]  (or tracer turn {path} 3)")
