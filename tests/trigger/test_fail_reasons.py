"""Every failure is explained: each reason in the closed set is reached and logged with its
code, and the failed job's records are reported to Lambda for retry."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from reassembly_trigger.local.aws.faults import FaultKind, FaultRule
from reassembly_trigger.local.invocations.records import stream_event
from reassembly_trigger.machine import FAIL_REASONS, FailReason
from reassembly_trigger.timing import ANSWER_RESERVE_SECONDS, LOCK_STEP_SECONDS

from adversary import Adversary


def _aws_error(adv: Adversary) -> float:
    # SQS fails the send with a 5xx (one attempt: no botocore retry).
    adv.faults.add(FaultRule("SendMessage", FaultKind.SERVER_ERROR))
    return 60.0


def _lock_lost(adv: Adversary) -> float:
    # While our message is on its way, another evaluation takes the lock over (as one may
    # once our lease is over): our enqueue mark's condition on the holder fails.
    def taken_over() -> None:
        now = int(adv.clock.now())
        adv.pipeline.update_lock(
            "job-x",
            "SET holder = :holder, taken_over_at = :now, takeovers = :one",
            {":holder": {"S": "taker/1"}, ":now": {"N": str(now)}, ":one": {"N": "1"}},
        )

    adv.faults.add(FaultRule("SendMessage", FaultKind.PAUSE, times=1, action=taken_over))
    return 60.0


def _deadline(adv: Adversary) -> float:
    # Time for the Job read and the count (one bounded call each), not for the lock
    # step (the lock, then the send and the mark in their normal case).
    return ANSWER_RESERVE_SECONDS + LOCK_STEP_SECONDS - 0.05


def _unexpected_error(adv: Adversary) -> float:
    # SQS answers 200 without a MessageId: no AWS error, but nothing our code can use.
    adv.faults.add(FaultRule("SendMessage", FaultKind.EMPTY_RESPONSE))
    return 60.0


SCENARIOS: dict[FailReason, Callable[[Adversary], float]] = {
    FailReason.AWS_ERROR: _aws_error,
    FailReason.LOCK_LOST: _lock_lost,
    FailReason.DEADLINE: _deadline,
    FailReason.UNEXPECTED_ERROR: _unexpected_error,
}


def test_every_fail_reason_has_a_scenario() -> None:
    """Adding a fail reason without a scenario that reaches it fails this suite."""
    assert set(SCENARIOS) == set(FailReason)
    assert set(FAIL_REASONS) == set(FailReason)


@pytest.mark.parametrize("reason", list(SCENARIOS), ids=str)
def test_each_fail_reason_is_reached_logged_and_reported(
    reason: FailReason, adv: Adversary
) -> None:
    """GIVEN the state that calls for the reason WHEN the job's records arrive THEN it ends
    `failed` with that code and the fields that explain it (`lease_released` exactly when
    it held the lock), and its lowest record is reported for retry."""
    records = adv.pipeline.ready_job("job-x")
    remaining = SCENARIOS[reason](adv)

    response = adv.invoke(stream_event(*records), remaining=remaining)

    assert response == {
        "batchItemFailures": [{"itemIdentifier": records[0]["dynamodb"]["SequenceNumber"]}]
    }
    assert adv.returned_at <= adv.deadline
    final = adv.final("job-x")
    assert (final["dest"], final["reason"]) == ("failed", reason)
    held_the_lock = "locked" in {t["dest"] for t in adv.transitions("job-x")}
    for field in FAIL_REASONS[reason].fields:
        if field == "lease_released":
            assert (field in final) == held_the_lock
        else:
            assert field in final, f"{reason} must log {field}"
