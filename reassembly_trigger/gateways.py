"""AWS access: every boto3 call the Lambda and the reconciler make, and nothing else.

The decision code (`evaluation`) never sees a boto3 response: items come back as plain
Python values, conditional failures as the domain errors of `errors`. Any other AWS
error (`botocore.exceptions.ClientError`, `BotoCoreError`) propagates unchanged; the
evaluation reports it back to Lambda.

Items are read defensively: the tables are written by several programs and by people,
so an attribute of an unexpected type is kept as it was read (`Undecodable`, or the raw
DynamoDB JSON on a lock) and never breaks the read of the rest.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol, cast

from boto3.dynamodb.types import TypeDeserializer
from botocore.exceptions import ClientError

from reassembly_trigger.errors import (
    DeadlineReached,
    JobsUnavailable,
    LockAlreadyHeld,
    LockChanged,
)
from reassembly_trigger.timing import (
    CALL_FLOOR_SECONDS,
    CLOCK_SKEW_SECONDS,
    LAMBDA_MAX_TIMEOUT_SECONDS,
    LOCK_TTL_SECONDS,
    RESEND_LEASE_SECONDS,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sqs import SQSClient

#: BatchGetItem's limit on keys per call.
BATCH_GET_LIMIT = 100
#: Rounds of retrying `UnprocessedKeys` (with jittered backoff) before giving up on them.
UNPROCESSED_KEYS_ROUNDS = 8
#: The lease value that marks a lock given up by its holder.
RELEASED = 0
#: The attributes whose values decide what a lock means; a take-over is conditioned on
#: every one of them being exactly as read (present with the same raw value, or absent).
DECISIVE_LOCK_ATTRIBUTES = (
    "holder",
    "lease_expires_at",
    "triggered_at",
    "taken_over_at",
    "takeovers",
    "enqueued_at",
    "reassembly_started_at",
)
#: The largest `takeovers` or `resends` believed; far more than any job will see.
MAX_COUNTER = 10**9
#: The latest epoch second believed in a timestamp (year 2286).
MAX_EPOCH = 9_999_999_999
#: The key of the reconciler's cursor item in ReassemblyTriggered (no job has it).
RECONCILE_CURSOR_KEY = "#reassembly-trigger/reconcile-cursor"

_deserializer = TypeDeserializer()
Item = dict[str, Any]
AttributeValue = Mapping[str, Any]


class Budget(Protocol):
    """The time an invocation has left; raises `DeadlineReached` when a step cannot fit."""

    def ensure(self, step: str, seconds_needed: float = CALL_FLOOR_SECONDS) -> None:
        """Raise unless `step`'s normal case (default: one bounded call) still fits."""
        ...


@dataclass(frozen=True, slots=True)
class Undecodable:
    """An attribute value of a type this reader does not know, kept as read."""

    raw: Any


def is_conditional_check_failure(exc: ClientError) -> bool:
    """Whether a ClientError is DynamoDB refusing a condition expression."""
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def deserialize_item(item: Mapping[str, Any]) -> Item:
    """A DynamoDB-JSON item as plain Python values (numbers stay Decimal).

    An attribute that cannot be decoded becomes `Undecodable` instead of failing the item.
    """
    plain: Item = {}
    for key, value in item.items():
        try:
            plain[key] = _deserializer.deserialize(value)
        except (TypeError, ValueError, ArithmeticError, AttributeError, KeyError):
            plain[key] = Undecodable(value)
    return plain


def shown(value: object) -> object:
    """A value read from an item as it is logged: JSON-safe, its type still visible."""
    if isinstance(value, Undecodable):
        return repr(value.raw)
    if isinstance(value, Decimal):
        return str(value)
    if value is None or isinstance(value, str | bool | int):
        return value
    return repr(value)


def whole_number(value: object) -> int | None:
    """`value` as an int when it is a finite, integral DynamoDB number (never a bool)."""
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        return None
    if isinstance(value, Decimal) and (not value.is_finite() or value != value.to_integral_value()):
        return None
    return int(value)


