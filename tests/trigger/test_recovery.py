"""Never stuck, never twice: every failure between the lock and the message is recovered.

Each test calls Lambda's entry point on the real trigger against the moto server, with
faults injected at the HTTP layer of its own clients and a simulated clock (the
adversary's harness, `adversary.py`), so leases pass without any real waiting. The
media worker model shows that a duplicate message never means a second reassembly.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from reassembly_trigger.batch import PartialBatchResponse
from reassembly_trigger.gateways import fifo_message_ids
from reassembly_trigger.local.aws.faults import FaultKind, FaultRule, SimulatedCrash
from reassembly_trigger.local.invocations.records import stream_event
from reassembly_trigger.settings import DEFAULT_LOCK_LEASE_SECONDS
from reassembly_trigger.timing import (
    ANSWER_RESERVE_SECONDS,
    CLOCK_SKEW_SECONDS,
    LOCK_STEP_SECONDS,
)

from adversary import MARK, TAKE_OVER, Adversary, Arena, adversary


def lock_values(adv: Adversary, job_id: str) -> dict[str, Any]:
    """The job's lock item (it must exist), plain values."""
    lock = adv.pipeline.lock(job_id)
    assert lock is not None
    return lock


# ------------------------------------------------------------------ a holder that fails


def test_a_failed_send_releases_the_lease_and_the_retry_takes_over_and_sends_once(
    adv: Adversary,
) -> None:
    """GIVEN SendMessage failing through every retry WHEN the job is evaluated THEN it
    fails with its records reported, its lease ended at once (0, no enqueue mark); AND
    the retry takes the lock over at once and sends exactly one message."""
    records = adv.pipeline.ready_job("job-send")
    # SendMessage has one attempt (no botocore retry): one fault fails the send.
    adv.faults.add(FaultRule("SendMessage", FaultKind.SERVER_ERROR, times=1))

    first = adv.invoke(stream_event(*records))

    assert first == {
        "batchItemFailures": [{"itemIdentifier": records[0]["dynamodb"]["SequenceNumber"]}]
    }
    final = adv.final("job-send")
    assert (final["dest"], final["reason"], final["lease_released"]) == (
        "failed",
        "aws_error",
        True,
    )
    lock = lock_values(adv, "job-send")
    assert int(lock["lease_expires_at"]) == 0
    assert "enqueued_at" not in lock
    assert adv.messages_for("job-send") == 0

    adv.logs.clear()
    retry = adv.invoke(stream_event(*records))

    assert retry == {"batchItemFailures": []}
    assert adv.triggers("job-send") == ["load", "count", "contend", "take_over", "send", "mark"]
    assert adv.messages_for("job-send") == 1
    assert "enqueued_at" in lock_values(adv, "job-send")


def test_a_crash_after_the_lock_is_taken_over_once_its_lease_has_passed(
    adv: Adversary,
) -> None:
    """GIVEN an invocation killed between its lock and its send (no release) WHEN its
    records come back after its deadline THEN the lock is taken over and one message sent."""
    records = adv.pipeline.ready_job("job-crash")
    adv.faults.add(FaultRule("SendMessage", FaultKind.CRASH, times=1))

    with pytest.raises(SimulatedCrash):
        adv.invoke(stream_event(*records), remaining=60)

    lock = lock_values(adv, "job-crash")
    lease = int(lock["lease_expires_at"])
    assert lease >= adv.clock.now() + 59
    assert "enqueued_at" not in lock
    adv.clock.set(lease + CLOCK_SKEW_SECONDS)  # Lambda killed it at its deadline

    adv.logs.clear()
    assert adv.invoke(stream_event(*records)) == {"batchItemFailures": []}

    take_over = [t for t in adv.transitions("job-crash") if t["trigger"] == "take_over"]
    assert len(take_over) == 1
    assert take_over[0]["lock"]["lease_expires_at"] == lease
    assert adv.messages_for("job-crash") == 1
    assert int(lock_values(adv, "job-crash")["takeovers"]) == 1


