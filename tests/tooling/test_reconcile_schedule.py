"""The reconciler on a schedule, as the simulations run it (`local.reconcile_schedule`):
the real reconciler against the moto server, on a simulated clock."""

from __future__ import annotations

import pytest

from reassembly_trigger.gateways import ReconcileCursorStore
from reassembly_trigger.local.aws.faults import FaultInjector, FaultKind, FaultRule
from reassembly_trigger.local.aws.stack import Resources
from reassembly_trigger.local.invocations.triggers import faulty_trigger
from reassembly_trigger.local.simulation.clock import SimulatedClock
from reassembly_trigger.local.simulation.reconcile_schedule import (
    REQUEST_PREFIX,
    ScheduledReconciler,
)
from reassembly_trigger.machine import SkipReason
from reassembly_trigger.reconcile import Reconciler

from moto_fixtures import Pipeline

EVERY = 300.0


@pytest.fixture
def scheduled(
    moto_endpoint: str, resources: Resources
) -> tuple[ScheduledReconciler, SimulatedClock, FaultInjector]:
    """A reconciler every 300 simulated seconds, each run 300 s long, faults attachable."""
    clock = SimulatedClock()
    built = faulty_trigger(moto_endpoint, resources, clock, reconcile_min_age_seconds=0)
    table = built.trigger.settings.reassembly_triggered_table_name
    cursor = ReconcileCursorStore(built.clients.dynamodb, table)
    return (
        ScheduledReconciler(
            Reconciler(built.trigger, cursor), clock, every_seconds=EVERY, timeout_seconds=EVERY
        ),
        clock,
        built.faults,
    )


def test_a_run_killed_after_the_lock_is_recorded_and_a_later_run_takes_over(
    pipeline: Pipeline, scheduled: tuple[ScheduledReconciler, SimulatedClock, FaultInjector]
) -> None:
    """GIVEN a complete job no record reached WHEN the first scheduled run dies between its
    lock and its send THEN the crash is recorded (not raised), the next run finds the
    lock within the dead run's lease and defers without waiting, and the run after the
    lease takes it over and sends the one message."""
    schedule, clock, faults = scheduled
    pipeline.add_job("job-lost", total_segments=2)
    pipeline.complete("job-lost", range(2))
    faults.add(FaultRule("SendMessage", FaultKind.CRASH, times=1))

    runs = []
    for _ in range(3):
        clock.set(schedule.next_at)
        runs.append(schedule.run_scheduled())

    crashed, deferred, taken_over = runs
    assert crashed.crash is not None
    assert crashed.result is None
    assert crashed.invocation.aws_request_id.startswith(REQUEST_PREFIX)
    assert deferred.result is not None
    assert [o.reason for o in deferred.result.outcomes] == [SkipReason.DEFERRED]
    assert not deferred.clean
    assert taken_over.result is not None
    assert taken_over.result.enqueued == ["job-lost"]
    assert pipeline.bodies() == [{"job_id": "job-lost"}]
    tally = schedule.tally
    assert (tally.runs, tally.crashed, tally.enqueued["job-lost"]) == (3, 1, 1)
    assert tally.transitions["take_over"] == 1
    assert tally.waits == 0


def test_after_a_long_pause_one_run_is_due_and_the_next_at_the_first_slot_after_it(
    scheduled: tuple[ScheduledReconciler, SimulatedClock, FaultInjector],
) -> None:
    """Slots missed while the clock jumped ahead are not run one by one: one run, and
    the next one is due within a period."""
    schedule, clock, _ = scheduled
    first_slot = schedule.next_at
    assert not schedule.due()

    clock.set(first_slot + 3.5 * EVERY)
    assert schedule.due()
    run = schedule.run_scheduled()

    assert run.clean
    assert not schedule.due()
    assert schedule.next_at == first_slot + 4 * EVERY
    assert schedule.tally.runs == 1
