"""`doctor` tells where a job stands and what to do next; `--repair` triggers it as the
Lambda would, and never otherwise."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from reassembly_trigger.local import cli

from moto_fixtures import Pipeline, cli_json, run_cli

HOUR = 3600


def nothing_written(pipeline: Pipeline, job_id: str) -> bool:
    """No lock item and no message: the diagnosis changed nothing."""
    return pipeline.lock(job_id) is None and pipeline.bodies() == []


# ------------------------------------------------------------------ verdicts


@pytest.mark.usefixtures("lambda_env")
def test_an_unknown_job_is_not_found(capsys: pytest.CaptureFixture[str]) -> None:
    """A job id without a Job item is `not_found`, exit 1, pointing at the id and the
    environment."""
    status, report = cli_json(capsys, "doctor", "job-nobody")

    assert status == 1
    assert report["verdict"] == "not_found"
    assert report["status"] is None
    assert report["lock"] is None
    assert "JOBS_TABLE_NAME" in report["next_action"]


@pytest.mark.usefixtures("lambda_env")
@pytest.mark.parametrize(
    ("job", "expected"),
    [
        ({"status": "chunking_complete", "total_segments": None}, "no total_segments"),
        ({"status": "failed", "total_segments": 3}, "failed upstream"),
        (
            {
                "status": "chunking_complete",
                "total_segments": None,
                "total_segments_raw": {"S": "3"},
            },
            "total_segments",
        ),
    ],
    ids=["total_segments_missing", "job_failed", "total_segments_not_a_number"],
)
def test_a_job_that_can_never_be_triggered_is_invalid(
    pipeline: Pipeline,
    capsys: pytest.CaptureFixture[str],
    job: dict[str, Any],
    expected: str,
) -> None:
    """A Job that no evaluation can ever trigger is `invalid`, exit 1, saying why."""
    pipeline.add_job("job-bad", **job)
    pipeline.complete("job-bad", range(3))

    status, report = cli_json(capsys, "doctor", "job-bad")

    assert status == 1
    assert report["verdict"] == "invalid"
    assert expected in report["reason"]
    assert nothing_written(pipeline, "job-bad")


@pytest.mark.usefixtures("lambda_env")
def test_a_job_still_chunking_waits_for_chunking(
    pipeline: Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    """Completions before chunking completes: `waiting_for_chunking`, exit 0, and the
    next action names the Jobs-stream record that re-evaluates it."""
    pipeline.add_job("job-chunking", status="chunking_in_progress", total_segments=None)
    pipeline.complete("job-chunking", [0, 1])

    status, report = cli_json(capsys, "doctor", "job-chunking")

    assert status == 0
    assert report["verdict"] == "waiting_for_chunking"
    assert (report["status"], report["total_segments"]) == ("chunking_in_progress", None)
    assert report["completions"] == 2
    assert "chunking_complete" in report["next_action"]


@pytest.mark.usefixtures("lambda_env")
def test_an_incomplete_job_names_its_missing_and_out_of_range_segments(
    pipeline: Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    """GIVEN 6 segments with 1 and 4 missing and a stray index 9 WHEN diagnosed THEN the
    verdict is `waiting_for_segments` with exactly those indexes and 4 completions."""
    pipeline.add_job("job-partial", total_segments=6)
    pipeline.complete("job-partial", [0, 2, 3, 5, 9])

    status, report = cli_json(capsys, "doctor", "job-partial")

    assert status == 0
    assert report["verdict"] == "waiting_for_segments"
    assert report["completions"] == 4
    assert report["missing_segments"] == [1, 4]
    assert report["out_of_range_segments"] == [9]
    assert "1, 4" in report["next_action"]
    assert report["machine"]["reason"] == "incomplete"
    assert nothing_written(pipeline, "job-partial")


@pytest.mark.usefixtures("lambda_env")
def test_a_job_completed_moments_ago_would_trigger(
    pipeline: Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    """A complete job without lock whose last completion is seconds old is `would_trigger`
    (the Lambda is about to act), exit 0, and the dry run writes nothing."""
    pipeline.add_job("job-fresh", total_segments=3)
    pipeline.complete("job-fresh", range(3), completed_at=int(time.time() - 5))

    status, report = cli_json(capsys, "doctor", "job-fresh")

    assert status == 0
    assert report["verdict"] == "would_trigger"
    assert report["machine"] == {
        "state": "counted",
        "reason": None,
        "would": "acquire",
        "path": ["received", "loaded", "counted"],
    }
    assert "--repair" in report["next_action"]
    assert nothing_written(pipeline, "job-fresh")


@pytest.mark.usefixtures("lambda_env")
def test_a_complete_job_nobody_locked_long_ago_is_stuck(
    pipeline: Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every segment done an hour ago and no lock: `stuck`, exit 1, next action `--repair`;
    diagnosing it writes nothing."""
    pipeline.add_job("job-stuck", total_segments=3)
    pipeline.complete("job-stuck", range(3), completed_at=int(time.time() - HOUR))

    status, report = cli_json(capsys, "doctor", "job-stuck")

    assert status == 1
    assert report["verdict"] == "stuck"
    assert report["missing_segments"] == []
    assert report["lock"] is None
    assert "doctor job-stuck --repair" in report["next_action"]
    assert nothing_written(pipeline, "job-stuck")