def _number(attribute: AttributeValue | None) -> int | None:
    """A raw `{"N": ...}` attribute as a whole number of seconds (fractions truncated)."""
    if not isinstance(attribute, Mapping) or set(attribute) != {"N"}:
        return None
    try:
        value = Decimal(str(attribute["N"]))
    except ArithmeticError:
        return None
    return int(value) if value.is_finite() else None


def _counter(attribute: AttributeValue | None) -> int:
    """A raw counter (`takeovers`, `resends`), which is written back plus one.

    A value that cannot be such a count (not a number, negative, or beyond
    `MAX_COUNTER`) counts from 0 again: written back plus one, a huge value such as
    `1E+125` would exceed DynamoDB's 38 significant digits, and the take-over would
    fail on every retry.
    """
    value = _number(attribute)
    return value if value is not None and 0 <= value <= MAX_COUNTER else 0


def _string(attribute: AttributeValue | None) -> str | None:
    if not isinstance(attribute, Mapping) or set(attribute) != {"S"}:
        return None
    value = attribute["S"]
    return value if isinstance(value, str) else None


def _is_set(attribute: AttributeValue | None) -> bool:
    """Present with a value: a `NULL` attribute means as little as a missing one."""
    return isinstance(attribute, Mapping) and bool(attribute) and not _is_null(attribute)


def _is_null(attribute: AttributeValue | None) -> bool:
    return isinstance(attribute, Mapping) and "NULL" in attribute


class _AsRead:
    """Builds "this attribute is exactly as read" conditions over one raw item.

    Present: equal to its raw value (any type; a NULL by its type, which is all a NULL
    has). Absent: `attribute_not_exists`. Names and values are numbered placeholders,
    so any attribute name is safe.
    """

    def __init__(self, raw: Mapping[str, AttributeValue]) -> None:
        self._raw = raw
        self.names: dict[str, str] = {}
        self.values: dict[str, Any] = {}

    def name_of(self, attribute: str) -> str:
        """The placeholder of `attribute`'s name."""
        for placeholder, name in self.names.items():
            if name == attribute:
                return placeholder
        placeholder = f"#a{len(self.names)}"
        self.names[placeholder] = attribute
        return placeholder

    def unchanged(self, attribute: str) -> str:
        """The condition that `attribute` is as it was read."""
        name = self.name_of(attribute)
        current = self._raw.get(attribute)
        if current is None:
            return f"attribute_not_exists({name})"
        if _is_null(current):
            self.values[":null_type"] = {"S": "NULL"}
            return f"attribute_type({name}, :null_type)"
        value = f":v{len(self.values)}"
        self.values[value] = current
        return f"{name} = {value}"


#: Draws a uniform random number in [a, b]: `random.uniform` (the process's generator,
#: reseeded after a SnapStart restore), or a seeded generator's for reproducible runs.
Uniform = Callable[[float, float], float]


