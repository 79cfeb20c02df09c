"""The reconciler: no complete job is left without its message, whatever the stream lost.

Each test runs the real reconciler (`reassembly_trigger.reconcile`) against the moto
server, on the pipeline's tables with the Jobs table's `status-created_at` index.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from reassembly_trigger import handler, reconcile
from reassembly_trigger.gateways import RECONCILE_CURSOR_KEY
from reassembly_trigger.local.aws.faults import FaultInjector, FaultKind, FaultRule
from reassembly_trigger.local.aws.stack import Resources
from reassembly_trigger.local.invocations.contexts import LocalLambdaContext
from reassembly_trigger.local.invocations.records import stream_event
from reassembly_trigger.runtime import process_trigger
from reassembly_trigger.timing import Invocation

from moto_fixtures import Pipeline, simulated_trigger


@pytest.fixture
def reconcile_env(lambda_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The Lambda's environment, with every job old enough to reconcile."""
    monkeypatch.setenv("RECONCILE_MIN_AGE_SECONDS", "0")
    return lambda_env


def run(event: dict[str, Any] | None = None) -> dict[str, Any]:
    """One run of the real reconciler entry point."""
    return reconcile.lambda_handler(event or {}, LocalLambdaContext(timeout_seconds=300))


@pytest.mark.usefixtures("reconcile_env")
def test_a_complete_job_whose_batches_were_all_discarded_gets_exactly_one_message(
    pipeline: Pipeline,
) -> None:
    """GIVEN a complete, chunked job no stream record ever reached WHEN the reconciler runs
    (twice) THEN the first run sends exactly one message and says so; the second sends none."""
    pipeline.ready_job("job-lost", total=3)

    first = run()
    second = run()

    assert first["jobs_enqueued"] == ["job-lost"]
    assert first["outcomes"]["enqueued"] == 1
    assert second["jobs_enqueued"] == []
    assert second["outcomes"] == {"skipped": 1, "skipped:already_triggered": 1}
    assert pipeline.bodies() == [{"job_id": "job-lost"}]


@pytest.mark.usefixtures("reconcile_env")
def test_incomplete_or_unchunked_jobs_are_never_enqueued(pipeline: Pipeline) -> None:
    """Only `chunking_complete` jobs are listed, and only complete ones are sent."""
    pipeline.add_job("job-short", total_segments=3)
    pipeline.complete("job-short", [0, 2])
    pipeline.add_job("job-chunking", total_segments=None, status="chunking_in_progress")
    pipeline.complete("job-chunking", [0])
    pipeline.add_job("job-done", total_segments=1, status="completed")
    pipeline.complete("job-done", [0])

    summary = run()

    assert summary["jobs_listed"] == 1
    assert summary["outcomes"] == {"skipped": 1, "skipped:incomplete": 1}
    assert pipeline.bodies() == []


@pytest.mark.usefixtures("reconcile_env")
def test_a_live_lease_is_left_alone_and_an_expired_unfinished_lock_is_taken_over(
    pipeline: Pipeline,
) -> None:
    """A holder within its lease is deferred to (never waited for); a lock whose lease is
    over and that was never marked is taken over and its job sent once."""
    now = int(time.time())
    pipeline.ready_job("job-live")
    pipeline.put_lock("job-live", holder="alive/1", triggered_at=now, lease_expires_at=now + 600)
    pipeline.ready_job("job-dead")
    pipeline.put_lock(
        "job-dead", holder="dead/1", triggered_at=now - 900, lease_expires_at=now - 300
    )
    started = time.monotonic()

    summary = run()

    assert time.monotonic() - started < 5  # no wait on the live holder
    assert summary["jobs_enqueued"] == ["job-dead"]
    assert summary["outcomes"]["skipped:deferred"] == 1
    assert pipeline.lock("job-live")["holder"] == "alive/1"
    assert int(pipeline.lock("job-dead")["takeovers"]) == 1
    assert pipeline.bodies() == [{"job_id": "job-dead"}]


@pytest.mark.usefixtures("reconcile_env")
def test_a_marked_or_started_job_costs_no_count(
    pipeline: Pipeline, lambda_clients: Any, faults: FaultInjector
) -> None:
    """Locks are read first: a job whose message was sent, or whose reassembly started,
    ends there: the only Query of the run is the index listing."""
    now = int(time.time())
    for job_id in ("job-marked", "job-started"):
        pipeline.ready_job(job_id)
    pipeline.put_lock("job-marked", holder="h", triggered_at=now, enqueued_at=now, message_id="m")
    pipeline.put_lock("job-started", triggered_at=now - 60, reassembly_started_at=now)

    summary = run()

    assert summary["outcomes"] == {
        "skipped": 2,
        "skipped:already_triggered": 1,
        "skipped:reassembly_started": 1,
    }
    assert faults.calls["Query"] == 1
    assert faults.calls["BatchGetItem"] == 1  # the locks; no Job is read for them


