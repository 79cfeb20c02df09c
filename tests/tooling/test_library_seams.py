"""The internals of botocore and moto the local tooling relies on are still there, and
when one is not, the failure names the library, its version and the internal
(`reassembly_trigger.local.aws.library_seams`)."""

from __future__ import annotations

import importlib.metadata
from typing import Any

import pytest

from reassembly_trigger.local.aws import library_seams
from reassembly_trigger.local.aws.faults import (
    FaultInjector,
    FaultKind,
    FaultRule,
    instant_retries,
)
from reassembly_trigger.local.aws.library_seams import LibraryChanged, Seam
from reassembly_trigger.local.aws.stack import LocalAws, Resources

from moto_fixtures import REGION


@pytest.mark.parametrize("seam", library_seams.SEAMS, ids=lambda s: f"{s.library}:{s.attribute}")
def test_every_internal_relied_on_is_still_there(seam: Seam) -> None:
    """Each seam's attribute exists with the parameters the tooling passes or reads by
    name; an upgrade that moves one fails here with LibraryChanged's message."""
    seam.get()


def test_a_gone_internal_is_named_with_the_librarys_version() -> None:
    """The message says which library, at which version, lost what, and who relied on it."""
    gone = Seam("moto", "moto.dynamodb.models.table", "Table.no_such_method", "a test")

    with pytest.raises(LibraryChanged) as changed:
        gone.get()

    version = importlib.metadata.version("moto")
    assert str(changed.value).startswith(
        f"moto {version}: moto.dynamodb.models.table.Table.no_such_method is gone; a test "
        "relies on it"
    )


def test_a_renamed_parameter_is_named() -> None:
    """A parameter the tooling reads by name that the library renamed is reported."""
    renamed = Seam(
        "moto", "moto.dynamodb.models.table", "Table.query", "a test", ("hash_key", "index")
    )

    with pytest.raises(LibraryChanged, match=r"Table\.query no longer takes index;"):
        renamed.get()


def test_a_retry_handler_botocore_did_not_register_fails_loudly(aws: LocalAws) -> None:
    """Without botocore's `retry-config-<service>` handler there is nothing to replace:
    LibraryChanged names botocore and its version instead of leaving botocore's
    real-time backoff in place."""
    unique_id = "retry-config-dynamodb"
    aws.dynamodb.meta.events.unregister("needs-retry.dynamodb", unique_id=unique_id)

    with pytest.raises(LibraryChanged) as changed:
        instant_retries(aws.dynamodb, lambda seconds: None)

    version = importlib.metadata.version("botocore")
    assert str(changed.value).startswith(f"botocore {version}: ")
    assert repr(unique_id) in str(changed.value)


def test_instant_retries_keep_botocores_decision_and_hand_the_wait_to_the_clock(
    aws: LocalAws, resources: Resources
) -> None:
    """A throttled call is retried by botocore's standard handler, and the backoff for
    a throttle (1 s for the first retry) goes to the given sleep."""
    faults = FaultInjector()
    faults.attach(aws.dynamodb)
    faults.add(FaultRule("GetItem", FaultKind.THROTTLE, times=1))
    slept: list[float] = []
    instant_retries(aws.dynamodb, slept.append)

    answer: Any = aws.dynamodb.get_item(
        TableName=resources.names.jobs_table, Key={"job_id": {"S": "nobody"}}
    )

    assert "Item" not in answer
    assert answer["ResponseMetadata"]["RetryAttempts"] == 1
    assert slept == [1.0]
    assert faults.calls["GetItem"] == 2


@pytest.fixture
def aws(moto_endpoint: str) -> LocalAws:
    """Fresh clients on the session's moto server (their retry handlers are replaced)."""
    return LocalAws.connect(moto_endpoint, REGION)