class _BatchReader:
    """Strongly consistent BatchGetItem of many keys of one table, throttling-aware."""

    def __init__(
        self,
        client: DynamoDBClient,
        table: str,
        sleep: Callable[[float], None],
        uniform: Uniform = random.uniform,
    ) -> None:
        self._client = client
        self._table = table
        self._sleep = sleep
        self._uniform = uniform

    def read(
        self, job_ids: Sequence[str], budget: Budget | None
    ) -> tuple[dict[str, Item | None], dict[str, Exception]]:
        """Every id's raw item (None where there is none), and the ids that could not be read.

        Only the keys AWS still leaves unprocessed after every round, or whose call
        failed (with any error), are unavailable: what was returned is kept.
        """
        found: dict[str, Item | None] = {}
        unavailable: dict[str, Exception] = {}
        for start in range(0, len(job_ids), BATCH_GET_LIMIT):
            chunk = list(dict.fromkeys(job_ids[start : start + BATCH_GET_LIMIT]))
            try:
                self._read_chunk(chunk, found, budget)
            except DeadlineReached as exc:  # these keys, and the rest, are retried later
                for job_id in job_ids[start:]:
                    if job_id not in found:
                        unavailable[job_id] = exc
                break
            except Exception as exc:  # the jobs fail with it, never the whole batch
                # An AWS error, or an answer nobody can read (botocore's parser raising
                # something else): raised out of here, it would fail the whole invocation.
                for job_id in chunk:
                    if job_id not in found:
                        unavailable[job_id] = exc
        return found, unavailable

    def _read_chunk(
        self,
        chunk: list[str],
        found: dict[str, Item | None],
        budget: Budget | None,
    ) -> None:
        keys: list[dict[str, Any]] = [{"job_id": {"S": job_id}} for job_id in chunk]
        for attempt in range(UNPROCESSED_KEYS_ROUNDS + 1):
            # Full jitter (AWS Architecture Blog): spreads retries of throttled keys.
            pause = self._uniform(0, min(0.05 * 2**attempt, 2.0)) if attempt else 0.0
            if budget is not None:
                # The pause and the call after it, or the keys are left for a retry.
                budget.ensure(f"read {self._table}", pause + CALL_FLOOR_SECONDS)
            if pause:
                self._sleep(pause)
            response = self._client.batch_get_item(
                RequestItems={self._table: {"Keys": keys, "ConsistentRead": True}}
            )
            for raw in response.get("Responses", {}).get(self._table, []):
                job_id = _string(raw.get("job_id"))
                if job_id is not None:
                    found[job_id] = cast("Item", raw)
            unprocessed = response.get("UnprocessedKeys", {}).get(self._table)
            if not unprocessed:
                for job_id in chunk:
                    found.setdefault(job_id, None)
                return
            keys = list(unprocessed["Keys"])
            # Keys that came back processed but with no item: no such job.
            pending = {str(key["job_id"]["S"]) for key in keys}
            for job_id in chunk:
                if job_id not in pending:
                    found.setdefault(job_id, None)
        raise JobsUnavailable([str(key["job_id"]["S"]) for key in keys])


# ------------------------------------------------------------ what the machine uses
#
# The evaluation depends on these interfaces, not on the classes below: the unit tests
# give it in-memory gateways, and `doctor`'s dry run gives it a lock that cannot write.


class JobReader(Protocol):
    """Reads Job items and lists the jobs in flight."""

    def load_jobs(self, job_ids: Sequence[str], budget: Budget | None = None) -> LoadedJobs:
        """The Job item of every id (None: no such job), and the ids that could not be read."""
        ...

    def in_flight(
        self, index_name: str, *, status: str, created_before: int, budget: Budget | None = None
    ) -> list[InFlightJob]:
        """Every job in `status` created at or before `created_before`."""
        ...


class CompletionCounter(Protocol):
    """Counts a job's completions."""

    def count_completions(
        self, job_id: str, total_segments: int, budget: Budget | None = None
    ) -> CompletionCount:
        """The number of whole indexes in `[0, total_segments)`."""
        ...


class LockStore(Protocol):
    """The ReassemblyTriggered lock: conditional create, take-over, mark, release."""

    def acquire(self, job_id: str, holder: str, now: int, lease_expires_at: int) -> None:
        """Create the lock or raise `LockAlreadyHeld`."""
        ...

    def read(self, job_id: str) -> LockRecord | None:
        """The lock as it is now."""
        ...

    def read_many(
        self, job_ids: Sequence[str], budget: Budget | None = None
    ) -> tuple[dict[str, LockRecord | None], dict[str, Exception]]:
        """The locks of many jobs, and the ids that could not be read."""
        ...

    def take_over(self, seen: LockRecord, holder: str, now: int, lease_expires_at: int) -> None:
        """Become the holder of `seen`, or raise `LockChanged`."""
        ...

    def mark_enqueued(self, job_id: str, holder: str, message_id: str, now: int) -> None:
        """Record the send, or raise `LockChanged`."""
        ...

    def release(self, job_id: str, holder: str) -> bool:
        """End our lease at once; False if the lock is not ours."""
        ...