def test_an_expired_lock_left_by_a_dead_holder_is_taken_over(adv: Adversary) -> None:
    """A lock whose lease is in the past and that was never marked is taken over at once."""
    records = adv.pipeline.ready_job("job-dead")
    now = int(adv.clock.now())
    adv.pipeline.put_lock(
        "job-dead", triggered_at=now - 120, holder="dead/1", lease_expires_at=now - 60
    )

    assert adv.invoke(stream_event(*records)) == {"batchItemFailures": []}

    assert adv.triggers("job-dead")[-4:] == ["contend", "take_over", "send", "mark"]
    assert adv.messages_for("job-dead") == 1


def test_a_failed_mark_after_a_successful_send_costs_at_most_a_duplicate(
    adv: Adversary,
) -> None:
    """GIVEN the enqueue mark failing after the message was sent WHEN the job fails and is
    retried THEN the retry takes over and sends again, and the media worker's lock runs
    the reassembly once and absorbs the duplicate."""
    records = adv.pipeline.ready_job("job-mark")
    adv.faults.add(FaultRule("UpdateItem", FaultKind.SERVER_ERROR, times=3, body_contains=MARK))

    first = adv.invoke(stream_event(*records))

    assert first["batchItemFailures"]
    final = adv.final("job-mark")
    assert (final["dest"], final["reason"], final["lease_released"]) == (
        "failed",
        "aws_error",
        True,
    )

    assert adv.invoke(stream_event(*records)) == {"batchItemFailures": []}
    assert "enqueued_at" in lock_values(adv, "job-mark")

    adv.worker.drain()
    tally = adv.worker.tally("job-mark")
    assert (tally.messages_received, tally.reassemblies, tally.duplicates_absorbed) == (2, 1, 1)


def test_a_crash_after_the_send_is_not_re_sent_once_the_media_worker_claimed_it(
    adv: Adversary,
) -> None:
    """GIVEN an invocation killed between its send and its mark, and the media worker
    having claimed the job (`reassembly_started_at`, still concatenating) WHEN the records
    come back after the lease THEN the job is skipped as `reassembly_started`: one message."""
    records = adv.pipeline.ready_job("job-started")
    adv.faults.add(FaultRule("UpdateItem", FaultKind.CRASH, times=1, body_contains=MARK))

    with pytest.raises(SimulatedCrash):
        adv.invoke(stream_event(*records))
    assert adv.messages_for("job-started") == 1
    now = int(adv.clock.now())
    adv.pipeline.update_lock(
        "job-started", "SET reassembly_started_at = :now", {":now": {"N": str(now)}}
    )
    adv.clock.advance(120)

    assert adv.invoke(stream_event(*records)) == {"batchItemFailures": []}

    final = adv.final("job-started")
    assert (final["dest"], final["reason"]) == ("skipped", "reassembly_started")
    assert adv.messages_for("job-started") == 1


def test_a_crash_after_the_send_is_not_re_sent_once_the_job_completed(adv: Adversary) -> None:
    """Same crash, but the media worker already finished: the Job is `completed`, so the
    retry stops at loading it. One message, one reassembly."""
    records = adv.pipeline.ready_job("job-done")
    adv.faults.add(FaultRule("UpdateItem", FaultKind.CRASH, times=1, body_contains=MARK))

    with pytest.raises(SimulatedCrash):
        adv.invoke(stream_event(*records))
    adv.worker.drain()
    adv.clock.advance(120)

    assert adv.invoke(stream_event(*records)) == {"batchItemFailures": []}

    final = adv.final("job-done")
    assert (final["dest"], final["reason"]) == ("skipped", "not_chunking_complete")
    tally = adv.worker.tally("job-done")
    assert (tally.messages_received, tally.reassemblies) == (1, 1)
    assert adv.messages_for("job-done") == 0


def test_reassembly_started_is_final_even_on_an_expired_unmarked_lock(adv: Adversary) -> None:
    """`reassembly_started_at` on the lock means the media worker has the job: skip."""
    records = adv.pipeline.ready_job("job-rs")
    now = int(adv.clock.now())
    adv.pipeline.put_lock(
        "job-rs",
        triggered_at=now - 999,
        holder="old/1",
        lease_expires_at=now - 900,
        reassembly_started_at=now - 10,
    )

    assert adv.invoke(stream_event(*records)) == {"batchItemFailures": []}

    final = adv.final("job-rs")
    assert (final["dest"], final["reason"]) == ("skipped", "reassembly_started")
    assert adv.messages_for("job-rs") == 0


