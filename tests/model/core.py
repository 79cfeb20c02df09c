"""The adapter: the ONE module of the model that knows how the core is built and called.

Everything the model needs from `reassembly_trigger` goes through here: the
gateways (fakes implementing the `JobReader`, `CompletionCounter`, `MessageSender`
and `Clock` protocols; the real `ReassemblyLock` and `ReconcileCursorStore` on the
in-memory table of `dynamo`), the settings, the invocation, and the three entry
points (stream batch, `trigger_job`, reconciler run). Every call the fakes make is
bounded as the real clients bound it (`timing.attempt_read_timeout` on the budget of
the block the actor's thread is in): refused below one attempt's floor. When the core
changes shape, this is the module to adapt; see docs/protocol-model.md, "Adapting the
model".
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import structlog

from reassembly_trigger.api import trigger_job
from reassembly_trigger.batch import ReassemblyTrigger
from reassembly_trigger.evaluation import Gateways
from reassembly_trigger.gateways import ReassemblyLock, ReconcileCursorStore
from reassembly_trigger.items import decode_job
from reassembly_trigger.machine import SkipReason
from reassembly_trigger.outcome import JobOutcome
from reassembly_trigger.ports import Budget, CompletionCount, InFlightJob, LoadedJobs
from reassembly_trigger.reconcile import Reconciler
from reassembly_trigger.settings import Settings
from reassembly_trigger.timing import (
    ANSWER_RESERVE_SECONDS,
    CALL_FLOOR_SECONDS,
    CLOCK_SKEW_SECONDS,
    LAMBDA_MAX_TIMEOUT_SECONDS,
    LOCK_STEP_SECONDS,
    MIN_FUNCTION_TIMEOUT_SECONDS,
    RECONCILE_CHUNK_SECONDS,
    RECONCILE_CURSOR_SECONDS,
    Invocation,
    attempt_read_timeout,
    current_budget,
)
from tests.model.calls import Call, Kind, Port
from tests.model.world import LOCK_TABLE, SEQUENCE_BASE

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

#: Every time threshold the core decides by, as a time left before the deadline; the
#: model's deadlines lie on both sides of each.
THRESHOLDS: dict[str, float] = {
    "one call (CALL_FLOOR_SECONDS + reserve)": CALL_FLOOR_SECONDS + ANSWER_RESERVE_SECONDS,
    "the lock step (LOCK_STEP_SECONDS + reserve)": LOCK_STEP_SECONDS + ANSWER_RESERVE_SECONDS,
    "a reconcile chunk (+ cursor + reserve)": RECONCILE_CHUNK_SECONDS
    + RECONCILE_CURSOR_SECONDS
    + ANSWER_RESERVE_SECONDS,
    "MIN_FUNCTION_TIMEOUT_SECONDS": MIN_FUNCTION_TIMEOUT_SECONDS,
    "LAMBDA_MAX_TIMEOUT_SECONDS": LAMBDA_MAX_TIMEOUT_SECONDS,
}
#: A lease counts as over only this long after its end.
SKEW_SECONDS = CLOCK_SKEW_SECONDS
MAX_LEASE = LAMBDA_MAX_TIMEOUT_SECONDS


def bounded(port: Port, call: Call) -> object:
    """`call`, started only if one bounded attempt fits before the actor's deadline, as
    the real clients start an attempt (`DeadlineReached` otherwise)."""
    budget = current_budget()
    if budget is not None:
        attempt_read_timeout(budget, call.label)
    return port.request(call)


#: Reconciler leaves jobs younger than this to the stream (the deployed default).
RECONCILE_MIN_AGE_SECONDS = 300
JOBS_TABLE = "Jobs"
COMPLETIONS_TABLE = "SegmentCompletions"
COMPLETIONS_STREAM_ARN = (
    f"arn:aws:dynamodb:eu-west-1:123456789012:table/{COMPLETIONS_TABLE}/stream/2026-01-01"
)


def settings(lease_wait_seconds: int) -> Settings:
    """The deployed defaults, one evaluation at a time (an actor is one thread)."""
    return Settings(
        jobs_table_name=JOBS_TABLE,
        segment_completions_table_name=COMPLETIONS_TABLE,
        reassembly_triggered_table_name=LOCK_TABLE,
        reassembly_queue_url="https://sqs.eu-west-1.amazonaws.com/123456789012/reassembly",
        lock_lease_seconds=MAX_LEASE,
        evaluation_concurrency=1,
        lease_wait_seconds=lease_wait_seconds,
        reconcile_min_age_seconds=RECONCILE_MIN_AGE_SECONDS,
    )


# ------------------------------------------------------------------- the gateways


class ModelClock:
    """`Clock`: the time the actor sees; a sleep is a call the scheduler orders."""

    def __init__(self, port: Port) -> None:
        self._port = port

    def now(self) -> float:
        return self._port.now()

    def sleep(self, seconds: float) -> None:
        wake = self._port.now() + max(0.0, seconds)
        self._port.request(Call(f"sleep {max(0.0, seconds):g} s", "sleep", wake=wake))


class ModelJobs:
    """`JobReader` over the world's Jobs (strongly consistent, the index too)."""

    def __init__(self, port: Port) -> None:
        self._port = port

    def load_jobs(self, job_ids: Sequence[str], budget: Budget | None = None) -> LoadedJobs:
        ids = list(job_ids)

        def effect() -> LoadedJobs:
            jobs = self._port.world.jobs
            return LoadedJobs(
                {j: decode_job(_decimal_item(j, jobs[j])) if j in jobs else None for j in ids}
            )

        try:
            if budget is not None:
                budget.ensure(f"read {JOBS_TABLE}")
            return cast(LoadedJobs, bounded(self._port, Call("jobs.load", "read", effect)))
        except Exception as exc:  # as `JobStore`: the ids fail with the error, never the batch
            return LoadedJobs({}, dict.fromkeys(ids, exc))

    def in_flight(
        self, index_name: str, *, status: str, created_before: int, budget: Budget | None = None
    ) -> list[InFlightJob]:
        if budget is not None:
            budget.ensure(f"list {index_name}")

        def effect() -> list[InFlightJob]:
            return [
                InFlightJob(job_id, job["created_at"])
                for job_id, job in sorted(self._port.world.jobs.items())
                if job["status"] == status and job["created_at"] <= created_before
            ]

        call = Call("jobs.in_flight", "read", effect)
        return cast(list[InFlightJob], bounded(self._port, call))


