"""The workloads: the real entry points against moto behind the latency proxy, at the
sizes of `BenchConfig`.

1. **stream**: completions in random order, each batch delivered as a stream event
   right after it is written; at each latency and concurrency of the run.
2. **burst**: one batch over many complete jobs (a backlog replayed after an outage).
3. **wide**: one batch over jobs not ready, so the batched read of the Jobs is the only call.
4. **deep**: one job of padded segments (several Query pages); its last two batches.
5. **reconcile**: one reconciler run over jobs in flight: missed by the stream path,
   already triggered, still waiting for segments.

Each run has its own tables and queue (fresh names), its own container warmed by a
job that triggers, and is compared with its critical path (`bounds`).
"""

from __future__ import annotations

import functools
import json
import math
import os
import random
import statistics
import time
import uuid
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import boto3

from reassembly_trigger import reconcile
from reassembly_trigger.clients import client_config
from reassembly_trigger.local.aws.stack import (
    DEFAULT_REGION,
    LOCAL_CREDENTIALS,
    LocalAws,
    ResourceNames,
    Resources,
    create_resources,
)
from reassembly_trigger.local.commands.bench import bounds
from reassembly_trigger.local.commands.bench.config import (
    INVOCATION_TIMEOUT_MS,
    RECONCILE_TIMEOUT_MS,
    BenchConfig,
)
from reassembly_trigger.local.commands.bench.data import chunks, completion_records, write_items
from reassembly_trigger.local.commands.bench.harness import (
    Endpoints,
    InvocationMeter,
    container,
    count_pages,
)
from reassembly_trigger.local.commands.bench.results import (
    BenchReport,
    ScalingPoint,
    WorkloadResult,
    machine_description,
)
from reassembly_trigger.local.invocations.items import completion_item, finished_lock_item, job_item
from reassembly_trigger.local.invocations.records import StreamRecords
from reassembly_trigger.machine import State
from reassembly_trigger.timing import DYNAMODB_MAX_ATTEMPTS

WARM_UP_JOB = "bench-warm-up"
#: Segments of each burst and reconciler job.
SMALL_JOB_SEGMENTS = 10

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _BurstData:
    """The burst's Jobs and completions, written once and read by every burst run."""

    resources: Resources
    records: StreamRecords
    event: dict[str, Any]
    jobs: tuple[str, ...]


