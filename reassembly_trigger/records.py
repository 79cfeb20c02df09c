"""Which stream records name a job, and which are malformed.

A batch comes from one of two streams:

- SegmentCompletions (keys `job_id` + `segment_index`): `INSERT` and `MODIFY` name
  their job; `REMOVE` (TTL expiry, clean-up) never does.
- Jobs (key `job_id` only): a record whose `NewImage.status` is `chunking_complete`
  names its job, which closes the race where chunking finishes after the last segment.

The source is told by `eventSourceARN`'s table name, falling back to the key shape.
A malformed record is logged at warning level with its sequence number and skipped;
it never fails the batch, and no shape of record can raise out of `parse_batch`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeGuard

import structlog

from reassembly_trigger.items import is_digits

#: DynamoDB Streams sequence numbers: decimal strings of 21 to 40 digits.
_MAX_SEQUENCE_DIGITS = 40
#: DynamoDB's limit on a partition key value, in UTF-8 bytes.
MAX_JOB_ID_BYTES = 2048


class RecordSource(StrEnum):
    """The table a stream record comes from."""

    SEGMENT_COMPLETIONS = "segment_completions"
    JOBS = "jobs"


class Malformed(StrEnum):
    """Why a record was skipped as malformed."""

    NOT_A_RECORD = "not_a_record"
    BAD_SEQUENCE_NUMBER = "bad_sequence_number"
    NO_KEYS = "no_keys"
    NO_JOB_ID = "no_job_id"
    BAD_JOB_ID = "bad_job_id"
    UNKNOWN_SOURCE = "unknown_source"
    UNKNOWN_EVENT_NAME = "unknown_event_name"
    UNREADABLE = "unreadable"


class Ignored(StrEnum):
    """Why a well-formed record names no job."""

    REMOVE = "remove"
    JOB_NOT_CHUNKING_COMPLETE = "job_not_chunking_complete"


def lowest_sequence_number(sequence_numbers: tuple[str, ...]) -> str:
    """The earliest of a job's records: sequence numbers are decimal strings of varying
    length, so they compare as numbers, not as text."""
    return min(sequence_numbers, key=int)


def is_sequence_number(value: object) -> bool:
    """Whether `value` is a stream sequence number (a decimal string), safe to compare."""
    return isinstance(value, str) and 0 < len(value) <= _MAX_SEQUENCE_DIGITS and is_digits(value)


def is_job_id(value: object) -> TypeGuard[str]:
    """Whether `value` can be a DynamoDB key: a non-empty string of at most 2048 UTF-8 bytes."""
    if not isinstance(value, str) or not value:
        return False
    try:
        return len(value.encode("utf-8")) <= MAX_JOB_ID_BYTES
    except UnicodeEncodeError:  # lone surrogates from a JSON escape
        return False


@dataclass(frozen=True, slots=True)
class JobRequest:
    """A job to evaluate, with the sequence numbers of the records that named it (if any)."""

    job_id: str
    sequence_numbers: tuple[str, ...] = ()


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
    """`NewImage.status` when it is a string attribute; None for any other shape."""
    if not isinstance(image, Mapping):
        return None
    status = image.get("status")
    if not isinstance(status, Mapping) or set(status) != {"S"}:
        return None
    value = status["S"]
    return value if isinstance(value, str) else None


class _Collector:
    def __init__(self) -> None:
        # Insertion-ordered: jobs in first-seen order.
        self.sequences: dict[str, list[str]] = {}

    def add(self, job_id: str, sequence_number: str) -> None:
        self.sequences.setdefault(job_id, []).append(sequence_number)

    def requests(self) -> list[JobRequest]:
        return [
            JobRequest(job_id=job_id, sequence_numbers=tuple(sequences))
            for job_id, sequences in self.sequences.items()
        ]


@dataclass(frozen=True, slots=True)
class _Named:
    job_id: str
    sequence_number: str


@dataclass(frozen=True, slots=True)
class _Rejected:
    reason: Malformed
    details: dict[str, Any]


def _job_id(keys: Mapping[str, Any]) -> object:
    """The key's `job_id` string value (not yet checked), or None when it has none."""
    raw = keys.get("job_id")
    if not isinstance(raw, Mapping) or set(raw) != {"S"}:
        return None
    return raw["S"]


