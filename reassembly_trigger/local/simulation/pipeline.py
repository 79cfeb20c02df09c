"""The whole pipeline around the trigger, played on an embedded AWS.

`Simulation.run()` starts a moto server, creates the tables and queues, and plays a
workload through real AWS calls:

- the chunker marks each job `chunking_complete` with `total_segments`, part of the
  way through its segments, or (for some jobs) only after its last one is written;
- video workers (threads) write completions concurrently and out of order, now and
  then twice (a re-delivered work message); with trigger on write (`mode` `on-write`
  or `both`), each worker calls the API, `trigger_job`, right after each completion
  `PutItem`;
- the stream poller follows both streams (or only the completions', or only the
  Jobs' in `on-write` mode) like Lambda's event source mappings and invokes the real
  `lambda_handler`; its AWS calls, the API's and the reconciler's can be made to fail
  at a rate;
  the mappings can be made to give up on a share of batches (as once their retries ran
  out), and the Jobs stream can be left unmapped;
- the real reconciler runs on a schedule (every few seconds here), and once the
  pipeline looks settled, until a run finds nothing to do;
- a modelled media worker consumes the reassembly queue with the contract's lock.

The handler, the API and the reconciler each have clients of their own (configured
alike, from the same environment), so the run reports each one's AWS calls by
operation; and it measures, per job, the time from the write that made the job
complete to its first message (see `SimulationResult.latency`).

The run ends once the pipeline has settled: everything is written, the pollers have
read every record the pipeline wrote and delivered it, and the reassembly queue holds
no message, visible or in flight, twice in a row; with the reconciler, a run that
started once it looked so also found nothing to do. That is a fact about the state, not
a quiet spell on the clock, so a slow machine cannot end a run early. A job reassembled
once is a success; a job never reassembled once everything settled is stuck; a job
reassembled twice is a broken guarantee. A run stopped before it settled (its timeout,
Ctrl-C or `stop()`) calls the jobs it did not get to unfinished.
"""

from __future__ import annotations

import heapq
import logging
import os
import random
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import structlog

from reassembly_trigger import handler as lambda_function
from reassembly_trigger import reconcile
from reassembly_trigger.api import trigger_job
from reassembly_trigger.batch import ReassemblyTrigger
from reassembly_trigger.clients import AwsClients, aws_clients, reset_clients, session_clients
from reassembly_trigger.evaluation import SystemClock
from reassembly_trigger.gateways import ReconcileCursorStore
from reassembly_trigger.local.aws.calls import CallCounter
from reassembly_trigger.local.aws.faults import FaultInjector, FaultKind, FaultRule
from reassembly_trigger.local.aws.stack import (
    DEFAULT_REGION,
    LocalAws,
    ResourceNames,
    Resources,
    create_resources,
    embedded_moto_server,
    environment,
)
from reassembly_trigger.local.simulation.latency import LatencySummary
from reassembly_trigger.local.simulation.media_worker import MediaWorker
from reassembly_trigger.local.simulation.reconcile_schedule import (
    REQUEST_PREFIX,
    ReconcilerLoop,
    ReconcileTally,
    ScheduledReconciler,
)
from reassembly_trigger.local.simulation.trigger_modes import TriggerMode
from reassembly_trigger.local.streams.poller import (
    GiveUp,
    MappingSettings,
    PollerGroup,
    PollerStats,
    StreamPoller,
)
from reassembly_trigger.metrics import configure_metrics
from reassembly_trigger.runtime import build_trigger
from reassembly_trigger.settings import Settings

#: Faults injected into the handler's AWS calls, in equal shares of the fault rate.
FAULT_KINDS = (FaultKind.THROTTLE, FaultKind.SERVER_ERROR, FaultKind.LOST_RESPONSE)
#: Pause between two looks at the pipeline's state (pacing only: no decision rests on it).
_LOOK_INTERVAL_SECONDS = 0.05
#: Least time between the end of a reconcile run and one the settling wait asks for
#: (pacing only: the wait takes only a run that started once all looked settled).
_RECONCILE_GAP_SECONDS = 0.5
#: Environment variables that would send the handler's clients elsewhere.
_FOREIGN_VARIABLES = (
    "AWS_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_ENDPOINT_URL_DYNAMODB",
    "AWS_ENDPOINT_URL_SQS",
)


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

    @property
    def jobs_stream_mapped(self) -> bool:
        """Whether a poller reads the Jobs stream (only where the stream handler runs)."""
        return self.jobs_stream and self.mode.streams

    @property
    def chunker_calls_api(self) -> bool:
        """Whether the chunker calls `trigger_job` after each mark."""
        return self.chunker_calls and self.mode.on_write


@dataclass(frozen=True, slots=True)
class PlannedJob:
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
class Plan:
    """The jobs, and the completions in the order the workers pick them up."""

    jobs: list[PlannedJob]
    writes: list[SegmentWrite]


