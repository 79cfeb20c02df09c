"""A misconfigured deployment fails the invocation, once, naming what is missing.

A permission the role lacks, a table or queue that does not exist, a wrong region: no
job can succeed, so none is reported as a per-job failure (a mapping without
ReportBatchItemFailures drops those, and the job is never triggered). The handler
raises `DeploymentMisconfigured` instead, a function error every mapping retries, and
the job is triggered once the deployment is fixed. Against the moto server: a denied
permission is answered as IAM answers it (the fault injector's ACCESS_DENIED, on the
handler's own clients), missing resources and regions are real.
"""

from __future__ import annotations

from typing import Any

import pytest

from reassembly_trigger import handler, reconcile
from reassembly_trigger.deployment_errors import (
    DeploymentMisconfigured,
    Problem,
    classify,
    misconfigurations,
)
from reassembly_trigger.local.aws.faults import FaultInjector, FaultKind, FaultRule
from reassembly_trigger.local.invocations.contexts import LocalLambdaContext
from reassembly_trigger.local.invocations.records import stream_event
from reassembly_trigger.settings import Settings

from moto_fixtures import REGION, Invoker, Pipeline


def _ready(pipeline: Pipeline, job_id: str = "job-a") -> dict[str, Any]:
    pipeline.add_job(job_id, total_segments=2)
    pipeline.complete(job_id, range(2))
    return stream_event(*pipeline.completion_records(job_id, [0, 1]))


def test_a_role_without_batchgetitem_fails_the_invocation_naming_action_and_table(
    pipeline: Pipeline, invoke: Invoker, faults: FaultInjector
) -> None:
    """GIVEN a role that lacks dynamodb:BatchGetItem on Jobs WHEN a batch of two jobs
    arrives THEN the invocation raises one error naming that action and the table's ARN
    (not two per-job failures), nothing is sent; once granted, the retry triggers both."""
    event = _ready(pipeline, "job-a")
    pipeline.add_job("job-b", total_segments=1)
    pipeline.complete("job-b", [0])
    event["Records"] += stream_event(*pipeline.completion_records("job-b", [0]))["Records"]
    denied = FaultRule("BatchGetItem", FaultKind.ACCESS_DENIED)
    faults.add(denied)

    with pytest.raises(DeploymentMisconfigured) as raised:
        invoke(event)

    (problem,) = raised.value.problems
    assert problem.problem is Problem.PERMISSION
    assert problem.action == "dynamodb:BatchGetItem"
    table_arn = f"arn:aws:dynamodb:{REGION}:123456789012:table/{pipeline.names.jobs_table}"
    assert problem.resource == table_arn
    assert problem.jobs == 2
    assert f"the role lacks dynamodb:BatchGetItem on {table_arn}" in str(raised.value)
    assert pipeline.bodies() == []

    denied.times = 0  # the permission is granted; Lambda retries the same records
    assert invoke(event) == {"batchItemFailures": []}
    assert sorted(b["job_id"] for b in pipeline.bodies()) == ["job-a", "job-b"]


def test_a_role_without_sendmessage_fails_the_invocation_and_releases_the_lock(
    pipeline: Pipeline, invoke: Invoker, faults: FaultInjector
) -> None:
    """GIVEN a role that lacks sqs:SendMessage WHEN a ready job's records arrive THEN the
    invocation fails naming sqs:SendMessage and the queue; the lease was let go, so the
    retry after the fix sends the message at once."""
    event = _ready(pipeline)
    denied = FaultRule("SendMessage", FaultKind.ACCESS_DENIED)
    faults.add(denied)

    with pytest.raises(
        DeploymentMisconfigured, match="the role lacks sqs:SendMessage on arn:aws:sqs"
    ):
        invoke(event)

    denied.times = 0
    assert invoke(event) == {"batchItemFailures": []}
    assert pipeline.bodies() == [{"job_id": "job-a"}]


