"""In-memory gateways with the real ones' semantics, for the fast unit tier.

Each fake implements the protocol the evaluation depends on (`gateways.JobReader`,
`CompletionCounter`, `LockStore`, `MessageSender`) with the same conditions as the
DynamoDB and SQS calls: a conditional create that fails on an existing lock, a take-over
that fails when any decisive attribute moved since it was read, a mark and a release
conditioned on the holder. Items are kept as DynamoDB JSON, as the tables keep them.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from botocore.exceptions import ReadTimeoutError

from reassembly_trigger.errors import LockAlreadyHeld, LockChanged
from reassembly_trigger.evaluation import Gateways
from reassembly_trigger.items import Item, decode_job, deserialize_item, whole_number
from reassembly_trigger.local.kit.items import job_item
from reassembly_trigger.local.simulation.clock import SimulatedClock
from reassembly_trigger.lock import DECISIVE_LOCK_ATTRIBUTES, RELEASED, LockRecord
from reassembly_trigger.ports import Budget, CompletionCount, InFlightJob, LoadedJobs
from reassembly_trigger.timing import attempt_read_timeout, current_budget

#: Any DynamoDB-JSON attribute value.
Attr = dict[str, Any]


def item(job_id: str, **attributes: object) -> Attr:
    """An item of `job_id` whose other attributes are plain values."""
    return {"job_id": {"S": job_id}, **{k: attr(v) for k, v in attributes.items()}}


def attr(value: object) -> Attr:
    """A plain value as DynamoDB JSON (ints as N, strings as S)."""
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int | Decimal):
        return {"N": str(value)}
    if value is None:
        return {"NULL": True}
    return {"S": str(value)}


@dataclass
class FakeNetwork:
    """What every in-memory call goes through: the clients' bound (`attempt_read_timeout`,
    the same rule) and a latency spent on the simulated clock. A call slower than its
    attempt's read timeout is carried out and its answer lost (`ReadTimeoutError`)."""

    clock: SimulatedClock
    latency: float = 0.0
    calls: int = 0

    def call(self, operation: str, then: Callable[[], Any]) -> Any:
        self.calls += 1
        budget = current_budget()
        limit = attempt_read_timeout(budget, operation) if budget is not None else None
        if limit is not None and self.latency > limit:
            then()  # AWS did it; the answer comes too late
            self.clock.advance(limit)
            raise ReadTimeoutError(endpoint_url=f"memory://{operation}")
        self.clock.advance(self.latency)
        return then()


class Networked:
    """A fake whose every method call goes through `network` (as AWS calls would)."""

    def __init__(self, fake: Any, network: FakeNetwork) -> None:
        self._fake = fake
        self._network = network

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._fake, name)
        if name in (
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
        ):
            return lambda *args, **kwargs: self._network.call(name, lambda: method(*args, **kwargs))
        return method


@dataclass
class FakeJobs:
    """The Jobs table: items by id (DynamoDB JSON); ids in `unavailable` fail to read."""

    items: dict[str, Attr] = field(default_factory=dict)
    unavailable: dict[str, Exception] = field(default_factory=dict)
    reads: int = 0

    def put(self, job_id: str, **attributes: object) -> None:
        self.items[job_id] = item(job_id, **attributes)

    def load_jobs(self, job_ids: Sequence[str], budget: Budget | None = None) -> LoadedJobs:
        self.reads += 1
        found: dict[str, Item | None] = {}
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
        return []


@dataclass
class FakeCompletions:
    """SegmentCompletions: the recorded indexes of each job."""

    indexes: dict[str, set[Decimal]] = field(default_factory=dict)
    counts: int = 0

    def complete(self, job_id: str, *indexes: int | str) -> None:
        self.indexes.setdefault(job_id, set()).update(Decimal(str(i)) for i in indexes)

    def count_completions(
        self, job_id: str, total_segments: int, budget: Budget | None = None
    ) -> CompletionCount:
        if budget is not None:
            budget.ensure("count completions")
        self.counts += 1
        in_range = [i for i in self.indexes.get(job_id, set()) if 0 <= i <= total_segments - 1]
        whole = [i for i in in_range if whole_number(i) is not None]
        return CompletionCount(len(whole), 1, len(in_range) - len(whole))