@pytest.mark.usefixtures("lambda_env")
@pytest.mark.parametrize(
    "lock",
    [
        {"holder": "req-old/1", "triggered_at": -HOUR, "lease_expires_at": -HOUR + 60},
        {"triggered_at": -HOUR},  # written before leases: leased for LOCK_LEASE_SECONDS
    ],
    ids=["expired_lease", "legacy_lock"],
)
def test_an_unmarked_lock_past_its_lease_is_stuck(
    pipeline: Pipeline, capsys: pytest.CaptureFixture[str], lock: dict[str, Any]
) -> None:
    """A lock never marked as enqueued whose lease ended long ago: its holder is gone and
    nothing retries it, so `stuck`; the machine would take it over."""
    now = int(time.time())
    pipeline.add_job("job-orphan", total_segments=2)
    pipeline.complete("job-orphan", range(2), completed_at=now - HOUR)
    pipeline.put_lock(
        "job-orphan", **{k: v if isinstance(v, str) else now + v for k, v in lock.items()}
    )

    status, report = cli_json(capsys, "doctor", "job-orphan")

    assert status == 1
    assert report["verdict"] == "stuck"
    assert report["lock"]["lease"] == "over"
    assert report["lock"]["lease_seconds_left"] < 0
    assert report["machine"]["would"] == "take_over"
    assert "--repair" in report["next_action"]
    assert pipeline.bodies() == []


