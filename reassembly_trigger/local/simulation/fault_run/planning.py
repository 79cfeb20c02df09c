"""The scripted pipeline: jobs of varied sizes and fates, their writes, interleaved."""

from __future__ import annotations

import itertools
import random
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum

from reassembly_trigger.local.invocations.items import Item, completion_item, job_item
from reassembly_trigger.local.simulation.clock import DEFAULT_START
from reassembly_trigger.local.simulation.fault_run.config import FaultScenario

#: Segment counts and how often each occurs: mostly small, some large.
JOB_SIZES = (1, 2, 3, 4, 5, 6, 8, 12, 24)
JOB_SIZE_WEIGHTS = (16, 22, 20, 14, 10, 7, 5, 4, 2)
#: Chance that a video worker writes a completion twice.
DUPLICATE_COMPLETION_RATE = 0.08
#: `completed_at` of a completion (one more when written again): fixed, so every run
#: writes the same items.
COMPLETED_AT = int(DEFAULT_START)


class JobKind(StrEnum):
    """How a job's life goes in the scripted pipeline."""

    READY = "ready"  # chunking completes before its last segment
    LATE_CHUNKING = "late_chunking"  # chunking completes after its last segment
    INCOMPLETE = "incomplete"  # one segment never completes
    NEVER_CHUNKED = "never_chunked"  # every segment done; chunking never completes


@dataclass(frozen=True, slots=True)
class ScriptedJob:
    """One job of the run: its size and its fate."""

    job_id: str
    total: int
    kind: JobKind

    @property
    def complete(self) -> bool:
        """Whether the job ends complete and `chunking_complete` (so it must be reassembled)."""
        return self.kind in (JobKind.READY, JobKind.LATE_CHUNKING)


def plan_jobs(count: int, rng: random.Random) -> list[ScriptedJob]:
    """Jobs of varied sizes and fates (mostly complete ones)."""
    kinds = rng.choices(
        (JobKind.READY, JobKind.LATE_CHUNKING, JobKind.INCOMPLETE, JobKind.NEVER_CHUNKED),
        weights=(72, 16, 8, 4),
        k=count,
    )
    sizes = rng.choices(JOB_SIZES, weights=JOB_SIZE_WEIGHTS, k=count)
    return [
        ScriptedJob(f"job-{n:06d}", sizes[n], kinds[n] if sizes[n] > 1 else JobKind.READY)
        for n in range(count)
    ]


@dataclass(frozen=True, slots=True)
class Write:
    """One write of the pipeline: the chunker's Job item (created, then `again` when
    chunking completes), or a video worker's completion of `segment_index` (`again`:
    written a second time)."""

    job: ScriptedJob
    segment_index: int | None = None
    again: bool = False

    @property
    def on_jobs_table(self) -> bool:
        """Whether it writes the Jobs table (else SegmentCompletions)."""
        return self.segment_index is None

    @property
    def key(self) -> tuple[str, int | None]:
        """The item's key (one BatchWriteItem may not write a key twice)."""
        return (self.job.job_id, self.segment_index)

    def images(self, created_at: int) -> tuple[Item, Item | None]:
        """The item written and, when it exists already, the one it replaces (the Job
        created at `created_at`)."""
        job_id = self.job.job_id
        if self.segment_index is None:
            created = job_item(job_id, status="chunking_in_progress", created_at=created_at)
            if not self.again:
                return created, None
            return job_item(job_id, total_segments=self.job.total, created_at=created_at), created
        first = completion_item(job_id, self.segment_index, completed_at=COMPLETED_AT)
        if not self.again:
            return first, None
        return completion_item(job_id, self.segment_index, completed_at=COMPLETED_AT + 1), first


def job_writes(job: ScriptedJob, rng: random.Random, counts: Counter[str]) -> list[Write]:
    """A job's writes in the order the pipeline makes them (segments out of order)."""
    indexes = list(range(job.total))
    if job.kind is JobKind.INCOMPLETE:
        indexes.remove(rng.randrange(job.total))
    rng.shuffle(indexes)
    segments: list[Write] = []
    for index in indexes:
        segments.append(Write(job, segment_index=index))
        if rng.random() < DUPLICATE_COMPLETION_RATE:  # the video worker wrote it twice
            segments.append(Write(job, segment_index=index, again=True))
            counts[FaultScenario.DUPLICATE_COMPLETION] += 1
    writes = [Write(job)]
    chunking = Write(job, again=True)  # `chunking_complete`, with its `total_segments`
    if job.kind is JobKind.LATE_CHUNKING:
        writes += [*segments, chunking]
        counts[FaultScenario.CHUNKING_AFTER_LAST_SEGMENT] += 1
    elif job.kind is JobKind.NEVER_CHUNKED:
        writes += segments
    else:
        # Before the last segment: anywhere from the start to just before the end.
        at = rng.randrange(len(segments)) if segments else 0
        writes += [*segments[:at], chunking, *segments[at:]]
    return writes


def interleave(
    per_job: Sequence[list[Write]], in_flight: int, rng: random.Random
) -> Iterator[Write]:
    """The writes of many jobs, interleaved: `in_flight` jobs progress at once."""
    pending = iter(per_job)
    active: list[Iterator[Write]] = [iter(w) for w in itertools.islice(pending, in_flight)]
    while active:
        index = rng.randrange(len(active))
        write = next(active[index], None)
        if write is None:
            nxt = next(pending, None)
            if nxt is None:
                active.pop(index)
            else:
                active[index] = iter(nxt)
            continue
        yield write