@dataclass
class FakeLock:
    """ReassemblyTriggered with the real conditions; `before_write` runs before each write
    (a rival's move in a race)."""

    items: dict[str, Attr] = field(default_factory=dict)
    writes: list[str] = field(default_factory=list)
    before_write: Callable[[str], None] | None = None

    def put(self, job_id: str, **attributes: object) -> None:
        self.items[job_id] = item(job_id, **attributes)

    def value(self, job_id: str) -> dict[str, Any]:
        return deserialize_item(self.items[job_id])

    def _write(self, name: str) -> None:
        if self.before_write is not None:
            self.before_write(name)
        self.writes.append(name)

    def acquire(self, job_id: str, holder: str, now: int, lease_expires_at: int) -> None:
        self._write("acquire")
        if job_id in self.items:
            raise LockAlreadyHeld(job_id, LockRecord.from_raw(self.items[job_id]))
        self.put(job_id, triggered_at=now, holder=holder, lease_expires_at=lease_expires_at)

    def read(self, job_id: str) -> LockRecord | None:
        raw = self.items.get(job_id)
        return LockRecord.from_raw(raw) if raw else None

    def read_many(
        self, job_ids: Sequence[str], budget: Budget | None = None
    ) -> tuple[dict[str, LockRecord | None], dict[str, Exception]]:
        return {job_id: self.read(job_id) for job_id in job_ids}, {}

    def take_over(self, seen: LockRecord, holder: str, now: int, lease_expires_at: int) -> None:
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
            holder=attr(holder),
            lease_expires_at=attr(lease_expires_at),
            taken_over_at=attr(now),
            takeovers=attr(seen.takeovers + 1),
        )

    def mark_enqueued(self, job_id: str, holder: str, message_id: str, now: int) -> None:
        self._write("mark")
        current = self.items.get(job_id)
        if current is None or current.get("holder") != attr(holder):
            raise LockChanged(job_id)
        current.update(enqueued_at=attr(now), message_id=attr(message_id))

    def release(self, job_id: str, holder: str) -> bool:
        self._write("release")
        current = self.items.get(job_id)
        if current is None or current.get("holder") != attr(holder) or "enqueued_at" in current:
            return False
        current["lease_expires_at"] = attr(RELEASED)
        return True


@dataclass
class FakeQueue:
    """The reassembly queue; `fail_with` makes the next sends raise it."""

    bodies: list[str] = field(default_factory=list)
    fail_with: Exception | None = None
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    def send(self, job_id: str) -> str:
        if self.fail_with is not None:
            raise self.fail_with
        self.bodies.append(job_id)
        return f"m-{next(self._ids)}"


@dataclass
class World:
    """The four fakes and a clock, wired as the evaluation's gateways."""

    jobs: FakeJobs = field(default_factory=FakeJobs)
    completions: FakeCompletions = field(default_factory=FakeCompletions)
    lock: FakeLock = field(default_factory=FakeLock)
    queue: FakeQueue = field(default_factory=FakeQueue)
    clock: SimulatedClock = field(default_factory=SimulatedClock)
    legacy_lease_seconds: int = 900

    def gateways(self, network: FakeNetwork | None = None) -> Gateways:
        """The fakes as the evaluation's gateways; with `network`, every call goes
        through it (bounded by the deadline, slowed by its latency)."""

        def wire(fake: Any) -> Any:
            return fake if network is None else Networked(fake, network)

        return Gateways(
            jobs=wire(self.jobs),
            completions=wire(self.completions),
            lock=wire(self.lock),
            queue=wire(self.queue),
            clock=self.clock,
            lock_lease_seconds=self.legacy_lease_seconds,
        )

    def ready(self, job_id: str, total: int = 2) -> None:
        self.jobs.items[job_id] = job_item(job_id, total_segments=total)
        self.completions.complete(job_id, *range(total))


def plain(items: Mapping[str, Attr]) -> dict[str, Any]:
    """An item as plain values."""
    return deserialize_item(items)