def _decimal_item(job_id: str, job: dict[str, Any]) -> dict[str, Any]:
    from decimal import Decimal

    return {
        "job_id": job_id,
        "status": job["status"],
        "total_segments": Decimal(job["total_segments"]),
        "created_at": Decimal(job["created_at"]),
    }


class ModelCompletions:
    """`CompletionCounter` over the world's SegmentCompletions."""

    def __init__(self, port: Port) -> None:
        self._port = port

    def count_completions(
        self, job_id: str, total_segments: int, budget: Budget | None = None
    ) -> CompletionCount:
        if budget is not None:
            budget.ensure("count completions")

        def effect() -> CompletionCount:
            indexes = self._port.world.completions.get(job_id, set())
            return CompletionCount(sum(1 for i in indexes if 0 <= i < total_segments), 1)

        call = Call("completions.count", "read", effect, job_id=job_id)
        return cast(CompletionCount, bounded(self._port, call))


class ModelQueue:
    """`MessageSender`: SQS carries the send out at once; its answer may be lost."""

    def __init__(self, port: Port) -> None:
        self._port = port

    def send(self, job_id: str) -> str:
        call = Call("queue.send", "send", lambda: self._port.world.enqueue(job_id), job_id=job_id)
        return cast(str, bounded(self._port, call))


class ModelLockClient:
    """The DynamoDB client the real `ReassemblyLock` and cursor store are given: each
    call is one `Call` on the world's ReassemblyTriggered table."""

    def __init__(self, port: Port) -> None:
        self._port = port

    def _call(self, operation: str, kind: Kind, job_id: str | None, **kwargs: Any) -> Any:
        label = f"lock.{_lock_step(operation, kwargs)}"

        def effect() -> object:
            answer = getattr(self._port.world.locks, operation)(**kwargs)
            holder = kwargs.get("Item", {}).get("holder") or kwargs.get(
                "ExpressionAttributeValues", {}
            ).get(":holder")
            if holder is not None and operation != "get_item":
                self._port.world.holders.setdefault(holder["S"], self._port.name)
            return answer

        return bounded(self._port, Call(label, kind, effect, job_id=job_id))

    def put_item(self, **kwargs: Any) -> Any:
        return self._call("put_item", "write", kwargs["Item"]["job_id"]["S"], **kwargs)

    def update_item(self, **kwargs: Any) -> Any:
        return self._call("update_item", "write", kwargs["Key"]["job_id"]["S"], **kwargs)

    def get_item(self, **kwargs: Any) -> Any:
        return self._call("get_item", "read", kwargs["Key"]["job_id"]["S"], **kwargs)

    def batch_get_item(self, **kwargs: Any) -> Any:
        return self._call("batch_get_item", "read", None, **kwargs)


def _lock_step(operation: str, kwargs: dict[str, Any]) -> str:
    """What a lock call means, for traces."""
    if operation == "put_item":
        return "acquire" if "ConditionExpression" in kwargs else "write_cursor"
    if operation == "update_item":
        update = kwargs["UpdateExpression"]
        if "#taken" in update:
            return "take_over"
        if "enqueued_at" in update:
            return "mark"
        if ":released" in str(kwargs.get("ExpressionAttributeValues")):
            return "release"
        return "update"
    if operation == "get_item":
        return "read"
    return "read_many"


def gateways(port: Port) -> Gateways:
    """The gateways of one actor (one Lambda sandbox or worker process)."""
    client = cast("DynamoDBClient", ModelLockClient(port))
    clock = ModelClock(port)
    return Gateways(
        jobs=ModelJobs(port),
        completions=ModelCompletions(port),
        lock=ReassemblyLock(client, LOCK_TABLE, sleep=clock.sleep, uniform=_jitter),
        queue=ModelQueue(port),
        clock=clock,
        lock_lease_seconds=MAX_LEASE,
        uniform=_jitter,
    )


