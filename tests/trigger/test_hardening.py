"""Issue 11's proof: no record, lock item or AWS answer makes the trigger spin, crash,
stall or fire early.

Every test calls Lambda's entry point (`lambda_handler`) on the real trigger against the
moto server, with faults injected at the HTTP layer of its own clients and a simulated
clock (see `adversary.py`); a guard ends any test whose code makes an unbounded number
of AWS calls. Sections follow the issue's defects 1 to 10.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal
from functools import partial
from typing import Any

import pytest
from botocore.exceptions import BotoCoreError, ClientError

from reassembly_trigger.gateways import UNPROCESSED_KEYS_ROUNDS, ReassemblyLock
from reassembly_trigger.items import MAX_TOTAL_SEGMENTS, deserialize_item
from reassembly_trigger.local.aws.faults import FaultKind, FaultRule
from reassembly_trigger.local.commands.doctor.diagnosis import Doctor
from reassembly_trigger.local.commands.doctor.resend import segment_indexes
from reassembly_trigger.local.invocations.items import completion_item, job_item
from reassembly_trigger.local.invocations.records import stream_event
from reassembly_trigger.local.invocations.triggers import faulty_clients
from reassembly_trigger.local.simulation.clock import SimulatedClock
from reassembly_trigger.machine import State
from reassembly_trigger.outcome import JobOutcome
from reassembly_trigger.reconcile import warn_about_item_models
from reassembly_trigger.records import MAX_JOB_ID_BYTES
from reassembly_trigger.timing import (
    ANSWER_RESERVE_SECONDS,
    CALL_FLOOR_SECONDS,
    CLOCK_SKEW_SECONDS,
    LAMBDA_MAX_TIMEOUT_SECONDS,
)

from adversary import MARK, Adversary, Arena, adversary
from moto_fixtures import Pipeline

YEAR = 365 * 86400


def _n(value: object) -> dict[str, Any]:
    return {"N": str(value)}


def _s(value: str) -> dict[str, Any]:
    return {"S": value}


NULL: dict[str, Any] = {"NULL": True}


def is_dynamodb_number(text: str) -> bool:
    """Whether real DynamoDB stores `text` as a number: 38 significant digits at most,
    magnitude in [1E-130, 9.99...E+125] (moto checks neither)."""
    value = Decimal(text)
    if value.is_zero():
        return True
    significant = "".join(map(str, value.as_tuple().digits)).strip("0")  # no context rounding
    return len(significant) <= 38 and Decimal("1E-130") <= abs(value) < Decimal("1E+126")


def _seq(record: dict[str, Any]) -> str:
    return str(record["dynamodb"]["SequenceNumber"])


# ============================================================ 1. the contention loop

TAKEN_OVER = "taken_over"

#: Lock items as people and other programs write them, and what each must lead to:
#: taken over at once and sent exactly once, or a skip with this reason.
LOCK_SHAPES: dict[str, tuple[Callable[[int], dict[str, dict[str, Any]]], str]] = {
    # NULL-typed attributes: read as absent, but they exist on the item.
    "lease-null": (
        lambda now: {
            "holder": _s("dead/1"),
            "triggered_at": _n(now - 2000),
            "lease_expires_at": NULL,
        },
        TAKEN_OVER,
    ),
    "holder-null": (
        lambda now: {
            "holder": NULL,
            "triggered_at": _n(now - 2000),
            "lease_expires_at": _n(now - 1000),
        },
        TAKEN_OVER,
    ),
    "triggered-at-null": (
        lambda now: {
            "holder": _s("dead/1"),
            "triggered_at": NULL,
            "lease_expires_at": _n(now + 600),
        },
        TAKEN_OVER,
    ),
    "taken-over-at-null": (
        lambda now: {
            "holder": _s("dead/1"),
            "triggered_at": _n(now - 2000),
            "taken_over_at": NULL,
            "takeovers": _n(1),
            "lease_expires_at": _n(now - 1000),
        },
        TAKEN_OVER,
    ),
    "takeovers-null": (
        lambda now: {
            "triggered_at": _n(now - 2000),
            "lease_expires_at": _n(now - 1000),
            "takeovers": NULL,
        },
        TAKEN_OVER,
    ),
    "enqueued-at-null": (
        lambda now: {
            "triggered_at": _n(now - 2000),
            "lease_expires_at": _n(now - 1000),
            "enqueued_at": NULL,
        },
        TAKEN_OVER,
    ),
    "reassembly-started-at-null": (
        lambda now: {
            "triggered_at": _n(now - 2000),
            "lease_expires_at": _n(now - 1000),
            "reassembly_started_at": NULL,
        },
        TAKEN_OVER,
    ),
    # Numbers as strings and strings as numbers.
    "lease-as-string": (
        lambda now: {"triggered_at": _n(now - 2000), "lease_expires_at": _s(str(now - 1000))},
        TAKEN_OVER,
    ),
    "triggered-at-as-string": (
        lambda now: {"triggered_at": _s(str(now - 2000)), "lease_expires_at": _n(now - 1000)},
        TAKEN_OVER,
    ),
    "holder-as-number": (
        lambda now: {
            "holder": _n(42),
            "triggered_at": _n(now - 2000),
            "lease_expires_at": _n(now - 1000),
        },
        TAKEN_OVER,
    ),
    "takeovers-as-string": (
        lambda now: {
            "triggered_at": _n(now - 2000),
            "lease_expires_at": _n(now - 1000),
            "takeovers": _s("3"),
        },
        TAKEN_OVER,
    ),
    # Numbers that do not survive a float, or that no clock can mean.
    "lease-huge": (
        lambda now: {"triggered_at": _n(now - 2000), "lease_expires_at": _n("1E+125")},
        TAKEN_OVER,
    ),
    "lease-negative-huge": (
        lambda now: {"triggered_at": _n(now - 2000), "lease_expires_at": _n("-1E+125")},
        TAKEN_OVER,
    ),
    "triggered-at-huge": (
        lambda now: {"triggered_at": _n("1E+125"), "lease_expires_at": _n(now + 600)},
        TAKEN_OVER,
    ),
    "takeovers-huge": (
        lambda now: {
            "triggered_at": _n(now - 2000),
            "lease_expires_at": _n(now - 1000),
            "takeovers": _n("1E+125"),
        },
        TAKEN_OVER,
    ),
    "takeovers-negative": (
        lambda now: {
            "triggered_at": _n(now - 2000),
            "lease_expires_at": _n(now - 1000),
            "takeovers": _n(-7),
        },
        TAKEN_OVER,
    ),
    "lease-fractional": (
        lambda now: {"triggered_at": _n(now - 2000), "lease_expires_at": _n(f"{now - 1000}.5")},
        TAKEN_OVER,
    ),
    "lease-beyond-float-precision": (
        lambda now: {
            "triggered_at": _n(now - 2000),
            "lease_expires_at": _n(f"{now - 1000}.000000000000000000001"),
        },
        TAKEN_OVER,
    ),
    "triggered-at-fractional": (
        lambda now: {"triggered_at": _n(f"{now - 2000}.25"), "lease_expires_at": _n(now - 1000)},
        TAKEN_OVER,
    ),
    # Lists, maps, sets and booleans where a number or a string belongs.
    "lease-as-list": (
        lambda now: {"triggered_at": _n(now - 2000), "lease_expires_at": {"L": [_n(now - 1000)]}},
        TAKEN_OVER,
    ),
    "lease-as-bool": (
        lambda now: {"triggered_at": _n(now - 2000), "lease_expires_at": {"BOOL": True}},
        TAKEN_OVER,
    ),
    "holder-as-map": (
        lambda now: {
            "holder": {"M": {"id": _s("dead")}},
            "triggered_at": _n(now - 2000),
            "lease_expires_at": _n(now - 1000),
        },
        TAKEN_OVER,
    ),
    "triggered-at-as-number-set": (
        lambda now: {
            "triggered_at": {"NS": [str(now - 2000), str(now - 1999)]},
            "lease_expires_at": _n(now - 1000),
        },
        TAKEN_OVER,
    ),
    "taken-over-at-as-string-set": (
        lambda now: {
            "triggered_at": _n(now - 2000),
            "taken_over_at": {"SS": ["a", "b"]},
            "lease_expires_at": _n(now - 1000),
        },
        TAKEN_OVER,
    ),
    # Times no holder can mean.
    "taken-over-at-in-the-future": (
        lambda now: {
            "holder": _s("someone/1"),
            "triggered_at": _n(now - 2000),
            "taken_over_at": _n(now + 10**6),
            "lease_expires_at": _n(now + 10**6),
        },
        TAKEN_OVER,
    ),
    "no-triggered-at-and-a-future-lease": (
        lambda now: {"holder": _s("someone/1"), "lease_expires_at": _n(now + 600)},
        TAKEN_OVER,
    ),
    "lease-a-year-ahead": (
        lambda now: {
            "holder": _s("doctor/1"),
            "triggered_at": _n(now - 1000),
            "lease_expires_at": _n(now + YEAR),
        },
        TAKEN_OVER,
    ),
    "nothing-but-the-key": (lambda now: {}, TAKEN_OVER),
    # Shapes that rightly stop the job.
    "lease-a-year-ahead-taken-a-minute-ago": (
        lambda now: {
            "holder": _s("doctor/1"),
            "triggered_at": _n(now - 60),
            "lease_expires_at": _n(now + YEAR),
        },
        "deferred",
    ),
    "enqueued-at-as-list": (
        lambda now: {"triggered_at": _n(now - 2000), "enqueued_at": {"L": [_n(now - 1990)]}},
        "already_triggered",
    ),
    "enqueued-at-as-string": (
        lambda now: {"triggered_at": _n(now - 2000), "enqueued_at": _s("yesterday")},
        "already_triggered",
    ),
    "reassembly-started-at-as-bool": (
        lambda now: {"triggered_at": _n(now - 2000), "reassembly_started_at": {"BOOL": False}},
        "reassembly_started",
    ),
}

#: The attributes a take-over and a mark write.
WRITTEN_NUMBERS = ("lease_expires_at", "taken_over_at", "takeovers", "enqueued_at")


@pytest.mark.parametrize("shape", LOCK_SHAPES, ids=str)
def test_a_lock_of_any_shape_is_taken_over_or_skipped_at_once_never_spun_on(
    shape: str, adv: Adversary
) -> None:
    """GIVEN a lock item of a shape people or other programs write WHEN the job's records
    arrive THEN the job is taken over and sent exactly once (reassembled once), or skipped
    for the right reason, in a handful of calls, within the deadline; every number written
    is one real DynamoDB accepts."""
    records = adv.pipeline.ready_job("job-shape")
    attributes, expected = LOCK_SHAPES[shape]
    adv.pipeline.put_lock("job-shape", **attributes(int(adv.clock.now())))

    response = adv.invoke(stream_event(*records))

    assert response == {"batchItemFailures": []}
    assert adv.returned_at <= adv.deadline
    # One conditional create, at most one take-over and one mark; reads only while waiting.
    assert adv.faults.calls["UpdateItem"] <= 2
    assert adv.faults.calls["GetItem"] <= (15 if expected == "deferred" else 1)
    final = adv.final("job-shape")
    if expected == TAKEN_OVER:
        assert adv.triggers("job-shape")[-4:] == ["contend", "take_over", "send", "mark"]
        lock = adv.pipeline.raw_lock("job-shape")
        assert lock is not None
        for name in WRITTEN_NUMBERS:
            assert set(lock[name]) == {"N"}, name
            assert is_dynamodb_number(lock[name]["N"]), (name, lock[name])
        adv.worker.drain()
        tally = adv.worker.tally("job-shape")
        assert (tally.messages_received, tally.reassemblies) == (1, 1)
    else:
        assert (final["dest"], final["reason"]) == ("skipped", expected)
        assert adv.messages_for("job-shape") == 0


def test_a_take_over_that_keeps_losing_its_race_backs_off_and_defers(adv: Adversary) -> None:
    """GIVEN an expired lock that a rival rewrites before every take-over of ours WHEN the
    job is evaluated THEN it retries a bounded number of times with growing pauses and
    defers (not failed, nothing sent), instead of spinning."""
    records = adv.pipeline.ready_job("job-race")
    now = int(adv.clock.now())
    adv.pipeline.put_lock("job-race", triggered_at=_n(now - 2000), lease_expires_at=_n(now - 1000))
    rivals = iter(range(1, 1000))

    def rival_rewrites_the_lock() -> None:
        # Another program touches the lock (still expired) just before our take-over lands.
        adv.pipeline.put_lock(
            "job-race",
            triggered_at=_n(now - 2000),
            lease_expires_at=_n(now - 1000),
            holder=_s(f"rival/{next(rivals)}"),
        )

    adv.faults.add(
        FaultRule(
            "UpdateItem",
            FaultKind.PAUSE,
            body_contains="#takeovers",
            action=rival_rewrites_the_lock,
        )
    )

    assert adv.invoke(stream_event(*records)) == {"batchItemFailures": []}

    final = adv.final("job-race")
    assert (final["dest"], final["reason"]) == ("skipped", "deferred")
    take_overs = adv.faults.calls["UpdateItem"]
    assert 2 <= take_overs <= 6
    assert adv.faults.calls["GetItem"] == take_overs  # one re-read per lost race
    assert adv.clock.slept > 0  # it backed off between attempts
    assert adv.messages_for("job-race") == 0


# ============================================================ 2. leases without bound


def test_a_lease_a_year_ahead_ends_900_seconds_after_the_lock_was_taken(adv: Adversary) -> None:
    """GIVEN a lock taken a minute ago and leased for a year WHEN its job is evaluated THEN
    it is deferred while the holder could still be alive, and taken over (one message) as
    soon as LAMBDA_MAX_TIMEOUT_SECONDS (plus the clock skew) have passed since it was taken."""
    records = adv.pipeline.ready_job("job-year")
    taken = int(adv.clock.now()) - 60
    adv.pipeline.put_lock(
        "job-year",
        holder=_s("doctor/1"),
        triggered_at=_n(taken),
        lease_expires_at=_n(taken + YEAR),
    )

    assert adv.invoke(stream_event(*records)) == {"batchItemFailures": []}
    assert adv.final("job-year")["reason"] == "deferred"
    assert adv.final("job-year")["lease_expires_at"] == taken + LAMBDA_MAX_TIMEOUT_SECONDS

    adv.clock.set(taken + LAMBDA_MAX_TIMEOUT_SECONDS + CLOCK_SKEW_SECONDS)
    assert adv.invoke(stream_event(*records)) == {"batchItemFailures": []}

    assert adv.triggers("job-year")[-4:] == ["contend", "take_over", "send", "mark"]
    assert adv.messages_for("job-year") == 1


def _doctor(adv: Adversary) -> Doctor:
    dynamodb = adv.pipeline.aws.dynamodb
    names = adv.pipeline.names
    return Doctor(
        adv.trigger,
        lambda _job_id: None,
        indexes=partial(segment_indexes, dynamodb, names.segment_completions_table),
        lock=ReassemblyLock(dynamodb, names.reassembly_triggered_table),
    )


def test_doctor_repair_with_a_huge_timeout_leases_at_most_900_s_and_ctrl_c_releases_it(
    adv: Adversary,
) -> None:
    """GIVEN `doctor --repair --timeout` a year WHEN it is interrupted (Ctrl-C) between its
    lock and its send THEN the lease it had taken was at most LAMBDA_MAX_TIMEOUT_SECONDS, the
    interrupt released it, and the next invocation takes over at once: one message."""
    records = adv.pipeline.ready_job("job-doctor")
    seen: list[int] = []

    def ctrl_c() -> None:
        lock = adv.pipeline.raw_lock("job-doctor")
        assert lock is not None
        seen.append(int(lock["lease_expires_at"]["N"]))
        raise KeyboardInterrupt

    adv.faults.add(FaultRule("SendMessage", FaultKind.PAUSE, times=1, action=ctrl_c))
    started = adv.clock.now()

    with pytest.raises(KeyboardInterrupt):
        _doctor(adv).repair("job-doctor", timeout_seconds=YEAR)

    assert len(seen) == 1
    assert seen[0] <= started + LAMBDA_MAX_TIMEOUT_SECONDS
    lock = adv.pipeline.raw_lock("job-doctor")
    assert lock is not None
    assert lock["lease_expires_at"] == {"N": "0"}
    assert adv.invoke(stream_event(*records)) == {"batchItemFailures": []}
    assert adv.triggers("job-doctor")[-4:] == ["contend", "take_over", "send", "mark"]
    assert adv.messages_for("job-doctor") == 1


@pytest.mark.parametrize(
    ("interrupt", "at"),
    [
        (KeyboardInterrupt, "send"),
        (KeyboardInterrupt, "mark"),
        (SystemExit, "send"),
        (SystemExit, "mark"),
    ],
    ids=["ctrl-c-at-send", "ctrl-c-at-mark", "exit-at-send", "exit-at-mark"],
)
def test_any_base_exception_between_lock_and_mark_releases_the_lease(
    interrupt: type[BaseException], at: str, adv: Adversary
) -> None:
    """GIVEN an interrupt (not an `Exception`) after the lock is taken WHEN it unwinds THEN
    the lease is released on the way out (0, unmarked), and the retry takes over at once:
    at most two messages, one reassembly."""
    records = adv.pipeline.ready_job("job-int")

    def stop() -> None:
        raise interrupt

    if at == "send":
        adv.faults.add(FaultRule("SendMessage", FaultKind.PAUSE, times=1, action=stop))
    else:
        adv.faults.add(
            FaultRule("UpdateItem", FaultKind.PAUSE, times=1, body_contains=MARK, action=stop)
        )

    with pytest.raises(interrupt):
        adv.invoke(stream_event(*records), remaining=600)

    lock = adv.pipeline.raw_lock("job-int")
    assert lock is not None
    assert lock["lease_expires_at"] == {"N": "0"}
    assert "enqueued_at" not in lock
    assert adv.invoke(stream_event(*records)) == {"batchItemFailures": []}
    assert adv.triggers("job-int")[-4:] == ["contend", "take_over", "send", "mark"]
    adv.worker.drain()
    tally = adv.worker.tally("job-int")
    assert tally.messages_received == (1 if at == "send" else 2)
    assert tally.reassemblies == 1


# ============================================================ 3. FIFO ids


#: What SQS accepts as MessageGroupId and MessageDeduplicationId.
SQS_FIFO_ID = re.compile(r"[A-Za-z0-9!\"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~]{1,128}")


@pytest.mark.parametrize(
    "job_id",
    [
        "a job with spaces",
        "jöb-ünïcödé-日本",
        "x" * 129,
        "\t\n",
        "🎬" * (MAX_JOB_ID_BYTES // 4),
    ],
    ids=["spaces", "non-ascii", "129-chars", "control", "2048-bytes-of-emoji"],
)
def test_a_fifo_queue_accepts_every_job_id(
    job_id: str, monkeypatch: pytest.MonkeyPatch, fifo_arena: Arena
) -> None:
    """GIVEN a FIFO reassembly queue and a job id SQS would refuse as a group id WHEN the
    job is triggered THEN one message carries a group and deduplication id SQS accepts,
    equal to each other."""
    with adversary(monkeypatch, fifo_arena) as adv:
        records = adv.pipeline.ready_job(job_id)
        assert adv.invoke(stream_event(*records)) == {"batchItemFailures": []}
        assert adv.final(job_id)["dest"] == "enqueued"
        adv.worker.drain()

    assert adv.worker.tally(job_id).reassemblies == 1
    ((group, dedup, _body),) = adv.worker.fifo_ids
    assert group == dedup
    assert group is not None
    assert SQS_FIFO_ID.fullmatch(group)


# ============================================================ 4. unprocessed keys


def test_the_unprocessed_keys_fault_holds_back_only_the_matching_keys(
    moto_endpoint: str, pipeline: Pipeline
) -> None:
    """The fault kind used below: BatchGetItem is carried out, the keys containing the
    rule's text come back in `UnprocessedKeys`, every other item in `Responses`."""
    pipeline.add_job("job-a")
    pipeline.add_job("job-b")
    clients, faults = faulty_clients(moto_endpoint, SimulatedClock().sleep)
    client = clients.dynamodb
    faults.add(FaultRule("BatchGetItem", FaultKind.UNPROCESSED_KEYS, body_contains="job-b"))
    table = pipeline.names.jobs_table
    keys = [{"job_id": {"S": "job-a"}}, {"job_id": {"S": "job-b"}}]

    answer = client.batch_get_item(RequestItems={table: {"Keys": keys, "ConsistentRead": True}})

    assert [item["job_id"]["S"] for item in answer["Responses"][table]] == ["job-a"]
    assert answer["UnprocessedKeys"][table]["Keys"] == [{"job_id": {"S": "job-b"}}]
    assert answer["UnprocessedKeys"][table]["ConsistentRead"] is True