class MessageSender(Protocol):
    """Sends the reassembly message."""

    def send(self, job_id: str) -> str:
        """Send the job's message; return its id."""
        ...


# --------------------------------------------------------------------------- Jobs


@dataclass(frozen=True, slots=True)
class LoadedJobs:
    """Job items by id (None: no such job), and the ids whose read failed, with why."""

    items: dict[str, Item | None]
    unavailable: dict[str, Exception] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class InFlightJob:
    """A job listed by the status index as waiting for its reassembly."""

    job_id: str
    created_at: int


class JobStore:
    """Reads Job items (strongly consistent, many per call) and lists the jobs in flight."""

    def __init__(
        self,
        client: DynamoDBClient,
        table_name: str,
        *,
        sleep: Callable[[float], None],
        uniform: Uniform = random.uniform,
    ) -> None:
        self._client = client
        self._table = table_name
        self._reader = _BatchReader(client, table_name, sleep, uniform)

    def load_jobs(self, job_ids: Sequence[str], budget: Budget | None = None) -> LoadedJobs:
        """The Job item of every id, in ceil(n/100) calls plus rounds for unprocessed keys."""
        raw, unavailable = self._reader.read(job_ids, budget)
        items = {job_id: deserialize_item(item) if item else None for job_id, item in raw.items()}
        return LoadedJobs(items=items, unavailable=unavailable)

    def in_flight(
        self,
        index_name: str,
        *,
        status: str,
        created_before: int,
        budget: Budget | None = None,
    ) -> list[InFlightJob]:
        """Every job the status index lists in `status`, created at or before a time.

        The index is eventually consistent: it only says which jobs to look at; every
        decision reads the Job itself, strongly consistent.
        """
        jobs: list[InFlightJob] = []
        params: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": index_name,
            "KeyConditionExpression": "#status = :status AND #created <= :before",
            "ExpressionAttributeNames": {
                "#status": "status",
                "#created": "created_at",
                "#job": "job_id",
            },
            "ExpressionAttributeValues": {
                ":status": {"S": status},
                ":before": {"N": str(created_before)},
            },
            "ProjectionExpression": "#job, #created",
        }
        while True:
            if budget is not None:
                budget.ensure(f"list {index_name}")
            page = self._client.query(**params)
            for item in page.get("Items", []):
                job_id = _string(item.get("job_id"))
                created_at = _number(item.get("created_at"))
                if job_id is not None and created_at is not None:
                    # A creation time no clock could give (-1E+125) is listed at 0, so
                    # the job is reached and the cursor stays a number DynamoDB accepts.
                    jobs.append(InFlightJob(job_id, min(max(created_at, 0), MAX_EPOCH)))
            start_key = page.get("LastEvaluatedKey")
            if not start_key:
                return jobs
            params["ExclusiveStartKey"] = start_key


# --------------------------------------------------------------- SegmentCompletions


@dataclass(frozen=True, slots=True)
class CompletionCount:
    """How many whole indexes of a job lie in `[0, total_segments)`, over how many pages."""

    count: int
    pages: int
    #: Recorded indexes inside the range that are not whole numbers (never counted).
    fractional: int = 0