def _jitter(low: float, high: float) -> float:
    """Backoff jitter: always the longest wait (deterministic)."""
    return high


# ------------------------------------------------------------------- entry points

#: Skip reasons that tell the caller nothing more is owed: the lock is finished.
FINAL_LOCK_REASONS = frozenset({SkipReason.ALREADY_TRIGGERED, SkipReason.REASSEMBLY_STARTED})


@dataclass(frozen=True, slots=True)
class Summary:
    """What an actor's run returned: one word per job, and the jobs it called done."""

    words: str
    #: Jobs reported skipped because their lock is finished (marked or claimed).
    final: tuple[str, ...] = ()


def outcome_words(outcomes: Sequence[JobOutcome], tail: str = "") -> Summary:
    words = []
    for outcome in outcomes:
        reason = f":{outcome.reason.value}" if outcome.reason is not None else ""
        words.append(f"{outcome.job_id}={outcome.state.value}{reason}")
    final = tuple(o.job_id for o in outcomes if o.reason in FINAL_LOCK_REASONS)
    return Summary((" ".join(words) or "no job examined") + tail, final)


def stream_event(records: Sequence[tuple[str, int, int]]) -> dict[str, Any]:
    """A SegmentCompletions stream batch: (job_id, segment_index, record number)."""
    return {
        "Records": [
            {
                "eventID": f"e{number}",
                "eventName": "INSERT",
                "eventSource": "aws:dynamodb",
                "eventSourceARN": COMPLETIONS_STREAM_ARN,
                "dynamodb": {
                    "Keys": {"job_id": {"S": job_id}, "segment_index": {"N": str(index)}},
                    "SequenceNumber": str(SEQUENCE_BASE + number),
                    "StreamViewType": "NEW_AND_OLD_IMAGES",
                },
            }
            for job_id, index, number in records
        ]
    }


def deliver(
    port: Port,
    records: Sequence[tuple[str, int, int]],
    timeout: float,
    lease_wait_seconds: int,
) -> Summary:
    """Lambda invokes the stream function with a batch and `timeout` seconds."""
    trigger = ReassemblyTrigger(settings(lease_wait_seconds), gateways(port))
    invocation = Invocation(port.name, port.now() + timeout)
    result = trigger.handle(stream_event(records), invocation)
    failed = len(result.response()["batchItemFailures"])
    return outcome_words(result.outcomes, f" (batchItemFailures={failed})" if failed else "")


def call_trigger_job(port: Port, job_id: str, timeout: float, lease_wait_seconds: int) -> Summary:
    """A video worker calls `trigger_job(job_id, timeout_seconds=timeout)`."""
    trigger = ReassemblyTrigger(settings(lease_wait_seconds), gateways(port))
    outcome = trigger_job(job_id, timeout_seconds=timeout, trigger=trigger, emit_metrics=False)
    return outcome_words([outcome])


def reconcile(port: Port, timeout: float, lease_wait_seconds: int) -> Summary:
    """The scheduled reconciler runs with `timeout` seconds."""
    trigger = ReassemblyTrigger(settings(lease_wait_seconds), gateways(port))
    client = cast("DynamoDBClient", ModelLockClient(port))
    reconciler = Reconciler(trigger, ReconcileCursorStore(client, LOCK_TABLE))
    result = reconciler.run({}, Invocation(port.name, port.now() + timeout))
    return outcome_words(result.outcomes, " truncated" if result.truncated else "")


def lease_bound(deadline: float, written_at: float) -> int:
    """The latest lease a holder with this deadline may write at `written_at`."""
    return min(math.ceil(deadline), int(written_at) + MAX_LEASE)


def trigger_job_deadline(start: float, timeout: float) -> float:
    """The deadline `trigger_job(timeout_seconds=timeout)` keeps (capped like a lease)."""
    return start + min(max(timeout, 0.0), MAX_LEASE)


# ------------------------------------------------------------------- process set-up

_actor = threading.local()
_real_uuid4 = uuid.uuid4


def _model_uuid4() -> uuid.UUID:
    """In an actor's thread: ids numbered per actor, the same on every replay."""
    number = getattr(_actor, "number", None)
    if number is None:
        return _real_uuid4()
    _actor.counter += 1
    return uuid.UUID(int=(number << 112) | (_actor.counter << 80))


def enter_actor(number: int) -> None:
    """Called first in an actor's thread: its ids restart from the actor's number."""
    _actor.number = number
    _actor.counter = 0


@contextlib.contextmanager
def model_process() -> Iterator[None]:
    """Holder and request ids that replay identically (the model restores an actor by
    re-running it), and no log output (thousands of runs)."""
    saved = structlog.get_config()
    structlog.configure(
        processors=[_drop],
        wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL),
        cache_logger_on_first_use=False,
    )
    uuid.uuid4 = _model_uuid4
    try:
        yield
    finally:
        uuid.uuid4 = _real_uuid4
        structlog.configure(**saved)


def _drop(logger: object, name: str, event: Any) -> Any:
    raise structlog.DropEvent


EntryPoint = Callable[[Port], Summary]
