"""The run: shards of the scripted pipeline, each wiring the trigger, the mapping's lanes,
the races, the reconciler on its schedule and the media worker on one simulated clock."""

from __future__ import annotations

import random
import re
import threading
import time
import zlib
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from typing import Any

from reassembly_trigger.api import trigger_job
from reassembly_trigger.batch import BatchResult
from reassembly_trigger.local.aws.faults import FaultInjector, FaultKind, SimulatedCrash
from reassembly_trigger.local.aws.latency_proxy import SubprocessStack
from reassembly_trigger.local.aws.stack import (
    DEFAULT_REGION,
    LocalAws,
    ResourceNames,
    create_resources,
)
from reassembly_trigger.local.invocations.items import Item
from reassembly_trigger.local.invocations.logs import trigger_output
from reassembly_trigger.local.invocations.records import StreamRecords
from reassembly_trigger.local.invocations.triggers import faulty_trigger
from reassembly_trigger.local.simulation.clock import DEFAULT_START, SimulatedClock
from reassembly_trigger.local.simulation.fault_run.config import (
    CALL_FAULTS,
    MAX_FINAL_RECONCILES,
    FaultRunConfig,
    FaultScenario,
)
from reassembly_trigger.local.simulation.fault_run.invariants import (
    check,
    enqueue_causes,
    no_unexpected_error,
)
from reassembly_trigger.local.simulation.fault_run.lanes import Lane, Record, StuckRecord
from reassembly_trigger.local.simulation.fault_run.planning import (
    JobKind,
    ScriptedJob,
    Write,
    interleave,
    job_writes,
    plan_jobs,
)
from reassembly_trigger.local.simulation.fault_run.races import Races
from reassembly_trigger.local.simulation.fault_run.report import (
    FaultRunReport,
    Invariant,
    merge_invariants,
    merge_reports,
)
from reassembly_trigger.local.simulation.fault_run.targets import Targets
from reassembly_trigger.local.simulation.media_worker import MediaWorker
from reassembly_trigger.local.simulation.reconcile_schedule import ReconcileRun, ScheduledReconciler
from reassembly_trigger.machine import SkipReason
from reassembly_trigger.outcome import JobOutcome
from reassembly_trigger.records import JobRequest
from reassembly_trigger.timing import CLOCK_SKEW_SECONDS, LAMBDA_MAX_TIMEOUT_SECONDS, Invocation

_JOB_ID = re.compile(rb"job-\d{6}")
#: Every stream record's `ApproximateCreationDateTime`: fixed, so every run makes the
#: same records.
ARRIVAL = int(DEFAULT_START)


def _job_key(body: bytes) -> str:
    """The jobs a request names (what makes fault draws reproducible per job)."""
    return ",".join(sorted({m.decode() for m in _JOB_ID.findall(body)}))


