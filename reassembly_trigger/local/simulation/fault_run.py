"""The fault-injection simulation: proof that no job is stuck and none is reassembled twice.

A seeded, reproducible run of the real handler (`ReassemblyTrigger.handle`) and the real
reconciler (`reconcile.Reconciler`) against a moto server, with faults injected at the
HTTP layer of the Lambda's own clients (`faults.FaultInjector`) and the media worker
modelled with the contract's lock (`media_worker.MediaWorker`):

- **the pipeline**: jobs of varied sizes; their completions are written interleaved
  across jobs, out of order, some twice (a video worker retrying); chunking completes
  before the last segment for most jobs and after it for some (only the Jobs stream
  then names the job); some jobs never get their last segment or never finish
  chunking, and must never get a message;
- **Lambda's event source mappings**: the SegmentCompletions stream through
  `parallelization` lanes (Lambda keeps order per item only, so one job's records are
  evaluated by several lanes), the Jobs stream through one more. A batch whose
  invocation crashed is retried whole; a partial failure is retried from the lowest
  failed sequence number (Lambda's reading of the answer is `batch_response`, shared
  with the poller); now and then a batch that succeeded is delivered again;
- **the reconciler** runs on its schedule (every `reconcile_every_seconds` of simulated
  time, as EventBridge would, with the same faulty clients and clock as the handler),
  and the schedule goes on after the pipeline's last write until every lease has ended
  and a run finds nothing to do; no `doctor --repair` ever runs;
- **faults at every step**: throttling, 5xx, connect timeouts and lost responses on
  every AWS call the Lambda makes (botocore retries them, instantly in simulated time),
  outages that outlast the retries, an invocation killed after the lock and before the
  send or after the send and before the mark (at its timeout or earlier), a lost
  answer to a successful send, and concurrent evaluations of one job raced on a fixed
  schedule (a rival that sees the holder mark, release or outlast it; two takers of
  one expired lock; a reconcile run meeting a live holder, or taking over beside a
  stream retry);
- **what only the reconciler recovers from**: batches the mapping gives up on (its
  retries ran out: the records are never delivered again), shards whose Jobs stream
  has no mapping (a job chunked after its last segment is then named by no record),
  and holders that die with a far lease (up to 900 s: a longer function, an earlier
  reconcile run), which the stream path defers to after `LEASE_WAIT_SECONDS`;
- **time is simulated** (`clock.SimulatedClock`): leases pass and waits end without
  any real sleeping;
- **trigger on write** (`mode` `on-write`): nothing reads the SegmentCompletions
  stream; right after each completion write, the video worker calls the API,
  `trigger_job`, on the same trigger (clients, faults and clock). A worker killed in
  the call is not retried (its completion is written; nobody redelivers it): the
  jobs it leaves, and those whose last call failed, are the reconciler's. The Jobs
  stream's mapping is kept as in `stream` mode (absent in some shards). `both` runs
  the two paths.

Everything random comes from the seed: the pipeline from `random.Random(seed)`, the
faults from hashes of the seed and the job's calls, the races from fixed schedules;
evaluations run one at a time (`evaluation_concurrency=1`) so that one seed always
gives the same run.

At the end the invariants are checked: every job that is complete and
`chunking_complete` got at least one message and was reassembled exactly once, and its
lock records the message (no job left without it, with no `doctor --repair`); no job
that is not complete got a message; the reconciler never waited on a live lease and
its last run found nothing to do; without faults, exactly one message per job and no
job left to the reconciler.

Run alone: `python -m reassembly_trigger.local.simulation.fault_run --jobs 10000 --seed 7`
(`--no-reconciler` shows what the stream path alone leaves stuck).
"""

from __future__ import annotations

import argparse
import itertools
import logging
import random
import re
import sys
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, MutableMapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

import boto3
import structlog

from reassembly_trigger.api import trigger_job
from reassembly_trigger.batch import ReassemblyTrigger
from reassembly_trigger.clients import AwsClients, client_config
from reassembly_trigger.evaluation import Invocation
from reassembly_trigger.gateways import (
    CLOCK_SKEW_SECONDS,
    MAX_LEASE_SECONDS,
    RECONCILE_CURSOR_KEY,
    LockRecord,
    ReconcileCursorStore,
)
from reassembly_trigger.local.aws.faults import (
    FaultInjector,
    FaultKind,
    FaultRule,
    SimulatedCrash,
    instant_retries,
)
from reassembly_trigger.local.aws.latency_proxy import SubprocessStack
from reassembly_trigger.local.aws.stack import (
    DEFAULT_REGION,
    LOCAL_CREDENTIALS,
    LocalAws,
    ResourceNames,
    Resources,
    create_resources,
)
from reassembly_trigger.local.simulation.clock import SimulatedClock
from reassembly_trigger.local.simulation.media_worker import MediaWorker, MediaWorkerReport
from reassembly_trigger.local.simulation.reconcile_schedule import (
    REQUEST_PREFIX,
    ReconcileRun,
    ScheduledReconciler,
)
from reassembly_trigger.local.simulation.trigger_modes import TriggerMode
from reassembly_trigger.local.streams.batch_response import InvocationOutcome, read_batch_response
from reassembly_trigger.machine import SkipReason
from reassembly_trigger.reconcile import Reconciler
from reassembly_trigger.records import JobRequest
from reassembly_trigger.runtime import build_trigger

DEFAULT_JOBS = 1000
DEFAULT_SEED = 7
#: The Lambda's timeout: each invocation's lease.
FUNCTION_TIMEOUT_SECONDS = 60.0
#: Every AWS operation the Lambda makes; each gets throttled and 5xx at least once.
TRIGGER_OPERATIONS = ("BatchGetItem", "Query", "PutItem", "GetItem", "UpdateItem", "SendMessage")
#: A batch retried this often means a stuck job: the run stops and says so.
MAX_DELIVERIES_PER_RECORD = 25
#: Segment counts and how often each occurs: mostly small, some large.
JOB_SIZES = (1, 2, 3, 4, 5, 6, 8, 12, 24)
JOB_SIZE_WEIGHTS = (16, 22, 20, 14, 10, 7, 5, 4, 2)
#: Text only one kind of UpdateItem carries: the enqueue mark, a take-over.
MARK_TEXT = "SET enqueued_at"
TAKE_OVER_TEXT = ":takeovers"
#: Scheduled reconcile runs after the pipeline's last write before the run gives up
#: on the reconciler finding nothing more to do (the invariant then fails).
MAX_FINAL_RECONCILES = 12

_JOB_ID = re.compile(rb"job-\d{6}")
_ACCOUNT = "123456789012"


