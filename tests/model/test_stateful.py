"""Larger worlds, sampled: hypothesis' rule-based machine picks the next step among
everything the scheduler allows (actor calls and their faults, the world's moves).

Safety is checked after every step; at the end the faults stop, the running actors
finish, the reconciler runs, and liveness is checked. A failure prints the steps as
the model's trace.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from tests.model.core import model_process
from tests.model.properties import liveness, safety
from tests.model.scheduler import ActorSpec, Explorer, JobSpec, Node, Scenario, Violation

STREAM_TIMEOUTS = (0.6, 0.9, 1.0, 2.0, 3.0, 10.0, 30.0, 60.0, 300.0, 900.0)
#: trigger_job refuses less than 2 s (ValueError, before any call).
TRIGGER_JOB_TIMEOUTS = (2.0, 5.0, 30.0, 60.0, 1000.0)
RECONCILER_TIMEOUTS = (1.2, 2.0, 3.0, 30.0, 60.0, 300.0, 900.0)


def large_world(*, legacy: bool, crashes: int, lost: int, errors: int) -> Scenario:
    """Two jobs chunked and completed by the world's steps, four deliveries (one naming
    both jobs, one a retry of it), two `trigger_job` calls, two reconciler runs."""
    jobs = (
        JobSpec("job-1"),
        JobSpec("job-2", legacy_lock_age=100.0 if legacy else None),
    )
    both = (("job-1", 1, 2), ("job-2", 0, 3))
    actors = (
        ActorSpec("stream-1", "stream", STREAM_TIMEOUTS, records=(("job-1", 0, 1),)),
        ActorSpec("stream-2", "stream", STREAM_TIMEOUTS, records=both),
        ActorSpec("stream-3", "stream", STREAM_TIMEOUTS, records=(("job-2", 1, 4),)),
        ActorSpec("stream-2-retry", "stream", STREAM_TIMEOUTS, records=both),
        ActorSpec("trigger_job-1", "trigger_job", TRIGGER_JOB_TIMEOUTS, job_id="job-1"),
        ActorSpec("trigger_job-2", "trigger_job", TRIGGER_JOB_TIMEOUTS, job_id="job-2"),
        ActorSpec("reconciler-1", "reconciler", RECONCILER_TIMEOUTS),
        ActorSpec("reconciler-2", "reconciler", RECONCILER_TIMEOUTS),
    )
    name = f"two jobs{', a legacy lock' if legacy else ''}, faults {crashes}/{lost}/{errors}"
    return Scenario(name, jobs, actors, crashes=crashes, lost_answers=lost, errors=errors)


WORLDS = [
    large_world(legacy=False, crashes=1, lost=1, errors=1),
    large_world(legacy=True, crashes=1, lost=1, errors=0),
    large_world(legacy=False, crashes=2, lost=2, errors=2),
]


class ProtocolMachine(RuleBasedStateMachine):
    """One run of a large world, one scheduler step per rule."""

    def __init__(self) -> None:
        super().__init__()
        self.explorer: Explorer | None = None
        self.node: Node | None = None

    @initialize(world=st.sampled_from(WORLDS))
    def build(self, world: Scenario) -> None:
        self.explorer = Explorer(world)
        self.node = self.explorer.root()

    def _take(self, pick: int, *, faults: bool = True) -> bool:
        assert self.explorer is not None
        assert self.node is not None
        choices = self.explorer.choices(self.node)
        if not faults:
            choices = [c for c in choices if c.what == "step"]
        if not choices:
            return False
        self.explorer.restore(self.node)
        self.node = self.explorer.apply(self.node, choices[pick % len(choices)])
        return True

    @rule(pick=st.integers(min_value=0, max_value=10_000))
    def step(self, pick: int) -> None:
        self._take(pick)

    @invariant()
    def safe(self) -> None:
        if self.node is not None:
            _assert_none(safety(self.node.world, self.node.actors), self.node)

    def teardown(self) -> None:
        if self.explorer is None or self.node is None:
            return
        try:
            # The faults stop: the running actors finish, then the reconciler runs.
            while self._take(0, faults=False):
                _assert_none(safety(self.node.world, self.node.actors), self.node)
            world, notes = self.explorer.epilogue(self.node)
            _assert_none(liveness(world) + safety(world, self.node.actors), self.node, notes)
        finally:
            self.explorer.close()


def _assert_none(broken: list[tuple[str, str]], node: Node, notes: list[str] | None = None) -> None:
    if broken:
        prop, why = broken[0]
        raise AssertionError(Violation(prop, why, node, notes or []).render())


@pytest.fixture(autouse=True)
def _model() -> object:
    with model_process():
        yield


def test_sampled_interleavings_of_large_worlds_keep_every_property() -> None:
    """A few hundred runs of up to 40 steps, derandomized so CI runs the same ones."""
    run_state_machine_as_test(
        ProtocolMachine,
        settings=settings(
            max_examples=200,
            stateful_step_count=40,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


@pytest.mark.slow
def test_many_more_interleavings_of_large_worlds_keep_every_property() -> None:
    """Thousands of runs of up to 120 steps, a fresh sample each time."""
    run_state_machine_as_test(
        ProtocolMachine,
        settings=settings(
            max_examples=3000,
            stateful_step_count=120,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
