"""The benchmark's data: items written straight to moto, and the stream records of them.

Data is written straight to moto (neither delayed nor counted by the proxy), so only
the handler's own calls are measured. Items and records are `local/invocations`'.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from reassembly_trigger.local.aws.stack import DEFAULT_REGION
from reassembly_trigger.local.invocations.records import StreamRecords

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

#: BatchWriteItem's limit on items per call.
WRITE_BATCH = 25
#: Where the benchmark's stream sequence numbers start (21 digits, like DynamoDB's).
FIRST_SEQUENCE_NUMBER = 400_000_000_000_000_000_000

T = TypeVar("T")


def completion_records(table: str) -> StreamRecords:
    """The records of `table`'s stream, numbered from the same first sequence number
    every run (the runs are reproducible)."""
    return StreamRecords(table, region=DEFAULT_REGION, first_sequence_number=FIRST_SEQUENCE_NUMBER)


def write_items(dynamodb: DynamoDBClient, table: str, items: Sequence[dict[str, Any]]) -> None:
    """Write items with BatchWriteItem (25 per call), retrying anything unprocessed."""
    for batch in chunks(items, WRITE_BATCH):
        requests: list[Any] = [{"PutRequest": {"Item": i}} for i in batch]
        while requests:
            response = dynamodb.batch_write_item(RequestItems={table: requests})
            requests = list(response.get("UnprocessedItems", {}).get(table, []))


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """`items` in consecutive slices of `size` (the last may be shorter)."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