class Fault(StrEnum):
    """What the simulation does to the pipeline; each occurs at least once in a run."""

    THROTTLE = "throttle"  # every operation; botocore retries it
    SERVER_ERROR = "server_error"  # 5xx on every operation; botocore retries it
    CONNECT_TIMEOUT = "connect_timeout"  # the request never reached AWS
    LOST_RESPONSE = "lost_response"  # AWS did it, the answer was lost (any operation)
    OUTAGE = "outage"  # one call of one job fails through every retry
    LOST_SEND_RESPONSE = "lost_send_response"  # a successful SendMessage's answer lost
    SEND_FAILS = "send_fails"  # SendMessage fails through every retry (release path)
    MARK_FAILS = "mark_fails"  # the enqueue mark fails after a successful send
    CRASH_AFTER_LOCK = "crash_after_lock"  # killed between the lock and the send
    CRASH_AFTER_SEND = "crash_after_send"  # killed between the send and the mark
    CHUNKING_AFTER_LAST_SEGMENT = "chunking_after_last_segment"
    DUPLICATE_COMPLETION = "duplicate_completion"  # a segment written twice
    RIVAL_SEES_MARK = "rival_sees_mark"  # a concurrent evaluation waits; the holder marks
    RIVAL_SEES_RELEASE = "rival_sees_release"  # ...; the holder fails and lets go
    RIVAL_OUTLASTED = "rival_outlasted"  # ...; the holder outlasts its wait: it defers
    TWO_TAKERS = "two_takers"  # two stream evaluations take over one expired lock
    RECONCILER_MEETS_HOLDER = "reconciler_meets_holder"  # a reconcile run defers to it
    RECONCILER_TAKES_OVER_TOO = "reconciler_takes_over_too"  # beside a stream retry
    REDELIVERY_WHOLE_BATCH = "redelivery_whole_batch"  # after an invocation crashed
    REDELIVERY_FROM_FAILED = "redelivery_from_failed"  # after a partial batch failure
    DUPLICATE_DELIVERY = "duplicate_delivery"  # a successful batch delivered again
    # What only the reconciler recovers from:
    DISCARDED_BATCH = "discarded_batch"  # the mapping gives up on a batch: never retried
    # Chunked after the last segment in a shard with no Jobs-stream mapping: no record
    # ever names the complete job.
    UNMAPPED_JOBS_STREAM = "unmapped_jobs_stream"
    HOLDER_DIES_FAR_LEASE = "holder_dies_far_lease"  # leased up to 900 s, dies after the lock


#: The races whose rival is a reconcile run (planned only when the reconciler runs).
RECONCILER_RACES = frozenset({Fault.RECONCILER_MEETS_HOLDER, Fault.RECONCILER_TAKES_OVER_TOO})


#: The per-call faults, by the injector's kind.
_CALL_FAULTS = {
    FaultKind.THROTTLE: Fault.THROTTLE,
    FaultKind.SERVER_ERROR: Fault.SERVER_ERROR,
    FaultKind.CONNECT_TIMEOUT: Fault.CONNECT_TIMEOUT,
    FaultKind.LOST_RESPONSE: Fault.LOST_RESPONSE,
}


class JobKind(StrEnum):
    """How a job's life goes in the simulated pipeline."""

    READY = "ready"  # chunking completes before its last segment
    LATE_CHUNKING = "late_chunking"  # chunking completes after its last segment
    INCOMPLETE = "incomplete"  # one segment never completes
    NEVER_CHUNKED = "never_chunked"  # every segment done; chunking never completes


@dataclass(frozen=True, slots=True)
class JobPlan:
    """One simulated job."""

    job_id: str
    total: int
    kind: JobKind

    @property
    def complete(self) -> bool:
        """Whether the job ends complete and `chunking_complete` (so it must be reassembled)."""
        return self.kind in (JobKind.READY, JobKind.LATE_CHUNKING)


@dataclass(frozen=True, slots=True)
class SimulationConfig:
    """The size and shape of a run."""

    jobs: int = DEFAULT_JOBS
    seed: int = DEFAULT_SEED
    inject_faults: bool = True
    #: Lanes of the SegmentCompletions mapping (Lambda's parallelization factor).
    parallelization: int = 2
    batch_size: int = 100
    #: Jobs whose events are interleaved at any moment.
    in_flight: int = 24
    #: Pipeline writes between two delivery rounds.
    writes_per_round: int = 40
    #: Chance, per round, that a lane delivers (the rest of the time it batches).
    delivery_chance: float = 0.5
    #: Jobs per shard (own tables and queue), shards run at once, and moto server
    #: processes they share (moto's CPU per request is the bottleneck).
    shard_size: int = 125
    threads: int = 4
    servers: int = 2
    #: Per-call chances of the faults botocore retries.
    throttle_rate: float = 0.02
    server_error_rate: float = 0.015
    connect_timeout_rate: float = 0.004
    lost_response_rate: float = 0.006
    #: Share of jobs that get each targeted fault.
    targeted_rate: float = 0.008
    race_rate: float = 0.004
    duplicate_delivery_rate: float = 0.03
    #: Share of batches the mapping gives up on before delivering them, as once every
    #: retry failed (a poison record, an outage longer than the retry budget), and
    #: share of failed batches whose retry budget runs out: never delivered again.
    discard_rate: float = 0.02
    give_up_rate: float = 0.1
    #: One shard in this many has no Jobs-stream mapping (0: every shard has one).
    unmapped_jobs_stream_every: int = 4
    #: The leases of the holders that die with a far lease are drawn from this range.
    far_lease_seconds: tuple[float, float] = (300.0, float(MAX_LEASE_SECONDS))
    #: The reconciler: whether it runs, its schedule, its function timeout, and the age
    #: under which it leaves jobs to the stream path (the deployed defaults).
    reconciler: bool = True
    reconcile_every_seconds: float = 300.0
    reconcile_timeout_seconds: float = 300.0
    reconcile_min_age_seconds: int = 300
    #: Who evaluates a job when a completion is written: the SegmentCompletions
    #: mapping, the worker through the API, or both.
    mode: TriggerMode = TriggerMode.STREAM

    def expected_faults(self) -> list[Fault]:
        """The fault kinds this configuration injects (each must occur in a full run)."""
        if not self.inject_faults:
            return []
        skipped: set[Fault] = set()
        if not self.reconciler:
            skipped |= RECONCILER_RACES
        # On write, only the Jobs stream has a mapping: its few batches may all go through.
        if (self.discard_rate <= 0 and self.give_up_rate <= 0) or not self.mode.streams:
            skipped.add(Fault.DISCARDED_BATCH)
        if self.unmapped_jobs_stream_every <= 0:
            skipped.add(Fault.UNMAPPED_JOBS_STREAM)
        return [fault for fault in Fault if fault not in skipped]


@dataclass(frozen=True, slots=True)
class Invariant:
    """One property checked at the end of a run."""

    name: str
    ok: bool
    detail: str = ""


