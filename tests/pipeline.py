"""The pipeline around the trigger, as tests write and read it through moto.

The items come from `local.invocations.items` (what the chunker and the video workers
write) and the records Lambda would deliver of them from `local.invocations.records`,
so every test feeds the trigger the contract's shapes.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from reassembly_trigger.local.aws.stack import LocalAws, ResourceNames, Resources, create_resources
from reassembly_trigger.local.invocations.items import Item, completion_item, job_item
from reassembly_trigger.local.invocations.records import StreamRecords


def fresh_resources(aws: LocalAws, *, fifo: bool = False) -> Resources:
    """New tables and queues (a FIFO reassembly queue with `fifo`) under a unique prefix."""
    names = ResourceNames.with_prefix(f"t{uuid.uuid4().hex[:10]}", fifo=fifo)
    return create_resources(aws, names)


@dataclass
class Pipeline:
    """What the chunker, video workers and media worker write, read back through moto."""

    aws: LocalAws
    resources: Resources
    #: Every message drained from the reassembly queue so far.
    received: list[dict[str, Any]] = field(default_factory=list)
    #: The records of the two streams the trigger reads, as Lambda delivers them.
    completions_stream: StreamRecords = field(init=False)
    jobs_stream: StreamRecords = field(init=False)

    def __post_init__(self) -> None:
        self.completions_stream = StreamRecords(self.names.segment_completions_table)
        self.jobs_stream = StreamRecords(self.names.jobs_table)

    @property
    def names(self) -> ResourceNames:
        """The tables' and queues' names."""
        return self.resources.names

    def add_job(
        self,
        job_id: str,
        *,
        total_segments: int | None = 3,
        total_segments_raw: dict[str, Any] | None = None,
        **fields: Any,
    ) -> None:
        """Write a Job item (`job_item`'s `fields`); `total_segments_raw` stores any
        attribute value as given."""
        item = job_item(job_id, total_segments=total_segments, **fields)
        if total_segments_raw is not None:
            item["total_segments"] = total_segments_raw
        self.aws.dynamodb.put_item(TableName=self.names.jobs_table, Item=item)

    def complete(self, job_id: str, indexes: range | list[int], **fields: Any) -> None:
        """Record each segment's completion, as a video worker does (`completion_item`'s
        `fields`: when, how large)."""
        for index in indexes:
            self.aws.dynamodb.put_item(
                TableName=self.names.segment_completions_table,
                Item=completion_item(job_id, index, **fields),
            )

    def ready_job(self, job_id: str, total: int = 2, **job: Any) -> list[dict[str, Any]]:
        """A chunked job with every segment done; its completion records."""
        self.add_job(job_id, total_segments=total, **job)
        self.complete(job_id, range(total))
        return self.completion_records(job_id, range(total))

    def completion_records(self, job_id: str, indexes: range | list[int]) -> list[dict[str, Any]]:
        """The SegmentCompletions stream's INSERT records of these segments (new ones)."""
        return [self.completions_stream.insert(completion_item(job_id, i)) for i in indexes]

    def job_record(
        self, job_id: str, *, status: str, total_segments: int | None, old_status: str
    ) -> dict[str, Any]:
        """The Jobs stream's MODIFY record of a status change (a new sequence number)."""
        new = job_item(job_id, status=status, total_segments=total_segments)
        return self.jobs_stream.modify(new, job_item(job_id, status=old_status))

    def raw_lock(self, job_id: str) -> Item | None:
        """The lock item as stored, in DynamoDB JSON."""
        item = self.aws.dynamodb.get_item(
            TableName=self.names.reassembly_triggered_table,
            Key={"job_id": {"S": job_id}},
            ConsistentRead=True,
        ).get("Item")
        return dict(item) if item else None

    def lock(self, job_id: str) -> dict[str, Any] | None:
        """The lock item's plain values (numbers as text)."""
        item = self.raw_lock(job_id)
        return {k: next(iter(v.values())) for k, v in item.items()} if item else None

    def put_lock(self, job_id: str, **attributes: int | str | dict[str, Any]) -> None:
        """Write a lock item: ints as numbers, strs as strings, dicts as DynamoDB JSON
        (any type, as people and other programs write them)."""
        item: Item = {"job_id": {"S": job_id}}
        for key, value in attributes.items():
            if isinstance(value, dict):
                item[key] = value
            else:
                item[key] = {"N": str(value)} if isinstance(value, int) else {"S": value}
        self.aws.dynamodb.put_item(TableName=self.names.reassembly_triggered_table, Item=item)

    def update_lock(self, job_id: str, expression: str, values: Item) -> None:
        """Update the lock item as another program would (`SET ...`, no condition)."""
        self.aws.dynamodb.update_item(
            TableName=self.names.reassembly_triggered_table,
            Key={"job_id": {"S": job_id}},
            UpdateExpression=expression,
            ExpressionAttributeValues=values,
        )

    def drain_messages(self) -> list[dict[str, Any]]:
        """Receive (and delete) everything on the reassembly queue; keep it in `received`."""
        url = self.resources.reassembly_queue_url
        while True:
            got = self.aws.sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=0,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if not got:
                return self.received
            for message in got:
                self.received.append(
                    {"body": json.loads(message["Body"]), "attributes": message["Attributes"]}
                )
                self.aws.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])

    def bodies(self) -> list[dict[str, Any]]:
        """The bodies of every message received so far (drains the queue)."""
        return [m["body"] for m in self.drain_messages()]