# ------------------------------------------------------------------ lost responses


def test_ctrl_c_between_the_lock_and_the_send_releases_the_lease(adv: Adversary) -> None:
    """GIVEN a caller interrupted (KeyboardInterrupt, any BaseException) after taking the
    lock WHEN the interrupt unwinds THEN the lease is released on the way out, so the next
    evaluation takes the lock over at once instead of waiting for the lease."""
    records = adv.pipeline.ready_job("job-ctrl-c")

    def interrupt() -> None:
        raise KeyboardInterrupt

    adv.faults.add(FaultRule("SendMessage", FaultKind.PAUSE, times=1, action=interrupt))

    with pytest.raises(KeyboardInterrupt):
        adv.invoke(stream_event(*records), remaining=600)

    assert int(lock_values(adv, "job-ctrl-c")["lease_expires_at"]) == 0
    adv.logs.clear()
    assert adv.invoke(stream_event(*records)) == {"batchItemFailures": []}
    assert adv.triggers("job-ctrl-c")[-4:] == ["contend", "take_over", "send", "mark"]
    assert adv.messages_for("job-ctrl-c") == 1


def test_every_send_response_lost_still_never_leaves_the_job_stuck(adv: Adversary) -> None:
    """SQS carries the send out but answers after the read timeout: botocore does not
    send again (one attempt), the job fails and lets go, the retry sends once more and
    is marked. At most 2 messages for the fault, one reassembly."""
    records = adv.pipeline.ready_job("job-lost3")
    adv.faults.add(FaultRule("SendMessage", FaultKind.LOST_RESPONSE, times=1))

    assert adv.invoke(stream_event(*records))["batchItemFailures"]
    assert int(lock_values(adv, "job-lost3")["lease_expires_at"]) == 0
    assert adv.invoke(stream_event(*records)) == {"batchItemFailures": []}

    adv.worker.drain()
    tally = adv.worker.tally("job-lost3")
    assert (tally.messages_received, tally.reassemblies) == (2, 1)


def test_a_lost_response_to_the_lock_creation_does_not_wait_for_itself(
    adv: Adversary,
) -> None:
    """DynamoDB created the lock but the answer was lost; botocore's retry then finds the
    lock: it is this evaluation's own (same holder), so it sends at once."""
    records = adv.pipeline.ready_job("job-own")
    adv.faults.add(FaultRule("PutItem", FaultKind.LOST_RESPONSE, times=1))
    started = adv.clock.now()

    assert adv.invoke(stream_event(*records)) == {"batchItemFailures": []}

    assert adv.final("job-own")["dest"] == "enqueued"
    assert "wait" not in adv.triggers("job-own")
    assert adv.clock.now() - started < 5
    assert adv.messages_for("job-own") == 1


def test_a_lost_response_to_a_take_over_does_not_wait_for_itself(adv: Adversary) -> None:
    """The take-over was applied but its answer lost; the retry's condition then fails on
    our own update: the evaluation recognises its own holder and sends at once."""
    records = adv.pipeline.ready_job("job-own-t")
    now = int(adv.clock.now())
    adv.pipeline.put_lock(
        "job-own-t", triggered_at=now - 120, holder="dead/1", lease_expires_at=now - 60
    )
    adv.faults.add(
        FaultRule("UpdateItem", FaultKind.LOST_RESPONSE, times=1, body_contains=TAKE_OVER)
    )

    assert adv.invoke(stream_event(*records)) == {"batchItemFailures": []}

    assert adv.final("job-own-t")["dest"] == "enqueued"
    assert "wait" not in adv.triggers("job-own-t")
    assert adv.messages_for("job-own-t") == 1


# ------------------------------------------------------------------ a lock within its lease


def _holder_lock(adv: Adversary, job_id: str, lease_in: int) -> int:
    now = int(adv.clock.now())
    adv.pipeline.put_lock(
        job_id, triggered_at=now, holder="alive/1", lease_expires_at=now + lease_in
    )
    return now + lease_in