@dataclass(slots=True)
class SimulationReport:
    """What a run did, what it injected, which recovery paths it took, what holds."""

    config: SimulationConfig
    wall_seconds: float = 0.0
    simulated_seconds: float = 0.0
    jobs_by_kind: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    #: Per-call faults by operation: `Operation:kind`.
    aws_faults: Counter[str] = field(default_factory=Counter)
    #: Transitions by trigger, skips and failures by reason (from the Lambda's logs).
    recoveries: Counter[str] = field(default_factory=Counter)
    deliveries: Counter[str] = field(default_factory=Counter)
    aws_calls: Counter[str] = field(default_factory=Counter)
    worker: MediaWorkerReport = field(default_factory=MediaWorkerReport)
    #: How many complete jobs got 1, 2, ... messages.
    messages_per_job: Counter[int] = field(default_factory=Counter)
    #: What the scheduled reconcile runs did (`ReconcileTally.counts`), and the jobs it
    #: enqueued (each one the stream path missed) by the fault that made it miss them.
    reconciler: Counter[str] = field(default_factory=Counter)
    reconciler_enqueues_by_cause: Counter[str] = field(default_factory=Counter)
    invariants: list[Invariant] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Every invariant holds."""
        return all(invariant.ok for invariant in self.invariants)

    def missing_faults(self) -> list[str]:
        """Fault kinds that never occurred (with faults on, there must be none)."""
        expected = self.config.expected_faults()
        missing = [fault.value for fault in expected if not self.faults[fault.value]]
        if not expected:
            return missing
        for operation in TRIGGER_OPERATIONS:
            for kind in (FaultKind.THROTTLE, FaultKind.SERVER_ERROR):
                if not self.aws_faults[f"{operation}:{kind.value}"]:
                    missing.append(f"{operation}:{kind.value}")
        return missing

    def lines(self) -> list[str]:
        """The report as plain text."""
        c = self.config
        out = [
            f"fault simulation ({c.mode.value}): {c.jobs} jobs, seed {c.seed}, "
            f"faults {'on' if c.inject_faults else 'off'}",
            f"wall time {self.wall_seconds:.1f} s, simulated time {self.simulated_seconds:.0f} s",
            "jobs: " + _counts(self.jobs_by_kind),
            "faults injected: " + _counts(self.faults),
            "aws faults by operation: " + _counts(self.aws_faults),
            "recovery paths (transitions): " + _counts(self.recoveries),
            "deliveries: " + _counts(self.deliveries),
            "reconciler: " + (_counts(self.reconciler) if c.reconciler else "off"),
            "reconciler enqueues by cause: " + _counts(self.reconciler_enqueues_by_cause),
            "aws calls by the Lambda: " + _counts(self.aws_calls),
            f"media worker: messages {self.worker.messages_received}, reassemblies "
            f"{self.worker.reassemblies}, duplicates absorbed {self.worker.duplicates_absorbed}, "
            f"already completed {self.worker.already_completed}, refusals "
            f"{self.worker.refusals}, malformed {self.worker.malformed_messages}",
            "complete jobs by messages received: "
            + _counts(Counter({str(k): v for k, v in sorted(self.messages_per_job.items())})),
        ]
        out.extend(
            f"invariant {'OK  ' if i.ok else 'FAIL'} {i.name}"
            + (f": {i.detail}" if i.detail else "")
            for i in self.invariants
        )
        return out


def _counts(counter: Counter[Any]) -> str:
    return ", ".join(f"{key}={value}" for key, value in sorted(counter.items())) or "-"


# --------------------------------------------------------------------- the pipeline


def plan_jobs(count: int, rng: random.Random) -> list[JobPlan]:
    """Jobs of varied sizes and fates (mostly complete ones)."""
    kinds = rng.choices(
        (JobKind.READY, JobKind.LATE_CHUNKING, JobKind.INCOMPLETE, JobKind.NEVER_CHUNKED),
        weights=(72, 16, 8, 4),
        k=count,
    )
    sizes = rng.choices(JOB_SIZES, weights=JOB_SIZE_WEIGHTS, k=count)
    return [
        JobPlan(f"job-{n:06d}", sizes[n], kinds[n] if sizes[n] > 1 else JobKind.READY)
        for n in range(count)
    ]


@dataclass(frozen=True, slots=True)
class _Write:
    """One write of the pipeline: a Job item or a completion, and its stream record."""

    table: str  # "jobs" or "completions"
    job_id: str
    item: dict[str, Any]
    segment_index: int | None = None
    old_item: dict[str, Any] | None = None

    @property
    def key(self) -> tuple[str, str, int | None]:
        return (self.table, self.job_id, self.segment_index)


def _job_item(job: JobPlan, status: str, with_total: bool) -> dict[str, Any]:
    item: dict[str, Any] = {
        "job_id": {"S": job.job_id},
        "mode": {"S": "sbs"},
        "status": {"S": status},
        "created_at": {"N": "1794700000"},
    }
    if with_total:
        item["total_segments"] = {"N": str(job.total)}
    return item


def _completion_item(job_id: str, index: int, attempt: int) -> dict[str, Any]:
    return {
        "job_id": {"S": job_id},
        "segment_index": {"N": str(index)},
        "output_s3_uri": {"S": f"s3://out/jobs/{job_id}/segments/{index:05d}.mp4"},
        "completed_at": {"N": str(1794700000 + attempt)},
    }


def job_writes(job: JobPlan, rng: random.Random, counts: Counter[str]) -> list[_Write]:
    """A job's writes in the order the pipeline makes them (segments out of order)."""
    created = _job_item(job, "chunking_in_progress", with_total=False)
    chunked = _job_item(job, "chunking_complete", with_total=True)
    indexes = list(range(job.total))
    if job.kind is JobKind.INCOMPLETE:
        indexes.remove(rng.randrange(job.total))
    rng.shuffle(indexes)
    segments: list[_Write] = []
    done: dict[int, dict[str, Any]] = {}
    for index in indexes:
        item = _completion_item(job.job_id, index, 0)
        segments.append(_Write("completions", job.job_id, item, index))
        done[index] = item
        if rng.random() < 0.08:  # the video worker wrote it twice
            again = _completion_item(job.job_id, index, 1)
            segments.append(_Write("completions", job.job_id, again, index, old_item=item))
            counts[Fault.DUPLICATE_COMPLETION] += 1
    writes = [_Write("jobs", job.job_id, created)]
    chunking = _Write("jobs", job.job_id, chunked, old_item=created)
    if job.kind is JobKind.LATE_CHUNKING:
        writes += [*segments, chunking]
        counts[Fault.CHUNKING_AFTER_LAST_SEGMENT] += 1
    elif job.kind is JobKind.NEVER_CHUNKED:
        writes += segments
    else:
        # Before the last segment: anywhere from the start to just before the end.
        at = rng.randrange(len(segments)) if segments else 0
        writes += [*segments[:at], chunking, *segments[at:]]
    return writes


def interleave(
    per_job: Sequence[list[_Write]], in_flight: int, rng: random.Random
) -> Iterator[_Write]:
    """The writes of many jobs, interleaved: `in_flight` jobs progress at once."""
    pending = iter(per_job)
    active: list[Iterator[_Write]] = [iter(w) for w in itertools.islice(pending, in_flight)]
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


# --------------------------------------------------------------------- stream records


class _Streams:
    """Stream records as Lambda delivers them, with increasing sequence numbers."""

    def __init__(self, names: ResourceNames) -> None:
        self._names = names
        self._sequence = itertools.count(10**20)
        self._lock = threading.Lock()

    def next_sequence(self) -> str:
        with self._lock:
            return str(next(self._sequence))

    def record(self, write: _Write) -> dict[str, Any]:
        table = (
            self._names.jobs_table
            if write.table == "jobs"
            else self._names.segment_completions_table
        )
        keys: dict[str, Any] = {"job_id": {"S": write.job_id}}
        if write.segment_index is not None:
            keys["segment_index"] = {"N": str(write.segment_index)}
        body: dict[str, Any] = {
            "ApproximateCreationDateTime": 1794700000,
            "Keys": keys,
            "NewImage": write.item,
            "SequenceNumber": self.next_sequence(),
            "SizeBytes": 200,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        }
        if write.old_item is not None:
            body["OldImage"] = write.old_item
        return {
            "eventID": body["SequenceNumber"],
            "eventName": "MODIFY" if write.old_item is not None else "INSERT",
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": DEFAULT_REGION,
            "dynamodb": body,
            "eventSourceARN": f"arn:aws:dynamodb:{DEFAULT_REGION}:{_ACCOUNT}:table/{table}"
            "/stream/2026-11-15T00:00:00.000",
        }


# --------------------------------------------------------------------- the transitions


