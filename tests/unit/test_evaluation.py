"""One job through the machine, against in-memory gateways: the rules, in milliseconds."""

from __future__ import annotations

from decimal import Decimal

import pytest
from botocore.exceptions import ClientError

from reassembly_trigger.evaluation import JobEvaluation
from reassembly_trigger.machine import FailReason, SkipReason, State, Trigger
from reassembly_trigger.outcome import JobOutcome
from reassembly_trigger.records import JobRequest
from reassembly_trigger.testing import InMemoryAws
from reassembly_trigger.timing import (
    ANSWER_RESERVE_SECONDS,
    LAMBDA_MAX_TIMEOUT_SECONDS,
    LOCK_STEP_SECONDS,
    MIN_FUNCTION_TIMEOUT_SECONDS,
    Invocation,
)


@pytest.fixture
def world() -> InMemoryAws:
    return InMemoryAws()


def evaluate(
    world: InMemoryAws, job_id: str = "job", *, seconds: float = 30.0, lease_wait: float = 0.0
) -> JobOutcome:
    invocation = Invocation("req", world.clock.now() + seconds)
    gateways = world.gateways()
    evaluation = JobEvaluation(
        JobRequest(job_id, ("100",)), gateways, invocation, lease_wait_seconds=lease_wait
    )
    loaded = gateways.jobs.load_jobs([job_id])
    return evaluation.run(loaded.items.get)


def test_a_complete_job_is_locked_sent_and_marked(world: InMemoryAws) -> None:
    """load -> count -> acquire -> send -> mark, one message, the lock marked."""
    world.ready("job", total=3)

    outcome = evaluate(world)

    assert outcome.state is State.ENQUEUED
    assert outcome.reason is None
    assert [t.trigger for t in outcome.history] == [
        Trigger.LOAD,
        Trigger.COUNT,
        Trigger.ACQUIRE,
        Trigger.SEND,
        Trigger.MARK,
    ]
    assert outcome.path == (
        State.RECEIVED,
        State.LOADED,
        State.COUNTED,
        State.LOCKED,
        State.SENT,
        State.ENQUEUED,
    )
    assert world.queue.bodies == ["job"]
    assert world.lock.value("job")["message_id"] == outcome.message_id


@pytest.mark.parametrize(
    ("job", "reason"),
    [
        (None, SkipReason.JOB_NOT_FOUND),
        ({"status": "chunking_in_progress"}, SkipReason.NOT_CHUNKING_COMPLETE),
        ({"status": "chunking_complete"}, SkipReason.TOTAL_SEGMENTS_MISSING),
        ({"status": "chunking_complete", "total_segments": True}, SkipReason.JOB_INVALID),
        ({"status": "chunking_complete", "total_segments": "2"}, SkipReason.JOB_INVALID),
        ({"status": "chunking_complete", "total_segments": 0}, SkipReason.JOB_INVALID),
        ({"status": "chunking_complete", "total_segments": 10**6}, SkipReason.JOB_INVALID),
        ({"status": 7, "total_segments": 2}, SkipReason.JOB_INVALID),
    ],
)
def test_only_status_and_total_segments_decide_and_nothing_is_coerced(
    world: InMemoryAws, job: dict[str, object] | None, reason: SkipReason
) -> None:
    """A Job the trigger cannot decide on is skipped with the reason; nothing is written."""
    if job is not None:
        world.jobs.put("job", **job)
    world.completions.complete("job", 0, 1)

    outcome = evaluate(world)

    assert (outcome.state, outcome.reason) == (State.SKIPPED, reason)
    assert world.lock.writes == []


def test_a_fractional_total_is_invalid_and_names_the_value(world: InMemoryAws) -> None:
    """`total_segments` 2.5 is refused with the value seen."""
    world.jobs.put("job", status="chunking_complete", total_segments=Decimal("2.5"))
    outcome = evaluate(world)
    assert outcome.reason is SkipReason.JOB_INVALID
    assert outcome.details == {"field": "total_segments", "value": "2.5"}