def test_a_lock_within_its_lease_is_waited_for_and_ends_already_triggered_when_marked(
    adv: Adversary,
) -> None:
    """GIVEN another holder within its lease WHEN it marks the lock while we wait THEN the
    job ends `already_triggered` and nothing more is sent."""
    records = adv.pipeline.ready_job("job-wait-mark")
    _holder_lock(adv, "job-wait-mark", lease_in=50)
    adv.clock.at_next_sleep(
        lambda: adv.pipeline.update_lock(
            "job-wait-mark",
            "SET enqueued_at = :now, message_id = :id",
            {":now": {"N": str(int(adv.clock.now()))}, ":id": {"S": "m-1"}},
        )
    )

    assert adv.invoke(stream_event(*records)) == {"batchItemFailures": []}

    assert adv.triggers("job-wait-mark")[-4:] == ["contend", "wait", "recheck", "skip"]
    final = adv.final("job-wait-mark")
    assert (final["dest"], final["reason"]) == ("skipped", "already_triggered")
    assert adv.messages_for("job-wait-mark") == 0


def test_a_lock_within_its_lease_is_taken_over_when_released_meanwhile(
    adv: Adversary,
) -> None:
    """GIVEN another holder within its lease WHEN it releases the lock while we wait THEN
    we take it over and send one message, long before its lease would have ended."""
    records = adv.pipeline.ready_job("job-wait-release")
    lease = _holder_lock(adv, "job-wait-release", lease_in=50)
    adv.clock.at_next_sleep(
        lambda: adv.pipeline.update_lock(
            "job-wait-release", "SET lease_expires_at = :zero", {":zero": {"N": "0"}}
        )
    )

    assert adv.invoke(stream_event(*records)) == {"batchItemFailures": []}

    assert adv.triggers("job-wait-release")[-5:] == [
        "wait",
        "recheck",
        "take_over",
        "send",
        "mark",
    ]
    assert adv.clock.now() < lease
    assert adv.messages_for("job-wait-release") == 1


def test_a_holder_within_its_lease_is_outwaited_when_the_wait_allows(
    monkeypatch: pytest.MonkeyPatch, arena: Arena
) -> None:
    """A holder that neither marks nor releases is taken over as soon as its lease (plus
    the clock-skew margin) has passed, when that falls within LEASE_WAIT_SECONDS."""
    with adversary(monkeypatch, arena, lease_wait_seconds=30) as adv:
        records = adv.pipeline.ready_job("job-outwait")
        lease = _holder_lock(adv, "job-outwait", lease_in=20)

        assert adv.invoke(stream_event(*records), remaining=90) == {"batchItemFailures": []}

        assert "take_over" in adv.triggers("job-outwait")
        assert adv.clock.now() >= lease + CLOCK_SKEW_SECONDS
        assert adv.messages_for("job-outwait") == 1


def test_a_holder_within_its_lease_beyond_the_wait_defers_the_job_without_failing(
    adv: Adversary,
) -> None:
    """GIVEN a holder whose lease outlasts LEASE_WAIT_SECONDS WHEN we meet its lock THEN we
    wait that long (simulated), end `skipped` / `deferred` (not final: the holder, its
    retry or the reconciler finishes), report no failure and hold no shard hostage."""
    records = adv.pipeline.ready_job("job-defer")
    lease = _holder_lock(adv, "job-defer", lease_in=600)
    started = adv.clock.now()

    assert adv.invoke(stream_event(*records), remaining=60) == {"batchItemFailures": []}

    final = adv.final("job-defer")
    assert (final["dest"], final["reason"]) == ("skipped", "deferred")
    assert final["lease_expires_at"] == lease
    assert 5 <= adv.clock.now() - started <= 6.5
    assert lock_values(adv, "job-defer")["holder"] == "alive/1"
    assert adv.messages_for("job-defer") == 0