class _Classifier:
    """Decides, record by record, which job (if any) a record names."""

    def __init__(self, jobs_table: str, completions_table: str) -> None:
        self._by_table = {
            jobs_table: RecordSource.JOBS,
            completions_table: RecordSource.SEGMENT_COMPLETIONS,
        }
        self._by_arn: dict[str, RecordSource | None] = {}

    def _source(self, arn: object, keys: Mapping[str, Any]) -> RecordSource | None:
        if isinstance(arn, str):  # anything else (a list, a map) is no ARN at all
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
        if not isinstance(dynamodb, Mapping) or "SequenceNumber" not in dynamodb:
            return _Rejected(Malformed.NOT_A_RECORD, {})
        if not is_sequence_number(dynamodb["SequenceNumber"]):
            return _Rejected(Malformed.BAD_SEQUENCE_NUMBER, {})
        keys = dynamodb.get("Keys")
        if not isinstance(keys, Mapping) or not keys:
            return _Rejected(Malformed.NO_KEYS, {})
        key_names = sorted(str(name) for name in keys)
        job_id = _job_id(keys)
        if job_id is None:
            return _Rejected(Malformed.NO_JOB_ID, {"keys": key_names})
        if not is_job_id(job_id):
            return _Rejected(Malformed.BAD_JOB_ID, {"keys": key_names})
        arn = record.get("eventSourceARN")
        source = self._source(arn, keys)
        if source is None:
            return _Rejected(
                Malformed.UNKNOWN_SOURCE,
                {"keys": key_names, "arn": arn if isinstance(arn, str) else repr(arn)[:200]},
            )
        event_name = record.get("eventName")
        if event_name == "REMOVE":
            return Ignored.REMOVE
        if event_name not in ("INSERT", "MODIFY"):
            return _Rejected(Malformed.UNKNOWN_EVENT_NAME, {"event_name": repr(event_name)[:200]})
        if source is RecordSource.JOBS and (
            _new_status(dynamodb.get("NewImage")) != "chunking_complete"
        ):
            return Ignored.JOB_NOT_CHUNKING_COMPLETE
        return _Named(job_id, str(dynamodb["SequenceNumber"]))


def parse_batch(
    event: Mapping[str, Any],
    *,
    jobs_table: str,
    completions_table: str,
    log: structlog.typing.FilteringBoundLogger,
) -> ParsedBatch:
    """Group a DynamoDB Streams event's records by the job they name.

    Anything that is not a batch (not a map, no `Records` list) is logged once, as
    `not_a_batch`, and names no job.
    """
    records = event.get("Records") if isinstance(event, Mapping) else None
    if not isinstance(records, list):
        log.warning(
            "not_a_batch",
            event_type=type(event).__name__,
            records_type=type(records).__name__ if records is not None else None,
        )
        records = []
    classifier = _Classifier(jobs_table, completions_table)
    collector = _Collector()
    batch = ParsedBatch(requests=[], records=len(records))
    for position, record in enumerate(records):
        try:
            verdict = classifier.classify(record)
        except Exception as exc:  # a shape nobody foresaw: skip it, never the batch
            verdict = _Rejected(Malformed.UNREADABLE, {"error": f"{type(exc).__name__}: {exc}"})
        if isinstance(verdict, _Named):
            collector.add(verdict.job_id, verdict.sequence_number)
        elif isinstance(verdict, _Rejected):
            batch.malformed[verdict.reason.value] += 1
            log.warning(
                "malformed_record",
                reason=verdict.reason.value,
                sequence_number=_sequence_number(record),
                position=position,
                event_id=_event_id(record),
                **verdict.details,
            )
        else:
            batch.ignored[verdict.value] += 1
    batch.requests = collector.requests()
    return batch


def _sequence_number(record: Any) -> str | None:
    """The record's sequence number as logged (a bad one shortened, never a crash)."""
    dynamodb = record.get("dynamodb") if isinstance(record, Mapping) else None
    value = dynamodb.get("SequenceNumber") if isinstance(dynamodb, Mapping) else None
    if value is None or is_sequence_number(value):
        return value
    return repr(value)[:100]


def _event_id(record: Any) -> str | None:
    value = record.get("eventID") if isinstance(record, Mapping) else None
    return value[:100] if isinstance(value, str) else None
