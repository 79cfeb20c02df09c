"""The pipeline's tables and queue in memory, with DynamoDB's and SQS's semantics."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from botocore.exceptions import ReadTimeoutError

from reassembly_trigger.batch import ReassemblyTrigger
from reassembly_trigger.errors import LockAlreadyHeld, LockChanged
from reassembly_trigger.evaluation import Gateways
from reassembly_trigger.items import (
    decode_job,
    deserialize_item,
    string,
    timestamp,
    whole_number,
)
from reassembly_trigger.lock import DECISIVE_LOCK_ATTRIBUTES, RELEASED, LockRecord
from reassembly_trigger.ports import Budget, CompletionCount, InFlightJob, LoadedJobs
from reassembly_trigger.settings import Settings
from reassembly_trigger.testing.inputs import (
    Attr,
    LambdaContext,
    ManualClock,
    attribute,
    item,
    job_item,
)
from reassembly_trigger.timing import attempt_read_timeout, current_budget


@dataclass
class SimulatedNetwork:
    """What every call of a `NetworkedStore` goes through: the trigger's bound on each
    attempt (`timing.attempt_read_timeout`, the rule its boto3 clients apply) and a
    latency spent on the clock. A call slower than its attempt's read timeout is carried
    out and its answer lost (`ReadTimeoutError`), as over a real network."""

    clock: ManualClock
    latency: float = 0.0
    #: Calls made so far.
    calls: int = 0

    def call(self, operation: str, then: Callable[[], Any]) -> Any:
        """Carry out `then` as the call `operation`, taking `latency` seconds."""
        self.calls += 1
        budget = current_budget()
        limit = attempt_read_timeout(budget, operation) if budget is not None else None
        if limit is not None and self.latency > limit:
            then()  # AWS did it; the answer comes too late
            self.clock.advance(limit)
            raise ReadTimeoutError(endpoint_url=f"memory://{operation}")
        self.clock.advance(self.latency)
        return then()


#: The methods of the stores that stand for AWS calls.
_CALLS = frozenset(
    {
        "read",
        "read_many",
        "acquire",
        "take_over",
        "mark_enqueued",
        "release",
        "send",
        "load_jobs",
        "count_completions",
        "in_flight",
    }
)


class NetworkedStore:
    """An in-memory store whose every AWS call goes through `network`; everything else
    (its items, its test methods) is the store's own."""

    def __init__(self, store: Any, network: SimulatedNetwork) -> None:
        self._store = store
        self._network = network

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._store, name)
        if name in _CALLS:
            return lambda *args, **kwargs: self._network.call(name, lambda: method(*args, **kwargs))
        return method


# ------------------------------------------------------------------ the stores


@dataclass
class InMemoryJobs:
    """The Jobs table (`ports.JobReader`): items by id as DynamoDB JSON; reading an id in
    `unavailable` fails with its exception."""

    items: dict[str, Attr] = field(default_factory=dict)
    unavailable: dict[str, Exception] = field(default_factory=dict)
    #: `load_jobs` calls so far.
    reads: int = 0

    def put(self, job_id: str, **attributes: object) -> None:
        """Write the Job `job_id` with exactly these attributes (plain values)."""
        self.items[job_id] = item(job_id, **attributes)

    def load_jobs(self, job_ids: Sequence[str], budget: Budget | None = None) -> LoadedJobs:
        """Every id's Job, decoded as the real read decodes it."""
        self.reads += 1
        found: dict[str, Any] = {}
        failed: dict[str, Exception] = {}
        for job_id in job_ids:
            if job_id in self.unavailable:
                failed[job_id] = self.unavailable[job_id]
            else:
                raw = self.items.get(job_id)
                found[job_id] = decode_job(deserialize_item(raw)) if raw else None
        return LoadedJobs(found, failed)

    def in_flight(
        self, index_name: str, *, status: str, created_before: int, budget: Budget | None = None
    ) -> list[InFlightJob]:
        """The jobs in `status` created at or before `created_before` (the reconciler's
        listing), oldest first."""
        listed = []
        for raw in list(self.items.values()):
            job_id, created_at = string(raw.get("job_id")), timestamp(raw.get("created_at"))
            if string(raw.get("status")) != status or job_id is None or created_at is None:
                continue
            if created_at <= created_before:
                listed.append(InFlightJob(job_id, created_at))
        return sorted(listed, key=lambda job: (job.created_at, job.job_id))