def test_the_wait_for_a_holder_never_outlives_the_invocation(
    monkeypatch: pytest.MonkeyPatch, arena: Arena
) -> None:
    """With a wait longer than the invocation's time, the job is deferred while there is
    still time to take the lock and send (the answer reserve and LOCK_STEP_SECONDS before
    the deadline)."""
    with adversary(monkeypatch, arena, lease_wait_seconds=60) as adv:
        records = adv.pipeline.ready_job("job-short-time")
        _holder_lock(adv, "job-short-time", lease_in=600)
        started = adv.clock.now()

        assert adv.invoke(stream_event(*records), remaining=60) == {"batchItemFailures": []}

        assert adv.final("job-short-time")["reason"] == "deferred"
        waited = adv.clock.now() - started
        last_chance = 60 - ANSWER_RESERVE_SECONDS - LOCK_STEP_SECONDS
        assert last_chance - 1.5 <= waited <= last_chance + 0.01


def test_a_legacy_lock_without_lease_is_leased_for_fifteen_minutes_after_triggered_at(
    adv: Adversary,
) -> None:
    """A lock written before leases existed (only `triggered_at`) counts as leased until
    `triggered_at` + LOCK_LEASE_SECONDS: waited for within it, taken over after it."""
    records = adv.pipeline.ready_job("job-legacy")
    now = int(adv.clock.now())
    triggered_at = now - DEFAULT_LOCK_LEASE_SECONDS + 100
    adv.pipeline.put_lock("job-legacy", triggered_at=triggered_at)

    assert adv.invoke(stream_event(*records), remaining=60) == {"batchItemFailures": []}
    wait = next(t for t in adv.transitions("job-legacy") if t["trigger"] == "wait")
    assert wait["lease_expires_at"] == triggered_at + DEFAULT_LOCK_LEASE_SECONDS
    assert adv.final("job-legacy")["reason"] == "deferred"

    adv.clock.set(triggered_at + DEFAULT_LOCK_LEASE_SECONDS + CLOCK_SKEW_SECONDS)
    adv.logs.clear()
    assert adv.invoke(stream_event(*records)) == {"batchItemFailures": []}

    assert adv.triggers("job-legacy")[-4:] == ["contend", "take_over", "send", "mark"]
    assert adv.messages_for("job-legacy") == 1


def test_an_unknown_lock_without_lease_or_triggered_at_is_taken_over(adv: Adversary) -> None:
    """A lock item with neither lease nor `triggered_at` cannot be waited for: its holder
    is long gone (leased from the epoch), so it is taken over."""
    records = adv.pipeline.ready_job("job-bare")
    adv.pipeline.put_lock("job-bare")

    assert adv.invoke(stream_event(*records)) == {"batchItemFailures": []}

    assert "take_over" in adv.triggers("job-bare")
    assert adv.messages_for("job-bare") == 1


# ------------------------------------------------------------------ races


def test_two_takers_of_one_expired_lock_exactly_one_wins(adv: Adversary) -> None:
    """GIVEN an expired unmarked lock WHEN a second evaluation takes it over while the first
    is between reading it and taking it over THEN the first's conditional take-over fails,
    it rechecks and ends `already_triggered`: one take-over, one message."""
    records = adv.pipeline.ready_job("job-race")
    now = int(adv.clock.now())
    adv.pipeline.put_lock(
        "job-race", triggered_at=now - 200, holder="dead/1", lease_expires_at=now - 100
    )
    rival_response: list[PartialBatchResponse] = []

    def rival() -> None:
        thread = threading.Thread(
            target=lambda: rival_response.append(
                adv.invoke(stream_event(*records), request_id="rival")
            )
        )
        thread.start()
        thread.join()

    adv.faults.add(
        FaultRule("UpdateItem", FaultKind.PAUSE, times=1, body_contains=TAKE_OVER, action=rival)
    )

    assert adv.invoke(stream_event(*records), request_id="first") == {"batchItemFailures": []}

    assert rival_response == [{"batchItemFailures": []}]
    by_request = {
        request: [t for t in adv.transitions("job-race") if t["aws_request_id"] == request]
        for request in ("first", "rival")
    }
    assert [t["trigger"] for t in by_request["rival"]][-3:] == ["take_over", "send", "mark"]
    assert [t["trigger"] for t in by_request["first"]][-3:] == ["contend", "recheck", "skip"]
    assert by_request["first"][-1]["reason"] == "already_triggered"
    assert int(lock_values(adv, "job-race")["takeovers"]) == 1
    assert adv.messages_for("job-race") == 1