def plan_workload(workload: Workload) -> Plan:
    """A reproducible plan for `workload` (same seed, same plan)."""
    rng = random.Random(workload.seed)
    jobs: list[PlannedJob] = []
    timed: list[tuple[float, SegmentWrite]] = []
    for number in range(1, workload.jobs + 1):
        total = rng.randint(workload.min_segments, workload.max_segments)
        late = rng.random() < workload.late_chunking_share
        job = PlannedJob(
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
    return Plan(jobs=jobs, writes=[write for _, write in timed])


# ------------------------------------------------------------------ observing the handler


@dataclass(slots=True)
class JobTransitions:
    """What the handler's transition events said about one job."""

    skips: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
    enqueued: int = 0


class TransitionTally:
    """A structlog processor: counts the handler's `transition` events, prints nothing."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.jobs: dict[str, JobTransitions] = {}
        self.transitions = 0
        self.errors = 0

    def __call__(self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> Any:
        """Count the event, then drop it (the reconciler's transitions are tallied from
        its runs' results; its errors count here too)."""
        reconciling = str(event_dict.get("aws_request_id", "")).startswith(REQUEST_PREFIX)
        if event_dict.get("event") == "transition" and not reconciling:
            job_id = str(event_dict.get("job_id"))
            dest = event_dict.get("dest")
            reason = str(event_dict.get("reason"))
            with self._lock:
                self.transitions += 1
                job = self.jobs.setdefault(job_id, JobTransitions())
                if dest == "skipped":
                    job.skips[reason] += 1
                elif dest == "failed":
                    job.failures[reason] += 1
                elif dest == "enqueued":
                    job.enqueued += 1
        elif event_dict.get("event") == "evaluation_error":
            with self._lock:
                self.errors += 1
        raise structlog.DropEvent

    def job(self, job_id: str) -> JobTransitions:
        """One job's counts (empty if the handler never evaluated it)."""
        with self._lock:
            return self.jobs.get(job_id) or JobTransitions()

    def skips_by_reason(self) -> Counter[str]:
        """Skips over every job, by reason."""
        with self._lock:
            return sum((job.skips for job in self.jobs.values()), Counter())

    def failures_by_reason(self) -> Counter[str]:
        """Failed evaluations over every job, by reason."""
        with self._lock:
            return sum((job.failures for job in self.jobs.values()), Counter())


@contextmanager
def captured_transitions() -> Iterator[TransitionTally]:
    """Route every structlog event, of every level, to a `TransitionTally` for the block."""
    tally = TransitionTally()
    previous = structlog.get_config() if structlog.is_configured() else None
    structlog.configure(
        processors=[tally],
        # Transitions are INFO: whatever level was configured before, the tally sees them.
        wrapper_class=structlog.make_filtering_bound_logger(logging.NOTSET),
        cache_logger_on_first_use=False,
    )
    try:
        yield tally
    finally:
        if previous is None:
            structlog.reset_defaults()
        else:
            structlog.configure(**previous)


@contextmanager
def discarded_metrics() -> Iterator[None]:
    """Drop the handler's EMF lines for the block (they would mix with the report)."""
    with open(os.devnull, "w") as sink:
        configure_metrics(sink)
        try:
            yield
        finally:
            configure_metrics(None)


@contextmanager
def lambda_environment(values: Mapping[str, str]) -> Iterator[None]:
    """The process environment the handler reads, for the block; a fresh container."""
    names = set(values) | set(_FOREIGN_VARIABLES)
    saved = {name: os.environ.get(name) for name in names}
    for name in _FOREIGN_VARIABLES:
        os.environ.pop(name, None)
    os.environ.update(values)
    lambda_function.reset_container()
    reconcile.reset_container()
    reset_clients()
    try:
        yield
    finally:
        lambda_function.reset_container()
        reconcile.reset_container()
        reset_clients()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def fault_injector(rate: float, seed: int) -> FaultInjector:
    """Throttles, server errors and lost responses, together at `rate` of the calls."""
    injector = FaultInjector(random.Random(seed))
    share = rate / len(FAULT_KINDS)
    taken = 0.0
    for kind in FAULT_KINDS:
        # Rules are tried in turn: each one's probability applies to the calls the
        # earlier ones let through.
        injector.add(FaultRule("*", kind, probability=share / (1.0 - taken)))
        taken += share
    return injector


# ------------------------------------------------------------------ the actors


class Chunker:
    """Marks jobs `chunking_complete` with `total_segments`, each when it is due."""

    def __init__(
        self,
        aws: LocalAws,
        jobs_table: str,
        *,
        after_mark: Callable[[str], None] | None = None,
    ) -> None:
        """`after_mark`: what the chunker does right after each mark (trigger on write:
        call the API), in its thread."""
        self._aws = aws
        self._table = jobs_table
        self._after_mark = after_mark
        self._due: list[tuple[float, int, PlannedJob]] = []
        self._cv = threading.Condition()
        self._stop = False
        self._order = 0
        self.marked = 0
        #: When each job's mark was issued (epoch seconds).
        self.marked_at: dict[str, float] = {}
        self.error: Exception | None = None

    def schedule(self, job: PlannedJob, delay: float) -> None:
        """Complete `job`'s chunking `delay` seconds from now."""
        with self._cv:
            self._order += 1
            heapq.heappush(self._due, (time.monotonic() + delay, self._order, job))
            self._cv.notify()

    def idle(self) -> bool:
        """Nothing scheduled."""
        with self._cv:
            return not self._due

    def stop(self) -> None:
        """Return from `run` (jobs still scheduled are left as they are)."""
        with self._cv:
            self._stop = True
            self._cv.notify()

    def run(self) -> None:
        """Mark jobs as they fall due, until `stop()`."""
        while True:
            with self._cv:
                while not self._stop and (not self._due or self._due[0][0] > time.monotonic()):
                    timeout = self._due[0][0] - time.monotonic() if self._due else None
                    self._cv.wait(timeout)
                if self._stop:
                    return
                _, _, job = self._due[0]
            issued = time.time()
            try:
                self._mark(job)
            except Exception as exc:
                self.error = exc
                return
            with self._cv:
                heapq.heappop(self._due)
                self.marked += 1
                self.marked_at[job.job_id] = issued
            if self._after_mark is not None:
                try:
                    self._after_mark(job.job_id)
                except Exception as exc:
                    self.error = exc
                    return

    def _mark(self, job: PlannedJob) -> None:
        self._aws.dynamodb.update_item(
            TableName=self._table,
            Key={"job_id": {"S": job.job_id}},
            UpdateExpression="SET #status = :complete, total_segments = :total",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={
                ":complete": {"S": "chunking_complete"},
                ":total": {"N": str(job.total_segments)},
            },
        )


class VideoWorkers:
    """Threads writing completions in plan order; tells the chunker when a job is due.

    `after_write` is what a worker does right after each completion it wrote (trigger
    on write: call the API), in the worker's thread.
    """

    def __init__(
        self,
        aws: LocalAws,
        table: str,
        plan: Plan,
        chunker: Chunker,
        workers: int,
        *,
        after_write: Callable[[str], None] | None = None,
    ) -> None:
        self._aws = aws
        self._table = table
        self._writes = plan.writes
        self._jobs = {job.job_id: job for job in plan.jobs}
        self._chunker = chunker
        self._workers = workers
        self._after_write = after_write
        self._lock = threading.Lock()
        self._next = 0
        self._distinct: dict[str, set[int]] = {job.job_id: set() for job in plan.jobs}
        self._stop = threading.Event()
        self.written = 0
        #: Written completions that were a second write of their segment.
        self.duplicates_written = 0
        #: Per job, when the latest of its segments' first writes was issued (epoch
        #: seconds): once every segment is written, its last completion.
        self.last_completion_at: dict[str, float] = {}
        self.errors: list[Exception] = []

    @property
    def total(self) -> int:
        """Completions to write, duplicates included."""
        return len(self._writes)

    def run(self) -> None:
        """Write every completion, `workers` at a time; return when all are written."""
        with ThreadPoolExecutor(self._workers, thread_name_prefix="video-worker") as pool:
            for _ in range(self._workers):
                pool.submit(self._work)

    def stop(self) -> None:
        """Write nothing more (writes under way finish)."""
        self._stop.set()

    def _work(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                if self._next >= len(self._writes):
                    return
                write = self._writes[self._next]
                self._next += 1
            issued = time.time()
            try:
                self._put(write)
            except Exception as exc:
                with self._lock:
                    self.errors.append(exc)
                continue
            job = self._jobs[write.job_id]
            with self._lock:
                self.written += 1
                self.duplicates_written += 1 if write.attempt else 0
                seen = self._distinct[write.job_id]
                before = len(seen)
                seen.add(write.segment_index)
                if len(seen) > before:
                    latest = self.last_completion_at.get(write.job_id, issued)
                    self.last_completion_at[write.job_id] = max(latest, issued)
                due = before < job.chunk_after == len(seen)
            if due:
                self._chunker.schedule(job, job.chunk_delay)
            if self._after_write is not None:
                try:
                    self._after_write(write.job_id)
                except Exception as exc:
                    with self._lock:
                        self.errors.append(exc)

    def _put(self, write: SegmentWrite) -> None:
        suffix = "" if write.attempt == 0 else f"?attempt={write.attempt}"
        self._aws.dynamodb.put_item(
            TableName=self._table,
            Item={
                "job_id": {"S": write.job_id},
                "segment_index": {"N": str(write.segment_index)},
                "output_s3_uri": {
                    "S": f"s3://stereo-spot-output/jobs/{write.job_id}/segments/"
                    f"{write.segment_index:05d}.mp4{suffix}"
                },
                "completed_at": {"N": str(int(time.time()))},
            },
        )


class OnWriteCalls:
    """The API calls of trigger on write, on a trigger of the simulation's own: a video
    worker's after its completion write, the chunker's after its mark. Counts the
    outcomes by caller, state and reason (`workers:skipped:incomplete`)."""

    def __init__(self, trigger: ReassemblyTrigger) -> None:
        self._trigger = trigger
        self._lock = threading.Lock()
        self.outcomes: Counter[str] = Counter()

    def by(self, caller: str) -> Callable[[str], None]:
        """The call `caller` (`workers`, `chunker`) makes after its write of a job."""

        def call(job_id: str) -> None:
            outcome = trigger_job(job_id, trigger=self._trigger, emit_metrics=False)
            key = f"{caller}:{outcome.state.value}"
            if outcome.reason is not None:
                key += f":{outcome.reason.value}"
            with self._lock:
                self.outcomes[key] += 1

        return call


class MediaWorkerLoop:
    """Runs the modelled media worker against the queue until stopped."""

    def __init__(self, worker: MediaWorker) -> None:
        self.worker = worker
        self._stop = threading.Event()
        self.error: Exception | None = None

    def run(self) -> None:
        """Poll, handle, repeat; a short pause when the queue is empty."""
        while not self._stop.is_set():
            try:
                got = self.worker.poll()
            except Exception as exc:
                self.error = exc
                return
            if not got:
                self._stop.wait(0.05)

    def stop(self) -> None:
        """Return from `run`."""
        self._stop.set()


# ------------------------------------------------------------------ results


@dataclass(frozen=True, slots=True)
class JobResult:
    """How one job went."""

    job: PlannedJob
    messages: int
    reassemblies: int
    duplicates_absorbed: int
    refusals: int
    skips: Counter[str]
    failures: Counter[str]
    #: Whether the run settled: only then is a job never reassembled stuck.
    settled: bool = True
    #: Messages the reconciler sent for this job (the stream path had not, yet or at all).
    reconciler_sends: int = 0
    #: Seconds from the write that made the job complete to its first message (None:
    #: never sent), and which write that was: `completion` (its last segment's) or
    #: `chunking` (the chunker's mark, when it came after the last segment).
    latency_seconds: float | None = None
    completed_by: str | None = None

    @property
    def outcome(self) -> str:
        """`reassembled`, `stuck`, `unfinished` (the run stopped before it settled),
        `reassembled N times` or `refused`."""
        if self.refusals:
            return "refused"
        if self.reassemblies == 0:
            return "stuck" if self.settled else "unfinished"
        if self.reassemblies == 1:
            return "reassembled"
        return f"reassembled {self.reassemblies} times"


@dataclass(frozen=True, slots=True)
class Progress:
    """A snapshot for a progress display."""

    written: int
    to_write: int
    reassembled: int
    jobs: int
    invocations: int
    records: int


@dataclass(frozen=True, slots=True)
class SimulationResult:
    """Everything a run produced."""

    workload: Workload
    jobs: list[JobResult]
    poller: PollerStats
    messages: int
    completions_written: int
    faults_injected: int
    seconds: float
    skips_by_reason: Counter[str]
    failures_by_reason: Counter[str]
    timed_out: bool
    errors: list[str]
    #: Stopped by Ctrl-C or `Simulation.stop()` before it settled.
    interrupted: bool = False
    #: Completions the plan holds (duplicates included), and how many of those written
    #: were a second write of their segment.
    completions_planned: int = 0
    duplicates_written: int = 0
    #: What the reconciler's runs did (None: it did not run).
    reconciler: ReconcileTally | None = None
    #: AWS calls by operation, per actor: `handler` (the stream Lambda), `api`
    #: (`trigger_job` in the video workers), `reconciler`.
    aws_calls: dict[str, Counter[str]] = field(default_factory=dict)
    #: The outcomes of the API calls (trigger on write), by caller (`workers`,
    #: `chunker`), state and reason.
    api_outcomes: Counter[str] = field(default_factory=Counter)

    @property
    def mode(self) -> TriggerMode:
        """Who evaluated jobs as completions were written."""
        return self.workload.mode

    def calls(self, *actors: str) -> int:
        """AWS calls made by these actors, together."""
        return sum(sum(self.aws_calls.get(actor, Counter()).values()) for actor in actors)

    @property
    def trigger_calls(self) -> int:
        """AWS calls made when completions were written: by the handler and the API."""
        return self.calls("handler", "api")

    @property
    def calls_per_completion(self) -> float:
        """The trigger's AWS calls per completion written (duplicates included)."""
        return self.trigger_calls / self.completions_written if self.completions_written else 0.0

    @property
    def latency(self) -> LatencySummary | None:
        """From the write that made each job complete to its first message, over jobs."""
        return LatencySummary.of(
            [j.latency_seconds for j in self.jobs if j.latency_seconds is not None]
        )

    def latency_by_last_write(self) -> dict[str, LatencySummary | None]:
        """The latency of the jobs completed by their last segment's write, and of those
        completed by the chunker's mark (in `on-write` mode, no worker call sees those)."""
        return {
            by: LatencySummary.of(
                [
                    j.latency_seconds
                    for j in self.jobs
                    if j.completed_by == by and j.latency_seconds is not None
                ]
            )
            for by in ("completion", "chunking")
        }

    @property
    def settled(self) -> bool:
        """Whether the run went on until the pipeline settled (no timeout, no interrupt)."""
        return not (self.timed_out or self.interrupted)

    @property
    def stuck_jobs(self) -> list[str]:
        """The jobs never reassembled although the pipeline settled, by id."""
        return [job.job.job_id for job in self.jobs if job.outcome == "stuck"]

    @property
    def reconciler_enqueued(self) -> list[str]:
        """The jobs the reconciler sent a message for (the stream path had not: it lost
        their records, or had not got to them yet)."""
        return sorted(self.reconciler.enqueued) if self.reconciler else []

    @property
    def reassembled_once(self) -> int:
        """Jobs reassembled exactly once."""
        return sum(1 for job in self.jobs if job.reassemblies == 1)

    @property
    def stuck(self) -> int:
        """Jobs never reassembled although the pipeline settled."""
        return sum(1 for job in self.jobs if job.outcome == "stuck")

    @property
    def unfinished(self) -> int:
        """Jobs not reassembled when the run stopped before it settled."""
        return sum(1 for job in self.jobs if job.outcome == "unfinished")

    @property
    def duplicate_reassemblies(self) -> int:
        """Reassemblies beyond the first, over every job."""
        return sum(max(0, job.reassemblies - 1) for job in self.jobs)

    @property
    def refusals(self) -> int:
        """Messages for jobs whose completions did not add up (the trigger fired early)."""
        return sum(job.refusals for job in self.jobs)

    @property
    def passed(self) -> bool:
        """Every job reassembled exactly once, nothing stuck, refused or broken."""
        return (
            self.reassembled_once == len(self.jobs)
            and self.refusals == 0
            and not self.timed_out
            and not self.errors
        )

    def summary(self) -> dict[str, Any]:
        """The figures of `simulate --json`."""
        return {
            "jobs": len(self.jobs),
            "reassembled_once": self.reassembled_once,
            "stuck": self.stuck,
            "unfinished": self.unfinished,
            "settled": self.settled,
            "timed_out": self.timed_out,
            "interrupted": self.interrupted,
            "duplicate_reassemblies": self.duplicate_reassemblies,
            "messages": self.messages,
            "invocations": self.poller.invocations,
            "records": self.poller.records_read,
            "skips_by_reason": dict(sorted(self.skips_by_reason.items())),
            "faults_injected": self.faults_injected,
            "seconds": round(self.seconds, 2),
            "passed": self.passed,
            "seed": self.workload.seed,
            "segments": sum(job.job.total_segments for job in self.jobs),
            "completions_written": self.completions_written,
            "completions_planned": self.completions_planned,
            "duplicates_written": self.duplicates_written,
            "refusals": self.refusals,
            "failures_by_reason": dict(sorted(self.failures_by_reason.items())),
            "retries": self.poller.retries,
            "discarded_batches": self.poller.discarded_batches,
            "errors": self.errors,
            "stuck_jobs": self.stuck_jobs,
            "discard_rate": self.workload.discard_rate,
            "jobs_stream": self.workload.jobs_stream_mapped,
            "reconciler": None
            if self.reconciler is None
            else {
                "every_seconds": self.workload.reconcile_every_seconds,
                "runs": self.reconciler.runs,
                "jobs_examined": self.reconciler.jobs_examined,
                "enqueued": self.reconciler_enqueued,
                "outcomes": dict(sorted(self.reconciler.outcomes.items())),
            },
            "mode": self.mode.value,
            "aws_calls": {
                actor: dict(sorted(calls.items()))
                for actor, calls in sorted(self.aws_calls.items())
            },
            "trigger_calls": self.trigger_calls,
            "trigger_calls_per_completion": round(self.calls_per_completion, 3),
            "reconciler_calls": self.calls("reconciler"),
            "api_outcomes": dict(sorted(self.api_outcomes.items())),
            # From the write that made a job complete (its last completion PutItem, or
            # the chunker's mark if later), as it was issued, to SQS's SentTimestamp of
            # the job's first message.
            "latency_ms": _latency_json(self.latency),
            "latency_ms_by_last_write": {
                by: _latency_json(summary) for by, summary in self.latency_by_last_write().items()
            },
        }


def _latency_json(summary: LatencySummary | None) -> dict[str, Any] | None:
    return None if summary is None else summary.as_json()


# ------------------------------------------------------------------ the run


@dataclass(frozen=True, slots=True)
class _Look:
    """What one look at the pipeline saw (equal looks: nothing happened in between)."""

    done_writing: bool
    records_expected: int
    records_read: int
    invocations: int
    pollers_idle: bool
    messages_received: int
    queue_empty: bool

    @property
    def settled(self) -> bool:
        """Nothing left to write, read, deliver or consume."""
        return (
            self.done_writing
            and self.records_read >= self.records_expected
            and self.pollers_idle
            and self.queue_empty
        )


@dataclass(frozen=True, slots=True)
class _Pipeline:
    """The actors of one run, looked at together."""

    writer_thread: threading.Thread
    chunker: Chunker
    writers: VideoWorkers
    pollers: PollerGroup
    media: MediaWorkerLoop
    aws: LocalAws
    resources: Resources
    #: Job items put before the run started.
    jobs_created: int
    #: Whether the Jobs stream is mapped (read by a poller) at all.
    jobs_stream: bool
    #: Whether the SegmentCompletions stream is mapped (not in `on-write` mode).
    completions_stream: bool

    def look(self) -> _Look:
        """The counts that say whether anything is left to happen."""
        done_writing = not self.writer_thread.is_alive() and self.chunker.idle()
        report = self.media.worker.report()
        # Every write makes one stream record: a completion written (duplicates too),
        # and on the Jobs stream (when it is mapped) a Job created, chunking completed,
        # a Job completed by the media worker.
        expected = self.writers.written if self.completions_stream else 0
        if self.jobs_stream:
            expected += self.jobs_created + self.chunker.marked + report.reassemblies
        stats = self.pollers.stats()
        return _Look(
            done_writing=done_writing,
            records_expected=expected,
            records_read=stats.records_read,
            invocations=stats.invocations,
            # A poller's quiet time starts when a pass read and delivered nothing.
            pollers_idle=not self.pollers.pollers or self.pollers.quiet_for() > 0,
            messages_received=report.messages_received,
            queue_empty=done_writing and self._queue_empty(),
        )

    def _queue_empty(self) -> bool:
        counts = self.aws.sqs.get_queue_attributes(
            QueueUrl=self.resources.reassembly_queue_url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        )["Attributes"]
        return all(int(value) == 0 for value in counts.values())


class Simulation:
    """One run of a workload on a fresh embedded AWS."""

    def __init__(
        self,
        workload: Workload,
        *,
        on_progress: Callable[[Progress], None] | None = None,
        region: str = DEFAULT_REGION,
    ) -> None:
        self.workload = workload
        self.plan = plan_workload(workload)
        self._on_progress = on_progress
        self._region = region
        self._stop = threading.Event()

    def stop(self) -> None:
        """End the run at its next look at the pipeline, as Ctrl-C does: the result
        says how far it got (thread-safe; callable from `on_progress`)."""
        self._stop.set()

    def run(self) -> SimulationResult:
        """Play the workload; return what happened to every job. Ctrl-C while the
        pipeline runs ends the run the same way as `stop()`."""
        started = time.monotonic()
        with embedded_moto_server() as endpoint:
            aws = LocalAws.connect(endpoint, self._region, pool_size=self.workload.workers + 4)
            # A fresh prefix: moto servers of one process share their state.
            names = ResourceNames.with_prefix(f"sim-{secrets.token_hex(3)}")
            resources = create_resources(aws, names)
            env = environment(resources, endpoint, self._region)
            # Every job of a local run is seconds old: the reconciler looks at all of them.
            env["RECONCILE_MIN_AGE_SECONDS"] = "0"
            with lambda_environment(env), captured_transitions() as tally, discarded_metrics():
                return self._play(aws, resources, tally, started)

    def _play(
        self, aws: LocalAws, resources: Resources, tally: TransitionTally, started: float
    ) -> SimulationResult:
        workload = self.workload
        injector = None
        if workload.fault_rate > 0:
            injector = fault_injector(workload.fault_rate, workload.seed)
        clients = self._actor_clients()
        counters = _instrument(clients, injector)
        settings = Settings.from_env()
        on_write = None
        if "api" in clients:
            on_write = OnWriteCalls(
                build_trigger(settings, clients=clients["api"], clock=SystemClock(), renderer=None)
            )
        names = resources.names
        for job in self.plan.jobs:
            aws.dynamodb.put_item(
                TableName=names.jobs_table,
                Item={
                    "job_id": {"S": job.job_id},
                    "mode": {"S": "anaglyph"},
                    "status": {"S": "chunking_in_progress"},
                    "created_at": {"N": str(int(time.time()))},
                },
            )
        chunker = Chunker(
            aws,
            names.jobs_table,
            after_mark=on_write.by("chunker")
            if on_write is not None and workload.chunker_calls_api
            else None,
        )
        for job in self.plan.jobs:
            if job.chunk_after == 0:
                chunker.schedule(job, 0.0)
        writers = VideoWorkers(
            aws,
            names.segment_completions_table,
            self.plan,
            chunker,
            workload.workers,
            after_write=on_write.by("workers") if on_write is not None else None,
        )
        media = MediaWorkerLoop(MediaWorker(aws, resources, SystemClock()))
        pollers = self._pollers(aws, resources)
        reconciler = self._reconciler(settings, clients.get("reconciler"))
        threads = [
            threading.Thread(target=chunker.run, name="chunker", daemon=True),
            threading.Thread(target=media.run, name="media-worker", daemon=True),
            threading.Thread(target=writers.run, name="video-workers", daemon=True),
        ]
        if reconciler is not None:
            threads.append(threading.Thread(target=reconciler.run, name="reconciler", daemon=True))
        pollers.start()
        for thread in threads:
            thread.start()
        ending = "interrupted"
        actors = _Pipeline(
            threads[2],
            chunker,
            writers,
            pollers,
            media,
            aws,
            resources,
            jobs_created=len(self.plan.jobs),
            jobs_stream=workload.jobs_stream_mapped,
            completions_stream=workload.mode.streams,
        )
        try:
            ending = self._wait_until_settled(actors, reconciler)
        except KeyboardInterrupt:
            pass  # reported like stop(): the partial result says how far it got
        finally:
            writers.stop()
            pollers.stop()
            chunker.stop()
            media.stop()
            if reconciler is not None:
                reconciler.stop()
            for thread in threads:
                thread.join(10)
        reconciled = reconciler.scheduled.tally if reconciler is not None else None
        errors = _errors(actors, tally, reconciled, faults_injected=self.workload.fault_rate > 0)
        return SimulationResult(
            workload=workload,
            jobs=[
                self._job_result(
                    job,
                    media.worker,
                    tally,
                    reconciled,
                    settled=ending == "settled",
                    completed_at=_completed_at(job.job_id, writers, chunker),
                )
                for job in self.plan.jobs
            ],
            poller=pollers.stats(),
            messages=media.worker.report().messages_received,
            completions_written=writers.written,
            faults_injected=sum(injector.injected.values()) if injector else 0,
            seconds=time.monotonic() - started,
            skips_by_reason=tally.skips_by_reason(),
            failures_by_reason=tally.failures_by_reason(),
            timed_out=ending == "timed_out",
            errors=errors,
            interrupted=ending == "interrupted",
            completions_planned=writers.total,
            duplicates_written=writers.duplicates_written,
            reconciler=reconciled,
            aws_calls={actor: counter.snapshot() for actor, counter in counters.items()},
            api_outcomes=on_write.outcomes if on_write is not None else Counter(),
        )

    def _actor_clients(self) -> dict[str, AwsClients]:
        """The clients of each actor of this run's mode, by actor.

        The handler's are the container's (what `lambda_handler` uses); the API's and
        the reconciler's are their own, configured the same way, so that each actor's
        calls are counted apart.
        """
        import boto3

        workload = self.workload
        pool = Settings.from_env().evaluation_concurrency
        clients: dict[str, AwsClients] = {}
        if workload.mode.streams:
            clients["handler"] = aws_clients(pool)
        if workload.mode.on_write:
            # One connection per video worker: each calls from its own thread.
            clients["api"] = session_clients(boto3.session.Session(), max(pool, workload.workers))
        if workload.reconciler:
            clients["reconciler"] = session_clients(boto3.session.Session(), pool)
        return clients

    def _pollers(self, aws: LocalAws, resources: Resources) -> PollerGroup:
        # A production-like mapping: bisect, bounded retries, an on-failure queue.
        # It polls faster than Lambda's four times a second to keep runs short.
        settings = MappingSettings(
            batch_size=100,
            bisect_on_error=True,
            maximum_retry_attempts=10,
            on_failure_queue_url=resources.on_failure_queue_url,
            poll_interval_seconds=0.05,
            retry_backoff_seconds=0.1,
            retry_backoff_max_seconds=1.0,
        )
        arns = [resources.segment_completions_stream_arn] if self.workload.mode.streams else []
        if self.workload.jobs_stream_mapped:
            arns.append(resources.jobs_stream_arn)
        give_up = _giving_up(self.workload.discard_rate, self.workload.seed)
        return PollerGroup(
            StreamPoller(aws.streams, arn, settings=settings, sqs=aws.sqs, give_up=give_up)
            for arn in arns
            if arn
        )

    def _reconciler(self, settings: Settings, clients: AwsClients | None) -> ReconcilerLoop | None:
        """The real reconciler on its schedule, on clients of its own (faults and all),
        or None with the reconciler off."""
        if not self.workload.reconciler or clients is None:
            return None
        trigger = build_trigger(settings, clients=clients, clock=SystemClock(), renderer=None)
        cursor = ReconcileCursorStore(clients.dynamodb, settings.reassembly_triggered_table_name)
        scheduled = ScheduledReconciler(
            reconcile.Reconciler(trigger, cursor),
            SystemClock(),
            every_seconds=self.workload.reconcile_every_seconds,
        )
        return ReconcilerLoop(scheduled, min_gap_seconds=_RECONCILE_GAP_SECONDS)

    def _wait_until_settled(self, pipeline: _Pipeline, reconciler: ReconcilerLoop | None) -> str:
        """Look at the pipeline until it settles; `settled`, `timed_out` or `interrupted`.

        Settled is a state, seen the same twice in a row: nothing left to write, every
        record the pipeline wrote to a mapped stream read by the pollers, each poller's
        last pass idle, and no message on the queue, visible or in flight (the media
        worker deletes one only after handling it, Job update included). With the
        reconciler, it also takes a reconcile run that started once the state looked
        settled and found nothing to do: the reconciler is asked for one until then
        (a run that sends changes the state, and the wait starts over).
        """
        deadline = time.monotonic() + self.workload.timeout_seconds
        previous: _Look | None = None
        #: When the state first looked settled, unchanged since (epoch seconds, the
        #: reconciler's clock); None while it does not.
        settled_since: float | None = None
        while not self._stop.is_set():
            self._report_progress(pipeline.writers, pipeline.media, pipeline.pollers)
            look = pipeline.look()
            if not look.settled or look != previous:
                settled_since = time.time() if look.settled else None
            elif reconciler is None or (
                settled_since is not None and reconciler.clean_since(settled_since)
            ):
                return "settled"
            else:
                reconciler.ask_for_run()
            previous = look
            if time.monotonic() >= deadline:
                return "timed_out"
            self._stop.wait(_LOOK_INTERVAL_SECONDS)
        return "interrupted"

    def _report_progress(
        self, writers: VideoWorkers, media: MediaWorkerLoop, pollers: PollerGroup
    ) -> None:
        if self._on_progress is None:
            return
        stats = pollers.stats()
        self._on_progress(
            Progress(
                written=writers.written,
                to_write=writers.total,
                reassembled=len(media.worker.reassemblies),
                jobs=len(self.plan.jobs),
                invocations=stats.invocations,
                records=stats.records_read,
            )
        )

    @staticmethod
    def _job_result(
        job: PlannedJob,
        worker: MediaWorker,
        tally: TransitionTally,
        reconciled: ReconcileTally | None,
        *,
        settled: bool,
        completed_at: tuple[float, str] | None,
    ) -> JobResult:
        counts = worker.tally(job.job_id)
        seen = tally.job(job.job_id)
        latency = by = None
        if completed_at is not None and counts.first_sent_at is not None and counts.reassemblies:
            latency = counts.first_sent_at - completed_at[0]
            by = completed_at[1]
        return JobResult(
            job=job,
            messages=counts.messages_received,
            reassemblies=counts.reassemblies,
            duplicates_absorbed=counts.duplicates_absorbed,
            refusals=counts.refusals,
            skips=seen.skips,
            failures=seen.failures,
            settled=settled,
            reconciler_sends=reconciled.enqueued[job.job_id] if reconciled else 0,
            latency_seconds=latency,
            completed_by=by,
        )


def _instrument(
    clients: Mapping[str, AwsClients], injector: FaultInjector | None
) -> dict[str, CallCounter]:
    """Count each actor's calls on its clients, and attach the faults (if any) to all."""
    counters = {actor: CallCounter() for actor in clients}
    for actor, pair in clients.items():
        for client in (pair.dynamodb, pair.sqs):
            counters[actor].attach(client)
            if injector is not None:
                injector.attach(client)
    return counters


def _completed_at(job_id: str, writers: VideoWorkers, chunker: Chunker) -> tuple[float, str] | None:
    """When the write that made the job complete was issued, and which write it was
    (`completion` or `chunking`); None when one of them was never written."""
    last = writers.last_completion_at.get(job_id)
    marked = chunker.marked_at.get(job_id)
    if last is None or marked is None:
        return None
    return (marked, "chunking") if marked > last else (last, "completion")


def _errors(
    pipeline: _Pipeline,
    tally: TransitionTally,
    reconciled: ReconcileTally | None,
    *,
    faults_injected: bool,
) -> list[str]:
    """What went wrong in the actors themselves (not in the pipeline they model).

    A reconcile run that an injected fault stopped is what the deployed reconciler
    does too (its invocation fails, the next run carries on): an error only without
    faults.
    """
    errors = [f"video worker: {exc!r}" for exc in pipeline.writers.errors[:5]]
    if pipeline.chunker.error is not None:
        errors.append(f"chunker: {pipeline.chunker.error!r}")
    if pipeline.media.error is not None:
        errors.append(f"media worker: {pipeline.media.error!r}")
    if tally.errors:
        errors.append(f"handler: {tally.errors} unexpected evaluation errors")
    if reconciled is not None and reconciled.errors and not faults_injected:
        errors.append(
            f"reconciler runs failed: {len(reconciled.errors)}, e.g. {reconciled.errors[0]}"
        )
    return errors


def _giving_up(rate: float, seed: int) -> GiveUp | None:
    """The mappings' giving up on `rate` of the batches (seeded; shared by the pollers'
    threads), or None."""
    if rate <= 0:
        return None
    rng = random.Random(f"discard/{seed}")
    lock = threading.Lock()

    def give_up(_records: object) -> bool:
        with lock:
            return rng.random() < rate

    return give_up