def test_the_empty_response_fault_answers_200_without_doing_the_call(
    moto_endpoint: str, pipeline: Pipeline
) -> None:
    """The fault kind the fail-reason guard uses: a 200 whose body is `{}`, the request
    never reaching AWS (nothing is sent)."""
    clients, faults = faulty_clients(moto_endpoint, SimulatedClock().sleep)
    sqs = clients.sqs
    faults.add(FaultRule("SendMessage", FaultKind.EMPTY_RESPONSE, times=1))
    url = pipeline.resources.reassembly_queue_url

    answer = sqs.send_message(QueueUrl=url, MessageBody="{}")

    assert "MessageId" not in answer
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert pipeline.bodies() == []


def test_one_job_key_unprocessed_for_ever_fails_only_that_job(adv: Adversary) -> None:
    """GIVEN BatchGetItem leaving one Job key unprocessed on every round WHEN a batch of
    three ready jobs is handled THEN only that job fails (its records reported), the two
    others are enqueued from the items already returned, the rounds are bounded and their
    pauses jittered."""
    records = {job: adv.pipeline.ready_job(job) for job in ("job-a", "job-stuck", "job-c")}
    adv.faults.add(FaultRule("BatchGetItem", FaultKind.UNPROCESSED_KEYS, body_contains="job-stuck"))

    response = adv.invoke(stream_event(*(r for rs in records.values() for r in rs)))

    assert response == {"batchItemFailures": [{"itemIdentifier": _seq(records["job-stuck"][0])}]}
    assert adv.final("job-a")["dest"] == adv.final("job-c")["dest"] == "enqueued"
    stuck = adv.final("job-stuck")
    assert (stuck["dest"], stuck["reason"]) == ("failed", "aws_error")
    assert adv.faults.calls["BatchGetItem"] == UNPROCESSED_KEYS_ROUNDS + 1
    pauses = adv.clock.naps[:UNPROCESSED_KEYS_ROUNDS]
    assert len(pauses) == UNPROCESSED_KEYS_ROUNDS
    assert all(0 <= pause <= 2.0 for pause in pauses)
    assert len(set(pauses)) == len(pauses)  # jitter: no two rounds wait alike
    assert sorted(adv.messages()) == ["job-a", "job-c"]


