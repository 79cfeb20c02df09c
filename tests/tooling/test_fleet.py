"""`reconcile` shows every job in flight with its verdict; `--repair` runs the reconciler on
those the machine can finish; `doctor --repair --resend` re-sends an unclaimed message once."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from typing import Any

import pytest
from botocore.exceptions import ClientError

from reassembly_trigger.gateways import ReassemblyLock
from reassembly_trigger.local import cli
from reassembly_trigger.local.commands.doctor.diagnosis import Doctor
from reassembly_trigger.local.commands.doctor.resend import ResendLock
from reassembly_trigger.settings import Settings
from reassembly_trigger.timing import CLOCK_SKEW_SECONDS, RESEND_LEASE_SECONDS

from moto_fixtures import Pipeline, cli_json

HOUR = 3600


def fleet(pipeline: Pipeline) -> None:
    """A stuck job (complete, no lock, last write long ago), a waiting one, an unclaimed one."""
    long_ago = int(time.time()) - 2 * HOUR
    pipeline.add_job("job-stuck", total_segments=2)
    pipeline.complete("job-stuck", range(2))  # completed_at is weeks ago
    pipeline.add_job("job-waiting", total_segments=3)
    pipeline.complete("job-waiting", [0])
    pipeline.add_job("job-unclaimed", total_segments=1)
    pipeline.complete("job-unclaimed", [0])
    pipeline.put_lock(
        "job-unclaimed",
        holder="h",
        triggered_at=long_ago,
        lease_expires_at=long_ago + 60,
        enqueued_at=long_ago,
        message_id="m-old",
    )


@pytest.mark.usefixtures("lambda_env")
def test_the_fleet_view_gives_every_job_in_flight_its_verdict(
    pipeline: Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every chunking_complete job, oldest first, with doctor's verdict; exit 1 when a
    person must act; nothing written."""
    fleet(pipeline)
    pipeline.add_job("job-chunking", total_segments=None, status="chunking_in_progress")

    status, report = cli_json(capsys, "reconcile")

    assert status == 1
    verdicts = {job["job_id"]: job["verdict"] for job in report["jobs"]}
    assert verdicts == {
        "job-stuck": "stuck",
        "job-waiting": "waiting_for_segments",
        "job-unclaimed": "unclaimed",
    }
    assert all(job["age_seconds"] > 0 for job in report["jobs"])
    assert report["repair"] is None
    assert pipeline.lock("job-stuck") is None
    assert pipeline.bodies() == []


