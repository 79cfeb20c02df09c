"""AWS access: every boto3 call the Lambda makes, and nothing else.

The decision code (`evaluation`) never sees a boto3 response: items come back as plain
Python values, conditional failures as the domain errors below. Any other AWS error
(`botocore.exceptions.ClientError`, `BotoCoreError`) propagates unchanged; the
evaluation reports it back to Lambda.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sqs import SQSClient

#: BatchGetItem's limit on keys per call.
BATCH_GET_LIMIT = 100
#: Rounds of retrying `UnprocessedKeys` (with backoff) before giving up.
UNPROCESSED_KEYS_ROUNDS = 8
#: The lock's TTL: the table forgets a trigger after this long.
LOCK_TTL_SECONDS = 90 * 24 * 3600
#: The lease value that marks a lock given up by its holder.
RELEASED = 0

_deserializer = TypeDeserializer()
_serializer = TypeSerializer()
Item = dict[str, Any]


class GatewayError(Exception):
    """Base of the domain errors raised by the gateways."""


class LockAlreadyHeld(GatewayError):
    """The conditional create found a lock; `existing` is that lock when AWS returned it."""

    def __init__(self, job_id: str, existing: LockRecord | None) -> None:
        super().__init__(f"reassembly lock for {job_id} already exists")
        self.existing = existing


class LockChanged(GatewayError):
    """A conditional update on the lock failed: someone else changed it first."""


class JobsUnavailable(GatewayError):
    """BatchGetItem kept returning `UnprocessedKeys` for these jobs after every retry."""

    def __init__(self, job_ids: Sequence[str]) -> None:
        super().__init__(f"jobs still unprocessed after retries: {', '.join(job_ids)}")
        self.job_ids = list(job_ids)


def is_conditional_check_failure(exc: ClientError) -> bool:
    """Whether a ClientError is DynamoDB refusing a condition expression."""
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def _plain(value: Any) -> Any:
    """Decimals from DynamoDB become ints when whole (counts, epoch seconds)."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def deserialize_item(item: Mapping[str, Any]) -> Item:
    """A DynamoDB-JSON item as plain Python values (numbers stay Decimal)."""
    return {key: _deserializer.deserialize(value) for key, value in item.items()}


def _attr(value: Any) -> Any:
    return _serializer.serialize(value)


# --------------------------------------------------------------------------- Jobs


class JobStore:
    """Reads Job items (strongly consistent), many per call."""

    def __init__(
        self,
        client: DynamoDBClient,
        table_name: str,
        *,
        sleep: Callable[[float], None],
    ) -> None:
        self._client = client
        self._table = table_name
        self._sleep = sleep

    def load_jobs(self, job_ids: Sequence[str]) -> dict[str, Item | None]:
        """The Job item of every id (None where there is none), in ceil(n/100) calls."""
        found: dict[str, Item | None] = dict.fromkeys(job_ids)
        for start in range(0, len(job_ids), BATCH_GET_LIMIT):
            chunk = job_ids[start : start + BATCH_GET_LIMIT]
            for item in self._batch_get(chunk):
                found[item["job_id"]] = item
        return found

    def _batch_get(self, job_ids: Sequence[str]) -> Iterator[Item]:
        keys: list[dict[str, Any]] = [{"job_id": {"S": job_id}} for job_id in job_ids]
        for attempt in range(UNPROCESSED_KEYS_ROUNDS + 1):
            if attempt:
                # Unprocessed keys mean throttling: back off before asking again.
                self._sleep(min(0.05 * 2**attempt, 2.0))
            response = self._client.batch_get_item(
                RequestItems={self._table: {"Keys": keys, "ConsistentRead": True}}
            )
            for raw in response.get("Responses", {}).get(self._table, []):
                yield deserialize_item(raw)
            unprocessed = response.get("UnprocessedKeys", {}).get(self._table)
            if not unprocessed:
                return
            keys = list(unprocessed["Keys"])
        raise JobsUnavailable([str(key["job_id"]["S"]) for key in keys])


# --------------------------------------------------------------- SegmentCompletions


@dataclass(frozen=True, slots=True)
class CompletionCount:
    """How many completions of a job lie in `[0, total_segments)`, and how many pages it took."""

    count: int
    pages: int