class _TransitionTally:
    """A structlog processor counting the Lambda's transitions and errors, dropping them.

    Transitions are those of the stream path (the reconciler's runs are tallied from
    their results); errors are everyone's.
    """

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        #: Jobs the stream path deferred to a live holder at least once.
        self.deferred: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, _: Any, __: str, event: MutableMapping[str, Any]) -> Any:
        name = event.get("event")
        reconciling = str(event.get("aws_request_id", "")).startswith(REQUEST_PREFIX)
        with self._lock:
            if name == "transition" and not reconciling:
                if event.get("reason") == SkipReason.DEFERRED.value:
                    self.deferred.add(str(event.get("job_id")))
                trigger = str(event.get("trigger"))
                self.counts[trigger] += 1
                if event.get("reason") is not None:
                    self.counts[f"{trigger}:{event['reason']}"] += 1
                if event.get("lease_released") is True:
                    self.counts["lease_released"] += 1
            elif name in ("evaluation_error", "lease_release_failed"):
                self.counts[str(name)] += 1
        raise structlog.DropEvent


@contextmanager
def _tallied_logs(tally: _TransitionTally) -> Iterator[None]:
    """Route every structlog event to `tally` for the block, then restore the configuration.

    Every level reaches it (transitions are INFO), whatever level a command or the
    environment configured before.
    """
    previous = structlog.get_config() if structlog.is_configured() else None
    structlog.configure(
        processors=[tally],
        wrapper_class=structlog.make_filtering_bound_logger(logging.NOTSET),
        cache_logger_on_first_use=False,
    )
    try:
        yield
    finally:
        if previous is None:
            structlog.reset_defaults()
        else:
            structlog.configure(**previous)


# --------------------------------------------------------------------- Lambda's mappings


class _Lane:
    """One shard-lane of an event source mapping: ordered records, checkpoint, retries.

    `gives_up`: the mapping may give up on a batch (`discard_rate` of new batches,
    `give_up_rate` of failed ones), whose records are then never delivered again.
    """

    def __init__(self, name: str, sim: _Simulation, *, gives_up: bool = True) -> None:
        self.name = name
        self.pending: list[dict[str, Any]] = []
        self.gives_up = gives_up
        self._sim = sim
        self._deliveries: Counter[str] = Counter()
        self._invocations = itertools.count(1)

    def deliver(self) -> None:
        """Invoke the handler with the next batch and checkpoint as Lambda would."""
        sim = self._sim
        batch = self.pending[: sim.config.batch_size]
        if not batch:
            return
        for record in batch:
            sequence = record["dynamodb"]["SequenceNumber"]
            self._deliveries[sequence] += 1
            if self._deliveries[sequence] > MAX_DELIVERIES_PER_RECORD:
                raise StuckRecord(f"{self.name}: record {sequence} delivered too often")
        if self.gives_up and sim.chance(sim.config.discard_rate):
            self._give_up(batch, "untried")
            return
        invocation = Invocation(
            f"{self.name}-{next(self._invocations)}",
            sim.clock.now() + FUNCTION_TIMEOUT_SECONDS,
        )
        sim.report.deliveries["invocations"] += 1
        sim.report.deliveries["records"] += len(batch)
        try:
            response = sim.trigger.handle({"Records": batch}, invocation).response()
        except SimulatedCrash as crash:
            if crash.label.endswith(":timeout"):
                # Killed at its timeout: the retry comes once the deadline has passed.
                sim.clock.set(invocation.deadline)
            # Lambda retries the whole batch of a failed invocation, while it may.
            if not self._gave_up(batch):
                sim.count(Fault.REDELIVERY_WHOLE_BATCH)
            return
        verdict = read_batch_response(response, batch)
        if verdict.outcome is InvocationOutcome.PARTIAL:
            retry_from = verdict.retry_from or 0
            if verdict.error is not None:
                sim.report.deliveries["invalid_responses"] += 1
            del self.pending[:retry_from]
            if not self._gave_up(batch[retry_from:]):
                sim.count(Fault.REDELIVERY_FROM_FAILED)
            return
        if sim.chance(sim.config.duplicate_delivery_rate):
            sim.count(Fault.DUPLICATE_DELIVERY)  # at-least-once: delivered again
            return
        del self.pending[: len(batch)]

    def _gave_up(self, retry: list[dict[str, Any]]) -> bool:
        """Whether the mapping gives up on a failed batch instead of retrying it."""
        if self.gives_up and self._sim.chance(self._sim.config.give_up_rate):
            self._give_up(retry, "after_failure")
            return True
        return False

    def _give_up(self, records: list[dict[str, Any]], when: str) -> None:
        """Move past `records` for good: their jobs are left to the reconciler."""
        sim = self._sim
        del self.pending[: len(records)]
        sim.count(Fault.DISCARDED_BATCH)
        sim.report.deliveries[f"discarded_batches:{when}"] += 1
        sim.report.deliveries["discarded_records"] += len(records)
        sim.discarded_jobs.update(r["dynamodb"]["Keys"]["job_id"]["S"] for r in records)


class StuckRecord(RuntimeError):
    """A record kept failing: some job can never be triggered."""


# --------------------------------------------------------------------- the run