class SegmentCompletions:
    """Counts and lists a job's completions."""

    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def count_completions(
        self, job_id: str, total_segments: int, budget: Budget | None = None
    ) -> CompletionCount:
        """Strongly consistent count of the whole indexes in `[0, total_segments)`.

        The range is the key condition, so out-of-range indexes are never read; the
        keys are read (not `Select=COUNT`, which cannot tell 0.5 from 1) and only whole
        numbers count. The sort key makes each index unique (1 and 1.0 are one key), so
        the count is exact across pages. Reading keys costs the same capacity as a count.
        """
        count = pages = fractional = 0
        for page in self._query(
            budget,
            KeyConditionExpression="job_id = :job AND #index BETWEEN :first AND :last",
            ExpressionAttributeNames={"#index": "segment_index"},
            ExpressionAttributeValues={
                ":job": {"S": job_id},
                ":first": {"N": "0"},
                ":last": {"N": str(total_segments - 1)},
            },
            ProjectionExpression="#index",
        ):
            pages += 1
            for item in page.get("Items", []):
                index = item.get("segment_index", {}).get("N")
                if index is not None and whole_number(Decimal(index)) is not None:
                    count += 1
                else:
                    fractional += 1
        return CompletionCount(count=count, pages=pages, fractional=fractional)

    def segment_indexes(self, job_id: str) -> list[Decimal]:
        """Every recorded `segment_index` of a job, in order (a keys-only query)."""
        indexes: list[Decimal] = []
        for page in self._query(
            None,
            KeyConditionExpression="job_id = :job",
            ExpressionAttributeValues={":job": {"S": job_id}},
            ProjectionExpression="segment_index",
        ):
            indexes.extend(Decimal(item["segment_index"]["N"]) for item in page.get("Items", []))
        return indexes

    def _query(self, budget: Budget | None, **params: Any) -> Iterator[Mapping[str, Any]]:
        start_key: Mapping[str, Any] | None = None
        while True:
            if budget is not None:
                budget.ensure("count completions")
            if start_key is not None:
                params["ExclusiveStartKey"] = start_key
            page = self._client.query(TableName=self._table, ConsistentRead=True, **params)
            yield page
            start_key = page.get("LastEvaluatedKey")
            if not start_key:
                return


# -------------------------------------------------------------- ReassemblyTriggered


@dataclass(frozen=True, slots=True)
class LockRecord:
    """A ReassemblyTriggered item: who triggered the job, until when, and how far it got.

    `raw` is the item exactly as read; every other field is a lenient reading of it
    (None where the attribute is missing or of a type that cannot mean what it should).
    """

    job_id: str
    raw: Mapping[str, AttributeValue]
    triggered_at: int | None = None
    holder: str | None = None
    #: Epoch seconds after which the holder is certainly gone; None on locks written
    #: before leases existed, 0 once the holder released it.
    lease_expires_at: int | None = None
    taken_over_at: int | None = None
    message_id: str | None = None
    enqueued: bool = False
    reassembly_started: bool = False
    takeovers: int = 0
    resends: int = 0

    @classmethod
    def from_raw(cls, raw: Mapping[str, AttributeValue]) -> LockRecord:
        """Read a lock item given as DynamoDB JSON, whatever the shape of its attributes."""
        return cls(
            job_id=_string(raw.get("job_id")) or "",
            raw=dict(raw),
            triggered_at=_number(raw.get("triggered_at")),
            holder=_string(raw.get("holder")),
            lease_expires_at=_number(raw.get("lease_expires_at")),
            taken_over_at=_number(raw.get("taken_over_at")),
            message_id=_string(raw.get("message_id")),
            enqueued=_is_set(raw.get("enqueued_at")),
            reassembly_started=_is_set(raw.get("reassembly_started_at")),
            takeovers=_counter(raw.get("takeovers")),
            resends=_counter(raw.get("resends")),
        )

    @property
    def enqueued_at(self) -> int | None:
        """When the holder recorded its send (None if not, or not a number)."""
        return _number(self.raw.get("enqueued_at")) if self.enqueued else None

    def resend_in_progress_until(self, now: float) -> float | None:
        """When a re-send claimed by someone else stops holding others off, if it still
        does at `now`. As with the lock's lease, a claim whose lease or time is not a
        number, or whose time is in the future, is not believed, and no lease lasts more
        than `RESEND_LEASE_SECONDS` after its claim."""
        until = _number(self.raw.get("resend_lease_expires_at"))
        claimed = _number(self.raw.get("resent_at"))
        if until is None or claimed is None or claimed > now + CLOCK_SKEW_SECONDS:
            return None
        end = min(until, claimed + RESEND_LEASE_SECONDS)
        return end if now < end + CLOCK_SKEW_SECONDS else None

    @property
    def reassembly_started_at(self) -> int | None:
        """When the media worker claimed the job (None if not, or not a number)."""
        return _number(self.raw.get("reassembly_started_at")) if self.reassembly_started else None

    @property
    def finished(self) -> bool:
        """Marked as enqueued or claimed by the media worker: nothing is owed any more."""
        return self.enqueued or self.reassembly_started

    def lease_end(self, legacy_lease_seconds: int, now: float) -> int:
        """When the holder's lease ends, bounded by `LAMBDA_MAX_TIMEOUT_SECONDS` after its start.

        The start is when the lock was taken or last taken over. A lock with no
        believable start (none recorded, or one in the future beyond the clock skew)
        has no believable holder: its lease is over. A lock without a lease (written
        by the earlier Lambda) is leased for `legacy_lease_seconds` from its start.
        """
        starts = [t for t in (self.triggered_at, self.taken_over_at) if t is not None]
        start = max(starts) if starts else None
        if start is None or start > now + CLOCK_SKEW_SECONDS:
            return RELEASED
        cap = start + LAMBDA_MAX_TIMEOUT_SECONDS
        if self.lease_expires_at is not None:
            return min(self.lease_expires_at, cap)
        return min(start + legacy_lease_seconds, cap)

    def as_log(self) -> dict[str, Any]:
        """The lock as logged: its attributes as read, numbers and strings made plain."""
        plain = deserialize_item(self.raw)
        return {
            key: number if (number := whole_number(value)) is not None else shown(value)
            for key, value in sorted(plain.items())
            if key != "job_id"
        }


