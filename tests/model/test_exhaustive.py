"""Every interleaving of small worlds, explored exhaustively against the real code.

The figures (distinct states, transitions, complete interleavings) are printed; run
with `-s` to read them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.model import worlds
from tests.model.core import THRESHOLDS, model_process
from tests.model.properties import LIVENESS
from tests.model.scheduler import ActorSpec, Explorer, Report, Scenario

#: Stream time left below one bounded call (0.75 s with the reserve), between it and
#: the lock step (0.95 s), and the replaced Lambda's 30 s.
STREAM_TIMEOUTS = (0.6, 0.9, 30.0)
#: Reconciler timeouts below a chunk with its cursor (1.45 s) and the deployed 300 s.
RECONCILER_TIMEOUTS = (1.2, 300.0)
#: trigger_job at its 2 s minimum and above Lambda's 900 s maximum (capped).
TRIGGER_JOB_TIMEOUTS = (2.0, 1000.0)

DELIVERY_AND_RECONCILER = Scenario(
    "a delivery and a reconciler run",
    jobs=(worlds.READY,),
    actors=(
        worlds.stream("stream-1", *STREAM_TIMEOUTS),
        ActorSpec("reconciler", "reconciler", RECONCILER_TIMEOUTS),
    ),
    crashes=1,
    lost_answers=1,
    lease_wait_seconds=1,
)
TWO_DELIVERIES = Scenario(
    "two deliveries",
    jobs=(worlds.READY,),
    actors=(
        worlds.stream("stream-1", 0.9, 30.0),
        worlds.stream("stream-2", 0.9, 30.0, segment=1, number=2),
    ),
    crashes=1,
    lost_answers=1,
    lease_wait_seconds=1,
    symmetric=(("stream-1", "stream-2"),),
)
DELIVERY_AND_TRIGGER_JOB = Scenario(
    "a delivery and trigger_job",
    jobs=(worlds.READY,),
    actors=(
        worlds.stream("stream-1", 60.0),
        ActorSpec("trigger_job", "trigger_job", TRIGGER_JOB_TIMEOUTS, job_id=worlds.JOB),
    ),
    crashes=1,
    lost_answers=1,
    lease_wait_seconds=1,
)
#: The worlds the normal suite explores whole.
EXHAUSTIVE = (
    DELIVERY_AND_RECONCILER,
    TWO_DELIVERIES,
    DELIVERY_AND_TRIGGER_JOB,
    worlds.SHORT_TIMEOUT_WORLD,
)


@pytest.fixture(autouse=True)
def _model() -> Iterator[None]:
    with model_process():
        yield


def explored(world: Scenario) -> Report:
    report = Explorer(world).explore()
    print(f"\n{report.summary()}")
    return report


def assert_holds(report: Report) -> None:
    assert not report.violations, "\n\n".join(v.render() for v in report.violations.values())


def test_the_timeouts_lie_on_both_sides_of_every_threshold() -> None:
    """The deadline sets mean something only if they straddle the code's thresholds."""
    timeouts = {*STREAM_TIMEOUTS, *RECONCILER_TIMEOUTS, *TRIGGER_JOB_TIMEOUTS}
    for name, threshold in THRESHOLDS.items():
        assert min(timeouts) < threshold < max(timeouts), name


def test_a_delivery_and_a_reconciler_run_keep_every_property_in_every_interleaving() -> None:
    """One delivery and one reconciler run racing for a ready job, each with any timeout
    of its set, at most one crash and one lost answer anywhere, the media worker
    claiming whenever a message is there."""
    report = explored(DELIVERY_AND_RECONCILER)
    assert_holds(report)
    assert report.states > 1000


def test_two_deliveries_keep_every_property_in_every_interleaving() -> None:
    """Two deliveries of one job's two records, timeouts below and above LOCK_SECONDS,
    at most one crash and one lost answer."""
    report = explored(TWO_DELIVERIES)
    assert_holds(report)
    assert report.states > 500  # 1734 before the two were one up to symmetry


def test_a_delivery_and_trigger_job_keep_every_property_in_every_interleaving() -> None:
    """A delivery and a worker's `trigger_job` call (30 s or more than 900 s)."""
    assert_holds(explored(DELIVERY_AND_TRIGGER_JOB))


def test_every_complete_job_is_triggered_at_the_replaced_lambdas_30_s_timeout() -> None:
    """The contract's 30 s timeout on every entry point: liveness holds (it did not
    before issue 20: 43 s were needed to take a lock, 81 s per reconcile chunk)."""
    report = explored(worlds.SHORT_TIMEOUT_WORLD)
    violation = report.first(LIVENESS)
    if violation is not None:
        print(violation.render())
    assert_holds(report)


#: How deep the whole small world is explored: every interleaving of its first steps.
WHOLE_WORLD_LEVELS = 14


@pytest.mark.slow
def test_the_whole_small_world_keeps_every_property_in_every_interleaving_of_its_first_steps() -> (
    None
):
    """Issue 21's small world in full: two deliveries, a `trigger_job` call and a
    reconciler run, each with any timeout of its set, one crash and one lost answer,
    explored breadth first to `WHOLE_WORLD_LEVELS` steps (every interleaving that long;
    the whole of it does not finish: it was stopped at 647,129 states, still growing
    1.2-1.3x a level). Safety is checked on every state reached, liveness on the runs
    that ended within the bound."""
    world = worlds.small_world(
        stream_timeouts=(30.0, 60.0),
        trigger_job_timeouts=TRIGGER_JOB_TIMEOUTS,
        reconciler_timeouts=RECONCILER_TIMEOUTS,
    )
    began = time.monotonic()

    def level(report: Report, following: int) -> None:
        print(
            f"  {time.monotonic() - began:5.0f} s: {report.states} states, "
            f"{report.transitions} transitions, {report.slept} slept; next level {following}"
        )

    report = Explorer(world).explore(progress=level, max_levels=WHOLE_WORLD_LEVELS)
    print(f"\n{report.summary()} in {time.monotonic() - began:.0f} s (bounded: {report.bounded})")
    assert_holds(report)
    assert report.states > 1000