class _Simulation:
    """One shard of a run: its own tables and queue, trigger, reconciler, clock, faults
    and worker."""

    def __init__(
        self, config: SimulationConfig, shard: int, aws: LocalAws, resources: Resources
    ) -> None:
        self.config = config
        self.report = SimulationReport(config)
        self.shard = shard
        self.rng = random.Random(f"{config.seed}/{shard}")
        self.clock = SimulatedClock()
        self.aws = aws
        self.resources = resources
        self.streams = _Streams(resources.names)
        self.faults = FaultInjector(seed=config.seed, call_key=_job_key)
        self.trigger, clients = self._trigger(aws.endpoint_url)
        self.schedule = ScheduledReconciler(
            Reconciler(
                self.trigger,
                ReconcileCursorStore(
                    clients.dynamodb, self.trigger.settings.reassembly_triggered_table_name
                ),
            ),
            self.clock,
            every_seconds=config.reconcile_every_seconds,
            timeout_seconds=config.reconcile_timeout_seconds,
        )
        #: Whether the last scheduled run, after every lease had ended, found nothing to do.
        self.converged = False
        self.worker = MediaWorker(aws, resources, self.clock, finish_later=True)
        self.completion_lanes = [
            _Lane(f"completions-{n}", self) for n in range(config.parallelization)
        ]
        every = config.unmapped_jobs_stream_every
        #: Whether this shard's Jobs stream has a mapping (the second shard of each
        #: `unmapped_jobs_stream_every` has none).
        self.jobs_stream_mapped = not (config.inject_faults and every > 0 and shard % every == 1)
        self.jobs_lane = _Lane("jobs", self)
        #: Jobs-stream records delivered by a concurrent invocation (the races); it is
        #: the rival's own invocation, never given up on.
        self.rival_lane = _Lane("rival", self, gives_up=False)
        self._rival: tuple[threading.Thread, threading.Event] | None = None
        #: Jobs created, at simulated time (the status index orders them by it).
        self._created_at: dict[str, int] = {}
        #: Jobs with a record in a batch the mapping gave up on.
        self.discarded_jobs: set[str] = set()
        #: Per job, the races it was in and an unmapped Jobs stream; with the targeted
        #: rules (their job and initial `times`), what made the stream path miss it.
        self.job_faults: dict[str, set[str]] = {}
        self._targeted: list[tuple[FaultRule, str, int]] = []
        #: Holders that die with a far lease, by job: the lease, and the job's writes
        #: left to flush (the holder takes the lock once the last one is written).
        self._far_holders: dict[str, tuple[float, int]] = {}
        #: Jobs whose latest on-write API call failed or was killed.
        self.api_failed: set[str] = set()

    # ---------------------------------------------------------------- set-up

    def _trigger(self, endpoint: str | None) -> tuple[ReassemblyTrigger, AwsClients]:
        """The real trigger on clients with the Lambda's configuration, faults attached."""
        session = boto3.session.Session(
            region_name=DEFAULT_REGION,
            aws_access_key_id=LOCAL_CREDENTIALS["aws_access_key_id"],
            aws_secret_access_key=LOCAL_CREDENTIALS["aws_secret_access_key"],
        )
        config = client_config(1)
        clients = AwsClients(
            dynamodb=session.client("dynamodb", endpoint_url=endpoint, config=config),
            sqs=session.client("sqs", endpoint_url=endpoint, config=config),
        )
        for client in (clients.dynamodb, clients.sqs):
            self.faults.attach(client)
            instant_retries(client, self.clock.sleep)
        settings = self.resources.settings(
            evaluation_concurrency=1,
            reconcile_min_age_seconds=self.config.reconcile_min_age_seconds,
        )
        trigger = build_trigger(settings, clients=clients, clock=self.clock, renderer=None)
        return trigger, clients

    def count(self, fault: Fault, n: int = 1) -> None:
        self.report.faults[fault.value] += n

    def chance(self, p: float) -> bool:
        return self.config.inject_faults and self.rng.random() < p

    def plan_faults(self, jobs: list[JobPlan]) -> None:
        """The targeted faults (per job) first, then the per-call ones (any call)."""
        c = self.config
        if not c.inject_faults:
            return
        ready = [job for job in jobs if job.complete]
        self.rng.shuffle(ready)
        per_kind = self._quota(c.targeted_rate, len(jobs))
        per_race = self._quota(c.race_rate, len(jobs))
        picks = iter(ready)

        def take(n: int) -> list[JobPlan]:
            return list(itertools.islice(picks, n))

        for job in take(per_kind):
            kill = "timeout" if self.rng.random() < 0.7 else "early"
            self._rule("SendMessage", FaultKind.CRASH, job, f"{Fault.CRASH_AFTER_LOCK}:{kill}")
        for job in take(per_kind):
            kill = "timeout" if self.rng.random() < 0.7 else "early"
            self._rule(
                "UpdateItem",
                FaultKind.CRASH,
                job,
                f"{Fault.CRASH_AFTER_SEND}:{kill}",
                texts=(MARK_TEXT,),
            )
        for job in take(per_kind):
            self._rule("SendMessage", FaultKind.LOST_RESPONSE, job, Fault.LOST_SEND_RESPONSE)
        for job in take(per_kind):
            self._rule("SendMessage", FaultKind.SERVER_ERROR, job, Fault.SEND_FAILS, times=3)
        for job in take(per_kind):
            self._rule(
                "UpdateItem",
                FaultKind.SERVER_ERROR,
                job,
                Fault.MARK_FAILS,
                times=3,
                texts=(MARK_TEXT,),
            )
        for job in take(per_kind * 2):
            operation = self.rng.choice(("BatchGetItem", "Query", "PutItem", "SendMessage"))
            kind = self.rng.choice((FaultKind.THROTTLE, FaultKind.SERVER_ERROR))
            self._rule(operation, kind, job, Fault.OUTAGE, times=3)
        for job in take(per_kind):
            # Its lock is taken once the job is complete (see `_flush`).
            self._far_holders[job.job_id] = (self.rng.uniform(*c.far_lease_seconds), 0)
        self._plan_races(take, per_race)
        rates = (
            (FaultKind.THROTTLE, c.throttle_rate),
            (FaultKind.SERVER_ERROR, c.server_error_rate),
            (FaultKind.CONNECT_TIMEOUT, c.connect_timeout_rate),
            (FaultKind.LOST_RESPONSE, c.lost_response_rate),
        )
        for kind, rate in rates:
            self.faults.add(FaultRule("*", kind, probability=rate, label=_CALL_FAULTS[kind]))

    def _plan_races(self, take: Callable[[int], list[JobPlan]], per_race: int) -> None:
        """Concurrent evaluations of one job, each on a fixed schedule."""
        for job in take(per_race):
            self._race(job, "SendMessage", Fault.RIVAL_SEES_MARK, meanwhile=True)
        for job in take(per_race):
            self._race(job, "SendMessage", Fault.RIVAL_SEES_RELEASE, meanwhile=True)
            self._rule("SendMessage", FaultKind.SERVER_ERROR, job, Fault.SEND_FAILS, times=3)
        for job in take(per_race):
            self._race(job, "SendMessage", Fault.RIVAL_OUTLASTED, meanwhile=False)
        for job in take(per_race):
            # The holder dies at its timeout; the batch's retry takes over the expired
            # lock, and a rival invocation takes it over at the same moment.
            self._rule("SendMessage", FaultKind.CRASH, job, f"{Fault.CRASH_AFTER_LOCK}:timeout")
            self._race(
                job, "UpdateItem", Fault.TWO_TAKERS, meanwhile=False, texts=(TAKE_OVER_TEXT,)
            )
        if self.config.reconciler:
            for job in take(per_race):
                # A reconcile run while a stream evaluation holds the lock: it defers
                # at once (it never waits).
                self._race(
                    job,
                    "SendMessage",
                    Fault.RECONCILER_MEETS_HOLDER,
                    meanwhile=False,
                    rival=self._reconcile_one(job),
                )
            for job in take(per_race):
                # As two takers, the second taker being a reconcile run.
                self._rule("SendMessage", FaultKind.CRASH, job, f"{Fault.CRASH_AFTER_LOCK}:timeout")
                self._race(
                    job,
                    "UpdateItem",
                    Fault.RECONCILER_TAKES_OVER_TOO,
                    meanwhile=False,
                    texts=(TAKE_OVER_TEXT,),
                    rival=self._reconcile_one(job),
                )

    def _quota(self, rate: float, jobs: int) -> int:
        """How many jobs of this shard get a targeted fault: `rate` of them on average
        (the fraction drawn), and at least one in the first shard, so every kind occurs."""
        expected = rate * jobs
        count = int(expected) + (1 if self.rng.random() < expected % 1 else 0)
        return max(count, 1) if self.shard == 0 else count

    def _rule(
        self,
        operation: str,
        kind: FaultKind,
        job: JobPlan | str,
        label: str,
        *,
        times: int = 1,
        texts: tuple[str, ...] = (),
    ) -> FaultRule:
        job_id = job if isinstance(job, str) else job.job_id
        rule = self.faults.add(
            FaultRule(operation, kind, times=times, body_contains=(job_id, *texts), label=label)
        )
        self._targeted.append((rule, job_id, times))
        return rule

    def _race(
        self,
        job: JobPlan,
        operation: str,
        label: Fault,
        *,
        meanwhile: bool,
        texts: tuple[str, ...] = (),
        rival: Callable[[], None] | None = None,
    ) -> None:
        """Pause the evaluation making `operation` for `job` while a rival evaluates it.

        The rival is another invocation delivering the job's chunking record, or
        `rival` (a reconcile run). `meanwhile`: the holder resumes as soon as the rival
        starts waiting, and the rival's wait goes on once the holder's invocation is
        over; otherwise the rival runs to its end while the holder is held.
        """

        rule = FaultRule(
            operation,
            FaultKind.PAUSE,
            times=1,
            body_contains=(job.job_id, *texts),
            label=f"race:{label}",
        )

        def action() -> None:
            if self._rival is not None:
                # One race at a time (the holder of another race is finishing its
                # batch): keep this one for the job's next call.
                rule.times = (rule.times or 0) + 1
                return
            self.count(label)
            self.job_faults.setdefault(job.job_id, set()).add(label.value)
            if rival is None:
                self.rival_lane.pending.append(self._chunking_record(job))
            resumed = threading.Event()
            holder_done = threading.Event()

            def hand_back() -> None:
                resumed.set()
                holder_done.wait()

            def run_rival() -> None:
                me = threading.get_ident()
                if meanwhile:
                    self.clock.at_next_sleep(hand_back, thread=me)
                try:
                    (rival or self.rival_lane.deliver)()
                finally:
                    self.clock.cancel_sleep_actions(me)
                    resumed.set()

            thread = threading.Thread(target=run_rival, name=f"rival-{job.job_id}", daemon=True)
            self._rival = (thread, holder_done)
            thread.start()
            if meanwhile:
                resumed.wait()
            else:
                thread.join()

        rule.action = action
        self.faults.add(rule)

    def _chunking_record(self, job: JobPlan) -> dict[str, Any]:
        return self.streams.record(
            self._stamped(
                _Write(
                    "jobs",
                    job.job_id,
                    _job_item(job, "chunking_complete", with_total=True),
                    old_item=_job_item(job, "chunking_in_progress", with_total=False),
                )
            )
        )

    # ---------------------------------------------------------------- the reconciler

    def _reconcile_one(self, job: JobPlan) -> Callable[[], None]:
        """A targeted reconcile run of `job` (a rival in a race)."""

        def run() -> None:
            self.reconcile({"job_ids": [job.job_id]})

        return run

    def reconcile(self, event: Any = None) -> ReconcileRun:
        """One reconcile run now (scheduled when `event` is None)."""
        run = self.schedule.run_scheduled() if event is None else self.schedule.run(event)
        if run.crash is not None and run.crash.label.endswith(":timeout"):
            # Killed at its timeout: whatever comes next comes after its deadline.
            self.clock.set(run.invocation.deadline)
        return run

    def reconcile_if_due(self) -> None:
        if self.config.reconciler and self.schedule.due():
            self.reconcile()

    def reconcile_until_quiet(self) -> None:
        """After the pipeline's last write, the schedule goes on until a run that starts
        once every lease has ended (a holder leased up to 900 s, the stream path's
        deferrals) finds nothing to do; at most `MAX_FINAL_RECONCILES` runs."""
        leases_over = self.clock.now() + MAX_LEASE_SECONDS + CLOCK_SKEW_SECONDS
        for _ in range(MAX_FINAL_RECONCILES):
            self.clock.set(self.schedule.next_at)
            started = self.clock.now()
            run = self.reconcile()
            self.worker.drain()
            if run.clean and started >= leases_over:
                self.converged = True
                return

    def _far_holder(self, job_id: str, lease: float) -> None:
        """A holder leased `lease` seconds ahead takes the lock of a just completed job,
        and dies before its send: a 900 s function, a reconcile run killed mid-way."""
        rule = self._rule("SendMessage", FaultKind.CRASH, job_id, Fault.HOLDER_DIES_FAR_LEASE)
        invocation = Invocation(f"far-holder-{job_id}", self.clock.now() + lease)
        try:
            self.trigger.evaluate_jobs([JobRequest(job_id)], invocation)
        except SimulatedCrash:
            pass  # dead, with the lock leased until its deadline
        finally:
            rule.times = 0  # it never got as far as the send: the fault did not happen

    # ---------------------------------------------------------------- the loop

    def write(self, writes: list[_Write]) -> None:
        """Apply the pipeline's writes (BatchWriteItem) and queue their stream records."""
        chunk: list[_Write] = []
        keys: set[tuple[str, str, int | None]] = set()
        for write in writes:
            if len(chunk) == 25 or write.key in keys:
                self._flush(chunk)
                chunk, keys = [], set()
            chunk.append(write)
            keys.add(write.key)
        self._flush(chunk)

    def _stamped(self, write: _Write) -> _Write:
        """A Job write with the job's creation time (simulated) as `created_at`."""
        if write.table != "jobs":
            return write
        created = {"N": str(self._created_at.setdefault(write.job_id, int(self.clock.now())))}
        old = write.old_item
        return replace(
            write,
            item={**write.item, "created_at": created},
            old_item=None if old is None else {**old, "created_at": created},
        )

    def _flush(self, chunk: list[_Write]) -> None:
        if not chunk:
            return
        chunk = [self._stamped(write) for write in chunk]
        names = self.resources.names
        requests: dict[str, list[Any]] = {}
        for write in chunk:
            table = names.jobs_table if write.table == "jobs" else names.segment_completions_table
            requests.setdefault(table, []).append({"PutRequest": {"Item": write.item}})
        response = self.aws.dynamodb.batch_write_item(RequestItems=requests)
        if response.get("UnprocessedItems"):
            raise RuntimeError("the moto server left items unprocessed")
        completed: list[str] = []
        for write in chunk:
            self._route(write)
            far = self._far_holders.get(write.job_id)
            if far is not None:
                lease, left = far
                self._far_holders[write.job_id] = (lease, left - 1)
                if left == 1:
                    completed.append(write.job_id)
        for job_id in completed:
            self._far_holder(job_id, self._far_holders.pop(job_id)[0])
        if self.config.mode.on_write:
            # Each worker calls once its write is done (after a far holder took its lock).
            for write in chunk:
                if write.table == "completions":
                    self._call_on_write(write.job_id)

    def _route(self, write: _Write) -> None:
        """Queue the write's stream record on its mapping's lane, if it has one."""
        record = self.streams.record(write)
        if write.table == "jobs":
            if self.jobs_stream_mapped:
                self.jobs_lane.pending.append(record)
            else:
                self.report.deliveries["records_unmapped"] += 1
        elif self.config.mode.streams:
            lane = zlib.crc32(f"{write.job_id}/{write.segment_index}".encode())
            self.completion_lanes[lane % len(self.completion_lanes)].pending.append(record)

    def _call_on_write(self, job_id: str) -> None:
        """The video worker's `trigger_job` after its completion write (trigger on write)."""
        deliveries = self.report.deliveries
        deliveries["api_calls"] += 1
        deadline = self.clock.now() + FUNCTION_TIMEOUT_SECONDS
        try:
            outcome = trigger_job(
                job_id,
                timeout_seconds=FUNCTION_TIMEOUT_SECONDS,
                trigger=self.trigger,
                emit_metrics=False,
            )
        except SimulatedCrash as crash:
            # The worker died in the call; nobody calls again for this write.
            deliveries["api_calls_killed"] += 1
            self.api_failed.add(job_id)
            if crash.label.endswith(":timeout"):
                self.clock.set(deadline)  # killed at its own deadline
            return
        finally:
            self._end_race()
        deliveries[f"api:{outcome.state.value}"] += 1
        if outcome.failed:
            self.api_failed.add(job_id)
        else:
            self.api_failed.discard(job_id)

    def lanes(self) -> list[_Lane]:
        return [*self.completion_lanes, self.jobs_lane, self.rival_lane]

    def deliver_round(self, *, everything: bool) -> None:
        lanes = self.lanes()
        self.rng.shuffle(lanes)
        for lane in lanes:
            if lane.pending and (everything or self.rng.random() < self.config.delivery_chance):
                try:
                    lane.deliver()
                finally:
                    self._end_race()

    def _end_race(self) -> None:
        """The holder's invocation is over: let its rival finish."""
        if self._rival is not None:
            thread, holder_done = self._rival
            holder_done.set()
            thread.join()
            self._rival = None

    def media_worker_round(self) -> None:
        """Finish what the media worker started last round; now and then, empty the queue."""
        self.worker.finish()
        if self.rng.random() < 0.35:
            while self.worker.poll() == 10:
                pass

    def run(self, jobs: list[JobPlan]) -> None:
        counts: Counter[str] = Counter()
        per_job = [job_writes(job, self.rng, counts) for job in jobs]
        if self.config.inject_faults:
            self.report.faults.update(counts)
            if not self.jobs_stream_mapped:
                late = [j for j in jobs if j.kind is JobKind.LATE_CHUNKING]
                self.count(Fault.UNMAPPED_JOBS_STREAM, len(late))
                for job in late:
                    self.job_faults.setdefault(job.job_id, set()).add(
                        Fault.UNMAPPED_JOBS_STREAM.value
                    )
        for job, writes in zip(jobs, per_job, strict=True):
            if job.job_id in self._far_holders:
                self._far_holders[job.job_id] = (self._far_holders[job.job_id][0], len(writes))
        writes = list(interleave(per_job, self.config.in_flight, self.rng))
        step = self.config.writes_per_round
        for start in range(0, len(writes), step):
            self.write(writes[start : start + step])
            self.deliver_round(everything=False)
            self.media_worker_round()
            self.reconcile_if_due()
            self.clock.advance(self.rng.uniform(0.05, 1.0))
        while any(lane.pending for lane in self.lanes()):
            self.deliver_round(everything=True)
            self.media_worker_round()
            self.reconcile_if_due()
            self.clock.advance(self.rng.uniform(0.05, 1.0))
        self.worker.drain()
        if self.config.reconciler:
            self.reconcile_until_quiet()

    def fired_faults(self) -> dict[str, set[str]]:
        """Per job, the faults that hit it: targeted ones that fired, races, discarded
        batches and the unmapped Jobs stream."""
        fired = {job_id: set(labels) for job_id, labels in self.job_faults.items()}
        for rule, job_id, times in self._targeted:
            if (rule.times or 0) < times:
                fired.setdefault(job_id, set()).add(rule.label.split(":", 1)[0])
        for job_id in self.discarded_jobs:
            fired.setdefault(job_id, set()).add(Fault.DISCARDED_BATCH.value)
        return fired


