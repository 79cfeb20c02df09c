"""AWS failures are reported back to Lambda, never swallowed, and the retry finishes the work."""

from __future__ import annotations

import pytest

from reassembly_trigger.clients import AwsClients
from reassembly_trigger.deployment_errors import DeploymentMisconfigured
from reassembly_trigger.local.aws.faults import FaultInjector, FaultKind, FaultRule
from reassembly_trigger.local.invocations.records import stream_event
from reassembly_trigger.timing import DYNAMODB_MAX_ATTEMPTS

from moto_fixtures import Invoker, Pipeline


def test_a_throttled_count_fails_the_job_with_its_lowest_sequence_number_and_the_retry_enqueues(
    pipeline: Pipeline, invoke: Invoker, faults: FaultInjector
) -> None:
    """GIVEN Query throttled past every retry WHEN the batch is handled THEN the job fails
    with the lowest sequence number of its records; the redelivered batch enqueues once."""
    pipeline.add_job("job-t", total_segments=3)
    pipeline.complete("job-t", range(3))
    records = pipeline.completion_records("job-t", [2, 0, 1])
    event = stream_event(*records)
    faults.add(FaultRule("Query", FaultKind.THROTTLE, times=DYNAMODB_MAX_ATTEMPTS))

    response = invoke(event)

    lowest = min((r["dynamodb"]["SequenceNumber"] for r in records), key=int)
    assert response == {"batchItemFailures": [{"itemIdentifier": lowest}]}
    final = invoke.final("job-t")
    assert (final["dest"], final["reason"]) == ("failed", "aws_error")
    assert final["error_code"] == "ProvisionedThroughputExceededException"
    assert pipeline.bodies() == []

    assert invoke(event) == {"batchItemFailures": []}
    assert pipeline.bodies() == [{"job_id": "job-t"}]


def test_throttling_within_the_retry_budget_is_absorbed(
    pipeline: Pipeline, invoke: Invoker, faults: FaultInjector
) -> None:
    """botocore's standard retries absorb a throttle that clears before the last attempt."""
    pipeline.add_job("job-r", total_segments=1)
    pipeline.complete("job-r", [0])
    faults.add(FaultRule("Query", FaultKind.THROTTLE, times=DYNAMODB_MAX_ATTEMPTS - 1))

    assert invoke(stream_event(*pipeline.completion_records("job-r", [0]))) == {
        "batchItemFailures": []
    }
    assert pipeline.bodies() == [{"job_id": "job-r"}]


def test_a_deleted_queue_fails_the_invocation_and_releases_the_jobs_lock(
    pipeline: Pipeline, invoke: Invoker, lambda_clients: AwsClients
) -> None:
    """A queue that does not exist is the deployment's fault, not the job's: the
    invocation fails naming it (so every mapping retries the batch), the complete job
    released its lock on the way, and the incomplete one was skipped."""
    pipeline.add_job("job-q", total_segments=1)
    pipeline.complete("job-q", [0])
    pipeline.add_job("job-w", total_segments=2)
    pipeline.complete("job-w", [0])
    waiting = pipeline.completion_records("job-w", [0])
    ready = pipeline.completion_records("job-q", [0])
    lambda_clients.sqs.delete_queue(QueueUrl=pipeline.resources.reassembly_queue_url)

    with pytest.raises(DeploymentMisconfigured, match="REASSEMBLY_QUEUE_URL"):
        invoke(stream_event(*waiting, *ready))

    final = invoke.final("job-q")
    assert (final["source"], final["dest"], final["reason"]) == ("locked", "failed", "aws_error")
    assert final["lease_released"] is True
    lock = pipeline.lock("job-q")
    assert lock is not None
    assert int(lock["lease_expires_at"]) == 0
    assert "enqueued_at" not in lock
    assert invoke.final("job-w")["reason"] == "incomplete"


def test_one_failure_entry_per_failed_job(
    pipeline: Pipeline, invoke: Invoker, faults: FaultInjector
) -> None:
    """When the Jobs cannot be read at all, every job of the batch fails, each once."""
    for job in ("job-1", "job-2"):
        pipeline.add_job(job, total_segments=2)
        pipeline.complete(job, range(2))
    first = pipeline.completion_records("job-1", range(2))
    second = pipeline.completion_records("job-2", range(2))
    faults.add(FaultRule("BatchGetItem", FaultKind.SERVER_ERROR, times=DYNAMODB_MAX_ATTEMPTS))

    response = invoke(stream_event(first[0], second[0], first[1], second[1]))

    assert response == {
        "batchItemFailures": [
            {"itemIdentifier": first[0]["dynamodb"]["SequenceNumber"]},
            {"itemIdentifier": second[0]["dynamodb"]["SequenceNumber"]},
        ]
    }
    assert {invoke.final(j)["reason"] for j in ("job-1", "job-2")} == {"aws_error"}
