"""What `simulate` plays: the workload's knobs, and the reproducible plan drawn from them."""

from __future__ import annotations

import random
from dataclasses import dataclass

from reassembly_trigger.local.invocations.contexts import DEFAULT_TIMEOUT_SECONDS
from reassembly_trigger.local.simulation.trigger_modes import TriggerMode
from reassembly_trigger.timing import LAMBDA_MAX_TIMEOUT_SECONDS, MIN_FUNCTION_TIMEOUT_SECONDS


@dataclass(frozen=True, slots=True)
class Workload:
    """What to play: how many jobs, how big, how many workers, how unreliable."""

    jobs: int = 20
    min_segments: int = 3
    max_segments: int = 60
    workers: int = 8
    seed: int = 1
    #: Share of the handler's AWS calls that fail (throttle, 5xx, lost response).
    fault_rate: float = 0.0
    #: Share of jobs whose chunking completes only after their last segment.
    late_chunking_share: float = 0.25
    #: Share of segments a video worker writes a second time.
    duplicate_share: float = 0.03
    #: Give up waiting for the pipeline to settle after this long (whatever is not
    #: done then is unfinished).
    timeout_seconds: float = 120.0
    #: Share of stream batches the mappings give up on, as once their retries ran out
    #: (the records are never delivered).
    discard_rate: float = 0.0
    #: Whether the Jobs stream has a mapping (without one, a job chunked after its
    #: last segment is named by no record).
    jobs_stream: bool = True
    #: Whether the reconciler runs, and every how many (wall-clock) seconds.
    reconciler: bool = True
    reconcile_every_seconds: float = 5.0
    #: Who evaluates a job when a completion is written: the stream handler, the
    #: workers through the API, or both. Trigger on write alone has no stream mapping
    #: at all (the Terraform module then deploys no stream function): `jobs_stream`
    #: applies only with the stream handler.
    mode: TriggerMode = TriggerMode.STREAM
    #: With trigger on write, whether the chunker also calls `trigger_job` right after
    #: it marks a job `chunking_complete` (as the README advises); without, a job
    #: chunked after its last segment is named by no call and waits for the reconciler.
    chunker_calls: bool = True
    #: The timeout of every invocation: the stream function's, each `trigger_job`
    #: call's and each reconcile run's (the replaced Lambda's 30 s by default).
    function_timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS

    def __post_init__(self) -> None:
        if self.jobs < 1:
            raise ValueError("jobs must be at least 1")
        if not 1 <= self.min_segments <= self.max_segments:
            raise ValueError("segments need 1 <= min <= max")
        if self.workers < 1:
            raise ValueError("workers must be at least 1")
        if not 0.0 <= self.fault_rate < 1.0:
            raise ValueError("fault rate must be in [0, 1)")
        if not 0.0 <= self.discard_rate <= 1.0:
            raise ValueError("discard rate must be in [0, 1]")
        if not self.reconcile_every_seconds > 0:
            raise ValueError("the reconcile period must be positive")
        timeout = self.function_timeout_seconds
        if not MIN_FUNCTION_TIMEOUT_SECONDS <= timeout <= LAMBDA_MAX_TIMEOUT_SECONDS:
            raise ValueError(
                f"the function timeout must be {MIN_FUNCTION_TIMEOUT_SECONDS} to "
                f"{LAMBDA_MAX_TIMEOUT_SECONDS} seconds, not {timeout:g}"
            )

    @property
    def jobs_stream_mapped(self) -> bool:
        """Whether a poller reads the Jobs stream (only where the stream handler runs)."""
        return self.jobs_stream and self.mode.streams

    @property
    def chunker_calls_api(self) -> bool:
        """Whether the chunker calls `trigger_job` after each mark."""
        return self.chunker_calls and self.mode.on_write


@dataclass(frozen=True, slots=True)
class WorkloadJob:
    """One job of the workload."""

    job_id: str
    total_segments: int
    #: Distinct segments written before the chunker marks the job complete; equal to
    #: `total_segments` when chunking completes after the last segment.
    chunk_after: int
    #: Seconds the chunker takes, once `chunk_after` segments are written.
    chunk_delay: float

    @property
    def late_chunking(self) -> bool:
        """Whether chunking completes only after every segment is written."""
        return self.chunk_after >= self.total_segments


@dataclass(frozen=True, slots=True)
class SegmentWrite:
    """One completion a video worker writes (`attempt` 1 is a duplicate)."""

    job_id: str
    segment_index: int
    attempt: int = 0


@dataclass(frozen=True, slots=True)
class WorkloadPlan:
    """The jobs, and the completions in the order the workers pick them up."""

    jobs: list[WorkloadJob]
    writes: list[SegmentWrite]


def plan_workload(workload: Workload) -> WorkloadPlan:
    """A reproducible plan for `workload` (same seed, same plan)."""
    rng = random.Random(workload.seed)
    jobs: list[WorkloadJob] = []
    timed: list[tuple[float, SegmentWrite]] = []
    for number in range(1, workload.jobs + 1):
        total = rng.randint(workload.min_segments, workload.max_segments)
        late = rng.random() < workload.late_chunking_share
        job = WorkloadJob(
            job_id=f"job-{number:02d}-{rng.getrandbits(24):06x}",
            total_segments=total,
            chunk_after=total if late else rng.randint(0, total - 1),
            chunk_delay=rng.uniform(0.1, 0.4) if late else 0.0,
        )
        jobs.append(job)
        # Jobs start at different times; within a job, segments finish in any order.
        start = rng.uniform(0.0, 1.0)
        for index in range(total):
            ready = start + rng.uniform(0.0, 1.0)
            timed.append((ready, SegmentWrite(job.job_id, index)))
            if rng.random() < workload.duplicate_share:
                timed.append((ready + rng.uniform(0.0, 0.3), SegmentWrite(job.job_id, index, 1)))
    timed.sort(key=lambda pair: pair[0])
    return WorkloadPlan(jobs=jobs, writes=[write for _, write in timed])
