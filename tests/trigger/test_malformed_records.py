"""Malformed records are logged with their sequence number and skipped; they never fail
a batch, and the well-formed records beside them are still evaluated."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from reassembly_trigger.local.invocations.records import stream_event

from moto_fixtures import CONTRACT_EVENTS, Invoker, Pipeline


def _without(record: dict[str, Any], *path: str) -> dict[str, Any]:
    broken = copy.deepcopy(record)
    target = broken
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return broken


@pytest.mark.parametrize(
    ("breakage", "reason"),
    [
        (lambda r: _without(r, "dynamodb", "Keys"), "no_keys"),
        (
            lambda r: {**r, "dynamodb": {**r["dynamodb"], "Keys": {"job_id": {"N": "7"}}}},
            "no_job_id",
        ),
        (
            lambda r: {
                **r,
                "eventSourceARN": "arn:aws:dynamodb:us-east-1:1:table/other/stream/x",
                "dynamodb": {**r["dynamodb"], "Keys": {"job_id": {"S": "j"}, "k": {"S": "v"}}},
            },
            "unknown_source",
        ),
        (lambda r: {**r, "eventName": "TRUNCATE"}, "unknown_event_name"),
    ],
    ids=["no-keys", "job-id-not-a-string", "unknown-source", "unknown-event-name"],
)
def test_a_malformed_record_is_logged_and_skipped_without_failing_the_batch(
    breakage: Any, reason: str, pipeline: Pipeline, invoke: Invoker
) -> None:
    """GIVEN a batch with one broken record beside a good one WHEN it is handled THEN the
    broken one is a warning naming its sequence number, and the good job is enqueued."""
    pipeline.add_job("job-ok", total_segments=1)
    pipeline.complete("job-ok", [0])
    good = pipeline.completion_records("job-ok", [0])[0]
    broken = breakage(pipeline.completion_records("job-bad", [0])[0])

    response = invoke(stream_event(broken, good))

    assert response == {"batchItemFailures": []}
    warnings = invoke.events("malformed_record")
    assert len(warnings) == 1
    assert warnings[0]["log_level"] == "warning"
    assert warnings[0]["reason"] == reason
    assert warnings[0]["sequence_number"] == broken["dynamodb"]["SequenceNumber"]
    assert pipeline.bodies() == [{"job_id": "job-ok"}]


def test_a_record_that_is_not_a_stream_record_is_skipped(invoke: Invoker) -> None:
    """Even garbage in `Records` is reported, not raised."""
    response = invoke({"Records": ["garbage", {"dynamodb": "nope"}]})
    assert response == {"batchItemFailures": []}
    reasons = [e["reason"] for e in invoke.events("malformed_record")]
    assert reasons == ["not_a_record", "not_a_record"]


def test_without_an_arn_the_key_shape_tells_the_source(pipeline: Pipeline, invoke: Invoker) -> None:
    """A record without eventSourceARN is still understood from its keys."""
    pipeline.add_job("job-k", total_segments=1)
    pipeline.complete("job-k", [0])
    record = pipeline.completion_records("job-k", [0])[0]
    del record["eventSourceARN"]
    invoke(stream_event(record))
    assert pipeline.bodies() == [{"job_id": "job-k"}]


def test_the_contract_batch_names_each_job_once_with_its_sequence_numbers(
    monkeypatch: pytest.MonkeyPatch, pipeline: Pipeline, invoke: Invoker
) -> None:
    """The contract's realistic batch (two jobs, out of order) is grouped by job."""
    event = json.loads((CONTRACT_EVENTS / "segment-completions-batch.json").read_text())
    invoke(event)
    loaded = {
        t["job_id"]: t["sequence_numbers"]
        for t in invoke.transitions()
        if t["source"] == "received"
    }
    assert loaded == {
        "0f1c2d3e-job-a": [
            "400000000000000000001",
            "400000000000000000003",
            "400000000000000000004",
        ],
        "7a8b9c0d-job-b": ["400000000000000000002"],
    }