class FaultRun:
    """One shard of a run: its own tables and queue, trigger, reconciler, clock, faults
    and media worker."""

    def __init__(self, config: FaultRunConfig, shard: int, endpoint: str, prefix: str) -> None:
        """Shard number `shard` on the moto server at `endpoint`, its resources named
        under `prefix`."""
        self.config = config
        self.report = FaultRunReport(config)
        self.shard = shard
        self.rng = random.Random(f"{config.seed}/{shard}")
        self.clock = SimulatedClock()
        self.aws = aws = LocalAws.connect(endpoint, DEFAULT_REGION)
        self.resources = resources = create_resources(aws, ResourceNames.with_prefix(prefix))
        names = resources.names
        #: The two tables' streams (Lambda's records, numbered per stream).
        self.jobs_stream = StreamRecords(names.jobs_table, region=aws.region, arrival=ARRIVAL)
        self.completions_stream = StreamRecords(
            names.segment_completions_table, region=aws.region, arrival=ARRIVAL
        )
        faulty = faulty_trigger(
            endpoint,
            resources,
            self.clock,
            faults=FaultInjector(seed=config.seed, call_key=_job_key),
            # The backoffs' jitter from the shard's own seed: the same waits every run.
            uniform=random.Random(f"{config.seed}/{shard}/jitter").uniform,
            reconcile_min_age_seconds=config.reconcile_min_age_seconds,
        )
        self.trigger, self.faults = faulty.trigger, faulty.faults
        self.schedule = ScheduledReconciler(
            faulty.reconciler(),
            self.clock,
            every_seconds=config.reconcile_every_seconds,
            timeout_seconds=config.reconcile_timeout_seconds,
        )
        #: Whether the last scheduled run, after every lease had ended, found nothing to do.
        self.converged = False
        self.worker = MediaWorker(aws, resources, self.clock, finish_later=True)
        self.completion_lanes = [
            Lane(f"completions-{n}", self) for n in range(config.parallelization)
        ]
        every = config.unmapped_jobs_stream_every
        #: Whether this shard's Jobs stream has a mapping (the second shard of each
        #: `unmapped_jobs_stream_every` has none).
        self.jobs_stream_mapped = not (config.inject_faults and every > 0 and shard % every == 1)
        self.jobs_lane = Lane("jobs", self)
        #: Jobs-stream records delivered by a concurrent invocation (the races); it is
        #: the rival's own invocation, never given up on.
        self.rival_lane = Lane("rival", self, gives_up=False)
        self.races = Races(self)
        self.targets = Targets(self)
        #: Jobs created, at simulated time (the status index orders them by it).
        self._created_at: dict[str, int] = {}
        #: Per job, the races it was in and an unmapped Jobs stream.
        self.job_faults: dict[str, set[str]] = {}
        #: Jobs whose latest on-write API call failed or was killed.
        self.api_failed: set[str] = set()
        #: Jobs the stream path (or the API) deferred to a live holder at least once.
        self.deferred: set[str] = set()
        # A rival's invocation runs in its own thread.
        self._recording = threading.Lock()

    def handle(self, event: dict[str, Any], invocation: Invocation) -> BatchResult:
        """The Lambda's handling of one stream batch, its outcomes recorded."""
        result = self.trigger.handle(event, invocation)
        self.record(result.outcomes)
        return result

    def record(self, outcomes: Iterable[JobOutcome]) -> None:
        """Count the stream path's evaluations (and the API's) into the report's
        recovery paths, and note the jobs they deferred to a live holder."""
        with self._recording:
            for outcome in outcomes:
                self.report.count_transitions(outcome.history)
                if outcome.reason is SkipReason.DEFERRED:
                    self.deferred.add(outcome.job_id)

    def chance(self, p: float) -> bool:
        """A draw of the shard's generator, true with chance `p` (never without faults)."""
        return self.config.inject_faults and self.rng.random() < p

    def hit(self, job_id: str, fault: FaultScenario) -> None:
        """`fault` happened to `job_id` (a race, an unmapped Jobs stream)."""
        self.report.count(fault)
        self.job_faults.setdefault(job_id, set()).add(fault.value)

    def chunking_record(self, job: ScriptedJob) -> Record:
        """The record of `job`'s chunking write, delivered again by a rival invocation."""
        write = Write(job, again=True)
        return self._record(write, *self._images(write))

    def _images(self, write: Write) -> tuple[Item, Item | None]:
        """The write's item and the one it replaces; a Job created at the simulated time
        of its first write."""
        created_at = self._created_at.setdefault(write.job.job_id, int(self.clock.now()))
        return write.images(created_at)

    def _record(self, write: Write, new: Item, old: Item | None) -> Record:
        """The stream record of a write of `new` over `old`."""
        stream = self.jobs_stream if write.on_jobs_table else self.completions_stream
        return stream.insert(new) if old is None else stream.modify(new, old)

    # ---------------------------------------------------------------- the reconciler

    def reconcile(self, event: Any = None) -> ReconcileRun:
        """One reconcile run now (scheduled when `event` is None)."""
        run = self.schedule.run_scheduled() if event is None else self.schedule.run(event)
        if run.crash is not None and run.crash.label.endswith(":timeout"):
            # Killed at its timeout: whatever comes next comes after its deadline.
            self.clock.set(run.invocation.deadline)
        return run

    def reconcile_until_quiet(self) -> None:
        """After the pipeline's last write, the schedule goes on until a run that starts
        once every lease has ended (a holder leased up to 900 s, the stream path's
        deferrals) finds nothing to do; at most `MAX_FINAL_RECONCILES` runs."""
        leases_over = self.clock.now() + LAMBDA_MAX_TIMEOUT_SECONDS + CLOCK_SKEW_SECONDS
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
        rule = self.targets.rule(
            "SendMessage", FaultKind.CRASH, job_id, FaultScenario.HOLDER_DIES_FAR_LEASE
        )
        invocation = Invocation(f"far-holder-{job_id}", self.clock.now() + lease)
        try:
            self.record(self.trigger.evaluate_jobs([JobRequest(job_id)], invocation))
        except SimulatedCrash:
            pass  # dead, with the lock leased until its deadline
        finally:
            rule.times = 0  # it never got as far as the send: the fault did not happen

    # ---------------------------------------------------------------- the loop

    def write(self, writes: list[Write]) -> None:
        """Apply the pipeline's writes (BatchWriteItem) and queue their stream records."""
        chunk: list[Write] = []
        keys: set[tuple[str, int | None]] = set()
        for write in writes:
            if len(chunk) == 25 or write.key in keys:
                self._flush(chunk)
                chunk, keys = [], set()
            chunk.append(write)
            keys.add(write.key)
        self._flush(chunk)

    def _flush(self, chunk: list[Write]) -> None:
        if not chunk:
            return
        images = [self._images(write) for write in chunk]
        names = self.resources.names
        requests: dict[str, list[Any]] = {}
        for write, (item, _) in zip(chunk, images, strict=True):
            table = names.jobs_table if write.on_jobs_table else names.segment_completions_table
            requests.setdefault(table, []).append({"PutRequest": {"Item": item}})
        response = self.aws.dynamodb.batch_write_item(RequestItems=requests)
        if response.get("UnprocessedItems"):
            raise RuntimeError("the moto server left items unprocessed")
        completed: list[str] = []
        far_holders = self.targets.far_holders
        for write, (item, old) in zip(chunk, images, strict=True):
            self._route(write, self._record(write, item, old))
            job_id = write.job.job_id
            far = far_holders.get(job_id)
            if far is not None:
                lease, left = far
                far_holders[job_id] = (lease, left - 1)
                if left == 1:
                    completed.append(job_id)
        for job_id in completed:
            self._far_holder(job_id, far_holders.pop(job_id)[0])
        if self.config.mode.on_write:
            # Each worker calls once its write is done (after a far holder took its lock).
            for write in chunk:
                if not write.on_jobs_table:
                    self._call_on_write(write.job.job_id)

    def _route(self, write: Write, record: Record) -> None:
        """Queue the write's stream record on its mapping's lane, if it has one."""
        if write.on_jobs_table:
            if self.jobs_stream_mapped:
                self.jobs_lane.pending.append(record)
            else:
                self.report.deliveries["records_unmapped"] += 1
        elif self.config.mode.streams:
            lane = zlib.crc32(f"{write.job.job_id}/{write.segment_index}".encode())
            self.completion_lanes[lane % len(self.completion_lanes)].pending.append(record)

    def _call_on_write(self, job_id: str) -> None:
        """The video worker's `trigger_job` after its completion write (trigger on write)."""
        deliveries = self.report.deliveries
        deliveries["api_calls"] += 1
        timeout = self.config.function_timeout_seconds
        deadline = self.clock.now() + timeout
        try:
            outcome = trigger_job(
                job_id,
                timeout_seconds=timeout,
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
            self.races.end()
        self.record([outcome])
        deliveries[f"api:{outcome.state.value}"] += 1
        if outcome.failed:
            self.api_failed.add(job_id)
        else:
            self.api_failed.discard(job_id)

    def lanes(self) -> list[Lane]:
        """Every lane of the shard's mappings (the rivals' included)."""
        return [*self.completion_lanes, self.jobs_lane, self.rival_lane]

    def _round(self, *, everything: bool) -> None:
        """Each lane delivers its next batch (by chance, unless `everything`); the media
        worker finishes what it started last round and now and then empties the queue;
        a scheduled reconcile run if its time has come; then time passes."""
        lanes = self.lanes()
        self.rng.shuffle(lanes)
        for lane in lanes:
            if lane.pending and (everything or self.rng.random() < self.config.delivery_chance):
                try:
                    lane.deliver()
                finally:
                    self.races.end()
        self.worker.finish()
        if self.rng.random() < 0.35:
            while self.worker.poll() == 10:
                pass
        if self.config.reconciler and self.schedule.due():
            self.reconcile()
        self.clock.advance(self.rng.uniform(0.05, 1.0))

    def run(self, jobs: list[ScriptedJob]) -> None:
        """The pipeline's writes, delivery rounds, the media worker and the reconciler's
        schedule, until every lane is empty and (with the reconciler) a run finds nothing."""
        self.targets.plan(jobs)
        counts: Counter[str] = Counter()
        per_job = [job_writes(job, self.rng, counts) for job in jobs]
        if self.config.inject_faults:
            self.report.faults.update(counts)
            if not self.jobs_stream_mapped:
                for job in jobs:
                    if job.kind is JobKind.LATE_CHUNKING:
                        self.hit(job.job_id, FaultScenario.UNMAPPED_JOBS_STREAM)
        far_holders = self.targets.far_holders
        for job, writes in zip(jobs, per_job, strict=True):
            if job.job_id in far_holders:
                far_holders[job.job_id] = (far_holders[job.job_id][0], len(writes))
        writes = list(interleave(per_job, self.config.in_flight, self.rng))
        step = self.config.writes_per_round
        for start in range(0, len(writes), step):
            self.write(writes[start : start + step])
            self._round(everything=False)
        while any(lane.pending for lane in self.lanes()):
            self._round(everything=True)
        self.worker.drain()
        if self.config.reconciler:
            self.reconcile_until_quiet()

    def fired_faults(self) -> dict[str, set[str]]:
        """Per job, the faults that hit it: targeted ones that fired, races, discarded
        batches and the unmapped Jobs stream."""
        fired = {job_id: set(labels) for job_id, labels in self.job_faults.items()}
        for job_id, labels in self.targets.fired().items():
            fired.setdefault(job_id, set()).update(labels)
        for lane in self.lanes():
            for job_id in lane.discarded_jobs:
                fired.setdefault(job_id, set()).add(FaultScenario.DISCARDED_BATCH.value)
        return fired


# --------------------------------------------------------------------- the shards


def run_fault_run(
    config: FaultRunConfig | None = None, *, endpoint_urls: Sequence[str] = ()
) -> FaultRunReport:
    """Run one fault run on these moto endpoints, or on `servers` of its own.

    Its own servers are moto in child processes (`latency_proxy.SubprocessStack`, with
    no added latency and moto's per-request overheads tuned away): moto spends more
    CPU per request than the client, so it runs on the other core.

    The jobs are split into shards of `shard_size`, each with its own tables and queue
    (moto's Query reads a whole table, so small tables keep it fast), run `threads` at
    a time; each shard is sequential and seeded, so the totals are reproducible.
    """
    config = config or FaultRunConfig()
    started = time.perf_counter()
    jobs = plan_jobs(config.jobs, random.Random(config.seed))
    shards = [jobs[i : i + config.shard_size] for i in range(0, len(jobs), config.shard_size)]
    with ExitStack() as stack:
        endpoints = list(endpoint_urls) or [
            stack.enter_context(SubprocessStack(latency_ms=0.0)).proxy_url
            for _ in range(config.servers)
        ]
        # Outcomes tell what happened; the Lambda's logs would only be noise here.
        stack.enter_context(trigger_output())
        run_id = f"{random.Random().getrandbits(32):08x}"

        def run_shard(index: int) -> tuple[FaultRunReport, list[Invariant]]:
            endpoint = endpoints[index % len(endpoints)]
            return _run_shard(config, index, shards[index], endpoint, run_id)

        with ThreadPoolExecutor(max_workers=config.threads, thread_name_prefix="shard") as pool:
            results = list(pool.map(run_shard, range(len(shards))))
    report = merge_reports(config, [r for r, _ in results])
    report.invariants = merge_invariants([i for _, i in results])
    report.invariants.append(no_unexpected_error(report))
    if config.inject_faults:
        missing = report.missing_faults()
        report.invariants.append(
            Invariant("every fault kind occurred at least once", not missing, ", ".join(missing))
        )
    report.jobs_by_kind.update(job.kind.value for job in jobs)
    report.wall_seconds = time.perf_counter() - started
    return report


def _run_shard(
    config: FaultRunConfig,
    index: int,
    jobs: list[ScriptedJob],
    endpoint: str,
    run_id: str,
) -> tuple[FaultRunReport, list[Invariant]]:
    run = FaultRun(config, index, endpoint, f"fsim-{run_id}-{index}")
    begin = run.clock.now()
    stuck = ""
    try:
        run.run(jobs)
    except StuckRecord as exc:
        stuck = str(exc)
        run.worker.drain()
    report = run.report
    for (operation, kind), count in run.faults.injected.items():
        if kind in CALL_FAULTS:
            report.aws_faults[f"{operation}:{kind.value}"] += count
    # Targeted and per-call faults by rule label (races count themselves when run).
    known = {fault.value for fault in FaultScenario}
    for label, count in run.faults.fired.items():
        fault = label.split(":", 1)[0]
        if fault in known:
            report.faults[fault] += count
    report.aws_calls.update(run.faults.calls)
    report.worker = run.worker.report()
    report.messages_per_job.update(
        run.worker.tally(job.job_id).messages_received for job in jobs if job.complete
    )
    report.simulated_seconds = run.clock.now() - begin
    if config.reconciler:
        report.reconciler.update(run.schedule.tally.counts())
        report.reconciler_enqueues_by_cause.update(enqueue_causes(run))
    return report, check(run, jobs, stuck)
