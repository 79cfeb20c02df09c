"""The model can fail: five bugs planted in copies of the real rules, each found with
its shortest interleaving, printed as a trace (run with `-s` to read them)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import pytest

from tests.model import seeded, worlds
from tests.model.core import model_process
from tests.model.properties import DUPLICATES, HONEST, LEASE, LIVENESS
from tests.model.scheduler import Explorer, Scenario

BUGS: dict[str, tuple[Callable[[], contextlib.AbstractContextManager[None]], Scenario, str]] = {
    "lease outlives the deadline": (seeded.lease_outlives_deadline, worlds.LEASE_WORLD, LEASE),
    "take-over not conditioned on the lock as read": (
        seeded.take_over_unconditioned,
        worlds.TAKE_OVER_WORLD,
        DUPLICATES,
    ),
    "mark written before the send": (seeded.mark_before_send, worlds.MARK_WORLD, LIVENESS),
    "stream path skips a held job as final": (
        seeded.stream_skips_held_job,
        worlds.HELD_WORLD,
        HONEST,
    ),
    "budget refuses a step whose normal case fits": (
        seeded.budget_refuses_normal_case,
        worlds.SHORT_TIMEOUT_WORLD,
        LIVENESS,
    ),
}


@pytest.fixture(autouse=True)
def _model() -> Iterator[None]:
    with model_process():
        yield


@pytest.mark.parametrize("bug", list(BUGS))
def test_the_model_finds_each_seeded_bug_with_a_shortest_trace(bug: str) -> None:
    """Breadth first: the first violation is reached by a shortest interleaving."""
    patch, world, broken = BUGS[bug]
    with patch():
        report = Explorer(world).explore(stop_at_first=True)
    violation = report.first(broken)
    assert violation is not None, f"{bug}: not found ({report.summary()})"
    trace = violation.render()
    print(f"\n--- seeded bug: {bug}\n{trace}")
    assert f"VIOLATION of {broken}" in trace
    assert f"shortest interleaving: {violation.length} steps" in trace


@pytest.mark.parametrize(
    "world",
    [worlds.LEASE_WORLD, worlds.TAKE_OVER_WORLD, worlds.MARK_WORLD, worlds.HELD_WORLD],
    ids=lambda w: w.name,
)
def test_the_real_rules_pass_the_worlds_that_expose_the_bugs(world: Scenario) -> None:
    """Unpatched, the same worlds hold every property in every interleaving."""
    report = Explorer(world).explore()
    print(f"\n{report.summary()}")
    assert not report.violations, "\n\n".join(v.render() for v in report.violations.values())
    assert report.states > 1