def test_unprocessed_keys_rounds_stop_at_the_deadline(adv: Adversary) -> None:
    """GIVEN a Job key never processed and a slow BatchGetItem (1.5 s, inside its read
    timeout) WHEN the invocation has little time THEN the rounds stop in time to answer,
    and the job fails as `deadline`."""
    records = adv.pipeline.ready_job("job-stuck")
    adv.slow_calls(1.5, "BatchGetItem")  # first: a delay never ends the scan of rules
    adv.faults.add(FaultRule("BatchGetItem", FaultKind.UNPROCESSED_KEYS, body_contains="job-stuck"))

    response = adv.invoke(stream_event(*records), remaining=6)

    assert response == {"batchItemFailures": [{"itemIdentifier": _seq(records[0])}]}
    assert adv.returned_at <= adv.deadline
    assert adv.faults.calls["BatchGetItem"] < UNPROCESSED_KEYS_ROUNDS + 1
    assert adv.final("job-stuck")["reason"] == "deadline"


# ============================================================ 5. stray indexes


def _put_index(pipeline: Pipeline, job_id: str, index: str, padding: int = 0) -> None:
    """A completion whose `segment_index` is any number, as text."""
    item = {**completion_item(job_id, 0, padding=padding), "segment_index": _n(index)}
    pipeline.aws.dynamodb.put_item(TableName=pipeline.names.segment_completions_table, Item=item)


