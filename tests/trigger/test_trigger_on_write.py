"""Trigger on write: a worker calls `trigger_job` after recording a completion.

The same machine, settings, gateways, logs and metrics as the stream handler, with the
reconciler as the safety net.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import structlog

from reassembly_trigger import api, trigger_job
from reassembly_trigger.local.aws.faults import FaultKind, FaultRule, SimulatedCrash
from reassembly_trigger.local.aws.stack import Resources
from reassembly_trigger.machine import SkipReason, State
from reassembly_trigger.runtime import reset_process
from reassembly_trigger.timing import Invocation

from moto_fixtures import Pipeline, simulated_trigger


@pytest.fixture(autouse=True)
def _fresh_process_trigger(lambda_env: dict[str, str]) -> Iterator[None]:
    """The API builds its trigger from this test's environment."""
    reset_process()
    yield
    reset_process()


def test_the_worker_that_records_the_last_segment_sends_the_message(pipeline: Pipeline) -> None:
    """Each worker calls after its own write: earlier calls skip as incomplete, the call
    after the last completion sends the one message."""
    pipeline.add_job("job-w", total_segments=3)
    outcomes = []
    for index in (2, 0, 1):
        pipeline.complete("job-w", [index])
        outcomes.append(trigger_job("job-w", emit_metrics=False))

    assert [(o.state, o.reason) for o in outcomes] == [
        (State.SKIPPED, SkipReason.INCOMPLETE),
        (State.SKIPPED, SkipReason.INCOMPLETE),
        (State.ENQUEUED, None),
    ]
    assert outcomes[-1].message_id
    assert pipeline.bodies() == [{"job_id": "job-w"}]


def test_concurrent_workers_finishing_the_last_segments_send_one_message(
    pipeline: Pipeline,
) -> None:
    """Workers completing the last segments at once all call the API: one message."""
    total = 8
    pipeline.add_job("job-burst", total_segments=total)
    pipeline.complete("job-burst", range(total - 4))
    barrier = threading.Barrier(4)
    outcomes = []

    def worker(index: int) -> None:
        pipeline.complete("job-burst", [index])
        barrier.wait()
        outcomes.append(trigger_job("job-burst", emit_metrics=False))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(total - 4, total)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert len(outcomes) == 4
    assert sum(o.state is State.ENQUEUED for o in outcomes) == 1
    assert {o.reason for o in outcomes if o.state is not State.ENQUEUED} <= {
        SkipReason.ALREADY_TRIGGERED,
        SkipReason.DEFERRED,
    }
    assert pipeline.bodies() == [{"job_id": "job-burst"}]


def test_the_outcome_carries_the_same_reason_codes_as_the_logs(pipeline: Pipeline) -> None:
    """The returned outcome and the logged final transition agree, reason and path."""
    pipeline.add_job("job-r", total_segments=2)
    pipeline.complete("job-r", [0])
    with structlog.testing.capture_logs() as logs:
        outcome = trigger_job("job-r", emit_metrics=False)

    final = [e for e in logs if e["event"] == "transition"][-1]
    assert (final["dest"], final["reason"]) == (outcome.state.value, outcome.reason.value)
    assert [t.dest.value for t in outcome.history] == [
        e["dest"] for e in logs if e["event"] == "transition"
    ]


def test_a_bad_job_id_is_refused_before_any_call() -> None:
    """An id that cannot be a DynamoDB key is a caller's error."""
    with pytest.raises(ValueError, match="not a job id"):
        trigger_job("")


def test_a_worker_that_dies_between_lock_and_send_is_recovered_by_the_reconciler(
    pipeline: Pipeline, moto_endpoint: str, resources: Resources
) -> None:
    """GIVEN a worker killed after taking the lock (its lease is its own 60 s deadline)
    WHEN the reconciler runs after that lease THEN it takes the lock over and sends the
    one message."""
    pipeline.add_job("job-dies", total_segments=1)
    pipeline.complete("job-dies", [0])
    with simulated_trigger(moto_endpoint, resources, reconcile_min_age_seconds=0) as sim:
        sim.faults.add(FaultRule("SendMessage", FaultKind.CRASH, times=1))
        with pytest.raises(SimulatedCrash):
            api.trigger_job("job-dies", timeout_seconds=60, trigger=sim.trigger, emit_metrics=False)
        lock = pipeline.lock("job-dies")
        assert lock is not None
        assert "enqueued_at" not in lock
        assert int(lock["lease_expires_at"]) <= sim.clock.now() + 60

        early = sim.reconciler().run({}, Invocation("early", sim.clock.now() + 300))
        sim.clock.advance(65)
        late = sim.reconciler().run({}, Invocation("late", sim.clock.now() + 300))

    assert early.enqueued == []
    assert early.counts()["skipped:deferred"] == 1
    assert late.enqueued == ["job-dies"]
    assert pipeline.bodies() == [{"job_id": "job-dies"}]


def test_the_api_writes_the_stream_handlers_metrics(
    pipeline: Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    """One EMF line per call, with the same metric names as the Lambda's."""
    pipeline.add_job("job-m", total_segments=1)
    pipeline.complete("job-m", [0])

    trigger_job("job-m")

    lines = [line for line in capsys.readouterr().out.splitlines() if "invocation_metrics" in line]
    assert len(lines) == 1
    assert '"JobsEnqueued":1' in lines[0]


def test_a_worker_with_only_aws_region_set_reaches_its_region(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    """botocore ignores AWS_REGION; the API's clients are given it, so a worker whose
    environment names its region only there still works (no NoRegionError)."""
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    from reassembly_trigger.clients import reset_clients

    reset_clients()
    pipeline.add_job("job-region", total_segments=1)
    pipeline.complete("job-region", [0])

    assert trigger_job("job-region", emit_metrics=False).state is State.ENQUEUED