class ReassemblyLock:
    """The first-writer-wins lock on ReassemblyTriggered, with its lease and enqueue mark."""

    def __init__(
        self,
        client: DynamoDBClient,
        table_name: str,
        *,
        sleep: Callable[[float], None] = time.sleep,
        uniform: Uniform = random.uniform,
    ) -> None:
        """`sleep` and `uniform`: the jittered backoff between rounds of unprocessed keys
        in `read_many`."""
        self._client = client
        self._table = table_name
        self._reader = _BatchReader(client, table_name, sleep, uniform)

    def acquire(self, job_id: str, holder: str, now: int, lease_expires_at: int) -> None:
        """Create the lock; raise `LockAlreadyHeld` (with the existing item) if there is one."""
        try:
            self._client.put_item(
                TableName=self._table,
                Item={
                    "job_id": {"S": job_id},
                    "triggered_at": {"N": str(now)},
                    "ttl": {"N": str(now + LOCK_TTL_SECONDS)},
                    "holder": {"S": holder},
                    "lease_expires_at": {"N": str(lease_expires_at)},
                },
                # First writer wins: only a job without a lock item may be locked.
                ConditionExpression="attribute_not_exists(job_id)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if not is_conditional_check_failure(exc):
                raise
            # ReturnValuesOnConditionCheckFailure puts the existing item in the error.
            old = cast("Mapping[str, Any] | None", exc.response.get("Item"))
            existing = LockRecord.from_raw(old) if old else None
            raise LockAlreadyHeld(job_id, existing) from exc

    def read(self, job_id: str) -> LockRecord | None:
        """The lock as it is now (strongly consistent), or None."""
        response = self._client.get_item(
            TableName=self._table, Key={"job_id": {"S": job_id}}, ConsistentRead=True
        )
        item = response.get("Item")
        return LockRecord.from_raw(item) if item else None

    def read_many(
        self, job_ids: Sequence[str], budget: Budget | None = None
    ) -> tuple[dict[str, LockRecord | None], dict[str, Exception]]:
        """The locks of many jobs (strongly consistent, 100 per call), and the unread ids."""
        raw, unavailable = self._reader.read(job_ids, budget)
        locks = {
            job_id: LockRecord.from_raw(item) if item else None for job_id, item in raw.items()
        }
        return locks, unavailable

    def take_over(self, seen: LockRecord, holder: str, now: int, lease_expires_at: int) -> None:
        """Become the holder of an unfinished, expired lock exactly as it was `seen`.

        The condition compares every decisive attribute with its raw value as read (or
        its absence), so it holds for any shape the item had, and fails only when
        something moved since (another taker won, the old holder marked it, the media
        worker started). Raises `LockChanged` then.
        """
        condition = _AsRead(seen.raw)
        conditions = ["attribute_exists(job_id)"]
        conditions += [condition.unchanged(a) for a in DECISIVE_LOCK_ATTRIBUTES]
        names, values = condition.names, condition.values
        # A NULL mark means "not marked"; drop it so the mark and the media worker's
        # `attribute_not_exists` claim work on this lock.
        removed = [
            condition.name_of(mark)
            for mark in ("enqueued_at", "reassembly_started_at")
            if _is_null(seen.raw.get(mark))
        ]
        names.update({"#holder": "holder", "#lease": "lease_expires_at"})
        names.update({"#taken": "taken_over_at", "#takeovers": "takeovers"})
        values.update(
            {
                ":holder": {"S": holder},
                ":lease": {"N": str(lease_expires_at)},
                ":now": {"N": str(now)},
                ":takeovers": {"N": str(seen.takeovers + 1)},
            }
        )
        update = "SET #holder = :holder, #lease = :lease, #taken = :now, #takeovers = :takeovers"
        if removed:
            update += " REMOVE " + ", ".join(removed)
        self._conditional_update(
            seen.job_id,
            update=update,
            condition=" AND ".join(conditions),
            names=names,
            values=values,
        )

    def mark_enqueued(
        self, job_id: str, holder: str, message_id: str, now: int, *, end_resend: bool = False
    ) -> None:
        """Record the successful send (and with `end_resend`, end the re-send's lease);
        raise `LockChanged` if the lock is no longer ours."""
        names = {"#holder": "holder"}
        update = "SET enqueued_at = :now, message_id = :message_id"
        if end_resend:
            names["#resending"] = "resend_lease_expires_at"
            update += " REMOVE #resending"
        self._conditional_update(
            job_id,
            update=update,
            condition="#holder = :holder",
            names=names,
            values={
                ":now": {"N": str(now)},
                ":message_id": {"S": message_id},
                ":holder": {"S": holder},
            },
        )

    def release(self, job_id: str, holder: str) -> bool:
        """End our lease at once so a retry need not wait; False if the lock is not ours."""
        try:
            self._conditional_update(
                job_id,
                update="SET #lease = :released",
                # Only our own, unfinished lock: never undo another holder's work.
                condition="#holder = :holder AND attribute_not_exists(enqueued_at)",
                names={"#holder": "holder", "#lease": "lease_expires_at"},
                values={":released": {"N": str(RELEASED)}, ":holder": {"S": holder}},
            )
        except LockChanged:
            return False
        return True

    def claim_resend(self, seen: LockRecord, holder: str, now: int) -> None:
        """Claim the right to re-send the message of a marked, unclaimed lock, as `seen`.

        Conditioned on the message id and resend count read, and on the media worker
        not having started, so of two people re-sending at once only one wins
        (`LockChanged` for the other).
        """
        condition = _AsRead(seen.raw)
        conditions = [
            "attribute_not_exists(reassembly_started_at)",
            condition.unchanged("message_id"),
            condition.unchanged("resends"),
            # Another re-send's lease as read (the caller checked it is over or not
            # believable): if one was claimed since, this claim fails.
            condition.unchanged("resend_lease_expires_at"),
        ]
        names = {
            **condition.names,
            "#resends": "resends",
            "#holder": "holder",
            "#resending": "resend_lease_expires_at",
        }
        values: dict[str, Any] = {
            **condition.values,
            ":resends": {"N": str(seen.resends + 1)},
            ":holder": {"S": holder},
            ":now": {"N": str(now)},
            ":until": {"N": str(now + RESEND_LEASE_SECONDS)},
        }
        self._conditional_update(
            seen.job_id,
            update=(
                "SET #resends = :resends, #holder = :holder, resent_at = :now, #resending = :until"
            ),
            condition=" AND ".join(conditions),
            names=names,
            values=values,
        )

    def record_resend(self, job_id: str, holder: str, message_id: str, now: int) -> None:
        """Record the re-sent message's id and end the re-send's lease (after
        `claim_resend` and the send), by the holder `claim_resend` set."""
        self.mark_enqueued(job_id, holder, message_id, now, end_resend=True)

    def abandon_resend(self, job_id: str, holder: str) -> None:
        """End a claimed re-send whose message was not sent, so no one waits for it."""
        self._conditional_update(
            job_id,
            update="REMOVE #resending",
            condition="#holder = :holder",
            names={"#holder": "holder", "#resending": "resend_lease_expires_at"},
            values={":holder": {"S": holder}},
        )

    def _conditional_update(
        self,
        job_id: str,
        *,
        update: str,
        condition: str,
        names: dict[str, str],
        values: dict[str, Any],
    ) -> None:
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"job_id": {"S": job_id}},
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if is_conditional_check_failure(exc):
                raise LockChanged(f"reassembly lock for {job_id} changed") from exc
            raise