@pytest.mark.usefixtures("reconcile_env")
def test_a_targeted_run_reconciles_exactly_the_named_jobs_whatever_their_status(
    pipeline: Pipeline,
) -> None:
    """`{"job_ids": [...]}` evaluates those jobs and no other, through the same rules."""
    pipeline.ready_job("job-a")
    pipeline.ready_job("job-b")
    pipeline.add_job("job-c", total_segments=None, status="created")

    summary = run({"job_ids": ["job-a", "job-c", "job-a", "", 7]})

    assert summary["targeted"] is True
    assert summary["jobs_examined"] == 2
    assert summary["jobs_enqueued"] == ["job-a"]
    assert summary["outcomes"]["skipped:not_chunking_complete"] == 1
    assert pipeline.bodies() == [{"job_id": "job-a"}]


@pytest.mark.usefixtures("reconcile_env")
def test_fresh_jobs_are_left_to_the_stream_path(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Jobs created less than RECONCILE_MIN_AGE_SECONDS ago are not listed."""
    monkeypatch.setenv("RECONCILE_MIN_AGE_SECONDS", "300")
    pipeline.add_job("job-new", total_segments=1, created_at=int(time.time()) - 10)
    pipeline.complete("job-new", [0])
    pipeline.ready_job("job-old")

    summary = run()

    assert summary["jobs_enqueued"] == ["job-old"]
    assert summary["jobs_listed"] == 1


@pytest.mark.usefixtures("reconcile_env")
def test_unclaimed_messages_and_long_waits_are_reported_not_resent(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A message sent long ago and never claimed is reported (with its id and age) and
    counted in the metrics, but never re-sent; so is a job missing segments for long."""
    monkeypatch.setenv("UNCLAIMED_AFTER_SECONDS", "60")
    now = int(time.time())
    pipeline.ready_job("job-unclaimed")
    sent = now - 7200
    pipeline.put_lock(
        "job-unclaimed", holder="h", triggered_at=sent, enqueued_at=sent, message_id="m1"
    )
    pipeline.add_job("job-slow", total_segments=3)
    pipeline.complete("job-slow", [0])

    summary = run()

    assert summary["unclaimed"] == [
        {
            "job_id": "job-unclaimed",
            "message_id": "m1",
            "enqueued_at": now - 7200,
            "age_seconds": pytest.approx(7200, abs=5),
        }
    ]
    assert [w["job_id"] for w in summary["waiting_for_segments"]] == ["job-slow"]
    assert pipeline.bodies() == []
    metrics = [line for line in capsys.readouterr().out.splitlines() if "reconcile_metrics" in line]
    assert len(metrics) == 1
    assert '"Unclaimed":1' in metrics[0]
    assert '"WaitingForSegments":1' in metrics[0]


# ------------------------------------------------------------------ time and fairness


def test_a_run_out_of_time_reports_truncated_and_the_next_run_reaches_the_rest(
    pipeline: Pipeline, moto_endpoint: str, resources: Resources
) -> None:
    """GIVEN more jobs than one run has time for WHEN a run stops early THEN it reports
    `truncated`, and the next run starts after the last job reached (no job starves)."""
    job_ids = [f"job-{n}" for n in range(6)]
    for n, job_id in enumerate(job_ids):
        pipeline.add_job(job_id, total_segments=1, created_at=1793999000 + n)
        pipeline.complete(job_id, [0])
    with simulated_trigger(moto_endpoint, resources, reconcile_min_age_seconds=0) as simulated:
        reconciler, clock, faults = (
            simulated.reconciler(chunk_size=2),
            simulated.clock,
            simulated.faults,
        )
        # Each chunk's lock read and Job read take 1.5 simulated seconds (inside an
        # attempt's read timeout): a run of 5 s examines two jobs, then its time is out.
        faults.add(FaultRule("BatchGetItem", FaultKind.SLOW, seconds=1.5, advance=clock.advance))

        first = reconciler.run({}, Invocation("run-1", clock.now() + 5))
        second = reconciler.run({}, Invocation("run-2", clock.now() + 5))

    assert first.truncated
    assert first.enqueued == job_ids[:2]
    assert second.truncated
    assert second.enqueued == job_ids[2:4]
    assert pipeline.lock(RECONCILE_CURSOR_KEY)["cursor_job_id"] == "job-3"


def test_after_a_complete_run_the_next_starts_from_the_oldest_again(
    pipeline: Pipeline, moto_endpoint: str, resources: Resources
) -> None:
    """A run that reaches every job clears the cursor."""
    pipeline.ready_job("job-x", total=1)
    with simulated_trigger(moto_endpoint, resources, reconcile_min_age_seconds=0) as simulated:
        clock = simulated.clock
        result = simulated.reconciler().run({}, Invocation("run", clock.now() + 300))

    assert not result.truncated
    assert "cursor_job_id" not in pipeline.lock(RECONCILE_CURSOR_KEY)


@pytest.mark.usefixtures("reconcile_env")
def test_two_reconcile_runs_and_a_stream_invocation_on_one_job_send_one_message(
    pipeline: Pipeline,
) -> None:
    """The reconciler takes the lock with the same conditional writes as the stream path:
    any number of them at once send one message."""
    pipeline.ready_job("job-race", total=2)
    records = pipeline.completion_records("job-race", [1])
    results: list[Any] = []
    barrier = threading.Barrier(3)

    def reconcile_once() -> None:
        barrier.wait()
        results.append(run())

    def stream_once() -> None:
        barrier.wait()
        results.append(handler.lambda_handler(stream_event(*records), LocalLambdaContext()))

    threads = [threading.Thread(target=t) for t in (reconcile_once, reconcile_once, stream_once)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert len(results) == 3
    assert pipeline.bodies() == [{"job_id": "job-race"}]
    assert "enqueued_at" in pipeline.lock("job-race")


def test_the_local_stack_has_the_pipelines_status_index(
    pipeline: Pipeline, moto_endpoint: str, resources: Resources
) -> None:
    """The local stack creates the Jobs table with the pipeline's status index."""
    table = pipeline.aws.dynamodb.describe_table(TableName=resources.names.jobs_table)["Table"]
    indexes = {i["IndexName"]: i for i in table.get("GlobalSecondaryIndexes", [])}
    index = indexes["status-created_at"]
    assert [k["AttributeName"] for k in index["KeySchema"]] == ["status", "created_at"]
    assert index["Projection"]["ProjectionType"] == "ALL"


def test_a_job_with_an_impossible_creation_time_is_reached_and_the_run_ends_cleanly(
    pipeline: Pipeline, moto_endpoint: str, resources: Resources
) -> None:
    """A `created_at` no clock could give (-1E+125) neither hides the job nor breaks the
    cursor the run saves (a 126-digit number DynamoDB would refuse)."""
    pipeline.add_job("job-odd", total_segments=1, created_at=0)
    pipeline.aws.dynamodb.update_item(
        TableName=resources.names.jobs_table,
        Key={"job_id": {"S": "job-odd"}},
        UpdateExpression="SET created_at = :odd",
        ExpressionAttributeValues={":odd": {"N": "-1E+125"}},
    )
    pipeline.complete("job-odd", [0])
    with simulated_trigger(moto_endpoint, resources, reconcile_min_age_seconds=0) as simulated:
        clock = simulated.clock
        result = simulated.reconciler(chunk_size=1).run({}, Invocation("run", clock.now() + 300))

    assert result.enqueued == ["job-odd"]
    assert pipeline.bodies() == [{"job_id": "job-odd"}]


@pytest.mark.usefixtures("reconcile_env")
def test_a_run_that_cannot_list_the_jobs_reports_it_and_fails_the_invocation(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A wrong index name: the run ends with the AWS error in its summary and its metrics
    line written, then the handler raises so the function's Errors alarm sees it."""
    monkeypatch.setenv("JOBS_STATUS_INDEX_NAME", "no-such-index")

    result = reconcile.build_reconciler(process_trigger()).run(
        {}, Invocation("r", time.time() + 300)
    )
    assert result.error is not None
    assert result.as_json()["error"]["error_code"] in (
        "ValidationException",
        "ResourceNotFoundException",
    )

    with pytest.raises(reconcile.ReconcileFailed, match="stopped early"):
        run()
    assert "reconcile_metrics" in capsys.readouterr().out


@pytest.mark.usefixtures("reconcile_env")
def test_the_reconciler_warns_about_job_items_the_shared_model_refuses(
    pipeline: Pipeline,
) -> None:
    """Only status and total_segments decide; the rest of an in-flight Job is checked
    against the shared model by the reconciler (off the stream path) and logged."""
    import structlog

    pipeline.add_job("job-new-mode", total_segments=2, mode="hologram")
    pipeline.complete("job-new-mode", [0])

    with structlog.testing.capture_logs() as logs:
        summary = run()

    assert summary["outcomes"]["skipped:incomplete"] == 1
    (warning,) = [e for e in logs if e["event"] == "job_item_differs_from_model"]
    assert warning["job_id"] == "job-new-mode"
    assert any(error.startswith("mode") for error in warning["errors"])
