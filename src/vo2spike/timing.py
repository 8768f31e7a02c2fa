"""Wall-clock time per stage of a long command, for the table ``vo2spike run`` prints."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator


class StageClock:
    """Seconds per named stage, in the order the stages first ran; a stage entered again
    adds to its time."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the block as stage ``name``."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start

    def table(self, total_s: float | None = None) -> str:
        """A markdown table: stage, seconds, share of ``total_s`` (default: their sum)."""
        total = total_s if total_s is not None else sum(self.seconds.values())
        lines = ["| stage | seconds | share |", "|---|---:|---:|"]
        for name, s in self.seconds.items():
            lines.append(f"| {name} | {s:.1f} | {s / total:.0%} |" if total > 0 else
                         f"| {name} | {s:.1f} | - |")
        other = total - sum(self.seconds.values())
        if total_s is not None and other > 0.05:
            lines.append(f"| other (loading, reports) | {other:.1f} | {other / total:.0%} |")
        lines.append(f"| **total** | **{total:.1f}** | |")
        return "\n".join(lines)


@contextlib.contextmanager
def untimed(name: str) -> Iterator[None]:
    """A stage context that times nothing (the default when no clock is given)."""
    yield