@pytest.mark.parametrize(
    ("indexes", "whole"),
    [
        (["0", "0.5", "1"], 2),
        (["0", "1", "-1"], 2),
        (["0", "1", "3"], 2),
        (["0", "1", "1.0"], 2),
        (["0", "1.5", "2.5", "1", "0.999999999999999999999999999999"], 2),
        (["0", "1", "2.0000000000000000000000000000000001"], 2),
    ],
    ids=["half", "negative", "out-of-range", "1.0-is-1", "fractions", "nearly-two"],
)
def test_only_whole_indexes_in_range_count(indexes: list[str], whole: int, adv: Adversary) -> None:
    """GIVEN a 3-segment job whose recorded indexes include fractional, negative,
    out-of-range or duplicate-looking values WHEN it is evaluated THEN only the whole
    indexes in [0, 3) count: skipped `incomplete`, nothing sent; the missing segment then
    completes it."""
    adv.pipeline.add_job("job-idx", total_segments=3)
    for index in indexes:
        _put_index(adv.pipeline, "job-idx", index)
    records = adv.pipeline.completion_records("job-idx", [0])

    assert adv.invoke(stream_event(*records)) == {"batchItemFailures": []}
    final = adv.final("job-idx")
    assert (final["reason"], final["completions"]) == ("incomplete", whole)
    assert adv.messages_for("job-idx") == 0

    adv.pipeline.complete("job-idx", [2])
    assert adv.invoke(stream_event(*records)) == {"batchItemFailures": []}
    assert adv.final("job-idx")["dest"] == "enqueued"
    assert adv.messages_for("job-idx") == 1


