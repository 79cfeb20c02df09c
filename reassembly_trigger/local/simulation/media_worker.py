"""A model of the pipeline's media worker, with the contract's lock semantics.

It consumes the reassembly queue over real AWS calls (a moto server locally) and does
what the contract says the media worker does with a message, so a duplicate message is
absorbed exactly as in production:

1. claim the job: conditional update on ReassemblyTriggered,
   `SET reassembly_started_at = :now` if `attribute_exists(job_id) AND
   attribute_not_exists(reassembly_started_at)`; if that fails, another worker has it:
   delete the message, nothing runs (a *duplicate absorbed*);
2. skip when the Job is already `completed`;
3. refuse when the number of completions differs from `total_segments`;
4. otherwise "reassemble": record it, set the Job to `completed` with `completed_at`
   (at once, or with `finish_later` on the next `finish()`, to model a concatenation
   that takes a while: meanwhile the lock carries `reassembly_started_at` and the Job
   is still `chunking_complete`).

The message is deleted in every case, a refusal included: a refusal is recorded (it
means the trigger sent a message for an incomplete job, which the simulations treat as
a broken invariant) rather than left to be redelivered until the dead-letter queue.
Nothing is concatenated: "reassembly" is the record of it having run.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from reassembly_trigger.local.aws.stack import LocalAws, Resources

if TYPE_CHECKING:
    from reassembly_trigger.timing import Clock


@dataclass(slots=True)
class JobTally:
    """What the media worker did for one job."""

    messages_received: int = 0
    reassemblies: int = 0
    #: Messages whose claim failed: another message of the job had claimed it first.
    duplicates_absorbed: int = 0
    #: Messages claimed but skipped because the Job was already `completed`.
    already_completed: int = 0
    #: Messages claimed for a job whose completions differ from `total_segments`.
    refusals: int = 0
    #: When SQS got the job's earliest message (its `SentTimestamp`, epoch seconds).
    first_sent_at: float | None = None


@dataclass(frozen=True, slots=True)
class Reassembly:
    """One reassembly the worker ran."""

    job_id: str
    started_at: float
    total_segments: int
    message_id: str


@dataclass(slots=True)
class MediaWorkerReport:
    """Totals over every job, plus messages that broke the contract's body shape."""

    messages_received: int = 0
    reassemblies: int = 0
    duplicates_absorbed: int = 0
    already_completed: int = 0
    refusals: int = 0
    malformed_messages: int = 0

    def add(self, counts: JobTally | MediaWorkerReport) -> None:
        """Add a job's counts, or another worker's totals, to these."""
        for name in (f.name for f in fields(self)):
            setattr(self, name, getattr(self, name) + getattr(counts, name, 0))


