"""What only `doctor` does to a lock and to the completions: re-send an unclaimed
message, list a job's recorded indexes. Kept out of the Lambda (and its zip): the
Lambda never re-sends (an unclaimed message is reported, a person decides).

A re-send is claimed on the lock first, conditioned on the lock as read (its message
id and resend count, and no other re-send's lease), so of two people re-sending at
once one message goes out; the claim has a lease of its own (`RESEND_LEASE_SECONDS`),
read like the lock's, so a re-sender that died is not waited for.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from reassembly_trigger.gateways import ReassemblyLock
from reassembly_trigger.items import AsRead, timestamp
from reassembly_trigger.lock import LockRecord
from reassembly_trigger.timing import CLOCK_SKEW_SECONDS, RESEND_LEASE_SECONDS

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


def resend_in_progress_until(lock: LockRecord, now: float) -> float | None:
    """When a re-send claimed by someone else stops holding others off, if it still does
    at `now`. As with the lock's lease, a claim whose lease or time is not a number, or
    whose time is in the future, is not believed, and no lease lasts more than
    `RESEND_LEASE_SECONDS` after its claim."""
    until = timestamp(lock.raw.get("resend_lease_expires_at"))
    claimed = timestamp(lock.raw.get("resent_at"))
    if until is None or claimed is None or claimed > now + CLOCK_SKEW_SECONDS:
        return None
    end = min(until, claimed + RESEND_LEASE_SECONDS)
    return end if now < end + CLOCK_SKEW_SECONDS else None


class ResendLock:
    """The re-send's writes on a job's lock (`LockChanged` when the lock moved)."""

    def __init__(self, lock: ReassemblyLock) -> None:
        self._lock = lock

    def claim(self, seen: LockRecord, holder: str, now: int) -> None:
        """Claim the right to re-send the message of a marked, unclaimed lock, as `seen`.

        Conditioned on the message id and resend count read, and on the media worker
        not having started, so of two people re-sending at once only one wins.
        """
        condition = AsRead(seen.raw)
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
        self._lock.conditional_update(
            seen.job_id,
            update="SET #resends = :resends, #holder = :holder, resent_at = :now, "
            "#resending = :until",
            condition=" AND ".join(conditions),
            names=names,
            values=values,
        )

    def record(self, job_id: str, holder: str, message_id: str, now: int) -> None:
        """Record the re-sent message's id and end the re-send's lease (after `claim` and
        the send), by the holder `claim` set."""
        self._lock.conditional_update(
            job_id,
            update="SET enqueued_at = :now, message_id = :message_id REMOVE #resending",
            condition="#holder = :holder",
            names={"#holder": "holder", "#resending": "resend_lease_expires_at"},
            values={
                ":now": {"N": str(now)},
                ":message_id": {"S": message_id},
                ":holder": {"S": holder},
            },
        )

    def abandon(self, job_id: str, holder: str) -> None:
        """End a claimed re-send whose message was not sent, so no one waits for it."""
        self._lock.conditional_update(
            job_id,
            update="REMOVE #resending",
            condition="#holder = :holder",
            names={"#holder": "holder", "#resending": "resend_lease_expires_at"},
            values={":holder": {"S": holder}},
        )


def segment_indexes(client: DynamoDBClient, table: str, job_id: str) -> list[Decimal]:
    """Every recorded `segment_index` of a job, in order (a keys-only query)."""
    indexes: list[Decimal] = []
    params: dict[str, Any] = {
        "TableName": table,
        "ConsistentRead": True,
        "KeyConditionExpression": "job_id = :job",
        "ExpressionAttributeValues": {":job": {"S": job_id}},
        "ProjectionExpression": "segment_index",
    }
    while True:
        page: Mapping[str, Any] = client.query(**params)
        indexes.extend(Decimal(item["segment_index"]["N"]) for item in page.get("Items", []))
        if not page.get("LastEvaluatedKey"):
            return indexes
        params["ExclusiveStartKey"] = page["LastEvaluatedKey"]
