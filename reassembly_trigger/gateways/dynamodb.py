"""DynamoDB: the Jobs, SegmentCompletions and ReassemblyTriggered tables (I/O only)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast

from botocore.exceptions import ClientError

from reassembly_trigger.errors import (
    DeadlineReached,
    JobsUnavailable,
    LockAlreadyHeld,
    LockChanged,
)
from reassembly_trigger.items import (
    MAX_EPOCH,
    AsRead,
    Item,
    decode_job,
    deserialize_item,
    is_digits,
    is_null,
    string,
    timestamp,
    whole_number,
)
from reassembly_trigger.lock import DECISIVE_LOCK_ATTRIBUTES, RELEASED, LockRecord
from reassembly_trigger.ports import (
    Budget,
    CompletionCount,
    InFlightJob,
    LoadedJobs,
    Uniform,
)
from reassembly_trigger.timing import CALL_FLOOR_SECONDS, LOCK_TTL_SECONDS

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

#: BatchGetItem's limit on keys per call.
BATCH_GET_LIMIT = 100
#: Rounds of retrying `UnprocessedKeys` (with jittered backoff) before giving up on them.
UNPROCESSED_KEYS_ROUNDS = 8


def is_conditional_check_failure(exc: ClientError) -> bool:
    """Whether a ClientError is DynamoDB refusing a condition expression."""
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


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
                found[str(raw["job_id"]["S"])] = cast("Item", raw)  # always has its key
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


# --------------------------------------------------------------------------- Jobs


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
        items = {
            job_id: decode_job(deserialize_item(item)) if item else None
            for job_id, item in raw.items()
        }
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
            "ExpressionAttributeNames": {"#status": "status", "#created": "created_at"},
            "ExpressionAttributeValues": {
                ":status": {"S": status},
                ":before": {"N": str(created_before)},
            },
            "ProjectionExpression": "job_id, #created",
        }
        while True:
            if budget is not None:
                budget.ensure(f"list {index_name}")
            page = self._client.query(**params)
            for item in page.get("Items", []):
                job_id = string(item.get("job_id"))
                created_at = timestamp(item.get("created_at"))
                if job_id is not None and created_at is not None:
                    # A creation time no clock could give (-1E+125) is listed at 0, so
                    # the job is reached and the cursor stays a number DynamoDB accepts.
                    jobs.append(InFlightJob(job_id, min(max(created_at, 0), MAX_EPOCH)))
            start_key = page.get("LastEvaluatedKey")
            if not start_key:
                return jobs
            params["ExclusiveStartKey"] = start_key


# --------------------------------------------------------------- SegmentCompletions


class SegmentCompletions:
    """Counts a job's completions."""

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
        the count is exact across pages. Reading keys costs the same capacity as a
        count. (A count filtered on `IN (0..n-1)` was measured: its 100-value request
        cost botocore and DynamoDB more than parsing the keys it saved.)
        """
        count = pages = fractional = 0
        params: dict[str, Any] = {
            "TableName": self._table,
            "ConsistentRead": True,
            "KeyConditionExpression": "job_id = :job AND #index BETWEEN :first AND :last",
            "ExpressionAttributeNames": {"#index": "segment_index"},
            "ExpressionAttributeValues": {
                ":job": {"S": job_id},
                ":first": {"N": "0"},
                ":last": {"N": str(total_segments - 1)},
            },
            "ProjectionExpression": "#index",
        }
        while True:
            if budget is not None:
                budget.ensure("count completions")
            page = self._client.query(**params)
            pages += 1
            items = page.get("Items", [])
            whole = sum(1 for item in items if _whole_index(item))
            count += whole
            fractional += len(items) - whole
            if not page.get("LastEvaluatedKey"):
                return CompletionCount(count=count, pages=pages, fractional=fractional)
            params["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _whole_index(item: Mapping[str, Any]) -> bool:
    """Whether a completion's key is a whole number (plain digits need no Decimal)."""
    index = item.get("segment_index", {}).get("N")
    return index is not None and (is_digits(index) or whole_number(Decimal(index)) is not None)


# -------------------------------------------------------------- ReassemblyTriggered


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
        condition = AsRead(seen.raw)
        conditions = ["attribute_exists(job_id)"]
        conditions += [condition.unchanged(a) for a in DECISIVE_LOCK_ATTRIBUTES]
        names, values = condition.names, condition.values
        # A NULL mark means "not marked"; drop it so the mark and the media worker's
        # `attribute_not_exists` claim work on this lock.
        removed = [
            condition.name_of(mark)
            for mark in ("enqueued_at", "reassembly_started_at")
            if is_null(seen.raw.get(mark))
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
        self.conditional_update(
            seen.job_id,
            update=update,
            condition=" AND ".join(conditions),
            names=names,
            values=values,
        )

    def mark_enqueued(self, job_id: str, holder: str, message_id: str, now: int) -> None:
        """Record the successful send; raise `LockChanged` if the lock is no longer ours.

        Conditioned on the holder only: a holder whose lease ran out and whose lock was
        taken over must not mark (the taker sends its own message and marks it).
        """
        self.conditional_update(
            job_id,
            update="SET enqueued_at = :now, message_id = :message_id",
            condition="#holder = :holder",
            names={"#holder": "holder"},
            values={
                ":now": {"N": str(now)},
                ":message_id": {"S": message_id},
                ":holder": {"S": holder},
            },
        )

    def release(self, job_id: str, holder: str) -> bool:
        """End our lease at once so a retry need not wait; False if the lock is not ours."""
        try:
            self.conditional_update(
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

    def conditional_update(
        self,
        job_id: str,
        *,
        update: str,
        condition: str,
        names: dict[str, str],
        values: dict[str, Any],
    ) -> None:
        """One conditional UpdateItem of a job's lock; `LockChanged` when its condition
        fails (someone changed the lock first)."""
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