def test_other_attributes_never_stop_a_job(world: InMemoryAws) -> None:
    """An unknown mode, no created_at: the job still triggers (the model is only warned)."""
    world.jobs.put("job", status="chunking_complete", total_segments=1, mode="hologram")
    world.completions.complete("job", 0)
    assert evaluate(world).state is State.ENQUEUED


def test_only_whole_indexes_in_range_count(world: InMemoryAws) -> None:
    """0, 0.5, 1 and 7 out of 3: two count; the job waits for segment 2."""
    world.jobs.put("job", status="chunking_complete", total_segments=3)
    world.completions.complete("job", 0, "0.5", 1, 7, -1)

    outcome = evaluate(world)

    assert (outcome.reason, outcome.completions) == (SkipReason.INCOMPLETE, 2)
    assert outcome.details["fractional_indexes"] == 1


@pytest.mark.parametrize(
    ("lock", "reason"),
    [
        ({"enqueued_at": 1, "message_id": "m"}, SkipReason.ALREADY_TRIGGERED),
        ({"reassembly_started_at": 1}, SkipReason.REASSEMBLY_STARTED),
    ],
)
def test_a_finished_lock_ends_the_job(
    world: InMemoryAws, lock: dict[str, object], reason: SkipReason
) -> None:
    """Marked, or claimed by the media worker: skipped, nothing sent."""
    world.ready("job")
    world.lock.put("job", triggered_at=1, holder="h", lease_expires_at=2, **lock)
    outcome = evaluate(world)
    assert outcome.reason is reason
    assert world.queue.bodies == []


def test_a_live_holder_is_deferred_to_and_never_waited_for_beyond_the_wait(
    world: InMemoryAws,
) -> None:
    """Within its lease: wait up to lease_wait, then `deferred` (not failed); lock intact."""
    world.ready("job")
    now = int(world.clock.now())
    world.lock.put("job", triggered_at=now, holder="alive", lease_expires_at=now + 600)

    outcome = evaluate(world, lease_wait=5)

    assert (outcome.state, outcome.reason) == (State.SKIPPED, SkipReason.DEFERRED)
    assert 5 <= world.clock.slept <= 6.5
    assert world.lock.value("job")["holder"] == "alive"


@pytest.mark.parametrize(
    "lock",
    [
        {"holder": "dead", "lease_expires_at": -100},  # expired
        {"holder": "dead", "lease_expires_at": 0},  # released
        {"holder": "dead"},  # legacy lock without a lease, 900 s old
        {"lease_expires_at": 10**12, "holder": "far"},  # a year ahead: capped at 900 s
        {"holder": "x", "enqueued_at": None, "reassembly_started_at": None},  # NULL marks
        {"holder": 5, "lease_expires_at": "soon", "takeovers": "many"},  # odd types
    ],
    ids=["expired", "released", "legacy", "far_lease", "null_marks", "odd_types"],
)
def test_an_unfinished_lock_whose_lease_is_over_is_taken_over_whatever_its_shape(
    world: InMemoryAws, lock: dict[str, object]
) -> None:
    """Any lock that means "unfinished and its lease is over" is taken over and sent once."""
    world.ready("job")
    now = int(world.clock.now())
    lease = lock.get("lease_expires_at")
    if isinstance(lease, int) and lease < 0:
        lock = {**lock, "lease_expires_at": now + lease}
    world.lock.put("job", triggered_at=now - 1000, **lock)

    outcome = evaluate(world)

    assert outcome.state is State.ENQUEUED
    assert Trigger.TAKE_OVER in [t.trigger for t in outcome.history]
    assert world.queue.bodies == ["job"]
    value = world.lock.value("job")
    assert "reassembly_started_at" not in value
    assert value["takeovers"] >= 1


def test_a_take_over_that_keeps_losing_is_bounded_and_defers(world: InMemoryAws) -> None:
    """Every take-over loses its race (a rival rewrites the lock each time): a bounded
    number of attempts, then `deferred`; no spin."""
    world.ready("job")
    now = int(world.clock.now())
    world.lock.put("job", triggered_at=now - 2000, holder="dead", lease_expires_at=now - 1000)
    moves = iter(range(1000))

    def rival(write: str) -> None:
        if write == "take_over":
            world.lock.items["job"]["holder"] = {"S": f"rival-{next(moves)}"}

    world.lock.before_write = rival

    outcome = evaluate(world)

    assert (outcome.state, outcome.reason) == (State.SKIPPED, SkipReason.DEFERRED)
    assert 1 <= world.lock.writes.count("take_over") <= 5
    assert world.queue.bodies == []