@dataclass
class InMemoryCompletions:
    """SegmentCompletions (`ports.CompletionCounter`): the recorded indexes of each job."""

    indexes: dict[str, set[Decimal]] = field(default_factory=dict)
    #: `count_completions` calls so far.
    counts: int = 0

    def complete(self, job_id: str, *indexes: int | str) -> None:
        """Record these segment indexes of `job_id` (numbers, or their text: "0.5")."""
        self.indexes.setdefault(job_id, set()).update(Decimal(str(i)) for i in indexes)

    def count_completions(
        self, job_id: str, total_segments: int, budget: Budget | None = None
    ) -> CompletionCount:
        """The whole indexes in `[0, total_segments)`, as the real count counts them."""
        if budget is not None:
            budget.ensure("count completions")
        self.counts += 1
        recorded = list(self.indexes.get(job_id, set()))
        in_range = [i for i in recorded if 0 <= i <= total_segments - 1]
        whole = [i for i in in_range if whole_number(i) is not None]
        return CompletionCount(len(whole), 1, len(in_range) - len(whole))


@dataclass
class InMemoryLock:
    """ReassemblyTriggered (`ports.LockStore`) with the real conditional writes, each
    atomic; `before_write` runs before each write with its name (a rival's move in a
    race: it may write the lock itself)."""

    items: dict[str, Attr] = field(default_factory=dict)
    #: The writes tried, in order: "acquire", "take_over", "mark", "release".
    writes: list[str] = field(default_factory=list)
    before_write: Callable[[str], None] | None = None
    _guard: threading.RLock = field(default_factory=threading.RLock, repr=False)

    def put(self, job_id: str, **attributes: object) -> None:
        """Write the lock of `job_id` with exactly these attributes (plain values)."""
        with self._guard:
            self.items[job_id] = item(job_id, **attributes)

    def value(self, job_id: str) -> dict[str, Any]:
        """The lock of `job_id` as plain values (numbers as Decimal)."""
        return deserialize_item(self.items[job_id])

    def _write(self, name: str) -> None:
        if self.before_write is not None:
            self.before_write(name)
        self.writes.append(name)

    def acquire(self, job_id: str, holder: str, now: int, lease_expires_at: int) -> None:
        """Create the lock, or raise `LockAlreadyHeld` with the lock that exists."""
        with self._guard:
            self._write("acquire")
            if job_id in self.items:
                raise LockAlreadyHeld(job_id, LockRecord.from_raw(self.items[job_id]))
            self.put(job_id, triggered_at=now, holder=holder, lease_expires_at=lease_expires_at)

    def read(self, job_id: str) -> LockRecord | None:
        """The lock as it is now."""
        raw = self.items.get(job_id)
        return LockRecord.from_raw(raw) if raw else None

    def read_many(
        self, job_ids: Sequence[str], budget: Budget | None = None
    ) -> tuple[dict[str, LockRecord | None], dict[str, Exception]]:
        """The locks of many jobs (no read fails)."""
        return {job_id: self.read(job_id) for job_id in job_ids}, {}

    def take_over(self, seen: LockRecord, holder: str, now: int, lease_expires_at: int) -> None:
        """Become the holder of `seen`, or raise `LockChanged` if any decisive attribute
        is not exactly as read."""
        with self._guard:
            self._write("take_over")
            current = self.items.get(seen.job_id)
            if current is None or any(
                current.get(a) != seen.raw.get(a) for a in DECISIVE_LOCK_ATTRIBUTES
            ):
                raise LockChanged(seen.job_id)
            for mark in ("enqueued_at", "reassembly_started_at"):
                if current.get(mark) == {"NULL": True}:
                    del current[mark]
            current.update(
                holder=attribute(holder),
                lease_expires_at=attribute(lease_expires_at),
                taken_over_at=attribute(now),
                takeovers=attribute(seen.takeovers + 1),
            )

    def mark_enqueued(self, job_id: str, holder: str, message_id: str, now: int) -> None:
        """Record the send, or raise `LockChanged` if `holder` no longer holds the lock."""
        with self._guard:
            self._write("mark")
            current = self.items.get(job_id)
            if current is None or current.get("holder") != attribute(holder):
                raise LockChanged(job_id)
            current.update(enqueued_at=attribute(now), message_id=attribute(message_id))

    def release(self, job_id: str, holder: str) -> bool:
        """End `holder`'s lease at once; False if the lock is not its, or is marked."""
        with self._guard:
            self._write("release")
            current = self.items.get(job_id)
            if (
                current is None
                or current.get("holder") != attribute(holder)
                or "enqueued_at" in current
            ):
                return False
            current["lease_expires_at"] = attribute(RELEASED)
            return True