@pytest.mark.usefixtures("lambda_env")
def test_repair_runs_the_reconciler_on_what_the_machine_can_finish(
    pipeline: Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--repair` sends the stuck job's message (once) and leaves the unclaimed one to a
    person: it is reported, never re-sent."""
    fleet(pipeline)

    status, report = cli_json(capsys, "reconcile", "--repair")

    assert report["repair"]["jobs_enqueued"] == ["job-stuck"]
    verdicts = {job["job_id"]: job["verdict"] for job in report["jobs"]}
    assert verdicts["job-stuck"] == "in_progress"
    assert verdicts["job-unclaimed"] == "unclaimed"
    assert status == 1
    assert pipeline.bodies() == [{"job_id": "job-stuck"}]


@pytest.mark.usefixtures("lambda_env")
def test_the_human_table_lists_each_job_and_the_counts(
    pipeline: Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    """The table has one row per job and a line of counts by verdict."""
    fleet(pipeline)
    capsys.readouterr()

    cli.main(["reconcile", "--job", "job-waiting", "--job", "job-stuck"])

    out = capsys.readouterr().out
    assert "2 jobs in flight" in out
    assert "job-waiting" in out
    assert "job-unclaimed" not in out
    assert "verdicts: stuck 1, waiting_for_segments 1" in out


@pytest.mark.usefixtures("lambda_env")
def test_resend_sends_an_unclaimed_message_once_even_when_two_people_try(
    pipeline: Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two `doctor --repair --resend` at once: one message, the new id and count recorded."""
    fleet(pipeline)
    results: list[int] = []
    barrier = threading.Barrier(2)

    def resend() -> None:
        barrier.wait()
        results.append(cli.main(["doctor", "job-unclaimed", "--repair", "--resend", "--json"]))

    threads = [threading.Thread(target=resend) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert sorted(results) == [0, 1]
    assert pipeline.bodies() == [{"job_id": "job-unclaimed"}]
    lock = pipeline.lock("job-unclaimed")
    assert lock["message_id"] != "m-old"
    assert int(lock["resends"]) == 1


@pytest.mark.usefixtures("lambda_env")
def test_resend_refuses_a_job_never_sent_or_already_claimed(
    pipeline: Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    """Re-sending is only for a message sent and never claimed."""
    fleet(pipeline)
    pipeline.put_lock("job-claimed", triggered_at=1, enqueued_at=2, reassembly_started_at=3)

    assert cli.main(["doctor", "job-stuck", "--repair", "--resend"]) == 1
    assert cli.main(["doctor", "job-claimed", "--repair", "--resend"]) == 1
    assert pipeline.bodies() == []


@pytest.mark.usefixtures("lambda_env")
def test_repair_timeout_is_capped_by_the_parser(capsys: pytest.CaptureFixture[str]) -> None:
    """No lease may outlive Lambda's maximum timeout: --timeout above 900 is refused."""
    with pytest.raises(SystemExit) as exited:
        cli.main(["doctor", "job-x", "--repair", "--timeout", "31536000"])
    assert exited.value.code == 2
    assert "at most 900 seconds" in capsys.readouterr().err


class _SteppedClock:
    """Real epoch time plus what the test adds (a re-send's lease running out)."""

    def __init__(self) -> None:
        self.ahead = 0.0

    def now(self) -> float:
        return time.time() + self.ahead

    def sleep(self, seconds: float) -> None:
        self.ahead += seconds


@pytest.mark.usefixtures("lambda_env")
def test_a_resend_claimed_by_someone_else_and_not_yet_recorded_is_not_doubled(
    pipeline: Pipeline,
) -> None:
    """Each order of two re-senders sends one message: read before the other's claim
    (its count moved), read between its claim and its record (its lease holds), read after
    its record (the message is recent, not unclaimed); a re-sender that died after its
    claim holds the others off only until its lease ends."""
    fleet(pipeline)
    clock = _SteppedClock()
    first, second = Doctor.from_environment(clock=clock), Doctor.from_environment(clock=clock)
    lock = ReassemblyLock(pipeline.aws.dynamodb, pipeline.names.reassembly_triggered_table)
    seen = lock.read("job-unclaimed")
    assert seen is not None

    # The first re-sender claims and (as far as the second can tell) is still sending.
    ResendLock(lock).claim(seen, "resend-first", int(clock.now()))
    assert second.resend("job-unclaimed").sent is False
    assert pipeline.bodies() == []

    # It died there: once its lease is over, the second may re-send, once.
    clock.sleep(RESEND_LEASE_SECONDS + CLOCK_SKEW_SECONDS + 1)
    done = second.resend("job-unclaimed")
    assert done.sent is True
    assert first.resend("job-unclaimed").sent is False  # recent: not unclaimed
    assert pipeline.bodies() == [{"job_id": "job-unclaimed"}]
    recorded = pipeline.lock("job-unclaimed")
    assert recorded is not None
    assert recorded["message_id"] == done.message_id
    assert int(recorded["resends"]) == 2
    assert "resend_lease_expires_at" not in recorded


@pytest.mark.usefixtures("lambda_env")
@pytest.mark.parametrize(
    "lease",
    [{"NULL": True}, {"S": "soon"}, {"L": []}],
    ids=["null", "string", "list"],
)
def test_a_resend_lease_of_any_shape_never_blocks_re_sending_for_ever(
    pipeline: Pipeline, lease: dict[str, Any]
) -> None:
    """A `resend_lease_expires_at` that is not a number is no re-send in progress: the
    claim is conditioned on it as read, and the message is re-sent once."""
    fleet(pipeline)
    pipeline.update_lock(
        "job-unclaimed",
        "SET resend_lease_expires_at = :v, resent_at = :at",
        {":v": lease, ":at": {"N": str(int(time.time()))}},
    )

    assert Doctor.from_environment().resend("job-unclaimed").sent is True
    assert pipeline.bodies() == [{"job_id": "job-unclaimed"}]


@pytest.mark.usefixtures("lambda_env")
def test_a_resend_lease_far_ahead_holds_others_off_only_as_long_as_a_claim_could(
    pipeline: Pipeline,
) -> None:
    """A lease a year ahead (a re-sender's clock far off) is believed only up to
    `RESEND_LEASE_SECONDS` after its claim (plus the clock skew)."""
    fleet(pipeline)
    clock = _SteppedClock()
    year_ahead = int(clock.now()) + 365 * 86400
    pipeline.update_lock(
        "job-unclaimed",
        "SET resend_lease_expires_at = :v, resent_at = :at",
        {":v": {"N": str(year_ahead)}, ":at": {"N": str(int(clock.now()))}},
    )
    doctor = Doctor.from_environment(clock=clock)

    refused = doctor.resend("job-unclaimed")
    assert refused.sent is False
    assert "in progress" in refused.reason

    # Nothing moved it since, and no claim could have set it that far: not waited for.
    clock.sleep(RESEND_LEASE_SECONDS + 3)
    assert doctor.resend("job-unclaimed").sent is True
    assert pipeline.bodies() == [{"job_id": "job-unclaimed"}]


@pytest.mark.usefixtures("lambda_env")
def test_a_resend_whose_send_fails_ends_its_claim_so_no_one_waits_for_it(
    pipeline: Pipeline,
) -> None:
    """The send fails (the queue is gone): the error is reported and the claim's lease is
    removed, so the next re-send goes at once."""
    fleet(pipeline)
    settings = Settings.from_env()
    gone = replace(settings, reassembly_queue_url=settings.reassembly_queue_url + "-gone")

    with pytest.raises(ClientError):
        Doctor.from_environment(gone).resend("job-unclaimed")
    after = pipeline.lock("job-unclaimed")
    assert after is not None
    assert "resend_lease_expires_at" not in after

    assert Doctor.from_environment().resend("job-unclaimed").sent is True
    assert pipeline.bodies() == [{"job_id": "job-unclaimed"}]