class Bench:
    """Runs the workloads against one proxied moto server."""

    def __init__(
        self,
        config: BenchConfig,
        endpoints: Endpoints,
        progress: Callable[[str], object] | None = None,
    ) -> None:
        self.config = config
        self.endpoints = endpoints
        self.aws = LocalAws.connect(endpoints.upstream_url, DEFAULT_REGION)
        self._progress = progress or (lambda message: None)
        self._run_id = uuid.uuid4().hex[:6]
        self._names = 0
        self.round_trips: dict[float, float] = {}
        self.latency_ms = config.latency_ms

    # ------------------------------------------------------------------ helpers

    @property
    def round_trip_seconds(self) -> float:
        """The single-call round trip at the current latency (measured on first use)."""
        if self.latency_ms not in self.round_trips:
            self.measure_round_trip()
        return self.round_trips[self.latency_ms]

    def set_latency(self, latency_ms: float) -> None:
        """Delay every call through the proxy by `latency_ms` from now on."""
        self.endpoints.control.set_latency(latency_ms)
        self.latency_ms = latency_ms

    def _resources(self, name: str) -> Resources:
        """Fresh tables and queues, never shared with another run."""
        self._names += 1
        prefix = f"bench-{self._run_id}-{self._names}-{name}"
        return create_resources(self.aws, ResourceNames.with_prefix(prefix))

    def _write(self, table: str, items: Sequence[dict[str, Any]]) -> None:
        write_items(self.aws.dynamodb, table, items)

    def _write_jobs(self, resources: Resources, jobs: Sequence[str], **fields: Any) -> None:
        self._write(resources.names.jobs_table, [job_item(job, **fields) for job in jobs])

    def _shuffled(self, order: list[T]) -> list[T]:
        """`order` shuffled by the run's seed (the same order every run)."""
        random.Random(self.config.seed).shuffle(order)
        return order

    def _warm_up(self, name: str) -> tuple[Resources, StreamRecords, dict[str, Any]]:
        """Fresh resources, their stream's record factory, and a warm-up event whose job
        triggers. The warm-up job is created in the future, so the reconciler never lists it.
        """
        resources = self._resources(name)
        self._write_jobs(
            resources, [WARM_UP_JOB], total_segments=1, created_at=int(time.time()) + 86_400
        )
        completion = completion_item(WARM_UP_JOB, 0)
        self._write(resources.names.segment_completions_table, [completion])
        records = completion_records(resources.names.segment_completions_table)
        return resources, records, records.event([completion])

    def _sent(
        self, resources: Resources, jobs: Sequence[str], *, earlier: Collection[str] = ()
    ) -> dict[str, int]:
        """How many of `jobs` had their message sent, and how many messages are extra.

        Counted without reading the queue (moto's ReceiveMessage walks the whole queue on
        every call: draining 1,000 messages took 80 s): a lock is marked only after its
        message was sent, so with M messages on the queue and K locks marked by this run
        (`earlier` ones excluded), M - K messages were sent more than once.
        """
        pages = self.aws.dynamodb.get_paginator("scan").paginate(
            TableName=resources.names.reassembly_triggered_table,
            ProjectionExpression="job_id, enqueued_at",
            ConsistentRead=True,
        )
        marked = {i["job_id"]["S"] for p in pages for i in p["Items"] if "enqueued_at" in i}
        marked -= set(earlier)
        messages = self.aws.messages_in(resources.reassembly_queue_url)
        return {
            "triggered": len(marked & set(jobs)),
            "duplicates": messages - len(marked),
            "expected": len(jobs),
            "messages": messages,
        }

    def _result(
        self,
        kind: str,
        harness: InvocationMeter,
        *,
        title: str,
        jobs: int,
        bound: bounds.Bound,
        checks: dict[str, Any] | None = None,
        after: dict[str, Any] | None = None,
        concurrency: int | None = None,
        timeout_seconds: float | None = None,
    ) -> WorkloadResult:
        """The run's figures; `checks` lead its checks, `after` (the messages sent) close
        them. A run at a concurrency of its own is keyed by kind, latency and concurrency."""
        stats = self.endpoints.control.stats()
        key = kind if concurrency is None else f"{kind}@{self.latency_ms:g}ms/c{concurrency}"
        concurrency = self.config.concurrency if concurrency is None else concurrency
        return WorkloadResult(
            key=key,
            title=title,
            latency_ms=self.latency_ms,
            concurrency=concurrency,
            records=harness.records,
            jobs=jobs,
            batches=harness.batches,
            wall_seconds=harness.wall_seconds,
            cpu_seconds=harness.cpu_seconds,
            botocore_seconds=harness.botocore_seconds,
            calls=stats.calls,
            upstream_seconds=stats.upstream_seconds,
            server_cpu_seconds=harness.server_cpu_seconds,
            round_trip_seconds=self.round_trip_seconds,
            bound_round_trips=bound.round_trips(),
            bound_round_trips_here=bound.round_trips(concurrency),
            minimum_calls=bound.calls,
            timeout_seconds=timeout_seconds,
            cores=os.cpu_count() or 1,
            checks={
                **(checks or {}),
                "failed_records": len(harness.failed_records),
                # Requests the proxy saw beyond the calls the handler made: retries.
                "retried_requests": stats.total - harness.api_calls,
                **({"errors": errors} if (errors := harness.errors()) else {}),
                **(after or {}),
            },
        )

    # ------------------------------------------------------------------ measurements

    def measure_round_trip(self) -> float:
        """Median of sequential GetItem calls through the proxy, on a handler-like client."""
        resources = self._resources("rtt")
        client = boto3.session.Session(
            region_name=DEFAULT_REGION,
            aws_access_key_id=LOCAL_CREDENTIALS["aws_access_key_id"],
            aws_secret_access_key=LOCAL_CREDENTIALS["aws_secret_access_key"],
        ).client(
            "dynamodb",
            endpoint_url=self.endpoints.proxy_url,
            config=client_config(self.config.concurrency, max_attempts=DYNAMODB_MAX_ATTEMPTS),
        )
        key = {"job_id": {"S": WARM_UP_JOB}}
        table = resources.names.jobs_table
        samples = []
        for n in range(self.config.round_trip_samples + 3):
            started = time.perf_counter()
            client.get_item(TableName=table, Key=key, ConsistentRead=True)
            if n >= 3:  # the first calls open the connection
                samples.append(time.perf_counter() - started)
        self.endpoints.control.reset()
        self.round_trips[self.latency_ms] = statistics.median(samples)
        return self.round_trips[self.latency_ms]

    def stream(self, concurrency: int) -> WorkloadResult:
        """Workload 1: completions in random order, batch after batch, as the stream delivers."""
        cfg = self.config
        resources, records, warm_up = self._warm_up("stream")
        jobs = [f"job-{n:04d}" for n in range(cfg.stream_jobs)]
        self._write_jobs(resources, jobs, total_segments=cfg.stream_segments)
        order = self._shuffled([(j, index) for j in jobs for index in range(cfg.stream_segments)])
        batches = list(chunks(order, cfg.batch_size))
        with container(resources, self.endpoints, concurrency, warm_up) as harness:
            for batch in batches:
                items = [completion_item(job, index) for job, index in batch]
                self._write(resources.names.segment_completions_table, items)
                harness.invoke(records.event(items))
            return self._result(
                "stream",
                harness,
                title=f"1. {len(order):,} completions, {len(jobs)} jobs x "
                f"{cfg.stream_segments}, batches of {cfg.batch_size}",
                concurrency=concurrency,
                jobs=len(jobs),
                bound=bounds.stream_bound(batches, cfg.stream_segments),
                after=self._sent(resources, jobs),
            )

    @functools.cached_property
    def _burst_data(self) -> _BurstData:
        """The burst's Jobs and completions (written once, shared by every burst run)."""
        cfg = self.config
        resources, records, _ = self._warm_up("burst-data")
        per_job = max(1, cfg.burst_records // cfg.burst_jobs)
        jobs = tuple(f"job-{n:05d}" for n in range(cfg.burst_jobs))
        self._write_jobs(resources, jobs, total_segments=per_job)
        order = self._shuffled([(job, index) for job in jobs for index in range(per_job)])
        items = [completion_item(job, index) for job, index in order]
        self._write(resources.names.segment_completions_table, items)
        return _BurstData(resources, records, records.event(items), jobs)

    def burst(self, concurrency: int) -> WorkloadResult:
        """Workload 2: one batch naming every job of a backlog, every job complete."""
        data = self._burst_data
        # The data is shared; the lock table and the queue are this run's own.
        own = self._resources("burst")
        resources = replace(
            own,
            names=replace(
                own.names,
                jobs_table=data.resources.names.jobs_table,
                segment_completions_table=data.resources.names.segment_completions_table,
            ),
        )
        warm_up = data.records.event([completion_item(WARM_UP_JOB, 0)])
        timeout = INVOCATION_TIMEOUT_MS / 1000
        with container(
            resources, self.endpoints, concurrency, warm_up, timeout_seconds=timeout
        ) as harness:
            harness.invoke(data.event)
            return self._result(
                "burst",
                harness,
                title=f"2. one batch of {len(data.event['Records']):,} records over "
                f"{len(data.jobs):,} complete jobs",
                concurrency=concurrency,
                jobs=len(data.jobs),
                bound=bounds.burst_bound(len(data.jobs)),
                timeout_seconds=timeout,
                after=self._sent(resources, data.jobs),
            )

    def wide(self) -> WorkloadResult:
        """Workload 3: one maximal batch over jobs whose chunking is still running."""
        cfg = self.config
        resources, records, warm_up = self._warm_up("wide")
        jobs = [f"job-{n:04d}" for n in range(cfg.wide_jobs)]
        self._write_jobs(resources, jobs, status="chunking_in_progress")
        per_job = math.ceil(cfg.wide_records / len(jobs))
        order = [(job, index) for job in jobs for index in range(per_job)][: cfg.wide_records]
        items = [completion_item(job, index) for job, index in self._shuffled(order)]
        self._write(resources.names.segment_completions_table, items)
        with container(resources, self.endpoints, cfg.concurrency, warm_up) as harness:
            harness.invoke(records.event(items))
            return self._result(
                "wide",
                harness,
                title=f"3. one batch of {len(items):,} records over {len(jobs)} jobs not ready",
                jobs=len(jobs),
                checks={
                    "skipped": harness.reasons(State.SKIPPED),
                    "messages": self._sent(resources, [])["messages"] - 1,  # the warm-up's
                },
                bound=bounds.Bound((bounds.Stage(math.ceil(len(jobs) / 100), ()),)),
            )

    def deep(self) -> WorkloadResult:
        """Workload 4: one job whose completions span several Query pages."""
        cfg = self.config
        resources, records, warm_up = self._warm_up("deep")
        job, table = "job-deep", resources.names.segment_completions_table
        self._write_jobs(resources, [job], total_segments=cfg.deep_segments)
        order = self._shuffled(list(range(cfg.deep_segments)))
        items = [completion_item(job, index, padding=cfg.deep_padding) for index in order]
        last, before_last = items[-cfg.batch_size :], items[-2 * cfg.batch_size : -cfg.batch_size]
        self._write(table, items[: -cfg.batch_size])
        with container(resources, self.endpoints, cfg.concurrency, warm_up) as harness:
            # The batch before the last: the job is still incomplete.
            harness.invoke(records.event(before_last))
            self._write(table, last)
            harness.invoke(records.event(last))
            pages = count_pages(harness.outcomes)
            megabytes = round(sum(len(json.dumps(i)) for i in items) / 1e6, 1)
            # Each evaluation reads its Jobs, then counts; the last one also triggers.
            stages = [bounds.Stage(1, (p,)) for p in pages]
            if pages:
                stages[-1] = bounds.Stage(1, (pages[-1] + bounds.TRIGGER_CALLS,))
            sent = self._sent(resources, [job])
            return self._result(
                "deep",
                harness,
                title=f"4. one job of {cfg.deep_segments:,} segments (~{megabytes} MB), "
                "last two batches",
                jobs=1,
                checks={
                    "segments": cfg.deep_segments,
                    "completions": max((o.completions or 0 for o in harness.outcomes), default=0),
                    "pages": pages,
                    "evaluations": len(pages),
                    "megabytes": megabytes,
                },
                after={"triggered": sent["triggered"], "duplicates": sent["duplicates"]},
                bound=bounds.Bound(tuple(stages)),
            )

    def reconcile(self) -> WorkloadResult:
        """Workload 5: one scheduled reconciler run over the jobs in flight."""
        cfg = self.config
        resources, _, _ = self._warm_up("reconcile")
        names = resources.names
        count = cfg.reconcile_jobs
        jobs = [f"job-{n:05d}" for n in range(count)]
        kinds = (
            ["missed"] * round(count * cfg.reconcile_missed_share)
            + ["triggered"] * round(count * cfg.reconcile_triggered_share)
        )[:count]
        kinds = self._shuffled(kinds + ["waiting"] * (count - len(kinds)))
        kind_of = dict(zip(jobs, kinds, strict=True))
        # Distinct, long-past creation times: the status index lists them in order.
        self._write(
            names.jobs_table,
            [
                job_item(job, total_segments=SMALL_JOB_SEGMENTS, created_at=1_700_000_000 + n)
                for n, job in enumerate(jobs)
            ],
        )
        half = SMALL_JOB_SEGMENTS // 2
        completions = [
            completion_item(job, index)
            for job in jobs
            for index in range(half if kind_of[job] == "waiting" else SMALL_JOB_SEGMENTS)
        ]
        self._write(names.segment_completions_table, completions)
        triggered = [job for job in jobs if kind_of[job] == "triggered"]
        started = set(triggered[::2])
        self._write(
            names.reassembly_triggered_table,
            [finished_lock_item(job, started=job in started) for job in triggered],
        )
        missed = [job for job in jobs if kind_of[job] == "missed"]
        waiting = kinds.count("waiting")
        job_calls = {"missed": 1 + bounds.TRIGGER_CALLS, "waiting": 1, "triggered": 0}
        bound_chunks = [
            (
                1 + int(any(kind_of[j] != "triggered" for j in chunk)),
                [job_calls[kind_of[j]] for j in chunk],
            )
            for chunk in chunks(jobs, 100)
        ]
        timeout = RECONCILE_TIMEOUT_MS / 1000
        with container(
            resources,
            self.endpoints,
            cfg.concurrency,
            {"job_ids": [WARM_UP_JOB]},
            entry_point=reconcile.lambda_handler,
            timeout_seconds=timeout,
        ) as harness:
            summary = harness.invoke({})
            correct = (
                summary["jobs_listed"] == count
                and sorted(summary["jobs_enqueued"]) == sorted(missed)
                and len(summary["unclaimed"]) == len(triggered) - len(started)
                and len(summary["waiting_for_segments"]) == waiting
                and not summary["truncated"]
            )
            sent = self._sent(resources, missed, earlier=triggered)
            return self._result(
                "reconcile",
                harness,
                title=f"5. reconciler: {count:,} jobs in flight ({len(missed)} missed, "
                f"{len(triggered)} triggered, {waiting} waiting)",
                jobs=count,
                checks={
                    "listed": summary["jobs_listed"],
                    "enqueued": len(summary["jobs_enqueued"]),
                    "missed": len(missed),
                    "failed_jobs": len(summary["jobs_failed"]),
                    "unclaimed": len(summary["unclaimed"]),
                    "waiting_for_segments": len(summary["waiting_for_segments"]),
                    "outcomes": summary["outcomes"],
                    "truncated": summary["truncated"],
                    "correct": correct,
                },
                after={
                    "duplicates": sent["duplicates"],
                    "correct": correct
                    and sent["triggered"] == len(missed)
                    and sent["duplicates"] == 0,
                },
                bound=bounds.reconcile_bound(bound_chunks),
                timeout_seconds=timeout,
            )

    def scaling(self) -> list[ScalingPoint]:
        """One batch at several sizes along each dimension, at the configured concurrency."""
        cfg = self.config
        points: list[ScalingPoint] = []
        control = self.endpoints.control

        def measure(
            harness: InvocationMeter, dimension: str, size: int, event: dict[str, Any]
        ) -> None:
            before_wall, before_cpu = harness.wall_seconds, harness.cpu_seconds
            control.reset()
            pages = count_pages(harness.invoke(event).outcomes)
            points.append(
                ScalingPoint(
                    dimension=dimension,
                    size=size,
                    wall_seconds=harness.wall_seconds - before_wall,
                    cpu_seconds=harness.cpu_seconds - before_cpu,
                    records=len(event["Records"]),
                    calls=control.stats().calls,
                    pages=max(pages) if pages else None,
                )
            )

        # Records per batch: jobs not ready, so only parsing grows (one BatchGetItem).
        resources, records, warm_up = self._warm_up("scale-records")
        jobs = [f"job-{n:04d}" for n in range(10)]
        self._write_jobs(resources, jobs, status="chunking_in_progress")
        with container(resources, self.endpoints, cfg.concurrency, warm_up) as harness:
            for size in cfg.scaling_records:
                items = [completion_item(jobs[n % len(jobs)], n) for n in range(size)]
                measure(harness, "records per batch", size, records.event(items))

        # Jobs per batch: one record each, every job chunked and incomplete (one Query).
        resources, records, warm_up = self._warm_up("scale-jobs")
        jobs = [f"job-{n:04d}" for n in range(max(cfg.scaling_jobs))]
        self._write_jobs(resources, jobs, total_segments=2)
        firsts = [completion_item(j, 0) for j in jobs]
        self._write(resources.names.segment_completions_table, firsts)
        with container(resources, self.endpoints, cfg.concurrency, warm_up) as harness:
            for size in cfg.scaling_jobs:
                measure(harness, "jobs per batch", size, records.event(firsts[:size]))

        # Segments per job: one job, ever more (padded) completions, one record delivered.
        resources, records, warm_up = self._warm_up("scale-segments")
        job, written = "job-deep", 0
        self._write_jobs(resources, [job], total_segments=max(cfg.scaling_segments) + 1)
        with container(resources, self.endpoints, cfg.concurrency, warm_up) as harness:
            for size in cfg.scaling_segments:
                items = [
                    completion_item(job, i, padding=cfg.deep_padding) for i in range(written, size)
                ]
                self._write(resources.names.segment_completions_table, items)
                written = size
                measure(harness, "segments per job", size, records.event(items[-1:]))
        return points

    def run(self) -> BenchReport:
        """Every workload at every latency and concurrency, then the cold path."""
        from reassembly_trigger.local.commands.bench.cold_start import measure_cold_path

        cfg = self.config
        machine = machine_description()
        workloads: list[WorkloadResult] = []
        for latency in cfg.latencies_ms:
            self.set_latency(latency)
            self._progress(f"{latency:g} ms per call: measuring the single-call round trip")
            self.measure_round_trip()
            for concurrency in cfg.runs(cfg.concurrencies):
                self._progress(f"workload 1 (stream) at {latency:g} ms, concurrency {concurrency}")
                workloads.append(self.stream(concurrency))
        for latency in cfg.burst_latencies_ms:
            self.set_latency(latency)
            self.measure_round_trip()
            for concurrency in cfg.runs(cfg.burst_concurrencies):
                self._progress(f"workload 2 (burst) at {latency:g} ms, concurrency {concurrency}")
                workloads.append(self.burst(concurrency))
        self.set_latency(cfg.latency_ms)
        self.measure_round_trip()
        self._progress("workload 3 (wide batch)")
        workloads.append(self.wide())
        self._progress("workload 4 (deep job)")
        workloads.append(self.deep())
        self._progress("workload 5 (reconciler)")
        workloads.append(self.reconcile())
        points: list[ScalingPoint] = []
        if cfg.scaling:
            self._progress("scaling sweep: records per batch, jobs per batch, segments per job")
            points = self.scaling()
        cold = None
        notes: list[str] = []
        if cfg.cold_start_runs > 0:
            self.set_latency(0)
            cold, notes = measure_cold_path(cfg, self.endpoints, self.aws, self._progress)
            self.set_latency(cfg.latency_ms)
        machine["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
        return BenchReport(cfg, machine, dict(self.round_trips), workloads, cold, points, notes)
