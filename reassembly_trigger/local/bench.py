"""The benchmark: the real `lambda_handler` against a local AWS that answers like a region.

Moto runs on 127.0.0.1 behind `latency_proxy`, which delays every call (5 ms by
default) and counts it by action; the handler's clients point at the proxy through
`AWS_ENDPOINT_URL`, exactly as a deployed function's point at AWS. Data is written
straight to moto (neither delayed nor counted), so only the handler's own calls are.

Workloads (sizes from `BenchConfig`):

1. **stream**: 1,000 completions over 50 jobs of 20 segments, written in random order
   in batches of 100, each batch delivered as a stream event right after it is
   written; run at the default concurrency and at concurrency 1.
2. **wide**: one batch of 10,000 records over 10 jobs that are not ready (chunking
   still running), so the batched read of the Jobs is the only AWS call.
3. **deep**: one job of 5,000 padded segments (several MB, so several Query pages);
   the last two batches are delivered, and each evaluation counts with one paginated
   query.

Plus the cold start: `import reassembly_trigger.handler` against a bare `import boto3`
in fresh interpreters, and what the first invocation costs on top.

Timing targets live here, never in tests: `BenchReport.targets()` compares what one
run measured with the goals of the performance issue.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import platform
import random
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, MutableMapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

import structlog

from reassembly_trigger import handler
from reassembly_trigger.batch import PartialBatchResponse
from reassembly_trigger.clients import client_config, reset_clients
from reassembly_trigger.local.lambda_context import LocalLambdaContext
from reassembly_trigger.local.latency_proxy import DEFAULT_LATENCY_MS, ProxyControl
from reassembly_trigger.local.stack import (
    DEFAULT_REGION,
    LOCAL_CREDENTIALS,
    LocalAws,
    ResourceNames,
    Resources,
    create_resources,
    environment,
)
from reassembly_trigger.logs import configure_logging
from reassembly_trigger.metrics import configure_metrics
from reassembly_trigger.settings import DEFAULT_EVALUATION_CONCURRENCY

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

#: BatchWriteItem's limit on items per call.
WRITE_BATCH = 25
#: Lambda's default for a stream function in the pipeline's Terraform module.
INVOCATION_TIMEOUT_MS = 60_000
#: Where the benchmark's stream sequence numbers start (21 digits, like DynamoDB's).
FIRST_SEQUENCE_NUMBER = 400_000_000_000_000_000_000
WARM_UP_JOB = "bench-warm-up"


@dataclass(frozen=True, slots=True)
class BenchConfig:
    """Sizes and settings of one benchmark run (the defaults are the issue's workloads)."""

    latency_ms: float = DEFAULT_LATENCY_MS
    concurrency: int = DEFAULT_EVALUATION_CONCURRENCY
    seed: int = 20261115
    batch_size: int = 100
    stream_jobs: int = 50
    stream_segments: int = 20
    wide_records: int = 10_000
    wide_jobs: int = 10
    deep_segments: int = 5_000
    #: Bytes of padding per completion item: 5,000 x ~1.2 KB is ~6 MB, ~6 Query pages.
    deep_padding: int = 1_100
    #: Fresh interpreters per cold-start measurement (median reported); 0 skips it.
    cold_start_runs: int = 7
    #: Sequential calls whose median is the single-call round trip.
    round_trip_samples: int = 30
    #: moto's Query reads one partition, as DynamoDB's does (`moto_tuning`).
    tuned_moto: bool = True
    #: Also measure how cost grows (`Bench.scaling`); sizes below.
    scaling: bool = False
    scaling_records: tuple[int, ...] = (100, 1_000, 10_000)
    scaling_jobs: tuple[int, ...] = (1, 10, 50, 100, 250)
    scaling_segments: tuple[int, ...] = (100, 1_000, 5_000)

    @classmethod
    def quick(cls, **overrides: Any) -> BenchConfig:
        """Tiny sizes that still exercise every path (smoke tests, a first try)."""
        small = cls(
            batch_size=10,
            stream_jobs=4,
            stream_segments=5,
            wide_records=500,
            wide_jobs=250,
            deep_segments=40,
            deep_padding=80_000,
            cold_start_runs=1,
            round_trip_samples=5,
            scaling_records=(10, 100),
            scaling_jobs=(1, 5),
            scaling_segments=(5, 20),
        )
        return replace(small, **overrides)


# ------------------------------------------------------------------ results


@dataclass(frozen=True, slots=True)
class WorkloadResult:
    """What one workload cost: time, AWS calls, CPU, and whether it did the right thing."""

    key: str
    title: str
    concurrency: int
    records: int
    jobs: int
    batches: int
    #: Time inside `lambda_handler`, summed over the batches (writes excluded).
    wall_seconds: float
    #: CPU time of the handler's process (every thread) over the same span.
    cpu_seconds: float
    calls: dict[str, dict[str, int]]
    #: Time the stand-in AWS spent answering, summed over calls (latency excluded).
    upstream_seconds: float
    #: CPU time of the stand-in AWS's process (moto and the proxy) over the workload,
    #: writes of set-up data included: near the wall time means it was saturated.
    server_cpu_seconds: float
    #: The measured single-call round trip through the proxy.
    round_trip_seconds: float
    checks: dict[str, Any] = field(default_factory=dict)

    @property
    def calls_total(self) -> int:
        """Every AWS call the handler made."""
        return sum(sum(actions.values()) for actions in self.calls.values())

    @property
    def calls_per_job(self) -> float:
        """AWS calls per distinct job of the workload."""
        return self.calls_total / self.jobs if self.jobs else 0.0

    @property
    def effective_parallelism(self) -> float:
        """Calls x single-call round trip / wall time: how many calls overlapped on average."""
        if self.wall_seconds <= 0:
            return 0.0
        return self.calls_total * self.round_trip_seconds / self.wall_seconds

    @property
    def cpu_us_per_record(self) -> float:
        """Handler CPU per stream record, in microseconds."""
        return self.cpu_seconds / self.records * 1e6 if self.records else 0.0

    def calls_of(self, service: str) -> int:
        """Calls to one service (`dynamodb`, `sqs`)."""
        return sum(self.calls.get(service, {}).values())

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, with the derived figures."""
        return {
            **asdict(self),
            "calls_total": self.calls_total,
            "calls_per_job": round(self.calls_per_job, 2),
            "effective_parallelism": round(self.effective_parallelism, 2),
            "cpu_us_per_record": round(self.cpu_us_per_record, 2),
        }


@dataclass(frozen=True, slots=True)
class ColdStart:
    """Fresh-interpreter costs in seconds: medians over `runs` interleaved processes.

    Measured "as deployed": `rich` (installed here by the `local` extra, never in the
    Lambda zip) is hidden from the child, because structlog imports it, and pygments
    and attrs with it, whenever it can. `handler_process_with_rich` is the same import
    with this virtualenv as it is. Bytecode is compiled once beforehand, as for boto3.
    """

    runs: int
    #: Whole-process wall time of `python -c "pass"`, `import boto3`, `import ...handler`.
    empty_process: float
    boto3_process: float
    handler_process: float
    handler_process_with_rich: float
    #: Inside one process: the handler's import, its first invocation (one record of
    #: an incomplete job: BatchGetItem + Query), and a second, warm invocation.
    handler_import: float
    first_invocation: float
    warm_invocation: float
    #: The same process-level baseline for comparison: import boto3 and create the
    #: two clients the handler needs.
    boto3_import: float
    boto3_clients: float

    @property
    def import_ratio(self) -> float:
        """`import reassembly_trigger.handler` over a bare `import boto3` (process wall)."""
        return self.handler_process / self.boto3_process

    @property
    def import_ratio_with_rich(self) -> float:
        """The same ratio with `rich` importable (this virtualenv as it is)."""
        return self.handler_process_with_rich / self.boto3_process

    @property
    def first_invocation_overhead(self) -> float:
        """What the first invocation pays once: clients, logging set-up, lazy imports."""
        return self.first_invocation - self.warm_invocation

    @property
    def to_first_response(self) -> float:
        """Import plus first invocation, against import boto3 plus creating two clients."""
        return self.handler_import + self.first_invocation

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, with the derived figures."""
        return {
            **asdict(self),
            "import_ratio": round(self.import_ratio, 3),
            "import_ratio_with_rich": round(self.import_ratio_with_rich, 3),
            "first_invocation_overhead": self.first_invocation_overhead,
            "to_first_response": self.to_first_response,
        }


@dataclass(frozen=True, slots=True)
class ScalingPoint:
    """One batch of a sweep: how its cost compares with the same batch at other sizes."""

    dimension: str
    size: int
    wall_seconds: float
    cpu_seconds: float
    records: int
    calls: dict[str, dict[str, int]]
    #: Query pages of the count (segments sweep only).
    pages: int | None = None

    @property
    def calls_total(self) -> int:
        """Every AWS call of the batch."""
        return sum(sum(actions.values()) for actions in self.calls.values())

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {**asdict(self), "calls_total": self.calls_total}


@dataclass(frozen=True, slots=True)
class Target:
    """One goal of the performance issue and what this run measured."""

    name: str
    goal: str
    measured: str
    met: bool


@dataclass(slots=True)
class BenchReport:
    """Everything one run measured."""

    config: BenchConfig
    machine: dict[str, Any]
    round_trip_seconds: float
    workloads: list[WorkloadResult]
    cold_start: ColdStart | None
    scaling: list[ScalingPoint] = field(default_factory=list)

    def workload(self, key: str) -> WorkloadResult:
        """The result of one workload by key (`stream`, `stream@1`, `wide`, `deep`)."""
        return next(w for w in self.workloads if w.key == key)

    @property
    def speedup(self) -> float:
        """Workload 1 at concurrency 1 over the default concurrency (wall time)."""
        return self.workload("stream@1").wall_seconds / self.workload("stream").wall_seconds

    @property
    def cpu_bound_ceiling(self) -> tuple[float, float]:
        """Speed-up and effective parallelism workload 1 could reach at most if only the
        handler's own CPU time limited it (wall time = CPU time): on AWS the server side
        costs the function nothing, here moto shares the machine's cores."""
        stream, serial = self.workload("stream"), self.workload("stream@1")
        if stream.cpu_seconds <= 0:
            return 0.0, 0.0
        return (
            serial.wall_seconds / stream.cpu_seconds,
            stream.calls_total * stream.round_trip_seconds / stream.cpu_seconds,
        )

    def targets(self) -> list[Target]:
        """The issue's targets, each compared with this run."""
        stream, wide, deep = self.workload("stream"), self.workload("wide"), self.workload("deep")
        wide_dynamodb_limit = math.ceil(wide.jobs / 100)
        deep_queries = deep.calls.get("dynamodb", {}).get("Query", 0)
        targets = [
            Target("stream: speed-up", ">= 6x", f"{self.speedup:.1f}x", self.speedup >= 6),
            Target(
                "stream: AWS calls",
                "<= 650",
                str(stream.calls_total),
                stream.calls_total <= 650,
            ),
            Target(
                "stream: effective parallelism",
                ">= 5",
                f"{stream.effective_parallelism:.1f}",
                stream.effective_parallelism >= 5,
            ),
            Target(
                "wide: handler CPU per record",
                "< 20 us",
                f"{wide.cpu_us_per_record:.1f} us",
                wide.cpu_us_per_record < 20,
            ),
            Target(
                "wide: DynamoDB calls",
                f"<= 1 per 100 jobs ({wide_dynamodb_limit})",
                str(wide.calls_of("dynamodb")),
                wide.calls_of("dynamodb") <= wide_dynamodb_limit,
            ),
            Target(
                "deep: counted, one paginated query per evaluation",
                f"{deep.checks['segments']} counted, Query calls = pages",
                f"{deep.checks['completions']} counted, {deep_queries} Query calls for "
                f"{deep.checks['pages']} pages",
                deep.checks["completions"] == deep.checks["segments"]
                and deep_queries == sum(deep.checks["pages"])
                and deep.checks["triggered"] == 1,
            ),
        ]
        if self.cold_start is not None:
            ratio = self.cold_start.import_ratio
            targets.append(
                Target("cold start: import ratio", "<= 1.5x boto3", f"{ratio:.2f}x", ratio <= 1.5)
            )
        return targets

    def as_dict(self) -> dict[str, Any]:
        """The whole report, JSON-ready."""
        return {
            "config": asdict(self.config),
            "machine": self.machine,
            "round_trip_ms": round(self.round_trip_seconds * 1000, 3),
            "workloads": [w.as_dict() for w in self.workloads],
            "speedup": round(self.speedup, 2),
            "cpu_bound_ceiling": {
                "speedup": round(self.cpu_bound_ceiling[0], 2),
                "effective_parallelism": round(self.cpu_bound_ceiling[1], 2),
            },
            "cold_start": self.cold_start.as_dict() if self.cold_start else None,
            "scaling": [p.as_dict() for p in self.scaling],
            "targets": [asdict(t) for t in self.targets()],
        }


def machine_description() -> dict[str, Any]:
    """Where the run happened: cores, CPU model, Python, load."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


# ------------------------------------------------------------------ data and events


def job_item(job_id: str, *, status: str, total_segments: int | None) -> dict[str, Any]:
    """A Jobs item in DynamoDB JSON, as the chunker writes it."""
    item: dict[str, Any] = {
        "job_id": {"S": job_id},
        "mode": {"S": "sbs"},
        "status": {"S": status},
        "created_at": {"N": "1794000000"},
    }
    if total_segments is not None:
        item["total_segments"] = {"N": str(total_segments)}
    return item


def completion_item(job_id: str, index: int, padding: int = 0) -> dict[str, Any]:
    """A SegmentCompletions item in DynamoDB JSON, as a video worker writes it."""
    uri = f"s3://stereo-spot-output/jobs/{job_id}/segments/{index:05d}.mp4"
    item: dict[str, Any] = {
        "job_id": {"S": job_id},
        "segment_index": {"N": str(index)},
        "output_s3_uri": {"S": uri},
        "completed_at": {"N": "1794000100"},
    }
    if padding:
        # Stands in for the larger items real workers may write (metadata, checksums).
        item["worker_notes"] = {"S": "x" * padding}
    return item


def write_items(dynamodb: DynamoDBClient, table: str, items: Sequence[dict[str, Any]]) -> None:
    """Write items with BatchWriteItem (25 per call), retrying anything unprocessed."""
    for start in range(0, len(items), WRITE_BATCH):
        requests: list[Any] = [
            {"PutRequest": {"Item": i}} for i in items[start : start + WRITE_BATCH]
        ]
        while requests:
            response = dynamodb.batch_write_item(RequestItems={table: requests})
            requests = list(response.get("UnprocessedItems", {}).get(table, []))


class StreamRecords:
    """Lambda-shaped INSERT records of written items, with increasing sequence numbers."""

    def __init__(self, stream_arn: str, region: str = DEFAULT_REGION) -> None:
        self._arn = stream_arn
        self._region = region
        self._sequence = itertools.count(FIRST_SEQUENCE_NUMBER, 17)

    def insert(self, item: Mapping[str, Any]) -> dict[str, Any]:
        """The record DynamoDB Streams emits for a put of a new `item`."""
        keys = {"job_id": item["job_id"], "segment_index": item["segment_index"]}
        return {
            "eventID": uuid.uuid4().hex,
            "eventName": "INSERT",
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": self._region,
            "dynamodb": {
                "ApproximateCreationDateTime": 1794000100,
                "Keys": keys,
                "NewImage": dict(item),
                "SequenceNumber": str(next(self._sequence)),
                "SizeBytes": len(json.dumps(item)),
                "StreamViewType": "NEW_AND_OLD_IMAGES",
            },
            "eventSourceARN": self._arn,
        }

    def event(self, items: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
        """A stream event of one record per item, in the order given."""
        return {"Records": [self.insert(item) for item in items]}


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# ------------------------------------------------------------------ the handler under test


class TransitionTap:
    """A structlog processor that keeps what the checks need (final states, pages)."""

    def __init__(self) -> None:
        self.finals: dict[str, tuple[str, str | None]] = {}
        self.pages: list[int] = []
        self.completions: list[int] = []

    def clear(self) -> None:
        """Forget everything seen so far."""
        self.finals.clear()
        self.pages.clear()
        self.completions.clear()

    def __call__(
        self, logger: Any, method: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        """Note the event's facts and pass it on unchanged."""
        if event.get("event") == "transition":
            dest, reason = event.get("dest"), event.get("reason")
            if "pages" in event:
                self.pages.append(int(event["pages"]))
                self.completions.append(int(event.get("completions") or 0))
            if dest in ("enqueued", "skipped", "failed"):
                self.finals[str(event["job_id"])] = (str(dest), reason and str(reason))
        return event


@contextmanager
def _quiet_json_logging(tap: TransitionTap) -> Iterator[None]:
    """The production JSON logs and metric lines (their cost is real), sent to /dev/null;
    the transitions tapped on the way."""
    was_configured = structlog.is_configured()
    saved = structlog.get_config()
    with open(os.devnull, "w", encoding="utf-8") as devnull:
        configure_logging("json", stream=devnull, force=True)
        structlog.configure(processors=[tap, *structlog.get_config()["processors"]])
        configure_metrics(devnull)
        try:
            yield
        finally:
            configure_metrics(None)
            if was_configured:
                structlog.configure(**saved)
            else:
                structlog.reset_defaults()


@contextmanager
def _lambda_environment(
    resources: Resources, endpoint_url: str, concurrency: int
) -> Iterator[None]:
    """The Lambda's environment pointing at the proxy, and a fresh container."""
    env = environment(resources, endpoint_url, DEFAULT_REGION)
    env["EVALUATION_CONCURRENCY"] = str(concurrency)
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    handler.reset_container()
    reset_clients()
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        handler.reset_container()
        reset_clients()


class Harness:
    """Invokes the real `lambda_handler` and accumulates its wall and CPU time."""

    def __init__(self, tap: TransitionTap) -> None:
        self.tap = tap
        self.wall_seconds = 0.0
        self.cpu_seconds = 0.0
        self.records = 0
        self.batches = 0
        self.failed_records: list[str] = []
        self._requests = itertools.count(1)

    def invoke(self, event: dict[str, Any], *, measured: bool = True) -> PartialBatchResponse:
        """One invocation; `measured=False` for warm-ups."""
        context = LocalLambdaContext(
            aws_request_id=f"bench-{next(self._requests):05d}",
            timeout_seconds=INVOCATION_TIMEOUT_MS / 1000,
        )
        wall, cpu = time.perf_counter(), time.process_time()
        response = handler.lambda_handler(event, context)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        if measured:
            self.wall_seconds += wall
            self.cpu_seconds += cpu
            self.records += len(event["Records"])
            self.batches += 1
            self.failed_records += [f["itemIdentifier"] for f in response["batchItemFailures"]]
        return response


@contextmanager
def _handler(
    resources: Resources, proxy_url: str, concurrency: int, warm_up: dict[str, Any]
) -> Iterator[Harness]:
    """A warmed container (clients, lazy imports, logging) pointed at the proxy."""
    tap = TransitionTap()
    with _quiet_json_logging(tap), _lambda_environment(resources, proxy_url, concurrency):
        harness = Harness(tap)
        harness.invoke(warm_up, measured=False)
        tap.clear()  # the warm-up's transitions are not part of the workload
        yield harness


# ------------------------------------------------------------------ the workloads


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Moto directly (for writing data) and through the proxy (for the handler)."""

    upstream_url: str
    proxy_url: str
    control: ProxyControl


class Bench:
    """Runs the workloads against one proxied moto server."""

    def __init__(self, config: BenchConfig, endpoints: Endpoints, progress: Any = None) -> None:
        self.config = config
        self.endpoints = endpoints
        self.aws = LocalAws.connect(endpoints.upstream_url, DEFAULT_REGION)
        self._progress = progress or (lambda message: None)
        self._run_id = uuid.uuid4().hex[:6]
        self.round_trip_seconds = 0.0

    # -- helpers

    def _resources(self, name: str) -> tuple[Resources, StreamRecords, dict[str, Any]]:
        """Fresh tables and queues, the stream's record factory, and a warm-up event."""
        resources = create_resources(
            self.aws, ResourceNames.with_prefix(f"bench-{self._run_id}-{name}")
        )
        names = resources.names
        write_items(
            self.aws.dynamodb,
            names.jobs_table,
            [job_item(WARM_UP_JOB, status="chunking_complete", total_segments=1)],
        )
        arn = resources.segment_completions_stream_arn
        if arn is None:
            raise RuntimeError(f"{names.segment_completions_table} has no stream")
        records = StreamRecords(arn)
        warm_up = records.event([completion_item(WARM_UP_JOB, 0)])
        return resources, records, warm_up

    def _messages(self, resources: Resources) -> Counter[str]:
        """Job ids of every message on the reassembly queue (received and deleted)."""
        bodies: Counter[str] = Counter()
        url = resources.reassembly_queue_url
        while True:
            got = self.aws.sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0
            ).get("Messages", [])
            if not got:
                return bodies
            for message in got:
                bodies[json.loads(message["Body"])["job_id"]] += 1
                self.aws.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])

    def _result(
        self,
        key: str,
        *,
        title: str,
        concurrency: int,
        jobs: int,
        harness: Harness,
        checks: dict[str, Any],
    ) -> WorkloadResult:
        stats = self.endpoints.control.stats()
        return WorkloadResult(
            key=key,
            title=title,
            concurrency=concurrency,
            records=harness.records,
            jobs=jobs,
            batches=harness.batches,
            wall_seconds=harness.wall_seconds,
            cpu_seconds=harness.cpu_seconds,
            calls=stats.calls,
            upstream_seconds=stats.upstream_seconds,
            server_cpu_seconds=stats.process_cpu_seconds,
            round_trip_seconds=self.round_trip_seconds,
            checks={**checks, "failed_records": len(harness.failed_records)},
        )

    # -- the measurements

    def measure_round_trip(self) -> float:
        """Median of sequential GetItem calls through the proxy, on a handler-like client."""
        resources, _, _ = self._resources("rtt")
        import boto3

        client = boto3.session.Session(
            region_name=DEFAULT_REGION,
            aws_access_key_id=LOCAL_CREDENTIALS["aws_access_key_id"],
            aws_secret_access_key=LOCAL_CREDENTIALS["aws_secret_access_key"],
        ).client(
            "dynamodb",
            endpoint_url=self.endpoints.proxy_url,
            config=client_config(self.config.concurrency),
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
        self.round_trip_seconds = statistics.median(samples)
        return self.round_trip_seconds

    def stream(self, concurrency: int, *, baseline: bool = False) -> WorkloadResult:
        """Workload 1: completions in random order, batch after batch, as the stream delivers.

        `baseline` marks the concurrency-1 run the speed-up is measured against.
        """
        cfg = self.config
        resources, records, warm_up = self._resources(f"stream{concurrency}")
        names = resources.names
        jobs = [f"job-{n:04d}" for n in range(cfg.stream_jobs)]
        write_items(
            self.aws.dynamodb,
            names.jobs_table,
            [
                job_item(j, status="chunking_complete", total_segments=cfg.stream_segments)
                for j in jobs
            ],
        )
        order = [(job, index) for job in jobs for index in range(cfg.stream_segments)]
        random.Random(cfg.seed).shuffle(order)
        with _handler(resources, self.endpoints.proxy_url, concurrency, warm_up) as harness:
            self.endpoints.control.reset()
            for batch in _chunks(order, cfg.batch_size):
                items = [completion_item(job, index) for job, index in batch]
                write_items(self.aws.dynamodb, names.segment_completions_table, items)
                harness.invoke(records.event(items))
            result = self._result(
                f"stream@{concurrency}" if baseline else "stream",
                title=f"1. {len(order):,} completions, {len(jobs)} jobs x "
                f"{cfg.stream_segments}, batches of {cfg.batch_size}",
                concurrency=concurrency,
                jobs=len(jobs),
                harness=harness,
                checks={},
            )
        messages = self._messages(resources)
        checks = {
            "triggered": len(messages),
            "duplicates": sum(n - 1 for n in messages.values()),
            "expected": len(jobs),
        }
        return replace(result, checks={**result.checks, **checks})

    def wide(self) -> WorkloadResult:
        """Workload 2: one maximal batch over jobs whose chunking is still running."""
        cfg = self.config
        resources, records, warm_up = self._resources("wide")
        names = resources.names
        jobs = [f"job-{n:04d}" for n in range(cfg.wide_jobs)]
        write_items(
            self.aws.dynamodb,
            names.jobs_table,
            [job_item(j, status="chunking_in_progress", total_segments=None) for j in jobs],
        )
        per_job = math.ceil(cfg.wide_records / len(jobs))
        order = [(job, index) for job in jobs for index in range(per_job)][: cfg.wide_records]
        random.Random(cfg.seed).shuffle(order)
        items = [completion_item(job, index) for job, index in order]
        write_items(self.aws.dynamodb, names.segment_completions_table, items)
        event = records.event(items)
        with _handler(resources, self.endpoints.proxy_url, cfg.concurrency, warm_up) as harness:
            self.endpoints.control.reset()
            harness.invoke(event)
            skipped = Counter(reason for _, reason in harness.tap.finals.values())
            return self._result(
                "wide",
                title=f"2. one batch of {len(items):,} records over {len(jobs)} jobs not ready",
                concurrency=cfg.concurrency,
                jobs=len(jobs),
                harness=harness,
                checks={
                    "skipped": dict(skipped),
                    "messages": sum(self._messages(resources).values()),
                },
            )

    def deep(self) -> WorkloadResult:
        """Workload 3: one job whose completions span several Query pages."""
        cfg = self.config
        resources, records, warm_up = self._resources("deep")
        names = resources.names
        job = "job-deep"
        write_items(
            self.aws.dynamodb,
            names.jobs_table,
            [job_item(job, status="chunking_complete", total_segments=cfg.deep_segments)],
        )
        order = list(range(cfg.deep_segments))
        random.Random(cfg.seed).shuffle(order)
        items = [completion_item(job, index, cfg.deep_padding) for index in order]
        last, before_last = items[-cfg.batch_size :], items[-2 * cfg.batch_size : -cfg.batch_size]
        table = names.segment_completions_table
        write_items(self.aws.dynamodb, table, items[: -cfg.batch_size])
        with _handler(resources, self.endpoints.proxy_url, cfg.concurrency, warm_up) as harness:
            self.endpoints.control.reset()
            # The batch before the last: the job is still incomplete.
            harness.invoke(records.event(before_last))
            write_items(self.aws.dynamodb, table, last)
            harness.invoke(records.event(last))
            checks = {
                "segments": cfg.deep_segments,
                "completions": max(harness.tap.completions, default=0),
                "pages": list(harness.tap.pages),
                "evaluations": len(harness.tap.pages),
                "megabytes": round(sum(len(json.dumps(i)) for i in items) / 1e6, 1),
            }
            result = self._result(
                "deep",
                title=f"3. one job of {cfg.deep_segments:,} segments "
                f"(~{checks['megabytes']} MB), last two batches",
                concurrency=cfg.concurrency,
                jobs=1,
                harness=harness,
                checks=checks,
            )
        messages = self._messages(resources)
        return replace(result, checks={**result.checks, "triggered": messages.get(job, 0)})

    def cold_start(self) -> ColdStart:
        """Fresh interpreters: import costs, then a first and a warm invocation."""
        runs = self.config.cold_start_runs
        resources, _, warm_up = self._resources("cold")
        env = {**os.environ, **environment(resources, self.endpoints.proxy_url, DEFAULT_REGION)}
        # Compiled bytecode, as boto3 has it in the virtualenv and the Lambda runtime.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        self._progress(f"cold start: {runs} interleaved rounds of fresh interpreters")
        programs = {
            "empty": "pass",
            "boto3": _AS_DEPLOYED + "import boto3",
            "handler": _AS_DEPLOYED + "import reassembly_trigger.handler",
            "handler_with_rich": "import reassembly_trigger.handler",
        }
        walls: dict[str, list[float]] = {name: [] for name in programs}
        invocations: list[dict[str, float]] = []
        baselines: list[dict[str, float]] = []
        event = json.dumps(warm_up)
        for round_ in range(runs + 1):
            # Interleaved, so a change in the machine's load hits every figure alike;
            # the first round only compiles bytecode and warms the file cache.
            for name, code in programs.items():
                started = time.perf_counter()
                _run_child(code, env)
                if round_:
                    walls[name].append(time.perf_counter() - started)
            invocation = _child_timings(_AS_DEPLOYED + _FIRST_INVOCATION, env, event)
            baseline = _child_timings(_AS_DEPLOYED + _CLIENTS_BASELINE, env)
            if round_:
                invocations.append(invocation)
                baselines.append(baseline)
        self.endpoints.control.reset()

        def median(samples: list[dict[str, float]], key: str) -> float:
            return statistics.median(s[key] for s in samples)

        return ColdStart(
            runs=runs,
            empty_process=statistics.median(walls["empty"]),
            boto3_process=statistics.median(walls["boto3"]),
            handler_process=statistics.median(walls["handler"]),
            handler_process_with_rich=statistics.median(walls["handler_with_rich"]),
            handler_import=median(invocations, "import"),
            first_invocation=median(invocations, "first"),
            warm_invocation=median(invocations, "warm"),
            boto3_import=median(baselines, "import"),
            boto3_clients=median(baselines, "clients"),
        )

    def scaling(self) -> list[ScalingPoint]:
        """One batch at several sizes along each dimension, at the configured concurrency."""
        cfg = self.config
        points: list[ScalingPoint] = []
        control = self.endpoints.control

        def measure(harness: Harness, dimension: str, size: int, event: dict[str, Any]) -> None:
            before_wall, before_cpu = harness.wall_seconds, harness.cpu_seconds
            harness.tap.clear()
            control.reset()
            harness.invoke(event)
            points.append(
                ScalingPoint(
                    dimension=dimension,
                    size=size,
                    wall_seconds=harness.wall_seconds - before_wall,
                    cpu_seconds=harness.cpu_seconds - before_cpu,
                    records=len(event["Records"]),
                    calls=control.stats().calls,
                    pages=max(harness.tap.pages) if harness.tap.pages else None,
                )
            )

        # Records per batch: jobs not ready, so only parsing grows (one BatchGetItem).
        resources, records, warm_up = self._resources("scale-records")
        jobs = [f"job-{n:04d}" for n in range(10)]
        write_items(
            self.aws.dynamodb,
            resources.names.jobs_table,
            [job_item(j, status="chunking_in_progress", total_segments=None) for j in jobs],
        )
        with _handler(resources, self.endpoints.proxy_url, cfg.concurrency, warm_up) as harness:
            for size in cfg.scaling_records:
                items = [completion_item(jobs[n % len(jobs)], n) for n in range(size)]
                measure(harness, "records per batch", size, records.event(items))

        # Jobs per batch: one record each, every job chunked and incomplete (one Query).
        resources, records, warm_up = self._resources("scale-jobs")
        most = max(cfg.scaling_jobs)
        jobs = [f"job-{n:04d}" for n in range(most)]
        write_items(
            self.aws.dynamodb,
            resources.names.jobs_table,
            [job_item(j, status="chunking_complete", total_segments=2) for j in jobs],
        )
        firsts = [completion_item(j, 0) for j in jobs]
        write_items(self.aws.dynamodb, resources.names.segment_completions_table, firsts)
        with _handler(resources, self.endpoints.proxy_url, cfg.concurrency, warm_up) as harness:
            for size in cfg.scaling_jobs:
                measure(harness, "jobs per batch", size, records.event(firsts[:size]))

        # Segments per job: one job, ever more (padded) completions, one record delivered.
        resources, records, warm_up = self._resources("scale-segments")
        job, total = "job-deep", max(cfg.scaling_segments) + 1
        write_items(
            self.aws.dynamodb,
            resources.names.jobs_table,
            [job_item(job, status="chunking_complete", total_segments=total)],
        )
        written = 0
        with _handler(resources, self.endpoints.proxy_url, cfg.concurrency, warm_up) as harness:
            for size in cfg.scaling_segments:
                items = [completion_item(job, i, cfg.deep_padding) for i in range(written, size)]
                write_items(self.aws.dynamodb, resources.names.segment_completions_table, items)
                written = size
                measure(harness, "segments per job", size, records.event(items[-1:]))
        return points

    def run(self) -> BenchReport:
        """Every workload, then the cold start (and the scaling sweep when asked)."""
        cfg = self.config
        machine = machine_description()
        self.endpoints.control.set_latency(cfg.latency_ms)
        self._progress("measuring the single-call round trip")
        self.measure_round_trip()
        workloads = []
        for concurrency, baseline in ((cfg.concurrency, False), (1, True)):
            self._progress(f"workload 1 (stream) at concurrency {concurrency}")
            workloads.append(self.stream(concurrency, baseline=baseline))
        self._progress("workload 2 (wide batch)")
        workloads.append(self.wide())
        self._progress("workload 3 (deep job)")
        workloads.append(self.deep())
        cold = self.cold_start() if cfg.cold_start_runs > 0 else None
        points: list[ScalingPoint] = []
        if cfg.scaling:
            self._progress("scaling sweep: records per batch, jobs per batch, segments per job")
            points = self.scaling()
        machine["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
        return BenchReport(cfg, machine, self.round_trip_seconds, workloads, cold, points)


# ------------------------------------------------------------------ fresh interpreters

_MARK = "BENCH-RESULT "
#: Hides `rich` from a child interpreter, as in the Lambda zip (see `ColdStart`).
_AS_DEPLOYED = "import sys; sys.modules['rich'] = None\n"

_FIRST_INVOCATION = f"""
import time
started = time.perf_counter()
import reassembly_trigger.handler as handler
imported = time.perf_counter()
import json, sys
event = json.loads(sys.argv[1])
class Context:
    aws_request_id = "bench-cold-start"
    def get_remaining_time_in_millis(self):
        return {INVOCATION_TIMEOUT_MS}
ready = time.perf_counter()
response = handler.lambda_handler(event, Context())
first = time.perf_counter()
handler.lambda_handler(event, Context())
warm = time.perf_counter()
assert response == {{"batchItemFailures": []}}, response
print({_MARK!r} + json.dumps(
    {{"import": imported - started, "first": first - ready, "warm": warm - first}}
))
"""

_CLIENTS_BASELINE = f"""
import time
started = time.perf_counter()
import boto3
imported = time.perf_counter()
session = boto3.session.Session()
session.client("dynamodb")
session.client("sqs")
created = time.perf_counter()
import json
print({_MARK!r} + json.dumps({{"import": imported - started, "clients": created - imported}}))
"""


def _run_child(code: str, env: dict[str, str]) -> None:
    """Run `python -c code` in a fresh interpreter; fail loudly if it fails."""
    subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", code], env=env, check=True, stdout=subprocess.DEVNULL
    )


def _child_timings(code: str, env: dict[str, str], *args: str) -> dict[str, float]:
    """Run `code` in a fresh interpreter; the timings it prints after the marker."""
    done = subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, check=True
    )
    for line in reversed(done.stdout.splitlines()):
        if line.startswith(_MARK):
            timings: dict[str, float] = json.loads(line[len(_MARK) :])
            return timings
    raise RuntimeError(f"no timings from the child process:\n{done.stdout}\n{done.stderr}")
