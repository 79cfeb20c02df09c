"""Every skip is explained: each reason in the closed set is reached and logged with its code."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from reassembly_trigger.local.invocations.records import stream_event
from reassembly_trigger.machine import SKIP_REASONS, SkipReason

from moto_fixtures import Invoker, Pipeline


def _job_not_found(pipeline: Pipeline) -> None:
    pipeline.complete("job-x", [0])


def _job_invalid(pipeline: Pipeline) -> None:
    # A boolean is not a number of segments, even though `true` could be read as 1.
    pipeline.add_job("job-x", total_segments=None, total_segments_raw={"BOOL": True})
    pipeline.complete("job-x", [0])


def _not_chunking_complete(pipeline: Pipeline) -> None:
    pipeline.add_job("job-x", total_segments=None, status="chunking_in_progress")
    pipeline.complete("job-x", [0])


def _total_segments_missing(pipeline: Pipeline) -> None:
    pipeline.add_job("job-x", total_segments=None, status="chunking_complete")
    pipeline.complete("job-x", [0])


def _incomplete(pipeline: Pipeline) -> None:
    pipeline.add_job("job-x", total_segments=2)
    pipeline.complete("job-x", [0])


def _already_triggered(pipeline: Pipeline) -> None:
    pipeline.add_job("job-x", total_segments=1)
    pipeline.complete("job-x", [0])
    pipeline.put_lock(
        "job-x", triggered_at=1, lease_expires_at=2, holder="h", enqueued_at=2, message_id="m"
    )


def _reassembly_started(pipeline: Pipeline) -> None:
    pipeline.add_job("job-x", total_segments=1)
    pipeline.complete("job-x", [0])
    pipeline.put_lock("job-x", triggered_at=1, lease_expires_at=2, reassembly_started_at=3)


def _deferred(pipeline: Pipeline) -> None:
    # Another holder took the lock a moment ago and is within its lease.
    pipeline.add_job("job-x", total_segments=1)
    pipeline.complete("job-x", [0])
    now = int(time.time())
    pipeline.put_lock("job-x", triggered_at=now, lease_expires_at=now + 600, holder="other")


SCENARIOS: dict[SkipReason, Callable[[Pipeline], None]] = {
    SkipReason.JOB_NOT_FOUND: _job_not_found,
    SkipReason.JOB_INVALID: _job_invalid,
    SkipReason.NOT_CHUNKING_COMPLETE: _not_chunking_complete,
    SkipReason.TOTAL_SEGMENTS_MISSING: _total_segments_missing,
    SkipReason.INCOMPLETE: _incomplete,
    SkipReason.ALREADY_TRIGGERED: _already_triggered,
    SkipReason.REASSEMBLY_STARTED: _reassembly_started,
    SkipReason.DEFERRED: _deferred,
}


def test_every_skip_reason_has_a_scenario() -> None:
    """Adding a skip reason without a scenario that reaches it fails this suite."""
    assert set(SCENARIOS) == set(SkipReason)
    assert set(SKIP_REASONS) == set(SkipReason)


@pytest.mark.parametrize("reason", list(SCENARIOS), ids=str)
def test_each_skip_reason_is_reached_logged_and_sends_nothing(
    reason: SkipReason, pipeline: Pipeline, invoke: Invoker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GIVEN the state that calls for the reason WHEN the job's record arrives THEN it ends
    `skipped` with that code, the fields that explain it, and no message."""
    monkeypatch.setenv("LEASE_WAIT_SECONDS", "0")
    SCENARIOS[reason](pipeline)

    response = invoke(stream_event(*pipeline.completion_records("job-x", [0])))

    assert response == {"batchItemFailures": []}
    final = invoke.final("job-x")
    assert final["dest"] == "skipped"
    assert final["reason"] == reason
    for field in SKIP_REASONS[reason].fields:
        assert field in final, f"{reason} must log {field}"
    assert pipeline.bodies() == []


def test_not_chunking_complete_names_the_status_it_saw(pipeline: Pipeline, invoke: Invoker) -> None:
    """The skip says which status stopped the job."""
    pipeline.add_job("job-x", total_segments=1, status="completed")
    invoke(stream_event(*pipeline.completion_records("job-x", [0])))
    assert invoke.final("job-x")["status"] == "completed"


def test_incomplete_reports_count_and_total(pipeline: Pipeline, invoke: Invoker) -> None:
    """An incomplete job's skip carries how many segments are done out of how many."""
    pipeline.add_job("job-x", total_segments=5)
    pipeline.complete("job-x", [0, 4])
    invoke(stream_event(*pipeline.completion_records("job-x", [4])))
    final = invoke.final("job-x")
    assert (final["reason"], final["completions"], final["total_segments"]) == (
        "incomplete",
        2,
        5,
    )


def test_an_invalid_job_names_the_field_and_the_value_seen(
    pipeline: Pipeline, invoke: Invoker
) -> None:
    """`job_invalid` names the deciding attribute and the value it held."""
    _job_invalid(pipeline)
    invoke(stream_event(*pipeline.completion_records("job-x", [0])))
    final = invoke.final("job-x")
    assert (final["field"], final["value"]) == ("total_segments", True)