def _job_key(body: bytes) -> str:
    """The jobs a request names (what makes fault draws reproducible per job)."""
    return ",".join(sorted({m.decode() for m in _JOB_ID.findall(body)}))


# --------------------------------------------------------------------- invariants


def _check(sim: _Simulation, jobs: list[JobPlan], stuck: str) -> list[Invariant]:
    worker = sim.worker
    status = _job_statuses(sim.aws, sim.resources.names.jobs_table)
    locks = _locks(sim.aws, sim.resources.names.reassembly_triggered_table)
    complete = [job for job in jobs if job.complete]
    never = [job for job in jobs if not job.complete]
    unreassembled = [j.job_id for j in complete if worker.tally(j.job_id).reassemblies != 1]
    no_message = [j.job_id for j in complete if worker.tally(j.job_id).messages_received < 1]
    not_completed = [j.job_id for j in complete if status.get(j.job_id) != "completed"]
    wrongly_sent = [j.job_id for j in never if worker.tally(j.job_id).messages_received]
    unsent = [
        j.job_id
        for j in complete
        if (lock := locks.get(j.job_id)) is None or not (lock.enqueued or lock.reassembly_started)
    ]
    checks = [
        Invariant("no batch retried without end (a stuck record)", not stuck, stuck),
        Invariant(
            "every complete job got at least one message",
            not no_message,
            _sample(no_message),
        ),
        Invariant(
            "every complete job was reassembled exactly once",
            not unreassembled,
            _sample(unreassembled),
        ),
        Invariant("every complete job ends `completed`", not not_completed, _sample(not_completed)),
        Invariant(
            "no message for a job that is not complete", not wrongly_sent, _sample(wrongly_sent)
        ),
        Invariant(
            "the media worker never refused a message (never an incomplete job)",
            worker.report().refusals == 0 and not worker.malformed,
        ),
        Invariant(
            "no complete job left without its message at the end (no `doctor --repair`)",
            not unsent,
            _sample(unsent),
        ),
    ]
    if sim.config.reconciler:
        checks.extend(_check_reconciler(sim))
    if not sim.config.inject_faults:
        extra = [j.job_id for j in complete if worker.tally(j.job_id).messages_received != 1]
        checks.append(
            Invariant(
                "without faults, exactly one message per complete job", not extra, _sample(extra)
            )
        )
    return checks