def test_a_failed_send_releases_the_lock_and_fails_the_job(world: InMemoryAws) -> None:
    """The send fails: the lease is released at once, the job fails with aws_error."""
    world.ready("job")
    world.queue.fail_with = ClientError({"Error": {"Code": "InternalError"}}, "SendMessage")

    outcome = evaluate(world)

    assert (outcome.state, outcome.reason) == (State.FAILED, FailReason.AWS_ERROR)
    assert outcome.details["lease_released"] is True
    assert world.lock.value("job")["lease_expires_at"] == 0


def test_a_lock_taken_over_before_the_mark_fails_as_lock_lost(world: InMemoryAws) -> None:
    """Between send and mark another holder took the lock: `lock_lost`, retried."""
    world.ready("job")

    def thief(write: str) -> None:
        if write == "mark":
            world.lock.items["job"]["holder"] = {"S": "thief"}

    world.lock.before_write = thief

    outcome = evaluate(world)

    assert (outcome.state, outcome.reason) == (State.FAILED, FailReason.LOCK_LOST)


def test_too_little_time_fails_the_job_before_it_locks(world: InMemoryAws) -> None:
    """With less time left than the lock and the normal case of the send and the mark
    after it need (plus the answer reserve), nothing is written: `deadline`."""
    world.ready("job")

    outcome = evaluate(world, seconds=ANSWER_RESERVE_SECONDS + LOCK_STEP_SECONDS - 0.01)

    assert (outcome.state, outcome.reason) == (State.FAILED, FailReason.DEADLINE)
    assert world.lock.writes == []


def test_the_lock_is_taken_as_soon_as_its_normal_case_fits(world: InMemoryAws) -> None:
    """About a second is enough: the step is never refused for its worst case (issue 20:
    43 s were asked for, so a 30 s function never triggered a job)."""
    world.ready("job")

    outcome = evaluate(world, seconds=ANSWER_RESERVE_SECONDS + LOCK_STEP_SECONDS + 0.01)

    assert outcome.state is State.ENQUEUED


@pytest.mark.parametrize("seconds", [MIN_FUNCTION_TIMEOUT_SECONDS, 3, 5, 10, 30, 60, 900])
def test_every_timeout_a_user_sets_triggers_a_complete_job(
    world: InMemoryAws, seconds: int
) -> None:
    """Lambda's default 3 s, the replaced Lambda's 30 s, the minimum 2 s, the maximum."""
    world.ready("job")

    assert evaluate(world, seconds=seconds).state is State.ENQUEUED


def test_the_lease_is_the_deadline_but_never_beyond_the_maximum(world: InMemoryAws) -> None:
    """A caller with an hour to live still leases the lock for at most 900 s."""
    world.ready("job")
    now = world.clock.now()
    evaluate(world, seconds=3600)
    assert world.lock.value("job")["lease_expires_at"] <= now + LAMBDA_MAX_TIMEOUT_SECONDS


def test_an_unreadable_job_fails_with_the_read_error(world: InMemoryAws) -> None:
    """A Job whose read failed fails the job (aws_error), so its records are retried."""
    world.ready("job")
    world.jobs.unavailable["job"] = ClientError(
        {"Error": {"Code": "ProvisionedThroughputExceededException"}}, "BatchGetItem"
    )
    gateways = world.gateways()
    loaded = gateways.jobs.load_jobs(["job"])
    invocation = Invocation("req", world.clock.now() + 60)
    evaluation = JobEvaluation(JobRequest("job"), gateways, invocation, lease_wait_seconds=0)

    def lookup(job_id: str) -> object:
        raise loaded.unavailable[job_id]

    outcome = evaluation.run(lookup)  # type: ignore[arg-type]

    assert (outcome.state, outcome.reason) == (State.FAILED, FailReason.AWS_ERROR)
    assert outcome.details["error_code"] == "ProvisionedThroughputExceededException"
