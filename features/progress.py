"""Progress reporting: long stages call ``progress(step, fraction)``; the CLI draws the bar."""

from __future__ import annotations

from collections.abc import Callable

#: ``progress(step, fraction)``: a short description of the step and the share done, 0-1.
Progress = Callable[[str, float], None] | None


def part(progress: Progress, start: float, end: float, prefix: str = "") -> Progress:
    """A callback for one part of a longer task: its 0-1 maps onto ``[start, end]`` of
    ``progress``, and its steps are prefixed with ``prefix`` ("backtest 2/4: tuning 3/8")."""
    if progress is None:
        return None
    outer = progress

    def report(step: str, fraction: float) -> None:
        done = start + (end - start) * min(max(fraction, 0.0), 1.0)
        outer(f"{prefix}: {step}" if prefix else step, done)

    return report
