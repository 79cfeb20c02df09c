"""Stream records of writes, as Lambda delivers them, for tools and tests that make their own.

`StreamRecords` stands for one table's stream: each record it makes has the next
sequence number (increasing, 21 digits, like DynamoDB's), the table's stream ARN and
Lambda's shape (`streams.shapes`). Records are deterministic given the items, so a
seeded simulation makes the same records every run.
"""

from __future__ import annotations

import itertools
import json
import threading
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from reassembly_trigger.local.invocations.contexts import LOCAL_ACCOUNT
from reassembly_trigger.local.invocations.items import CREATED_AT, Item, item_keys
from reassembly_trigger.local.streams.shapes import lambda_event, lambda_record

#: Where sequence numbers start when no one says otherwise.
FIRST_SEQUENCE_NUMBER = 100_000_000_000_000_000_000


def stream_arn(table: str, region: str = "us-east-1", account: str = LOCAL_ACCOUNT) -> str:
    """A stream ARN of `table`, as DynamoDB names one."""
    return f"arn:aws:dynamodb:{region}:{account}:table/{table}/stream/2026-11-01T10:00:00.000"


class StreamRecords:
    """Lambda-shaped records of one table's stream; safe to share between threads."""

    def __init__(
        self,
        table: str,
        *,
        region: str = "us-east-1",
        arrival: int = CREATED_AT + 100,
        first_sequence_number: int = FIRST_SEQUENCE_NUMBER,
    ) -> None:
        self.table = table
        self.region = region
        self.arn = stream_arn(table, region)
        #: Every record's `ApproximateCreationDateTime` (epoch seconds).
        self.arrival = arrival
        self._sequence = itertools.count(first_sequence_number)
        self._lock = threading.Lock()

    def next_sequence_number(self) -> str:
        """The stream's next sequence number (decimal text)."""
        with self._lock:
            return str(next(self._sequence))

    def insert(self, item: Item, *, sequence_number: str | None = None) -> dict[str, Any]:
        """The record of a put of a new `item`."""
        return self.record("INSERT", new=item, sequence_number=sequence_number)

    def modify(self, new: Item, old: Item, *, sequence_number: str | None = None) -> dict[str, Any]:
        """The record of a put over `old` (a Job's status change, a completion written again)."""
        return self.record("MODIFY", new=new, old=old, sequence_number=sequence_number)

    def remove(self, old: Item, *, sequence_number: str | None = None) -> dict[str, Any]:
        """The record of a delete of `old`."""
        return self.record("REMOVE", old=old, sequence_number=sequence_number)

    def record(
        self,
        event_name: str,
        *,
        new: Item | None = None,
        old: Item | None = None,
        keys: Item | None = None,
        sequence_number: str | None = None,
    ) -> dict[str, Any]:
        """Any record of the stream (NEW_AND_OLD_IMAGES); `keys` default to the image's."""
        image = new if new is not None else old
        body: dict[str, Any] = {
            "ApproximateCreationDateTime": self.arrival,
            "Keys": keys if keys is not None else item_keys(image or {}),
        }
        if new is not None:
            body["NewImage"] = new
        if old is not None:
            body["OldImage"] = old
        body["SequenceNumber"] = sequence_number or self.next_sequence_number()
        body["SizeBytes"] = len(json.dumps([new, old], separators=(",", ":")))
        body["StreamViewType"] = "NEW_AND_OLD_IMAGES"
        # Deterministic, 32 hex digits like DynamoDB's.
        event_id = uuid.uuid5(uuid.NAMESPACE_URL, f"{self.arn}/{body['SequenceNumber']}").hex
        return lambda_record(
            {"eventID": event_id, "eventName": event_name, "dynamodb": body}, self.arn
        )

    def event(self, items: Iterable[Item]) -> dict[str, Any]:
        """An event of one INSERT record per item, in the order given."""
        return lambda_event([self.insert(item) for item in items])


def stream_event(*records: Mapping[str, Any]) -> dict[str, Any]:
    """A Lambda DynamoDB Streams event of `records` (already in Lambda's shape)."""
    return lambda_event(records)