class MediaWorker:
    """Consumes the reassembly queue like the contract's media worker; counts per job."""

    def __init__(
        self, aws: LocalAws, resources: Resources, clock: Clock, *, finish_later: bool = False
    ) -> None:
        self._aws = aws
        self._finish_later = finish_later
        #: Reassemblies started but not finished yet (with `finish_later`).
        self.in_progress: list[str] = []
        self._names = resources.names
        self._queue_url = resources.reassembly_queue_url
        self._fifo = self._queue_url.endswith(".fifo")
        self._clock = clock
        self._lock = threading.Lock()
        self.tallies: dict[str, JobTally] = {}
        self.reassemblies: list[Reassembly] = []
        #: Bodies that are not exactly `{"job_id": "<id>"}` (deleted, never run).
        self.malformed: list[str] = []
        #: On a FIFO queue: the (MessageGroupId, MessageDeduplicationId) of each message.
        self.fifo_ids: list[tuple[str | None, str | None, str]] = []
        #: What ended `run` early (an AWS call that failed).
        self.error: Exception | None = None
        self._stop = threading.Event()

    def poll(self) -> int:
        """Receive up to 10 messages and handle each; how many were received."""
        attributes: Any = ["SentTimestamp"]
        if self._fifo:
            attributes += ["MessageGroupId", "MessageDeduplicationId"]
        messages = self._aws.sqs.receive_message(
            QueueUrl=self._queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=0,
            AttributeNames=attributes,
        ).get("Messages", [])
        for message in messages:
            self.handle(
                message["Body"],
                message_id=message["MessageId"],
                attributes={str(k): v for k, v in message.get("Attributes", {}).items()},
            )
        if messages:
            self._aws.sqs.delete_message_batch(
                QueueUrl=self._queue_url,
                Entries=[
                    {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]}
                    for n, m in enumerate(messages)
                ],
            )
        return len(messages)

    def run(self) -> None:
        """Poll and handle until `stop()`, with a short pause when the queue is empty
        (in a thread of its own, on the wall clock)."""
        while not self._stop.is_set():
            try:
                got = self.poll()
            except Exception as exc:
                self.error = exc
                return
            if not got:
                self._stop.wait(0.05)

    def stop(self) -> None:
        """Return from `run`."""
        self._stop.set()

    def drain(self) -> None:
        """Poll until the queue returns nothing, then finish every reassembly."""
        while self.poll():
            pass
        self.finish()

    def handle(self, body: str, *, message_id: str, attributes: dict[str, str]) -> None:
        """Do what the media worker does with one message body (the caller deletes it)."""
        job_id = _job_id(body)
        if job_id is None:
            with self._lock:
                self.malformed.append(body)
            return
        if self._fifo:
            ids = (attributes.get("MessageGroupId"), attributes.get("MessageDeduplicationId"))
            with self._lock:
                self.fifo_ids.append((*ids, job_id))
        self._tally(job_id, "messages_received")
        self._sent(job_id, attributes.get("SentTimestamp"))
        now = self._clock.now()
        if not self._claim(job_id, now):
            self._tally(job_id, "duplicates_absorbed")
            return
        job = self._read_job(job_id)
        if job is None or job.get("status") == "completed":
            self._tally(job_id, "already_completed")
            return
        total = int(job["total_segments"]) if "total_segments" in job else None
        if total is None or self._completed_segments(job_id, total) != total:
            self._tally(job_id, "refusals")
            return
        with self._lock:
            self.tallies[job_id].reassemblies += 1
            self.reassemblies.append(Reassembly(job_id, now, total, message_id))
            if self._finish_later:
                self.in_progress.append(job_id)
                return
        self._complete_job(job_id, now)

    def finish(self) -> None:
        """Finish the reassemblies started earlier (with `finish_later`)."""
        with self._lock:
            finishing, self.in_progress = self.in_progress, []
        for job_id in finishing:
            self._complete_job(job_id, self._clock.now())

    def tally(self, job_id: str) -> JobTally:
        """The counts of one job (zeros when it never got a message)."""
        with self._lock:
            return self.tallies.get(job_id) or JobTally()

    def report(self) -> MediaWorkerReport:
        """Totals over every job."""
        with self._lock:
            report = MediaWorkerReport(malformed_messages=len(self.malformed))
            for tally in self.tallies.values():
                report.add(tally)
            return report

    def _claim(self, job_id: str, now: float) -> bool:
        """The contract's step 1: the conditional claim; False when another message has it."""
        try:
            self._aws.dynamodb.update_item(
                TableName=self._names.reassembly_triggered_table,
                Key={"job_id": {"S": job_id}},
                UpdateExpression="SET reassembly_started_at = :now",
                ConditionExpression="attribute_exists(job_id) AND "
                "attribute_not_exists(reassembly_started_at)",
                ExpressionAttributeValues={":now": {"N": str(int(now))}},
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def _read_job(self, job_id: str) -> dict[str, Any] | None:
        item = self._aws.dynamodb.get_item(
            TableName=self._names.jobs_table, Key={"job_id": {"S": job_id}}, ConsistentRead=True
        ).get("Item")
        if item is None:
            return None
        return {key: next(iter(value.values())) for key, value in item.items()}

    def _completed_segments(self, job_id: str, total: int) -> int:
        """Distinct recorded segments in `[0, total)`, read independently of the trigger."""
        pages = self._aws.dynamodb.get_paginator("query").paginate(
            TableName=self._names.segment_completions_table,
            KeyConditionExpression="job_id = :job",
            ExpressionAttributeValues={":job": {"S": job_id}},
            ProjectionExpression="segment_index",
            ConsistentRead=True,
        )
        seen = {int(item["segment_index"]["N"]) for page in pages for item in page["Items"]}
        return len({index for index in seen if 0 <= index < total})

    def _complete_job(self, job_id: str, now: float) -> None:
        self._aws.dynamodb.update_item(
            TableName=self._names.jobs_table,
            Key={"job_id": {"S": job_id}},
            UpdateExpression="SET #status = :completed, completed_at = :now",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={
                ":completed": {"S": "completed"},
                ":now": {"N": str(int(now))},
            },
        )

    def _sent(self, job_id: str, sent_timestamp: str | None) -> None:
        """Keep the earliest time SQS got a message of the job (milliseconds in SQS)."""
        if sent_timestamp is None:
            return
        sent = int(sent_timestamp) / 1000
        with self._lock:
            tally = self.tallies[job_id]
            if tally.first_sent_at is None or sent < tally.first_sent_at:
                tally.first_sent_at = sent

    def _tally(self, job_id: str, counter: str) -> None:
        with self._lock:
            tally = self.tallies.setdefault(job_id, JobTally())
            setattr(tally, counter, getattr(tally, counter) + 1)


def _job_id(body: str) -> str | None:
    """The job id of a body that is exactly `{"job_id": "<id>"}`; None for anything else."""
    try:
        payload = json.loads(body)
    except ValueError:
        return None
    if not isinstance(payload, dict) or set(payload) != {"job_id"}:
        return None
    job_id = payload["job_id"]
    return job_id if isinstance(job_id, str) and job_id else None