@dataclass(frozen=True, slots=True)
class ReconcileCursor:
    """Where the last truncated reconcile run stopped: the next one starts after it."""

    created_at: int
    job_id: str


class ReconcileCursorStore:
    """The reconciler's cursor, one item in ReassemblyTriggered under a reserved key."""

    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def read(self) -> ReconcileCursor | None:
        """The saved cursor, if any (a damaged one reads as none)."""
        response = self._client.get_item(
            TableName=self._table,
            Key={"job_id": {"S": RECONCILE_CURSOR_KEY}},
            ConsistentRead=True,
        )
        item = response.get("Item") or {}
        created_at = _number(item.get("cursor_created_at"))
        job_id = _string(item.get("cursor_job_id"))
        if created_at is None or job_id is None:
            return None
        return ReconcileCursor(created_at, job_id)

    def write(self, cursor: ReconcileCursor | None, now: int) -> None:
        """Save the cursor (None: the last run covered every job, start from the oldest).

        Always a PutItem (an item without a position means "from the oldest"), so the
        reconciler needs no DeleteItem permission.
        """
        item: dict[str, Any] = {
            "job_id": {"S": RECONCILE_CURSOR_KEY},
            "updated_at": {"N": str(now)},
            "ttl": {"N": str(now + LOCK_TTL_SECONDS)},
        }
        if cursor is not None:
            item["cursor_created_at"] = {"N": str(cursor.created_at)}
            item["cursor_job_id"] = {"S": cursor.job_id}
        self._client.put_item(TableName=self._table, Item=item)