def _check_reconciler(sim: _Simulation) -> list[Invariant]:
    tally = sim.schedule.tally
    checks = [
        Invariant(
            "the reconciler never waited on a live lease",
            tally.waits == 0,
            f"{tally.waits} waits" if tally.waits else "",
        ),
        Invariant(
            "the reconciler's last run, after every lease ended, found nothing to do",
            sim.converged,
            "" if sim.converged else f"shard {sim.shard}: not after {MAX_FINAL_RECONCILES} runs",
        ),
        Invariant(
            "no reconcile run failed (a crash is a fault; an error is not)",
            not tally.errors,
            "; ".join(tally.errors[:3]),
        ),
    ]
    if not sim.config.inject_faults:
        enqueued = sorted(tally.enqueued)
        checks.append(
            Invariant(
                "without faults, the reconciler enqueued nothing (the stream path missed no job)",
                not enqueued,
                _sample(enqueued),
            )
        )
    return checks


#: The faults that explain a reconciler enqueue first: those only it recovers from.
_FIRST_CAUSES = (Fault.UNMAPPED_JOBS_STREAM, Fault.DISCARDED_BATCH, Fault.HOLDER_DIES_FAR_LEASE)
_CAUSE_ORDER = (*_FIRST_CAUSES, *(f for f in Fault if f not in _FIRST_CAUSES))


def _enqueue_causes(sim: _Simulation, deferred: set[str]) -> Counter[str]:
    """Each job the reconciler enqueued, by the fault that made the stream path miss it:
    the first of `_CAUSE_ORDER` that hit the job; else (trigger on write) the job's
    last API call failed or was killed: `api_failed`; else a deferral by the stream
    path or the API (a holder that never finished: a failed release, a crash); else
    `none`."""
    fired = sim.fired_faults()
    causes: Counter[str] = Counter()
    for job_id in sim.schedule.tally.enqueued:
        hit = fired.get(job_id, set())
        cause: str | None = next((f.value for f in _CAUSE_ORDER if f.value in hit), None)
        if cause is None and job_id in sim.api_failed:
            cause = "api_failed"
        if cause is None:
            cause = "stream_deferred" if job_id in deferred else "none"
        causes[cause] += 1
    return causes


def _sample(job_ids: list[str]) -> str:
    if not job_ids:
        return ""
    return f"{len(job_ids)} jobs, e.g. {', '.join(job_ids[:5])}"


def _locks(aws: LocalAws, table: str) -> dict[str, LockRecord]:
    locks: dict[str, LockRecord] = {}
    for page in aws.dynamodb.get_paginator("scan").paginate(TableName=table):
        for item in page.get("Items", []):
            lock = LockRecord.from_raw(item)
            if lock.job_id != RECONCILE_CURSOR_KEY:
                locks[lock.job_id] = lock
    return locks


