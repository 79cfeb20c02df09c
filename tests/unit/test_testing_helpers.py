"""`reassembly_trigger.testing`, as a worker's own tests use it: the README's example,
a stream batch through the in-memory trigger, and the context on the manual clock."""

from __future__ import annotations

from reassembly_trigger import trigger_job
from reassembly_trigger.machine import SkipReason, State
from reassembly_trigger.testing import (
    InMemoryAws,
    LambdaContext,
    job_item,
    stream_event,
    stream_record,
)
from reassembly_trigger.timing import Invocation


def test_the_last_segment_triggers_reassembly_once() -> None:
    """The README's "Testing your integration" example, as written there."""
    aws = InMemoryAws()
    aws.ready("job-1", total=3)
    trigger = aws.trigger(evaluation_concurrency=1)

    first = trigger_job("job-1", trigger=trigger, emit_metrics=False)
    again = trigger_job("job-1", trigger=trigger, emit_metrics=False)

    assert (first.state, again.reason) == (State.ENQUEUED, SkipReason.ALREADY_TRIGGERED)
    assert aws.queue.bodies == ["job-1"]
    assert aws.lock.value("job-1")["message_id"] == "m-1"


def test_a_stream_batch_runs_on_the_stores_concurrently_and_sends_each_job_once() -> None:
    """Records of the completions table's stream name their jobs; every complete job is
    sent once, an incomplete one is skipped, on the default pool of evaluations."""
    aws = InMemoryAws()
    for n in range(20):
        aws.ready(f"job-{n}")
    aws.jobs.items["short"] = job_item("short", total_segments=3)
    aws.completions.complete("short", 0)
    settings = aws.trigger().settings
    records = [
        stream_record(
            settings.segment_completions_table_name,
            {"job_id": {"S": job_id}, "segment_index": {"N": "0"}},
            sequence_number=str(100 + n),
        )
        for n, job_id in enumerate([*(f"job-{n}" for n in range(20)), "short"])
    ]
    context = aws.lambda_context(timeout_seconds=30)

    result = aws.trigger().handle(
        stream_event(*records), Invocation.from_lambda_context(context, aws.clock)
    )

    assert result.counts()["enqueued"] == 20
    assert result.counts()["skipped:incomplete"] == 1
    assert sorted(aws.queue.bodies) == sorted(f"job-{n}" for n in range(20))
    assert result.response() == {"batchItemFailures": []}


def test_the_context_runs_down_on_the_manual_clock() -> None:
    """A context on the store's clock: its time left follows `advance`, never below 0."""
    aws = InMemoryAws()
    context = aws.lambda_context(timeout_seconds=10)
    aws.clock.advance(4)
    assert context.get_remaining_time_in_millis() == 6000
    aws.clock.advance(60)
    assert context.get_remaining_time_in_millis() == 0
    assert LambdaContext().invoked_function_arn.endswith(
        ":function:" + LambdaContext().function_name
    )


def test_a_lease_set_for_the_trigger_is_the_one_its_gateways_assume() -> None:
    """`trigger(lock_lease_seconds=...)` sets the settings and the gateways alike."""
    trigger = InMemoryAws().trigger(lock_lease_seconds=120)
    assert trigger.settings.lock_lease_seconds == trigger.gateways.lock_lease_seconds == 120
