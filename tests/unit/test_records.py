"""Which records name a job: `parse_batch` on every shape an event can take, without AWS."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import structlog

from reassembly_trigger.records import Ignored, Malformed, parse_batch
from reassembly_trigger.testing import stream_record

EVENTS = Path(__file__).resolve().parents[1] / "events"
JOBS, COMPLETIONS = "stereo-spot-jobs", "stereo-spot-segment-completions"


def record(
    job_id: Any = "job-a",
    sequence: Any = "100000000000000000001",
    *,
    table: str = COMPLETIONS,
    event_name: Any = "INSERT",
    arn: Any = None,
    keys: Any = None,
    new_image: Any = None,
) -> dict[str, Any]:
    """A record of `table`'s stream, with any of its parts given as anything."""
    if keys is None:
        keys = {"job_id": {"S": job_id}}
        if table == COMPLETIONS:
            keys["segment_index"] = {"N": "0"}
    built = stream_record(
        table, keys, event_name=event_name, new_image=new_image, sequence_number=sequence
    )
    if arn is not None:
        built["eventSourceARN"] = arn
    return built


def parse(*records: Any, event: Any = None) -> Any:
    with structlog.testing.capture_logs() as logs:
        parsed = parse_batch(
            {"Records": list(records)} if event is None else event,
            jobs_table=JOBS,
            completions_table=COMPLETIONS,
            log=structlog.get_logger(),
        )
    return parsed, logs


def test_records_are_grouped_by_job_in_first_seen_order() -> None:
    """Each distinct job once, with every sequence number that named it."""
    parsed, _ = parse(record("b", "3"), record("a", "1"), record("b", "2"))
    assert [(r.job_id, r.sequence_numbers) for r in parsed.requests] == [
        ("b", ("3", "2")),
        ("a", ("1",)),
    ]


def test_removes_and_unchunked_jobs_records_are_ignored_not_malformed() -> None:
    """REMOVE names no job; a Jobs record names its job only at chunking_complete."""
    parsed, logs = parse(
        record(event_name="REMOVE"),
        record(table=JOBS, new_image={"status": {"S": "created"}}),
        record("j", table=JOBS, new_image={"status": {"S": "chunking_complete"}}),
    )
    assert [r.job_id for r in parsed.requests] == ["j"]
    assert parsed.ignored == {Ignored.REMOVE.value: 1, Ignored.JOB_NOT_CHUNKING_COMPLETE.value: 1}
    assert logs == []


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ("not a record", Malformed.NOT_A_RECORD),
        ({"dynamodb": {}}, Malformed.NOT_A_RECORD),
        (record(sequence="12a"), Malformed.BAD_SEQUENCE_NUMBER),
        (record(sequence=-5), Malformed.BAD_SEQUENCE_NUMBER),
        (record(sequence="1" * 41), Malformed.BAD_SEQUENCE_NUMBER),
        (record(keys={}), Malformed.NO_KEYS),
        (record(keys={"job_id": {"N": "1"}}), Malformed.NO_JOB_ID),
        (record(""), Malformed.BAD_JOB_ID),
        (record("x" * 2049), Malformed.BAD_JOB_ID),
        (record("\ud800"), Malformed.BAD_JOB_ID),
        (
            record(arn=["a", "list"], keys={"job_id": {"S": "a"}, "x": {"S": "y"}}),
            Malformed.UNKNOWN_SOURCE,
        ),
        (record(event_name={"a": "map"}), Malformed.UNKNOWN_EVENT_NAME),
    ],
)
def test_a_malformed_record_is_skipped_and_logged_with_its_sequence_number(
    bad: Any, reason: Malformed
) -> None:
    """The record is skipped with its reason; the batch's good records still count."""
    parsed, logs = parse(bad, record("good", "7"))
    assert [r.job_id for r in parsed.requests] == ["good"]
    assert parsed.malformed == {reason.value: 1}
    (warning,) = logs
    assert (warning["event"], warning["reason"]) == ("malformed_record", reason.value)
    assert "sequence_number" in warning


@pytest.mark.parametrize(
    "status",
    [{"M": {"S": {"S": "x"}}}, {"WEIRD": "x"}, {"S": ["list"]}, "plain", None],
)
def test_any_shape_of_a_jobs_new_status_is_read_without_raising(status: Any) -> None:
    """A map, an unknown type key or a non-string: the record names no job."""
    parsed, _ = parse(record(table=JOBS, new_image={"status": status}))
    assert parsed.requests == []


@pytest.mark.parametrize("event", [None, [], "text", {"Records": "no"}, {"Records": None}, 5])
def test_anything_that_is_not_a_batch_is_logged_once_and_names_no_job(event: Any) -> None:
    """Not a dict, or no Records list: one `not_a_batch` warning, no job."""
    with structlog.testing.capture_logs() as logs:
        parsed = parse_batch(
            event, jobs_table=JOBS, completions_table=COMPLETIONS, log=structlog.get_logger()
        )
    assert parsed.requests == []
    assert [e["event"] for e in logs] == ["not_a_batch"]


def test_the_contract_events_parse_as_documented() -> None:
    """The sample events: two jobs out of order; a TTL REMOVE; a Jobs chunking_complete."""
    batch = json.loads((EVENTS / "segment-completions-batch.json").read_text())
    parsed, _ = parse(event=batch)
    assert [r.job_id for r in parsed.requests] == ["0f1c2d3e-job-a", "7a8b9c0d-job-b"]
    removes = json.loads((EVENTS / "segment-completions-ttl-remove.json").read_text())
    assert parse(event=removes)[0].requests == []
    jobs = json.loads((EVENTS / "jobs-chunking-complete.json").read_text())
    assert [r.job_id for r in parse(event=jobs)[0].requests] == ["7a8b9c0d-job-b"]