def test_the_count_is_exact_across_pages(adv: Adversary) -> None:
    """GIVEN a 5-segment job with four whole indexes and 300 large fractional ones (more
    than one 1 MB page) WHEN it is evaluated THEN the count reads every page and stays 4."""
    adv.pipeline.add_job("job-pages", total_segments=5)
    adv.pipeline.complete("job-pages", [0, 1, 2, 3])
    for tenth in range(300):
        _put_index(adv.pipeline, "job-pages", f"{tenth // 100}.{tenth % 100 + 1:03d}", 4000)
    records = adv.pipeline.completion_records("job-pages", [3])

    assert adv.invoke(stream_event(*records)) == {"batchItemFailures": []}
    final = adv.final("job-pages")
    assert (final["reason"], final["completions"]) == ("incomplete", 4)
    assert final["pages"] >= 2
    assert adv.messages_for("job-pages") == 0


# ============================================================ 6. total_segments


@pytest.mark.parametrize(
    ("raw", "completions", "reason", "value"),
    [
        ({"BOOL": True}, 1, "job_invalid", True),
        ({"S": "3"}, 3, "job_invalid", "3"),
        ({"N": "3.5"}, 4, "job_invalid", "3.5"),
        ({"N": "0"}, 1, "job_invalid", "0"),
        ({"N": "-1"}, 1, "job_invalid", "-1"),
        ({"N": "1e6"}, 3, "job_invalid", "1E+6"),
        ({"N": str(MAX_TOTAL_SEGMENTS + 1)}, 3, "job_invalid", str(MAX_TOTAL_SEGMENTS + 1)),
        ({"N": "1E+125"}, 3, "job_invalid", "1E+125"),
        ({"L": [{"N": "3"}]}, 3, "job_invalid", None),
        ({"NS": ["3"]}, 3, "job_invalid", None),
        ({"NULL": True}, 3, "total_segments_missing", None),
    ],
    ids=[
        "bool-true",
        "string-3",
        "fraction",
        "zero",
        "negative",
        "1e6",
        "over-the-bound",
        "1E+125",
        "list",
        "number-set",
        "null",
    ],
)
def test_total_segments_must_be_a_real_positive_integer(
    raw: dict[str, Any], completions: int, reason: str, value: object, adv: Adversary
) -> None:
    """GIVEN a Job whose `total_segments` is not a whole DynamoDB number in range, with as
    many completions as a lax reading would want WHEN it is evaluated THEN it is skipped
    naming the field and the value seen, and nothing is sent."""
    adv.pipeline.add_job("job-total", total_segments=None, total_segments_raw=raw)
    adv.pipeline.complete("job-total", range(completions))
    records = adv.pipeline.completion_records("job-total", [0])

    assert adv.invoke(stream_event(*records)) == {"batchItemFailures": []}

    final = adv.final("job-total")
    assert (final["dest"], final["reason"]) == ("skipped", reason)
    if reason == "job_invalid":
        assert final["field"] == "total_segments"
        if value is not None:
            assert final["value"] == value
        else:
            assert "value" in final
    assert adv.messages_for("job-total") == 0


