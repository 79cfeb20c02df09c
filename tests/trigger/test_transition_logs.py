"""Every transition is one structlog event with stable, documented field names."""

from __future__ import annotations

import io
import json

from reassembly_trigger.handler import lambda_handler
from reassembly_trigger.local.invocations.contexts import LocalLambdaContext
from reassembly_trigger.local.invocations.records import stream_event
from reassembly_trigger.logs import configure_logging
from reassembly_trigger.machine import (
    TRANSITION_LOG_FIELDS,
    TRANSITION_LOG_OPTIONAL_FIELDS,
    TRANSITIONS,
    State,
)

from moto_fixtures import Invoker, Pipeline


def test_each_transition_event_carries_the_documented_fields(
    pipeline: Pipeline, invoke: Invoker
) -> None:
    """source, dest, trigger, job_id, aws_request_id and the job's sequence numbers on every
    event; completions and total_segments once known; nothing undocumented."""
    pipeline.add_job("job-l", total_segments=2)
    pipeline.complete("job-l", range(2))
    records = pipeline.completion_records("job-l", range(2))

    invoke(stream_event(*records), aws_request_id="req-42")

    events = invoke.transitions("job-l")
    assert [e["dest"] for e in events] == ["loaded", "counted", "locked", "sent", "enqueued"]
    documented = set(TRANSITION_LOG_FIELDS) | set(TRANSITION_LOG_OPTIONAL_FIELDS)
    for event in events:
        assert set(TRANSITION_LOG_FIELDS) <= set(event)
        assert set(event) - {"log_level"} <= documented, set(event) - documented
        assert event["aws_request_id"] == "req-42"
        assert event["sequence_numbers"] == [r["dynamodb"]["SequenceNumber"] for r in records]
        assert event["total_segments"] == 2
    assert "completions" not in events[0]
    assert all(e["completions"] == 2 for e in events[1:])


def test_every_logged_step_is_a_declared_transition(pipeline: Pipeline, invoke: Invoker) -> None:
    """The logs speak the machine's language: each (source, trigger, dest) is declared."""
    pipeline.add_job("job-m", total_segments=1)
    pipeline.complete("job-m", [0])
    invoke(stream_event(*pipeline.completion_records("job-m", [0])))
    invoke(stream_event(*pipeline.completion_records("job-m", [0])))

    declared = {
        (source, spec["trigger"], spec["dest"])
        for spec in TRANSITIONS
        for source in ([spec["source"]] if isinstance(spec["source"], str) else spec["source"])
    }
    for event in invoke.transitions():
        assert (event["source"], event["trigger"], event["dest"]) in declared
    assert {e["dest"] for e in invoke.transitions()} >= {State.ENQUEUED, State.SKIPPED}


def test_in_lambda_each_event_is_one_json_object_per_line_on_stdout(
    pipeline: Pipeline, invoke: Invoker
) -> None:
    """The production renderer writes parseable JSON lines with level and timestamp."""
    pipeline.add_job("job-n", total_segments=1)
    pipeline.complete("job-n", [0])
    out = io.StringIO()
    configure_logging("json", stream=out, force=True)  # conftest restores it afterwards

    event = stream_event(*pipeline.completion_records("job-n", [0]))
    lambda_handler(event, LocalLambdaContext())
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    transitions = [e for e in lines if e["event"] == "transition"]
    assert [e["dest"] for e in transitions][-1] == "enqueued"
    assert all(e["level"] == "info" and e["timestamp"] for e in transitions)


def test_a_job_with_many_records_logs_a_bounded_list_and_the_count(
    pipeline: Pipeline, invoke: Invoker
) -> None:
    """A batch of hundreds of one job's records keeps each event small: the first 50
    sequence numbers, how many there were, and the lowest (where a retry resumes)."""
    pipeline.add_job("job-many", total_segments=400)
    records = pipeline.completion_records("job-many", range(120))

    invoke(stream_event(*reversed(records)))

    final = invoke.final("job-many")
    assert final["reason"] == "incomplete"
    assert len(final["sequence_numbers"]) == 50
    assert final["sequence_number_count"] == 120
    assert final["lowest_sequence_number"] == records[0]["dynamodb"]["SequenceNumber"]
