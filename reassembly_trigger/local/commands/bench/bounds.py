"""Critical-path bounds: the fewest sequential round trips a workload can take (why:
docs/performance.md, "Bounds and floors"). A workload's bound is the sum over its
stages, in round trips; times the measured single-call round trip, in seconds.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

#: The calls of a job that completes after its count: lock, send, mark.
TRIGGER_CALLS = 3


@dataclass(frozen=True, slots=True)
class Stage:
    """One stage (an invocation, a chunk): sequential reads, then the jobs side by side."""

    leading: int
    job_calls: tuple[int, ...]

    def round_trips(self, concurrency: int | None = None) -> int:
        """At least this many round trips (None: as many threads as jobs)."""
        longest = max(self.job_calls, default=0)
        if concurrency is None:
            return self.leading + longest
        return self.leading + max(longest, math.ceil(sum(self.job_calls) / concurrency))

    @property
    def calls(self) -> int:
        """Every call of the stage."""
        return self.leading + sum(self.job_calls)


@dataclass(frozen=True, slots=True)
class Bound:
    """A workload's stages, and the bound they set."""

    stages: tuple[Stage, ...]

    def round_trips(self, concurrency: int | None = None) -> int:
        """The critical path in round trips (None: unbounded concurrency)."""
        return sum(i.round_trips(concurrency) for i in self.stages)

    def seconds(self, round_trip_seconds: float, concurrency: int | None = None) -> float:
        """The critical path in seconds at this single-call round trip."""
        return self.round_trips(concurrency) * round_trip_seconds

    @property
    def calls(self) -> int:
        """Every call the design makes for the workload (a minimum, retries aside)."""
        return sum(i.calls for i in self.stages)


def stream_bound(
    batches: Sequence[Sequence[tuple[str, int]]], segments: int, pages: int = 1
) -> Bound:
    """Workload 1: batches of (job, index) completions, each job of `segments` segments.

    Each batch reads its Jobs (one `BatchGetItem` per 100) and counts each job it names
    (`pages` Query calls); the batch holding a job's last segment also triggers it.
    """
    seen: Counter[str] = Counter()
    stages = []
    for batch in batches:
        named = dict.fromkeys(job for job, _ in batch)
        seen.update(job for job, _ in batch)
        calls = (pages + TRIGGER_CALLS if seen[job] == segments else pages for job in named)
        stages.append(Stage(math.ceil(len(named) / 100), tuple(calls)))
    return Bound(tuple(stages))


def burst_bound(jobs: int, pages: int = 1) -> Bound:
    """One batch naming `jobs` complete jobs: every one is counted and triggered."""
    return Bound((Stage(math.ceil(jobs / 100), (pages + TRIGGER_CALLS,) * jobs),))


def reconcile_bound(chunks: Sequence[tuple[int, Sequence[int]]], *, list_pages: int = 1) -> Bound:
    """The reconciler: list the jobs in flight and read its cursor; then, chunk after
    chunk, its reads (the locks, then the Jobs not finished) and each job's calls; then
    save the cursor. `chunks` holds (reads, calls of each job) per chunk."""
    stages = [Stage(list_pages + 1, ())]
    stages += [Stage(reads, tuple(calls)) for reads, calls in chunks]
    stages.append(Stage(1, ()))
    return Bound(tuple(stages))