def test_a_rival_that_cannot_outwait_the_holder_defers_and_a_later_look_skips(
    adv: Adversary,
) -> None:
    """GIVEN an evaluation holding the lock, paused before its send WHEN a concurrent
    evaluation (e.g. the Jobs-stream mapping) meets the lock THEN it waits
    LEASE_WAIT_SECONDS and defers (no failure: its shard moves on); a later look after the
    holder marked ends `already_triggered`. One message."""
    records = adv.pipeline.ready_job("job-rival")
    jobs_record = adv.pipeline.job_record(
        "job-rival", status="chunking_complete", total_segments=2, old_status="chunking_in_progress"
    )
    rival_response: list[PartialBatchResponse] = []

    def rival() -> None:
        thread = threading.Thread(
            target=lambda: rival_response.append(
                adv.invoke(stream_event(jobs_record), request_id="rival")
            )
        )
        thread.start()
        thread.join()

    adv.faults.add(FaultRule("SendMessage", FaultKind.PAUSE, times=1, action=rival))

    assert adv.invoke(stream_event(*records), request_id="holder") == {"batchItemFailures": []}

    assert rival_response == [{"batchItemFailures": []}]
    rival_final = [t for t in adv.transitions("job-rival") if t["aws_request_id"] == "rival"]
    assert (rival_final[-1]["dest"], rival_final[-1]["reason"]) == ("skipped", "deferred")

    assert adv.invoke(stream_event(jobs_record), request_id="rival-retry") == {
        "batchItemFailures": []
    }
    assert adv.final("job-rival")["reason"] == "already_triggered"
    assert adv.messages_for("job-rival") == 1


# ------------------------------------------------------------------ FIFO


def test_fifo_messages_carry_a_valid_id_derived_from_the_job_id(
    monkeypatch: pytest.MonkeyPatch, fifo_arena: Arena
) -> None:
    """On a queue whose URL ends in `.fifo`, MessageGroupId and MessageDeduplicationId are
    the SHA-256 of the job id: valid for any job id, equal for the same job."""
    fifo = fifo_arena.resources
    assert fifo.reassembly_queue_url.endswith(".fifo")
    with adversary(monkeypatch, fifo_arena) as adv:
        records = adv.pipeline.ready_job("job-fifo")
        assert adv.invoke(stream_event(*records)) == {"batchItemFailures": []}

    got = fifo_arena.aws.sqs.receive_message(
        QueueUrl=fifo.reassembly_queue_url,
        MaxNumberOfMessages=10,
        AttributeNames=["MessageGroupId", "MessageDeduplicationId"],
    )["Messages"]
    assert len(got) == 1
    assert got[0]["Body"] == '{"job_id":"job-fifo"}'
    assert got[0]["Attributes"]["MessageGroupId"] == fifo_message_ids("job-fifo")
    assert got[0]["Attributes"]["MessageDeduplicationId"] == fifo_message_ids("job-fifo")


# ------------------------------------------------------------------ the media worker's lock


def test_the_media_worker_model_refuses_a_message_for_an_incomplete_job(adv: Adversary) -> None:
    """The model of the media worker keeps the contract's check: a message for a job with
    fewer completions than `total_segments` is refused and recorded, never reassembled."""
    adv.pipeline.add_job("job-short", total_segments=3)
    adv.pipeline.complete("job-short", [0, 2])
    adv.pipeline.put_lock("job-short", triggered_at=int(adv.clock.now()))
    adv.pipeline.aws.sqs.send_message(
        QueueUrl=adv.pipeline.resources.reassembly_queue_url,
        MessageBody='{"job_id":"job-short"}',
    )

    adv.worker.drain()

    tally = adv.worker.tally("job-short")
    assert (tally.messages_received, tally.refusals, tally.reassemblies) == (1, 1, 0)
    job = adv.pipeline.aws.dynamodb.get_item(
        TableName=adv.pipeline.names.jobs_table, Key={"job_id": {"S": "job-short"}}
    )["Item"]
    assert job["status"]["S"] == "chunking_complete"
