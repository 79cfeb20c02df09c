"""Which stream records name a job, and which are malformed.

A batch comes from one of two streams:

- SegmentCompletions (keys `job_id` + `segment_index`): `INSERT` and `MODIFY` name
  their job; `REMOVE` (TTL expiry, clean-up) never does.
- Jobs (key `job_id` only): a record whose `NewImage.status` is `chunking_complete`
  names its job, which closes the race where chunking finishes after the last segment.

The source is told by `eventSourceARN`'s table name, falling back to the key shape.
A malformed record is logged at warning level with its sequence number and skipped;
it never fails the batch.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, cast

import structlog
from boto3.dynamodb.types import TypeDeserializer

_deserializer = TypeDeserializer()


class RecordSource(StrEnum):
    """The table a stream record comes from."""

    SEGMENT_COMPLETIONS = "segment_completions"
    JOBS = "jobs"


class Malformed(StrEnum):
    """Why a record was skipped as malformed."""

    NOT_A_RECORD = "not_a_record"
    NO_KEYS = "no_keys"
    NO_JOB_ID = "no_job_id"
    UNKNOWN_SOURCE = "unknown_source"
    UNKNOWN_EVENT_NAME = "unknown_event_name"


class Ignored(StrEnum):
    """Why a well-formed record names no job."""

    REMOVE = "remove"
    JOB_NOT_CHUNKING_COMPLETE = "job_not_chunking_complete"


def lowest_sequence_number(sequence_numbers: tuple[str, ...]) -> str:
    """The earliest of a job's records: sequence numbers are decimal strings of varying
    length, so they compare as numbers, not as text."""
    return min(sequence_numbers, key=int)


@dataclass(frozen=True, slots=True)
class JobRequest:
    """A job named by a batch, with the sequence numbers of its records."""

    job_id: str
    sequence_numbers: tuple[str, ...]
    sources: tuple[RecordSource, ...]

    @property
    def lowest_sequence_number(self) -> str:
        """Where Lambda must resume if this job fails."""
        return lowest_sequence_number(self.sequence_numbers)


@dataclass(slots=True)
class ParsedBatch:
    """The jobs a batch names, in first-seen order, and what was left out."""

    requests: list[JobRequest]
    records: int
    ignored: Counter[str] = field(default_factory=Counter)
    malformed: Counter[str] = field(default_factory=Counter)


def _table_name(arn: object) -> str | None:
    # arn:aws:dynamodb:<region>:<account>:table/<name>/stream/<label>
    if not isinstance(arn, str):
        return None
    parts = arn.split(":", 5)
    if len(parts) != 6 or not parts[5].startswith("table/"):
        return None
    return parts[5].split("/", 2)[1]


def _new_status(image: object) -> str | None:
    if not isinstance(image, Mapping):
        return None
    status = image.get("status")
    if not isinstance(status, Mapping):
        return None
    value = _deserializer.deserialize(cast(Any, status))
    return value if isinstance(value, str) else None


class _Collector:
    def __init__(self) -> None:
        self.order: list[str] = []
        self.sequences: dict[str, list[str]] = {}
        self.sources: dict[str, set[RecordSource]] = {}

    def add(self, job_id: str, sequence_number: str, source: RecordSource) -> None:
        sequences = self.sequences.get(job_id)
        if sequences is None:
            self.order.append(job_id)
            sequences = self.sequences[job_id] = []
            self.sources[job_id] = set()
        sequences.append(sequence_number)
        self.sources[job_id].add(source)

    def requests(self) -> list[JobRequest]:
        return [
            JobRequest(
                job_id=job_id,
                sequence_numbers=tuple(self.sequences[job_id]),
                sources=tuple(sorted(self.sources[job_id])),
            )
            for job_id in self.order
        ]


@dataclass(frozen=True, slots=True)
class _Named:
    job_id: str
    sequence_number: str
    source: RecordSource


@dataclass(frozen=True, slots=True)
class _Rejected:
    reason: Malformed
    details: dict[str, Any]


def _job_id(keys: Mapping[str, Any]) -> str | None:
    raw = keys.get("job_id")
    if not isinstance(raw, Mapping) or set(raw) != {"S"}:
        return None
    value = _deserializer.deserialize(cast(Any, raw))
    return value if isinstance(value, str) and value else None


class _Classifier:
    """Decides, record by record, which job (if any) a record names."""

    def __init__(self, jobs_table: str, completions_table: str) -> None:
        self._by_table = {
            jobs_table: RecordSource.JOBS,
            completions_table: RecordSource.SEGMENT_COMPLETIONS,
        }
        self._by_arn: dict[object, RecordSource | None] = {}

    def _source(self, arn: object, keys: Mapping[str, Any]) -> RecordSource | None:
        if arn not in self._by_arn:
            self._by_arn[arn] = self._by_table.get(_table_name(arn) or "")
        source = self._by_arn[arn]
        if source is not None:
            return source
        # No ARN, or a table we were not told about: the key shape decides.
        key_names = set(keys)
        if key_names == {"job_id", "segment_index"}:
            return RecordSource.SEGMENT_COMPLETIONS
        if key_names == {"job_id"}:
            return RecordSource.JOBS
        return None

    def classify(self, record: Any) -> _Named | Ignored | _Rejected:
        dynamodb = record.get("dynamodb") if isinstance(record, Mapping) else None
        if not isinstance(dynamodb, Mapping) or not isinstance(dynamodb.get("SequenceNumber"), str):
            return _Rejected(Malformed.NOT_A_RECORD, {})
        keys = dynamodb.get("Keys")
        if not isinstance(keys, Mapping) or not keys:
            return _Rejected(Malformed.NO_KEYS, {})
        job_id = _job_id(keys)
        if job_id is None:
            return _Rejected(Malformed.NO_JOB_ID, {"keys": sorted(keys)})
        arn = record.get("eventSourceARN")
        source = self._source(arn, keys)
        if source is None:
            return _Rejected(Malformed.UNKNOWN_SOURCE, {"keys": sorted(keys), "arn": arn})
        event_name = record.get("eventName")
        if event_name == "REMOVE":
            return Ignored.REMOVE
        if event_name not in ("INSERT", "MODIFY"):
            return _Rejected(Malformed.UNKNOWN_EVENT_NAME, {"event_name": event_name})
        if source is RecordSource.JOBS and (
            _new_status(dynamodb.get("NewImage")) != "chunking_complete"
        ):
            return Ignored.JOB_NOT_CHUNKING_COMPLETE
        return _Named(job_id, dynamodb["SequenceNumber"], source)


def parse_batch(
    event: Mapping[str, Any],
    *,
    jobs_table: str,
    completions_table: str,
    log: structlog.typing.FilteringBoundLogger,
) -> ParsedBatch:
    """Group a DynamoDB Streams event's records by the job they name."""
    records = event.get("Records")
    if not isinstance(records, list):
        records = []
    classifier = _Classifier(jobs_table, completions_table)
    collector = _Collector()
    batch = ParsedBatch(requests=[], records=len(records))
    for position, record in enumerate(records):
        verdict = classifier.classify(record)
        if isinstance(verdict, _Named):
            collector.add(verdict.job_id, verdict.sequence_number, verdict.source)
        elif isinstance(verdict, _Rejected):
            batch.malformed[verdict.reason] += 1
            log.warning(
                "malformed_record",
                reason=verdict.reason,
                sequence_number=_sequence_number(record),
                position=position,
                event_id=record.get("eventID") if isinstance(record, Mapping) else None,
                **verdict.details,
            )
        else:
            batch.ignored[verdict] += 1
    batch.requests = collector.requests()
    return batch


def _sequence_number(record: Any) -> Any:
    dynamodb = record.get("dynamodb") if isinstance(record, Mapping) else None
    return dynamodb.get("SequenceNumber") if isinstance(dynamodb, Mapping) else None
