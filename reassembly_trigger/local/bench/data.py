"""The benchmark's data: items as the pipeline writes them, and stream events of them.

Data is written straight to moto (neither delayed nor counted by the proxy), so only
the handler's own calls are measured.
"""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from reassembly_trigger.local.aws.stack import DEFAULT_REGION

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

#: BatchWriteItem's limit on items per call.
WRITE_BATCH = 25
#: Where the benchmark's stream sequence numbers start (21 digits, like DynamoDB's).
FIRST_SEQUENCE_NUMBER = 400_000_000_000_000_000_000
#: `created_at` of every benchmark Job: long enough ago for the reconciler to look at it.
CREATED_AT = 1_700_000_000

T = TypeVar("T")


def job_item(
    job_id: str, *, status: str, total_segments: int | None, created_at: int = CREATED_AT
) -> dict[str, Any]:
    """A Jobs item in DynamoDB JSON, as the chunker writes it."""
    item: dict[str, Any] = {
        "job_id": {"S": job_id},
        "mode": {"S": "sbs"},
        "status": {"S": status},
        "created_at": {"N": str(created_at)},
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
        "completed_at": {"N": str(CREATED_AT + 100)},
    }
    if padding:
        # Stands in for the larger items real workers may write (metadata, checksums).
        item["worker_notes"] = {"S": "x" * padding}
    return item


def finished_lock_item(job_id: str, *, started: bool, at: int = CREATED_AT) -> dict[str, Any]:
    """A ReassemblyTriggered item whose message was sent (and, if `started`, claimed)."""
    item: dict[str, Any] = {
        "job_id": {"S": job_id},
        "triggered_at": {"N": str(at)},
        "ttl": {"N": str(at + 90 * 86400)},
        "holder": {"S": "bench/earlier"},
        "lease_expires_at": {"N": str(at + 60)},
        "enqueued_at": {"N": str(at + 1)},
        "message_id": {"S": str(uuid.uuid5(uuid.NAMESPACE_URL, job_id))},
    }
    if started:
        item["reassembly_started_at"] = {"N": str(at + 30)}
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
                "ApproximateCreationDateTime": CREATED_AT + 100,
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


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """`items` in consecutive slices of `size` (the last may be shorter)."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
