"""The lock's lease rules and the message body, as pure functions."""

from __future__ import annotations

import pytest

from reassembly_trigger.gateways import fifo_message_ids, reassembly_body
from reassembly_trigger.items import whole_number
from reassembly_trigger.lock import LockRecord
from reassembly_trigger.timing import CLOCK_SKEW_SECONDS, LAMBDA_MAX_TIMEOUT_SECONDS
from stereo_spot_shared import ReassemblyPayload

NOW = 1_794_700_000


def lock(**attributes: dict[str, object]) -> LockRecord:
    return LockRecord.from_raw({"job_id": {"S": "job"}, **attributes})


@pytest.mark.parametrize(
    ("attributes", "lease_end"),
    [
        ({"triggered_at": {"N": str(NOW)}, "lease_expires_at": {"N": str(NOW + 60)}}, NOW + 60),
        # Legacy lock without a lease: leased for LOCK_LEASE_SECONDS from triggered_at.
        ({"triggered_at": {"N": str(NOW)}}, NOW + 900),
        # A lease a year ahead: over 900 s after the lock was taken.
        (
            {"triggered_at": {"N": str(NOW)}, "lease_expires_at": {"N": str(NOW + 31_536_000)}},
            NOW + LAMBDA_MAX_TIMEOUT_SECONDS,
        ),
        # Taken over later: the cap counts from the take-over.
        (
            {
                "triggered_at": {"N": str(NOW - 5000)},
                "taken_over_at": {"N": str(NOW)},
                "lease_expires_at": {"N": str(NOW + 10**9)},
            },
            NOW + LAMBDA_MAX_TIMEOUT_SECONDS,
        ),
        # No believable start (missing, or from a clock far ahead): the lease is over.
        ({"lease_expires_at": {"N": str(NOW + 600)}}, 0),
        ({"triggered_at": {"N": str(NOW + 3600)}, "lease_expires_at": {"N": str(NOW + 4000)}}, 0),
        # Odd types are read leniently: a string lease is no lease.
        ({"triggered_at": {"N": str(NOW)}, "lease_expires_at": {"S": "tomorrow"}}, NOW + 900),
        ({"triggered_at": {"N": "1.7947E+9"}}, 1_794_700_000 + 900),
    ],
)
def test_every_lease_ends_and_none_outlives_the_maximum(
    attributes: dict[str, dict[str, object]], lease_end: int
) -> None:
    """`lease_end` is bounded whatever the item says."""
    assert lock(**attributes).lease_end(900, NOW) == lease_end


def test_a_start_within_the_clock_skew_is_believed() -> None:
    """Hosts' clocks differ by up to the skew margin: a start just ahead still counts."""
    record = lock(triggered_at={"N": str(NOW + CLOCK_SKEW_SECONDS)})
    assert record.lease_end(900, NOW) == NOW + CLOCK_SKEW_SECONDS + 900


@pytest.mark.parametrize(
    ("attributes", "enqueued", "started"),
    [
        ({"enqueued_at": {"N": "1"}}, True, False),
        ({"enqueued_at": {"NULL": True}}, False, False),
        ({"reassembly_started_at": {"S": "yes"}}, False, True),
        ({"reassembly_started_at": {"NULL": True}}, False, False),
    ],
)
def test_a_null_mark_means_unmarked(
    attributes: dict[str, dict[str, object]], enqueued: bool, started: bool
) -> None:
    """A NULL attribute means as little as a missing one; any other value is a mark."""
    record = lock(**attributes)
    assert (record.enqueued, record.reassembly_started) == (enqueued, started)


JOB_IDS = [
    "job-1",
    "7a8b9c0d-job-b",
    "é∂漢字🎬",
    'quote"back\\slash/',
    "\x00\x01\x1f\x7f tab\t newline\n cr\r",
    "\u2028\u2029",
    "x" * 2048,
]


@pytest.mark.parametrize("job_id", JOB_IDS)
def test_the_body_is_byte_for_byte_the_shared_payloads_json(job_id: str) -> None:
    """Built without pydantic, the body equals `ReassemblyPayload(...).model_dump_json()`."""
    assert reassembly_body(job_id) == ReassemblyPayload(job_id=job_id).model_dump_json()


@pytest.mark.parametrize("job_id", JOB_IDS)
def test_fifo_ids_are_always_valid_and_stable(job_id: str) -> None:
    """At most 128 characters of SQS's alphabet, the same for the same job."""
    ids = fifo_message_ids(job_id)
    assert len(ids) <= 128
    assert ids.isascii()
    assert ids.isalnum()
    assert ids == fifo_message_ids(job_id)
    assert ids != fifo_message_ids(job_id + "x")


@pytest.mark.parametrize(
    ("value", "expected"),
    [(3, 3), (True, None), ("3", None), (None, None), (2.0, None)],
)
def test_whole_number_refuses_anything_but_integral_numbers(
    value: object, expected: object
) -> None:
    """Booleans, strings and floats are not DynamoDB whole numbers."""
    assert whole_number(value) == expected


def test_whole_number_reads_decimals() -> None:
    """Decimals from DynamoDB: integral ones convert, fractions and infinities do not."""
    from decimal import Decimal

    assert whole_number(Decimal("5")) == 5
    assert whole_number(Decimal("5.0")) == 5
    assert whole_number(Decimal("5.5")) is None
    assert whole_number(Decimal("Infinity")) is None