class SegmentCompletions:
    """Counts and lists a job's completions."""

    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def count_completions(self, job_id: str, total_segments: int) -> CompletionCount:
        """Strongly consistent COUNT over every page, only indexes in `[0, total_segments)`.

        The range is part of the key condition, so stray or out-of-range indexes are
        never read, let alone counted.
        """
        count = pages = 0
        for page in self._query(
            job_id,
            KeyConditionExpression="job_id = :job AND segment_index BETWEEN :first AND :last",
            ExpressionAttributeValues={
                ":job": {"S": job_id},
                ":first": {"N": "0"},
                ":last": {"N": str(total_segments - 1)},
            },
            Select="COUNT",
        ):
            count += page["Count"]
            pages += 1
        return CompletionCount(count=count, pages=pages)

    def segment_indexes(self, job_id: str) -> list[int]:
        """Every recorded `segment_index` of a job, in order (a keys-only query)."""
        indexes: list[int] = []
        for page in self._query(
            job_id,
            KeyConditionExpression="job_id = :job",
            ExpressionAttributeValues={":job": {"S": job_id}},
            ProjectionExpression="segment_index",
        ):
            indexes.extend(int(item["segment_index"]["N"]) for item in page.get("Items", []))
        return indexes

    def _query(self, job_id: str, **params: Any) -> Iterator[Mapping[str, Any]]:
        start_key: Mapping[str, Any] | None = None
        while True:
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
    """A ReassemblyTriggered item: who triggered the job, until when, and how far it got."""

    job_id: str
    triggered_at: int | None
    holder: str | None
    #: Epoch seconds after which the holder is certainly gone; None on locks written
    #: before leases existed, 0 once the holder released it.
    lease_expires_at: int | None
    enqueued_at: int | None
    message_id: str | None
    reassembly_started_at: int | None
    takeovers: int = 0

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> LockRecord:
        """Build from a deserialised item."""
        plain = {key: _plain(value) for key, value in item.items()}
        return cls(
            job_id=str(plain["job_id"]),
            triggered_at=plain.get("triggered_at"),
            holder=plain.get("holder"),
            lease_expires_at=plain.get("lease_expires_at"),
            enqueued_at=plain.get("enqueued_at"),
            message_id=plain.get("message_id"),
            reassembly_started_at=plain.get("reassembly_started_at"),
            takeovers=int(plain.get("takeovers", 0)),
        )

    @property
    def enqueued(self) -> bool:
        """The holder recorded a successful send."""
        return self.enqueued_at is not None

    @property
    def reassembly_started(self) -> bool:
        """The media worker has claimed the job."""
        return self.reassembly_started_at is not None

    def lease_end(self, legacy_lease_seconds: int) -> int:
        """When the holder's lease ends; a lock without lease is leased from `triggered_at`."""
        if self.lease_expires_at is not None:
            return self.lease_expires_at
        return (self.triggered_at or 0) + legacy_lease_seconds

    def as_log(self) -> dict[str, Any]:
        """The fields worth logging (everything but None)."""
        return {key: value for key, value in asdict(self).items() if value is not None}


class ReassemblyLock:
    """The first-writer-wins lock on ReassemblyTriggered, with its lease and enqueue mark."""

    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

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
            existing = LockRecord.from_item(deserialize_item(old)) if old else None
            raise LockAlreadyHeld(job_id, existing) from exc

    def read(self, job_id: str) -> LockRecord | None:
        """The lock as it is now (strongly consistent), or None."""
        response = self._client.get_item(
            TableName=self._table, Key={"job_id": {"S": job_id}}, ConsistentRead=True
        )
        item = response.get("Item")
        return LockRecord.from_item(deserialize_item(item)) if item else None

    def take_over(self, seen: LockRecord, holder: str, now: int, lease_expires_at: int) -> None:
        """Become the holder of an unfinished, expired lock exactly as it was `seen`.

        Raises `LockChanged` when anything moved since it was read (another taker
        won, the old holder marked it, or the media worker started).
        """
        names = {"#holder": "holder", "#lease": "lease_expires_at"}
        values: dict[str, Any] = {
            ":holder": {"S": holder},
            ":lease": {"N": str(lease_expires_at)},
            ":now": {"N": str(now)},
            ":one": {"N": "1"},
        }
        conditions = [
            "attribute_exists(job_id)",
            # Unfinished: never marked as enqueued, never claimed by the media worker.
            "attribute_not_exists(enqueued_at)",
            "attribute_not_exists(reassembly_started_at)",
        ]
        # Unchanged since read: the same holder with the same lease, so one taker wins.
        if seen.holder is None:
            conditions.append("attribute_not_exists(#holder)")
        else:
            conditions.append("#holder = :seen_holder")
            values[":seen_holder"] = {"S": seen.holder}
        if seen.lease_expires_at is None:
            conditions.append("attribute_not_exists(#lease)")
        else:
            conditions.append("#lease = :seen_lease")
            values[":seen_lease"] = {"N": str(seen.lease_expires_at)}
        if seen.triggered_at is not None:
            names["#triggered"] = "triggered_at"
            conditions.append("#triggered = :seen_triggered")
            values[":seen_triggered"] = {"N": str(seen.triggered_at)}
        self._conditional_update(
            seen.job_id,
            update="SET #holder = :holder, #lease = :lease, taken_over_at = :now "
            "ADD takeovers :one",
            condition=" AND ".join(conditions),
            names=names,
            values=values,
        )

    def mark_enqueued(self, job_id: str, holder: str, message_id: str, now: int) -> None:
        """Record the successful send; raise `LockChanged` if the lock is no longer ours."""
        self._conditional_update(
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


# ------------------------------------------------------------------------ the queue


class ReassemblyQueue:
    """Sends the reassembly message; FIFO queues get the job id as group and dedup id."""

    def __init__(self, client: SQSClient, queue_url: str) -> None:
        self._client = client
        self._url = queue_url
        self._fifo = queue_url.endswith(".fifo")

    def send(self, job_id: str) -> str:
        """Send `ReassemblyPayload(job_id)`; return SQS's message id."""
        # Imported here: pydantic is only needed once a job is ready (cold start).
        from stereo_spot_shared import ReassemblyPayload

        body = ReassemblyPayload(job_id=job_id).model_dump_json()
        if self._fifo:
            response = self._client.send_message(
                QueueUrl=self._url,
                MessageBody=body,
                MessageGroupId=job_id,
                MessageDeduplicationId=job_id,
            )
        else:
            response = self._client.send_message(QueueUrl=self._url, MessageBody=body)
        return response["MessageId"]