@pytest.mark.usefixtures("lambda_env")
def test_a_lock_released_moments_ago_would_trigger(
    pipeline: Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    """A holder that failed just now released its lock; Lambda retries its records, so
    the job `would_trigger` rather than being stuck."""
    now = int(time.time())
    pipeline.add_job("job-retry", total_segments=2)
    pipeline.complete("job-retry", range(2), completed_at=now - 40)
    pipeline.put_lock("job-retry", holder="req-1/a", triggered_at=now - 30, lease_expires_at=0)

    status, report = cli_json(capsys, "doctor", "job-retry")

    assert status == 0
    assert report["verdict"] == "would_trigger"
    assert report["lock"]["lease"] == "released"
    assert report["machine"]["would"] == "take_over"


@pytest.mark.usefixtures("lambda_env")
def test_an_enqueued_job_is_in_progress(
    pipeline: Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    """The lock records the sent message: `in_progress`, awaiting the media worker."""
    now = int(time.time())
    pipeline.add_job("job-sent", total_segments=2)
    pipeline.complete("job-sent", range(2))
    pipeline.put_lock(
        "job-sent",
        holder="req-1/a",
        triggered_at=now - 20,
        lease_expires_at=now + 40,
        enqueued_at=now - 19,
        message_id="msg-123",
    )

    status, report = cli_json(capsys, "doctor", "job-sent")

    assert status == 0
    assert report["verdict"] == "in_progress"
    assert "msg-123" in report["reason"]
    assert report["lock"]["message_id"] == "msg-123"
    assert "dead-letter" in report["next_action"]


@pytest.mark.usefixtures("lambda_env")
def test_a_holder_within_its_lease_is_in_progress(
    pipeline: Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    """A lock not yet marked whose holder is within its lease: `in_progress`; the machine
    would defer to it (a dry run never waits)."""
    now = int(time.time())
    pipeline.add_job("job-held", total_segments=2)
    pipeline.complete("job-held", range(2))
    pipeline.put_lock("job-held", holder="req-2/b", triggered_at=now - 5, lease_expires_at=now + 55)

    status, report = cli_json(capsys, "doctor", "job-held")

    assert status == 0
    assert report["verdict"] == "in_progress"
    assert report["lock"]["lease"] == "active"
    assert (report["machine"]["reason"], report["machine"]["would"]) == ("deferred", None)
    assert "req-2/b" in report["reason"]


@pytest.mark.usefixtures("lambda_env")
@pytest.mark.parametrize("how", ["reassembly_started", "job_completed"])
def test_a_claimed_or_completed_job_is_reassembled(
    pipeline: Pipeline, capsys: pytest.CaptureFixture[str], how: str
) -> None:
    """The media worker's claim (`reassembly_started_at`) or a completed Job: `reassembled`."""
    now = int(time.time())
    status_of_job = "completed" if how == "job_completed" else "chunking_complete"
    pipeline.add_job("job-done", total_segments=2, status=status_of_job)
    pipeline.complete("job-done", range(2))
    if how == "reassembly_started":
        pipeline.put_lock(
            "job-done",
            triggered_at=now - 60,
            enqueued_at=now - 59,
            message_id="m",
            reassembly_started_at=now - 50,
        )

    status, report = cli_json(capsys, "doctor", "job-done")

    assert status == 0
    assert report["verdict"] == "reassembled"
    assert report["next_action"].startswith("Nothing to do")


@pytest.mark.usefixtures("lambda_env")
def test_the_human_report_ends_with_the_next_action(
    pipeline: Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --json, a short report: the verdict first, the next action last."""
    pipeline.add_job("job-h", total_segments=3)
    pipeline.complete("job-h", [0, 2], completed_at=int(time.time() - HOUR))
    capsys.readouterr()

    status = cli.main(["doctor", "job-h"])

    lines = [line.rstrip() for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert status == 0
    assert "WAITING_FOR_SEGMENTS" in lines[1]
    assert any("2 of 3; missing: 1" in line for line in lines)
    next_row = max(i for i, line in enumerate(lines) if line.startswith("next"))
    assert all(line.startswith(" ") for line in lines[next_row + 1 :])  # wrapped text only


def test_without_the_lambda_environment_doctor_says_what_is_missing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """No table names in the environment: exit 2 with the missing variables named."""
    status = cli.main(["doctor", "job-x"])

    assert status == 2
    assert "JOBS_TABLE_NAME" in capsys.readouterr().err


# ------------------------------------------------------------------ repair


@pytest.mark.usefixtures("lambda_env")
def test_repair_takes_over_a_stale_unmarked_lock_and_enqueues_the_job(
    pipeline: Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    """GIVEN a complete job whose lock was never marked and whose lease ended an hour ago
    WHEN repaired THEN the real machine takes the lock over, sends one message and marks
    the lock, and the job is then `in_progress`."""
    now = int(time.time())
    pipeline.add_job("job-orphan", total_segments=3)
    pipeline.complete("job-orphan", range(3), completed_at=now - HOUR)
    pipeline.put_lock(
        "job-orphan", holder="req-dead/1", triggered_at=now - HOUR, lease_expires_at=now - HOUR + 60
    )

    status, result = cli_json(capsys, "doctor", "job-orphan", "--repair", "--timeout", "60")

    assert status == 0
    assert result["outcome"] == "enqueued"
    assert [t["trigger"] for t in result["transitions"]] == [
        "load",
        "count",
        "contend",
        "take_over",
        "send",
        "mark",
    ]
    assert pipeline.bodies() == [{"job_id": "job-orphan"}]
    lock = pipeline.lock("job-orphan")
    assert lock is not None
    assert lock["message_id"] == result["message_id"]
    assert "enqueued_at" in lock
    assert int(lock["takeovers"]) == 1
    assert result["after"]["verdict"] == "in_progress"


@pytest.mark.usefixtures("lambda_env")
def test_repair_refuses_an_incomplete_job(
    pipeline: Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    """A job with a missing segment is skipped as incomplete by the real machine: nothing
    is locked, nothing is sent, exit 1."""
    now = int(time.time())
    pipeline.add_job("job-partial", total_segments=3)
    pipeline.complete("job-partial", [0, 1], completed_at=now - HOUR)

    status, result = cli_json(capsys, "doctor", "job-partial", "--repair")

    assert status == 1
    assert (result["outcome"], result["reason"]) == ("skipped", "incomplete")
    assert nothing_written(pipeline, "job-partial")
    assert result["after"]["missing_segments"] == [2]


@pytest.mark.usefixtures("lambda_env")
def test_repair_of_a_stale_lock_on_an_incomplete_job_sends_nothing(
    pipeline: Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    """A stale lock does not make an incomplete job sendable: the count comes first."""
    now = int(time.time())
    pipeline.add_job("job-half", total_segments=4)
    pipeline.complete("job-half", [0, 1], completed_at=now - HOUR)
    pipeline.put_lock(
        "job-half", holder="x/1", triggered_at=now - HOUR, lease_expires_at=now - HOUR
    )

    status, result = cli_json(capsys, "doctor", "job-half", "--repair")

    assert status == 1
    assert result["reason"] == "incomplete"
    assert pipeline.bodies() == []
    lock = pipeline.lock("job-half")
    assert lock is not None
    assert lock["holder"] == "x/1"


@pytest.mark.usefixtures("lambda_env")
def test_repair_of_an_enqueued_job_sends_nothing_more(
    pipeline: Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    """Already sent: the machine skips as already_triggered; nothing to repair, exit 0."""
    now = int(time.time())
    pipeline.add_job("job-sent", total_segments=1)
    pipeline.complete("job-sent", [0])
    pipeline.put_lock("job-sent", triggered_at=now - 60, enqueued_at=now - 59, message_id="m-1")

    status, result = cli_json(capsys, "doctor", "job-sent", "--repair")

    assert status == 0
    assert result["reason"] == "already_triggered"
    assert pipeline.bodies() == []


@pytest.mark.usefixtures("lambda_env")
def test_repair_prints_the_transitions_and_the_verdict_after(
    pipeline: Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    """The human repair output lists the machine's transitions, says it sent, and ends
    with the fresh diagnosis."""
    pipeline.add_job("job-nolock", total_segments=1)
    pipeline.complete("job-nolock", [0], completed_at=int(time.time() - HOUR))
    capsys.readouterr()

    status = cli.main(["doctor", "job-nolock", "--repair"])

    out = capsys.readouterr().out
    assert status == 0
    assert "counted -> locked" in out
    assert "sent: message" in out
    assert "IN_PROGRESS" in out
    assert pipeline.bodies() == [{"job_id": "job-nolock"}]


# ------------------------------------------------------------------ errors, one line each

#: An endpoint nothing listens on: every call fails to connect.
DEAD_ENDPOINT = "http://127.0.0.1:9"


@pytest.mark.usefixtures("lambda_env")
@pytest.mark.parametrize(
    ("options", "what"),
    [([], "the dry run of job-1 failed"), (["--repair"], "the repair of job-1 failed")],
    ids=["diagnose", "repair"],
)
def test_an_endpoint_that_does_not_answer_is_one_line_naming_what_the_user_asked(
    options: list[str], what: str
) -> None:
    """GIVEN an endpoint that refuses connections WHEN `doctor job-1` (or `--repair`) runs
    in a fresh process THEN stderr is one line, exit 3: no structlog `[error] transition`
    line beside it, and with --repair the line speaks of the repair, not of a dry run."""
    result = run_cli("doctor", "job-1", *options, "--endpoint-url", DEAD_ENDPOINT)

    assert result.returncode == 3
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"doctor: {what} (aws_error)")
    assert "127.0.0.1:9" in lines[0]


@pytest.mark.usefixtures("lambda_env")
def test_reconcile_against_an_endpoint_that_does_not_answer_is_one_line() -> None:
    """The sibling in `reconcile`: one line, exit 3, no log lines around it."""
    result = run_cli("reconcile", "--endpoint-url", DEAD_ENDPOINT)

    assert result.returncode == 3
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.usefixtures("lambda_env")
def test_replay_reports_failed_jobs_in_its_table_not_as_log_lines_too() -> None:
    """The sibling in `replay`: the failed transitions are in its report (exit 1), and
    not printed again on stderr as `[error] transition` lines."""
    event = Path(__file__).parents[1] / "events" / "segment-completions-batch.json"

    result = run_cli("replay", str(event), "--endpoint-url", DEAD_ENDPOINT)

    assert result.returncode == 1
    assert "aws_error" in result.stdout
    assert "transition" not in result.stderr