# ------------------------------------------------------------------------ the queue


def reassembly_body(job_id: str) -> str:
    """The message body: byte for byte `ReassemblyPayload(job_id=...).model_dump_json()`.

    Built without pydantic, whose import is the largest part of a cold start; a test
    compares the two for many job ids, unicode and control characters included.
    """
    return json.dumps({"job_id": job_id}, ensure_ascii=False, separators=(",", ":"))


def fifo_message_ids(job_id: str) -> str:
    """The FIFO group and deduplication id of a job: always valid, equal for equal jobs.

    SQS accepts at most 128 characters from a limited alphabet there; a job id may be
    longer or hold any character, so the id is the SHA-256 of the job id, in hex.
    """
    return hashlib.sha256(job_id.encode("utf-8")).hexdigest()


class ReassemblyQueue:
    """Sends the reassembly message; FIFO queues get a group and dedup id per job."""

    def __init__(self, client: SQSClient, queue_url: str) -> None:
        self._client = client
        self._url = queue_url
        self._fifo = queue_url.endswith(".fifo")

    def send(self, job_id: str) -> str:
        """Send `{"job_id": ...}`; return SQS's message id."""
        body = reassembly_body(job_id)
        if self._fifo:
            ids = fifo_message_ids(job_id)
            response = self._client.send_message(
                QueueUrl=self._url,
                MessageBody=body,
                MessageGroupId=ids,
                MessageDeduplicationId=ids,
            )
        else:
            response = self._client.send_message(QueueUrl=self._url, MessageBody=body)
        return response["MessageId"]