# ============================================================ 7. newer Job items


@pytest.mark.parametrize(
    ("changes", "drop"),
    [
        ({"mode": _s("hologram")}, None),
        ({}, "created_at"),
        ({"created_at": _n("1793999000.5")}, None),
        ({}, "mode"),
        ({"mode": {"M": {"kind": _s("sbs")}}}, None),
        ({"created_at": _s("2026-11-15T10:00:00Z")}, None),
        ({"priority": _n(9), "owner": {"M": {"id": _s("u1")}}}, None),
    ],
    ids=[
        "unknown-mode",
        "no-created-at",
        "fractional-created-at",
        "no-mode",
        "mode-as-map",
        "created-at-as-string",
        "unknown-attributes",
    ],
)
def test_a_newer_job_item_is_still_triggered_with_a_warning(
    changes: dict[str, Any], drop: str | None, adv: Adversary
) -> None:
    """GIVEN a Job item that the shared model does not accept in fields the trigger does not
    need WHEN its last segment completes THEN it is enqueued once, and the differences are
    logged as a warning."""
    item = {**job_item("job-new", total_segments=2), **changes}
    if drop:
        del item[drop]
    adv.pipeline.aws.dynamodb.put_item(TableName=adv.pipeline.names.jobs_table, Item=item)
    adv.pipeline.complete("job-new", [0, 1])

    assert adv.invoke(stream_event(*adv.pipeline.completion_records("job-new", [1]))) == {
        "batchItemFailures": []
    }

    assert adv.final("job-new")["dest"] == "enqueued"
    assert adv.messages_for("job-new") == 1
    # The stream path never checks the rest of the item (no pydantic on a cold start);
    # the reconciler does, for the jobs it reads.
    assert adv.events("job_item_differs_from_model") == []
    warn_about_item_models(
        [JobOutcome("job-new", State.SKIPPED, None, (), item=deserialize_item(item))]
    )
    if changes.keys() != {"priority", "owner"}:
        (warning,) = adv.events("job_item_differs_from_model")
        assert warning["log_level"] == "warning"
        assert warning["job_id"] == "job-new"
        assert warning["errors"]


# ============================================================ 8. event shapes


def _good(adv: Adversary, job_id: str = "job-ok") -> dict[str, Any]:
    adv.pipeline.ready_job(job_id, total=1)
    return adv.pipeline.completion_records(job_id, [0])[0]


def _completion(adv: Adversary, job_id: str, **changes: Any) -> dict[str, Any]:
    record = adv.pipeline.completion_records(job_id, [0])[0]
    record.update(changes)
    return record


def _jobs_record(adv: Adversary, job_id: str, status: Any) -> dict[str, Any]:
    record = adv.pipeline.job_record(
        job_id, status="chunking_complete", total_segments=1, old_status="chunking_in_progress"
    )
    record["dynamodb"]["NewImage"]["status"] = status
    return record


