"""SQS: the reassembly queue (I/O only; the body is the contract's `ReassemblyPayload`)."""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient


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
