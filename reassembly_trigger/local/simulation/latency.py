"""How long a complete job waits for its message: percentiles over a run's jobs."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


def percentile(sorted_values: Sequence[float], share: float) -> float:
    """The nearest-rank percentile (`share` in (0, 1]) of values sorted ascending."""
    if not sorted_values:
        raise ValueError("no values")
    rank = max(1, math.ceil(share * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


@dataclass(frozen=True, slots=True)
class LatencySummary:
    """Seconds from the write that made each job complete to its first message."""

    jobs: int
    p50: float
    p95: float
    max: float

    @classmethod
    def of(cls, seconds: Sequence[float]) -> LatencySummary | None:
        """The summary of these latencies (None when there are none)."""
        if not seconds:
            return None
        ordered = sorted(seconds)
        return cls(len(ordered), percentile(ordered, 0.5), percentile(ordered, 0.95), ordered[-1])

    def as_json(self) -> dict[str, Any]:
        """In milliseconds, as `simulate --json` prints them."""
        return {
            "jobs": self.jobs,
            "p50_ms": round(self.p50 * 1000, 1),
            "p95_ms": round(self.p95 * 1000, 1),
            "max_ms": round(self.max * 1000, 1),
        }

    def line(self) -> str:
        """`p50 12 ms, p95 40 ms, max 85 ms (20 jobs)`."""
        return (
            f"p50 {self.p50 * 1000:.0f} ms, p95 {self.p95 * 1000:.0f} ms, "
            f"max {self.max * 1000:.0f} ms ({self.jobs} jobs)"
        )