RECORD_SHAPES: dict[str, Callable[[Adversary], Any]] = {
    "list-arn": lambda adv: _completion(adv, "job-x", eventSourceARN=["arn:aws:dynamodb:x"]),
    "map-arn": lambda adv: _completion(adv, "job-x", eventSourceARN={"S": "arn"}),
    "status-as-map": lambda adv: _jobs_record(adv, "job-x", {"M": {"S": _s("chunking_complete")}}),
    "status-unknown-type": lambda adv: _jobs_record(adv, "job-x", {"Z": "chunking_complete"}),
    "status-two-types": lambda adv: _jobs_record(
        adv, "job-x", {"S": "chunking_complete", "N": "1"}
    ),
    "status-as-list": lambda adv: _jobs_record(adv, "job-x", ["chunking_complete"]),
    "new-image-a-string": lambda adv: {
        **(r := _jobs_record(adv, "job-x", _s("chunking_complete"))),
        "dynamodb": {**r["dynamodb"], "NewImage": "chunking_complete"},
    },
    "job-id-over-2048-bytes": lambda adv: {
        **(r := _completion(adv, "job-x")),
        "dynamodb": {
            **r["dynamodb"],
            "Keys": {"job_id": _s("é" * (MAX_JOB_ID_BYTES // 2 + 1)), "segment_index": _n(0)},
        },
    },
    "lone-surrogate-job-id": lambda adv: {
        **(r := _completion(adv, "job-x")),
        "dynamodb": {
            **r["dynamodb"],
            "Keys": {"job_id": _s("job-\ud800"), "segment_index": _n(0)},
        },
    },
    "keys-a-list": lambda adv: {
        **(r := _completion(adv, "job-x")),
        "dynamodb": {**r["dynamodb"], "Keys": [{"job_id": _s("job-x")}]},
    },
    "dynamodb-a-string": lambda adv: {**_completion(adv, "job-x"), "dynamodb": "{}"},
    "event-name-a-map": lambda adv: _completion(adv, "job-x", eventName={"INSERT": True}),
    "not-a-map": lambda adv: ["Records"],
}


@pytest.mark.parametrize("shape", RECORD_SHAPES, ids=str)
def test_no_record_shape_raises_and_good_records_beside_it_are_evaluated(
    shape: str, adv: Adversary
) -> None:
    """GIVEN a batch with a record of a hostile shape beside a good one WHEN it is handled
    THEN the handler answers (no failure) and the good job is enqueued."""
    good = _good(adv)
    odd = RECORD_SHAPES[shape](adv)

    assert adv.invoke({"Records": [odd, good]}) == {"batchItemFailures": []}

    assert adv.final("job-ok")["dest"] == "enqueued"
    assert adv.messages() == ["job-ok"]


@pytest.mark.parametrize(
    "bad", ["abc", "-5", "1" * 41, "", "12.5", "٣٤٥", 12345, None, ["1"]], ids=repr
)
def test_bad_sequence_numbers_among_many_records_of_a_job_are_skipped_as_malformed(
    bad: object, adv: Adversary
) -> None:
    """GIVEN 55 records of one job and one with a sequence number that is not a decimal
    string of at most 40 digits WHEN the job fails THEN the bad record is a
    `malformed_record` warning naming it, and Lambda is told the lowest good one."""
    adv.pipeline.ready_job("job-many", total=1)
    records = [adv.pipeline.completion_records("job-many", [0])[0] for _ in range(55)]
    odd = adv.pipeline.completion_records("job-many", [0])[0]
    odd["dynamodb"]["SequenceNumber"] = bad
    adv.faults.add(FaultRule("SendMessage", FaultKind.SERVER_ERROR))

    response = adv.invoke(stream_event(*records[:30], odd, *records[30:]))

    assert response == {"batchItemFailures": [{"itemIdentifier": _seq(records[0])}]}
    (warning,) = adv.events("malformed_record")
    assert warning["reason"] == "bad_sequence_number"
    assert warning["position"] == 30
    assert warning["sequence_number"] == (None if bad is None else repr(bad)[:100])
    final = adv.final("job-many")
    assert (final["reason"], final["sequence_number_count"]) == ("aws_error", 55)


@pytest.mark.parametrize(
    "event",
    [
        [],
        "Records",
        None,
        42,
        {"Records": {"0": {}}},
        {"Records": "[]"},
        {"Records": None},
        {},
        {"records": []},
    ],
    ids=repr,
)
def test_an_event_that_is_not_a_batch_is_logged_once_and_answered(
    event: Any, adv: Adversary
) -> None:
    """GIVEN an event that is not a map with a `Records` list WHEN it is handled THEN the
    handler answers with no failures and logs `not_a_batch` once."""
    assert adv.invoke(event) == {"batchItemFailures": []}
    assert len(adv.events("not_a_batch")) == 1
    assert sum(adv.faults.calls.values()) == 0


def test_records_that_are_not_maps_are_each_skipped_beside_a_good_one(adv: Adversary) -> None:
    """Records that are not maps at all (null, numbers, strings, lists) are each a
    `not_a_record` warning; the good record beside them is evaluated."""
    good = _good(adv)

    assert adv.invoke({"Records": [None, 1, "x", [], good, True]}) == {"batchItemFailures": []}

    reasons = [w["reason"] for w in adv.events("malformed_record")]
    assert reasons == ["not_a_record"] * 5
    assert adv.messages() == ["job-ok"]


def test_a_job_id_of_exactly_2048_bytes_is_triggered(adv: Adversary) -> None:
    """DynamoDB's largest partition key is a job id like any other: enqueued once."""
    job_id = "é" * (MAX_JOB_ID_BYTES // 2 - 1) + "xy"
    assert len(job_id.encode()) == MAX_JOB_ID_BYTES
    records = adv.pipeline.ready_job(job_id)

    assert adv.invoke(stream_event(*records)) == {"batchItemFailures": []}
    assert adv.messages() == [job_id]


def test_the_garbled_response_fault_makes_botocore_raise_no_aws_error(
    moto_endpoint: str, pipeline: Pipeline
) -> None:
    """The fault kind used below: a 200 botocore cannot parse raises an error that is
    neither a ClientError nor a BotoCoreError."""
    clients, faults = faulty_clients(moto_endpoint, SimulatedClock().sleep)
    dynamodb = clients.dynamodb
    faults.add(FaultRule("BatchGetItem", FaultKind.GARBLED_RESPONSE, times=1))
    table = pipeline.names.jobs_table

    with pytest.raises(Exception) as raised:  # noqa: PT011 - the point is its type
        dynamodb.batch_get_item(RequestItems={table: {"Keys": [{"job_id": {"S": "j"}}]}})

    assert not isinstance(raised.value, ClientError | BotoCoreError)


def test_an_unreadable_answer_to_the_jobs_read_fails_those_jobs_not_the_invocation(
    adv: Adversary,
) -> None:
    """GIVEN BatchGetItem answering 200 with a body botocore cannot parse WHEN a batch of
    two ready jobs is handled THEN the handler still answers: both jobs fail as
    `unexpected_error` with their records reported, and their retry enqueues them."""
    records = {job: adv.pipeline.ready_job(job) for job in ("job-1", "job-2")}
    adv.faults.add(FaultRule("BatchGetItem", FaultKind.GARBLED_RESPONSE, times=1))
    batch = stream_event(*(r for rs in records.values() for r in rs))

    response = adv.invoke(batch)

    assert response == {
        "batchItemFailures": [{"itemIdentifier": _seq(rs[0])} for rs in records.values()]
    }
    assert {adv.final(job)["reason"] for job in records} == {"unexpected_error"}
    assert adv.invoke(batch) == {"batchItemFailures": []}
    assert sorted(adv.messages()) == ["job-1", "job-2"]


# ============================================================ 9. a slow queue


def test_a_queue_slow_for_a_whole_invocation_costs_at_most_two_messages(adv: Adversary) -> None:
    """GIVEN SQS carrying out every SendMessage but answering after the read timeout for a
    whole invocation WHEN the job is evaluated, then retried once SQS recovers THEN the
    first invocation sends once (no botocore retry), fails and lets go, the retry sends
    once more: two messages, one reassembly."""
    records = adv.pipeline.ready_job("job-slow")
    slow = adv.faults.add(FaultRule("SendMessage", FaultKind.LOST_RESPONSE))

    first = adv.invoke(stream_event(*records))

    assert first == {"batchItemFailures": [{"itemIdentifier": _seq(records[0])}]}
    assert adv.faults.calls["SendMessage"] == 1
    final = adv.final("job-slow")
    assert (final["reason"], final["lease_released"]) == ("aws_error", True)

    slow.times = 0
    assert adv.invoke(stream_event(*records)) == {"batchItemFailures": []}

    adv.worker.drain()
    tally = adv.worker.tally("job-slow")
    assert (tally.messages_received, tally.reassemblies) == (2, 1)


# ============================================================ 10. the deadline


def test_too_little_time_fails_every_job_as_deadline_without_calling_aws(adv: Adversary) -> None:
    """GIVEN an invocation with less time left than one bounded call needs to start (its
    floor, after the answer reserve) WHEN a batch of three jobs arrives THEN no call is
    made, each job fails as `deadline`, and every job's lowest record is reported."""
    records = {job: adv.pipeline.ready_job(job) for job in ("job-1", "job-2", "job-3")}
    adv.faults.calls.clear()

    remaining = ANSWER_RESERVE_SECONDS + CALL_FLOOR_SECONDS - 0.01
    response = adv.invoke(
        stream_event(*(r for rs in records.values() for r in rs)), remaining=remaining
    )

    assert response == {
        "batchItemFailures": [{"itemIdentifier": _seq(rs[0])} for rs in records.values()]
    }
    assert sum(adv.faults.calls.values()) == 0
    assert {adv.final(job)["reason"] for job in records} == {"deadline"}
    assert adv.returned_at <= adv.deadline


@pytest.mark.parametrize("remaining", [2.0, 2.6, 3.2, 3.8, 4.4, 5.0, 6.5, 8.0, 30.0, 60.0])
@pytest.mark.parametrize("mark", ["slow", "throttled-twice", "throttled-for-good"])
def test_the_lock_the_send_and_the_mark_or_release_never_outlast_the_invocation(
    remaining: float, mark: str, adv: Adversary
) -> None:
    """GIVEN every call slow (1.5 s, inside a 2 s attempt; an attempt whose read timeout
    was cut below it times out) and the enqueue mark slow, throttled and retried, or
    throttled for good (then the lease is released) WHEN a ready job is evaluated with
    this much time left THEN the handler answers before the deadline, whatever step the
    time runs out at; at most one message is sent."""
    records = adv.pipeline.ready_job("job-late")
    adv.slow_calls(1.5)  # first: a delay never ends the scan of rules
    if mark != "slow":
        times = 2 if mark == "throttled-twice" else None
        adv.faults.add(FaultRule("UpdateItem", FaultKind.THROTTLE, times=times, body_contains=MARK))

    response = adv.invoke(stream_event(*records), remaining=remaining)

    assert adv.returned_at <= adv.deadline
    final = adv.final("job-late")
    assert final["dest"] in ("enqueued", "failed")
    assert response["batchItemFailures"] == (
        [] if final["dest"] == "enqueued" else [{"itemIdentifier": _seq(records[0])}]
    )
    assert adv.messages_for("job-late") <= 1


def test_many_jobs_on_a_thread_pool_with_slow_calls_stop_in_time_and_finish_on_retry(
    monkeypatch: pytest.MonkeyPatch, arena: Arena
) -> None:
    """GIVEN 40 ready jobs evaluated 8 at a time, every AWS call taking 1.5 s, and a
    30 s invocation WHEN the batch is handled THEN the handler answers before the deadline,
    each job is enqueued or failed (as `deadline`, or a send whose answer came too late
    for its cut read timeout) with its records reported, and sends at most once; AND the
    retry (after the invocation's lease) enqueues every failed one.

    The simulated clock adds up the latencies of concurrent calls, so a job can run out of
    time between its send and its mark (which real, overlapping calls rarely do): only
    such a job, or one whose send's answer came late, gets a second message."""
    with adversary(monkeypatch, arena, concurrency=8) as adv:
        jobs = [f"job-{n:02d}" for n in range(40)]
        records = {job: adv.pipeline.ready_job(job) for job in jobs}
        slow = adv.slow_calls(1.5)

        response = adv.invoke(stream_event(*(r for rs in records.values() for r in rs)))

        assert adv.returned_at <= adv.deadline
        finals = {job: adv.final(job) for job in jobs}
        failed = {job for job, final in finals.items() if final["dest"] == "failed"}
        enqueued = {job for job, final in finals.items() if final["dest"] == "enqueued"}
        assert failed | enqueued == set(jobs)
        assert failed
        late_sends = {
            job
            for job in failed
            # Failed from `locked`: the call that timed out was the send.
            if (finals[job]["reason"], finals[job]["source"], finals[job].get("error_code"))
            == ("aws_error", "locked", "ReadTimeoutError")
        }
        assert {finals[job]["reason"] for job in failed - late_sends} == {"deadline"}
        assert response == {
            "batchItemFailures": [
                {"itemIdentifier": _seq(records[job][0])} for job in jobs if job in failed
            ]
        }
        sent_unmarked = {job for job in failed if "send" in adv.triggers(job)} | late_sends
        first = adv.messages()
        assert sorted(first) == sorted(enqueued | sent_unmarked)

        slow.times = 0
        adv.clock.set(adv.deadline + CLOCK_SKEW_SECONDS)  # Lambda retries after the end
        retry = adv.invoke(
            stream_event(*(r for job in jobs if job in failed for r in records[job]))
        )

        assert retry == {"batchItemFailures": []}
        every = adv.messages()  # every message received so far
        # A sent job gets a second message only if its mark never landed (a mark whose
        # answer alone was lost did mark: the retry then sees the job as triggered).
        resent = {job for job in sent_unmarked if adv.final(job)["dest"] == "enqueued"}
        assert {job: every.count(job) for job in jobs} == {
            job: 2 if job in resent else 1 for job in jobs
        }
        assert {adv.final(job)["dest"] for job in failed} <= {"enqueued", "skipped"}
