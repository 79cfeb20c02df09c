"""Every entry point works at every timeout a user sets, and answers before it.

Issue 20: with worst-case gates the stream function asked for 43 s before it would
take a lock, so at the replaced Lambda's 30 s it never triggered a job, and the
reconciler at 60 s examined nothing. These tests run the real entry points against
the moto server at the timeouts users run with: Lambda's default 3 s, the replaced
Lambda's 30 s, small ones (2 s is the least that works, `MIN_FUNCTION_TIMEOUT_SECONDS`),
and check that a slow AWS still gets an answer to Lambda before the deadline.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from reassembly_trigger import api, reconcile
from reassembly_trigger.local.aws.latency_proxy import LatencyProxy
from reassembly_trigger.local.invocations.contexts import LocalLambdaContext
from reassembly_trigger.local.invocations.environment import fresh_container
from reassembly_trigger.local.invocations.records import stream_event
from reassembly_trigger.machine import State
from reassembly_trigger.timing import ANSWER_RESERVE_SECONDS, MIN_FUNCTION_TIMEOUT_SECONDS

from moto_fixtures import Invoker, Pipeline

#: The timeouts users set: the minimum, Lambda's default, small ones, the replaced
#: Lambda's, the module's default.
TIMEOUTS = [MIN_FUNCTION_TIMEOUT_SECONDS, 3, 5, 10, 30, 60]


@pytest.mark.parametrize("timeout", TIMEOUTS)
def test_the_stream_function_triggers_every_complete_job_on_first_delivery(
    pipeline: Pipeline, invoke: Invoker, timeout: int
) -> None:
    """GIVEN five complete jobs in one batch WHEN it is delivered once to a warm function
    of `timeout` seconds THEN each gets exactly one message and nothing is reported
    failed. (Warm: building the clients takes a few hundred milliseconds of a cold
    start, much of a 2 s invocation on a loaded machine.)"""
    invoke({"Records": []}, timeout_seconds=30)  # the container's first invocation
    jobs = [f"job-{n}" for n in range(5)]
    records = [r for job in jobs for r in pipeline.ready_job(job, total=3)]

    response = invoke(stream_event(*records), timeout_seconds=timeout)

    assert response == {"batchItemFailures": []}
    assert sorted(b["job_id"] for b in pipeline.bodies()) == jobs
    assert {invoke.final(job)["dest"] for job in jobs} == {"enqueued"}


@pytest.mark.parametrize("timeout", [MIN_FUNCTION_TIMEOUT_SECONDS, 3, 5, 30])
def test_the_reconciler_sends_a_missed_job_in_one_run(
    pipeline: Pipeline, lambda_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, timeout: int
) -> None:
    """GIVEN a complete job no record reached WHEN one reconcile run of `timeout` seconds
    runs THEN it sends the job's message and is not truncated.

    The container is warmed by an earlier run (with nothing to do), as every run after a
    cold start is: building the clients takes a few hundred milliseconds, most of a 2 s
    run; a cold 2 s run reports `truncated` and the next one sends."""
    monkeypatch.setenv("RECONCILE_MIN_AGE_SECONDS", "0")
    reconcile.lambda_handler({}, LocalLambdaContext(timeout_seconds=30))
    pipeline.ready_job("job-missed", total=3)

    summary = reconcile.lambda_handler({}, LocalLambdaContext(timeout_seconds=timeout))

    assert summary["jobs_enqueued"] == ["job-missed"]
    assert summary["truncated"] is False
    assert pipeline.bodies() == [{"job_id": "job-missed"}]


@pytest.mark.usefixtures("lambda_env")
@pytest.mark.parametrize("timeout", [MIN_FUNCTION_TIMEOUT_SECONDS, 5, 30])
def test_trigger_job_triggers_a_complete_job_with_a_few_seconds(
    pipeline: Pipeline, timeout: int
) -> None:
    """A worker passing a few seconds gets `enqueued` (it got `failed` below 44 s)."""
    pipeline.ready_job("job-worker", total=2)

    outcome = api.trigger_job("job-worker", timeout_seconds=timeout, emit_metrics=False)

    assert outcome.state is State.ENQUEUED
    assert pipeline.bodies() == [{"job_id": "job-worker"}]


@pytest.mark.parametrize("timeout", [0, 1, 1.99, float("nan"), float("-inf")])
def test_trigger_job_refuses_a_timeout_no_job_fits_in(timeout: float) -> None:
    """Below 2 s no job's bounded calls fit: a `ValueError` that says so, before any call."""
    with pytest.raises(ValueError, match="at least 2 s"):
        api.trigger_job("job-any", timeout_seconds=timeout)


@pytest.fixture
def slow_aws(lambda_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The handler's clients behind a proxy that holds every call 5 s (real time)."""
    with LatencyProxy(lambda_env["AWS_ENDPOINT_URL"], latency_ms=5000) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint_url)
        fresh_container()
        yield
    fresh_container()


@pytest.mark.usefixtures("slow_aws")
@pytest.mark.parametrize("timeout", [MIN_FUNCTION_TIMEOUT_SECONDS, 3])
def test_a_slow_aws_still_gets_lambda_an_answer_before_the_deadline(
    pipeline: Pipeline, invoke: Invoker, timeout: int
) -> None:
    """GIVEN every AWS call taking 5 s, longer than the whole invocation WHEN a batch is
    delivered THEN the handler answers before its deadline (each attempt's read timeout
    was cut to the time left) and reports the job failed for a retry."""
    records = pipeline.ready_job("job-slow", total=2)
    started = time.monotonic()

    response = invoke(stream_event(*records), timeout_seconds=timeout)

    elapsed = time.monotonic() - started
    assert elapsed < timeout - ANSWER_RESERVE_SECONDS / 2
    lowest = records[0]["dynamodb"]["SequenceNumber"]
    assert response == {"batchItemFailures": [{"itemIdentifier": lowest}]}
    assert invoke.final("job-slow")["dest"] == "failed"