def _job_statuses(aws: LocalAws, table: str) -> dict[str, str]:
    statuses: dict[str, str] = {}
    for page in aws.dynamodb.get_paginator("scan").paginate(
        TableName=table,
        ProjectionExpression="job_id, #s",
        ExpressionAttributeNames={"#s": "status"},
    ):
        for item in page.get("Items", []):
            statuses[item["job_id"]["S"]] = item["status"]["S"]
    return statuses


# --------------------------------------------------------------------- entry points


def run_simulation(
    config: SimulationConfig | None = None, *, endpoint_urls: Sequence[str] = ()
) -> SimulationReport:
    """Run one simulation on these moto endpoints, or on `servers` of its own.

    Its own servers are moto in child processes (`latency_proxy.SubprocessStack`, with
    no added latency and moto's per-request overheads tuned away): moto spends more
    CPU per request than the client, so it runs on the other core.

    The jobs are split into shards of `shard_size`, each with its own tables and queue
    (moto's Query reads a whole table, so small tables keep it fast), run `threads` at
    a time; each shard is sequential and seeded, so the totals are reproducible.
    """
    config = config or SimulationConfig()
    started = time.perf_counter()
    jobs = plan_jobs(config.jobs, random.Random(config.seed))
    shards = [jobs[i : i + config.shard_size] for i in range(0, len(jobs), config.shard_size)]
    tally = _TransitionTally()
    with ExitStack() as stack:
        endpoints = list(endpoint_urls) or [
            stack.enter_context(SubprocessStack(latency_ms=0.0)).proxy_url
            for _ in range(config.servers)
        ]
        stack.enter_context(_tallied_logs(tally))
        run_id = f"{random.Random().getrandbits(32):08x}"

        def run_shard(index: int) -> tuple[SimulationReport, list[Invariant]]:
            endpoint = endpoints[index % len(endpoints)]
            return _run_shard(config, index, shards[index], endpoint, run_id, tally=tally)

        with ThreadPoolExecutor(max_workers=config.threads, thread_name_prefix="shard") as pool:
            results = list(pool.map(run_shard, range(len(shards))))
    report = _merge(config, [r for r, _ in results])
    report.recoveries.update(tally.counts)
    report.invariants = _merge_invariants([i for _, i in results])
    report.invariants.append(
        Invariant(
            "no unexpected error in any evaluation",
            not report.recoveries["evaluation_error"],
            f"{report.recoveries['evaluation_error']} evaluation_error events",
        ),
    )
    if config.inject_faults:
        missing = report.missing_faults()
        report.invariants.append(
            Invariant("every fault kind occurred at least once", not missing, ", ".join(missing))
        )
    report.jobs_by_kind.update(job.kind.value for job in jobs)
    report.wall_seconds = time.perf_counter() - started
    return report


def _run_shard(
    config: SimulationConfig,
    index: int,
    jobs: list[JobPlan],
    endpoint: str,
    run_id: str,
    *,
    tally: _TransitionTally,
) -> tuple[SimulationReport, list[Invariant]]:
    aws = LocalAws.connect(endpoint, DEFAULT_REGION)
    names = ResourceNames.with_prefix(f"fsim-{run_id}-{index}")
    sim = _Simulation(config, index, aws, create_resources(aws, names))
    sim.plan_faults(jobs)
    begin = sim.clock.now()
    stuck = ""
    try:
        sim.run(jobs)
    except StuckRecord as exc:
        stuck = str(exc)
        sim.worker.drain()
    report = sim.report
    for (operation, kind), count in sim.faults.injected.items():
        if kind in _CALL_FAULTS:
            report.aws_faults[f"{operation}:{kind.value}"] += count
    # Targeted and per-call faults by rule label (races count themselves when run).
    known = {fault.value for fault in Fault}
    for label, count in sim.faults.fired.items():
        fault = label.split(":", 1)[0]
        if fault in known:
            report.faults[fault] += count
    report.aws_calls.update(sim.faults.calls)
    report.worker = sim.worker.report()
    report.messages_per_job.update(
        sim.worker.tally(job.job_id).messages_received for job in jobs if job.complete
    )
    report.simulated_seconds = sim.clock.now() - begin
    if config.reconciler:
        report.reconciler.update(sim.schedule.tally.counts())
        report.reconciler_enqueues_by_cause.update(_enqueue_causes(sim, tally.deferred))
    return report, _check(sim, jobs, stuck)


def _merge(config: SimulationConfig, reports: list[SimulationReport]) -> SimulationReport:
    merged = SimulationReport(config)
    for report in reports:
        for name in (
            "faults",
            "aws_faults",
            "recoveries",
            "deliveries",
            "aws_calls",
            "reconciler",
            "reconciler_enqueues_by_cause",
        ):
            getattr(merged, name).update(getattr(report, name))
        merged.messages_per_job.update(report.messages_per_job)
        for name in (
            "messages_received",
            "reassemblies",
            "duplicates_absorbed",
            "already_completed",
            "refusals",
            "malformed_messages",
        ):
            setattr(
                merged.worker, name, getattr(merged.worker, name) + getattr(report.worker, name)
            )
        merged.simulated_seconds = max(merged.simulated_seconds, report.simulated_seconds)
    return merged


def _merge_invariants(per_shard: list[list[Invariant]]) -> list[Invariant]:
    merged: dict[str, Invariant] = {}
    for invariants in per_shard:
        for inv in invariants:
            seen = merged.get(inv.name)
            if seen is None:
                merged[inv.name] = inv
            else:
                detail = "; ".join(d for d in (seen.detail, inv.detail) if d)
                merged[inv.name] = Invariant(inv.name, seen.ok and inv.ok, detail)
    return list(merged.values())


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m reassembly_trigger.local.simulation.fault_run`: run, print, exit 1 on failure."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--jobs", type=int, default=DEFAULT_JOBS)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--no-faults", action="store_true", help="the control run")
    parser.add_argument(
        "--no-reconciler",
        action="store_true",
        help="the stream path alone: shows the jobs it leaves without a message",
    )
    parser.add_argument(
        "--mode",
        choices=[mode.value for mode in TriggerMode],
        default=TriggerMode.STREAM.value,
        help="on-write: the workers call trigger_job after each completion (no "
        "SegmentCompletions mapping); both: the two",
    )
    parser.add_argument(
        "--endpoint-url",
        action="append",
        default=[],
        help="an existing moto server (repeatable; default: moto in child processes)",
    )
    args = parser.parse_args(argv)
    config = SimulationConfig(
        jobs=args.jobs,
        seed=args.seed,
        inject_faults=not args.no_faults,
        reconciler=not args.no_reconciler,
        mode=TriggerMode(args.mode),
    )
    report = run_simulation(config, endpoint_urls=args.endpoint_url)
    _print(report)
    return 0 if report.ok else 1


def _print(report: SimulationReport) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    lines = report.lines()
    for line in lines[:3]:
        console.print(line)
    for title, counter in (
        ("faults injected", report.faults),
        ("AWS faults by operation", report.aws_faults),
        ("recovery paths (transitions)", report.recoveries),
        ("deliveries", report.deliveries),
    ):
        table = Table(title=title)
        table.add_column("what")
        table.add_column("count", justify="right")
        for key, value in sorted(counter.items()):
            table.add_row(str(key), str(value))
        console.print(table)
    for line in lines[7:]:  # calls by operation, the media worker, the invariants
        console.print(line)


if __name__ == "__main__":
    sys.exit(main())