@pytest.mark.parametrize(
    "variable",
    ["JOBS_TABLE_NAME", "SEGMENT_COMPLETIONS_TABLE_NAME", "REASSEMBLY_TRIGGERED_TABLE_NAME"],
)
def test_a_table_that_does_not_exist_fails_the_invocation_naming_it(
    pipeline: Pipeline, invoke: Invoker, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    """GIVEN a table name that names no table WHEN a ready job arrives THEN one error
    names the table and the variable that holds it."""
    value = f"no-such-{variable.lower()}"
    named = f"table {value} ({variable})"
    event = _ready(pipeline)
    monkeypatch.setenv(variable, value)

    with pytest.raises(DeploymentMisconfigured) as raised:
        invoke(event)

    (problem,) = raised.value.problems
    assert problem.problem is Problem.MISSING
    assert problem.resource == named
    assert f"{named} does not exist, or not in this region" in str(raised.value)


def test_a_queue_url_that_names_no_queue_fails_the_invocation_naming_it(
    pipeline: Pipeline, invoke: Invoker, monkeypatch: pytest.MonkeyPatch, lambda_env: dict[str, str]
) -> None:
    """GIVEN REASSEMBLY_QUEUE_URL naming no queue WHEN a ready job arrives THEN one error
    names the URL; the lock is let go, so nothing waits for a lease once it is fixed."""
    event = _ready(pipeline)
    wrong = lambda_env["REASSEMBLY_QUEUE_URL"] + "-gone"
    monkeypatch.setenv("REASSEMBLY_QUEUE_URL", wrong)

    with pytest.raises(DeploymentMisconfigured) as raised:
        invoke(event)

    (problem,) = raised.value.problems
    assert (problem.problem, problem.action) == (Problem.MISSING, "sqs:SendMessage")
    assert problem.resource == f"queue {wrong} (REASSEMBLY_QUEUE_URL)"


def test_a_wrong_region_fails_the_invocation_naming_the_first_table_it_misses(
    pipeline: Pipeline, invoke: Invoker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GIVEN the function in another region than its tables WHEN a ready job arrives
    THEN one error says the Jobs table does not exist there."""
    event = _ready(pipeline)
    other = "ap-southeast-2" if REGION != "ap-southeast-2" else "eu-north-1"
    monkeypatch.setenv("AWS_REGION", other)
    monkeypatch.setenv("AWS_DEFAULT_REGION", other)

    with pytest.raises(DeploymentMisconfigured, match="not in this region"):
        invoke(event)


def test_a_transient_aws_error_is_still_a_per_job_failure(
    pipeline: Pipeline, invoke: Invoker, faults: FaultInjector
) -> None:
    """A throttled read is the job's bad luck, not the deployment's: reported per job."""
    event = _ready(pipeline)
    faults.add(FaultRule("BatchGetItem", FaultKind.SERVER_ERROR))

    response = invoke(event)

    assert len(response["batchItemFailures"]) == 1


def test_the_reconciler_fails_its_run_naming_the_missing_permission(
    pipeline: Pipeline, lambda_env: dict[str, str], faults: FaultInjector
) -> None:
    """GIVEN a reconciler role that lacks dynamodb:Query on SegmentCompletions WHEN it
    runs for a job THEN the run fails naming that action, instead of a per-job failure."""
    _ready(pipeline)
    faults.add(FaultRule("Query", FaultKind.ACCESS_DENIED))

    with pytest.raises(DeploymentMisconfigured, match="the role lacks dynamodb:Query"):
        reconcile.lambda_handler({"job_ids": ["job-a"]}, LocalLambdaContext(timeout_seconds=300))
    assert pipeline.bodies() == []


def test_codes_that_may_be_the_jobs_own_are_not_misconfigurations() -> None:
    """Throttling, server errors and a failed condition say nothing about the deployment;
    a missing index does."""
    settings = Settings(
        jobs_table_name="jobs",
        segment_completions_table_name="sc",
        reassembly_triggered_table_name="rt",
        reassembly_queue_url="https://sqs.example/1/q",
    )
    for code in (
        "ProvisionedThroughputExceededException",
        "InternalServerError",
        "ConditionalCheckFailedException",
        "ThrottlingException",
        "ValidationException",
    ):
        assert classify(code, "Query", "boom", settings) is None, code
    index = classify(
        "ValidationException", "Query", "The table does not have the specified index", settings
    )
    assert index is not None
    assert index.resource.startswith("index status-created_at (JOBS_STATUS_INDEX_NAME)")
    assert misconfigurations([], settings) == []
    assert handler.lambda_handler is not None
