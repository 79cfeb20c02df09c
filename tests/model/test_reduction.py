"""The reductions are sound: on worlds small enough to explore whole, the reduced
search and the unreduced one (every interleaving, no state merged but equal ones)
reach the same end states (up to the symmetry) and find the same violations with
the same shortest traces; each seeded bug too."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from tests.model import worlds
from tests.model.core import model_process
from tests.model.scheduler import Explorer, Report, Scenario
from tests.model.test_exhaustive import EXHAUSTIVE, TWO_DELIVERIES
from tests.model.test_seeded_bugs import BUGS

#: Two deliveries racing with one crash and one lost answer, each on both sides of the
#: lock step's threshold (0.95 s): every fault, every kind of contention, symmetric.
FAULTY_PAIR = TWO_DELIVERIES
WORLDS = [
    worlds.LEASE_WORLD,
    worlds.TAKE_OVER_WORLD,
    worlds.MARK_WORLD,
    worlds.HELD_WORLD,
    worlds.SHORT_TIMEOUT_WORLD,
    FAULTY_PAIR,
]


@pytest.fixture(autouse=True)
def _model() -> Iterator[None]:
    with model_process():
        yield


def both(world: Scenario) -> tuple[Report, Report]:
    reduced = Explorer(world).explore()
    unreduced = Explorer(world, reduce=False).explore()
    print(f"\nreduced:   {reduced.summary()}\nunreduced: {unreduced.summary()}")
    return reduced, unreduced


def assert_same(reduced: Report, unreduced: Report) -> None:
    assert reduced.ends == unreduced.ends
    # (The persistent set explores fewer interleavings, each standing for the ones
    # that differ from it only in the order of commuting steps.)
    assert reduced.interleavings <= unreduced.interleavings
    found = {p: v.length for p, v in reduced.violations.items()}
    assert found == {p: v.length for p, v in unreduced.violations.items()}
    assert reduced.states <= unreduced.states
    assert reduced.transitions <= unreduced.transitions


@pytest.mark.parametrize("world", WORLDS, ids=lambda w: w.name)
def test_the_reduced_search_reaches_what_every_interleaving_reaches(world: Scenario) -> None:
    reduced, unreduced = both(world)
    assert_same(reduced, unreduced)
    assert not reduced.violations


@pytest.mark.parametrize("bug", list(BUGS))
def test_the_reduced_search_finds_each_seeded_bug_as_soon_as_every_interleaving(
    bug: str,
) -> None:
    patch, world, broken = BUGS[bug]
    with patch():
        reduced, unreduced = both(world)
    assert broken in reduced.violations
    assert_same(reduced, unreduced)


def test_the_symmetry_only_merges_mirror_images() -> None:
    """Without the declared pair, the same search keeps mirror images apart: more
    states, the same end states once mirrored."""
    plain = replace(FAULTY_PAIR, symmetric=())
    separate = Explorer(plain).explore()
    merged = Explorer(FAULTY_PAIR).explore()
    print(f"\nno symmetry: {separate.summary()}\nsymmetry:    {merged.summary()}")
    assert separate.states > merged.states
    mirrored = Explorer(FAULTY_PAIR)
    assert {mirrored.mirrored(k) for k in separate.ends} == merged.ends


@pytest.mark.slow
@pytest.mark.parametrize("world", [w for w in EXHAUSTIVE if w not in WORLDS], ids=lambda w: w.name)
def test_the_reduction_is_sound_on_every_world_of_the_normal_suite(world: Scenario) -> None:
    """The normal suite's exhaustive worlds, reduced and whole (about 20 s more)."""
    reduced, unreduced = both(world)
    assert_same(reduced, unreduced)