@dataclass
class InMemoryQueue:
    """The reassembly queue (`ports.MessageSender`): the job ids sent, in order;
    `fail_with` makes every send raise it until it is set back to None."""

    bodies: list[str] = field(default_factory=list)
    fail_with: Exception | None = None
    _ids: Any = field(default_factory=lambda: itertools.count(1), repr=False)

    def send(self, job_id: str) -> str:
        """Send the job's message; its id (`m-1`, `m-2`, ...)."""
        if self.fail_with is not None:
            raise self.fail_with
        self.bodies.append(job_id)
        return f"m-{next(self._ids)}"


# ------------------------------------------------------------------ all together


def in_memory_settings(**overrides: Any) -> Settings:
    """Settings naming the in-memory tables and queue, with the defaults of the real
    ones; `overrides` set any field (`evaluation_concurrency=1`, `lease_wait_seconds=0`)."""
    names = {
        "jobs_table_name": "jobs",
        "segment_completions_table_name": "segment-completions",
        "reassembly_triggered_table_name": "reassembly-triggered",
        "reassembly_queue_url": "https://sqs.us-east-1.amazonaws.com/123456789012/reassembly",
    }
    return Settings(**{**names, **overrides})


@dataclass
class InMemoryAws:
    """The pipeline's three tables and its queue, in memory, on one `ManualClock`."""

    jobs: InMemoryJobs = field(default_factory=InMemoryJobs)
    completions: InMemoryCompletions = field(default_factory=InMemoryCompletions)
    lock: InMemoryLock = field(default_factory=InMemoryLock)
    queue: InMemoryQueue = field(default_factory=InMemoryQueue)
    clock: ManualClock = field(default_factory=ManualClock)
    #: The lease assumed for a lock that records none (`LOCK_LEASE_SECONDS`).
    legacy_lease_seconds: int = 900

    def ready(self, job_id: str, total: int = 2) -> None:
        """A job chunked into `total` segments, every one recorded: ready to trigger."""
        self.jobs.items[job_id] = job_item(job_id, total_segments=total)
        self.completions.complete(job_id, *range(total))

    def gateways(self, network: SimulatedNetwork | None = None) -> Gateways:
        """The stores as the trigger's gateways; with `network`, every call goes through
        it (bounded by the deadline, slowed by its latency)."""

        def wire(store: Any) -> Any:
            return store if network is None else NetworkedStore(store, network)

        return Gateways(
            jobs=wire(self.jobs),
            completions=wire(self.completions),
            lock=wire(self.lock),
            queue=wire(self.queue),
            clock=self.clock,
            lock_lease_seconds=self.legacy_lease_seconds,
        )

    def trigger(
        self, *, network: SimulatedNetwork | None = None, **settings: Any
    ) -> ReassemblyTrigger:
        """A `ReassemblyTrigger` on these stores, for `trigger_job(..., trigger=)` or
        `handle`; `settings` override `in_memory_settings`' fields."""
        configured = in_memory_settings(
            **{"lock_lease_seconds": self.legacy_lease_seconds, **settings}
        )
        gateways = replace(self.gateways(network), lock_lease_seconds=configured.lock_lease_seconds)
        return ReassemblyTrigger(configured, gateways)

    def lambda_context(self, timeout_seconds: float = 30.0) -> LambdaContext:
        """A Lambda context whose time left runs down on this clock."""
        return LambdaContext(timeout_seconds=timeout_seconds, now=self.clock.now)
