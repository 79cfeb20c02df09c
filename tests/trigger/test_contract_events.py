"""The contract's sample events the tests use are kept inside the repository."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from moto_fixtures import CONTRACT_EVENTS

#: Where the pipeline's shared contract sits when this repository is checked out beside it.
SHARED_EVENTS = Path(__file__).resolve().parents[3] / "shared" / "contract" / "events"
#: The events the tests read.
NEEDED = (
    "jobs-chunking-complete.json",
    "segment-completions-batch.json",
    "segment-completions-ttl-remove.json",
)


def test_the_events_the_tests_need_are_in_the_repository() -> None:
    """A clone alone (without ../shared) has every sample event, each a stream event."""
    for name in NEEDED:
        event = json.loads((CONTRACT_EVENTS / name).read_text())
        assert isinstance(event["Records"], list)
        assert event["Records"], name


@pytest.mark.skipif(not SHARED_EVENTS.is_dir(), reason="../shared is not beside this clone")
def test_the_copies_match_the_shared_contract() -> None:
    """When ../shared is beside the clone, the copies are byte for byte the contract's
    events: a contract change shows up here (copy the new files into tests/events/)."""
    for name in NEEDED:
        assert (CONTRACT_EVENTS / name).read_bytes() == (SHARED_EVENTS / name).read_bytes(), name
    assert sorted(p.name for p in SHARED_EVENTS.glob("*.json")) == sorted(NEEDED)
