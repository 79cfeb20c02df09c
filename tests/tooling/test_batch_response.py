"""Lambda's reading of a partial batch response: the one model the poller and the fault
simulation's lanes share (`reassembly_trigger.local.streams.batch_response`)."""

from __future__ import annotations

from typing import Any

import pytest

from reassembly_trigger.local.streams.batch_response import (
    InvocationOutcome,
    read_batch_response,
)


def records(*sequence_numbers: str) -> list[dict[str, Any]]:
    return [{"dynamodb": {"SequenceNumber": seq}} for seq in sequence_numbers]


BATCH = records("100", "200", "300", "400")


@pytest.mark.parametrize("response", [None, {}, {"batchItemFailures": []}, "ok", 42])
def test_no_failures_listed_means_the_whole_batch_succeeded(response: Any) -> None:
    """No answer, no list or an empty list: Lambda checkpoints the whole batch."""
    verdict = read_batch_response(response, BATCH)

    assert verdict.outcome is InvocationOutcome.OK
    assert verdict.retry_from is None


def test_the_retry_starts_at_the_lowest_failed_record() -> None:
    """Failures in any order: the retry starts at the batch's earliest failed record."""
    response = {"batchItemFailures": [{"itemIdentifier": "400"}, {"itemIdentifier": "200"}]}

    verdict = read_batch_response(response, BATCH)

    assert verdict.outcome is InvocationOutcome.PARTIAL
    assert verdict.retry_from == 1
    assert verdict.error is None


def test_an_unknown_identifier_fails_the_whole_batch() -> None:
    """A sequence number that names no record of the batch is invalid: the whole batch
    is retried from its first record (never a crash, never a record skipped)."""
    response = {"batchItemFailures": [{"itemIdentifier": "300"}, {"itemIdentifier": "999"}]}

    verdict = read_batch_response(response, BATCH)

    assert verdict.outcome is InvocationOutcome.PARTIAL
    assert verdict.retry_from == 0
    assert "999" in str(verdict.error)


@pytest.mark.parametrize(
    "failure",
    [{"itemIdentifier": ""}, {"itemIdentifier": None}, {"itemIdentifier": 300}, {}, "300", None],
)
def test_a_malformed_entry_fails_the_whole_batch(failure: Any) -> None:
    """Empty, null, numeric or missing identifiers, and entries that are not objects."""
    verdict = read_batch_response({"batchItemFailures": [failure]}, BATCH)

    assert (verdict.outcome, verdict.retry_from) == (InvocationOutcome.PARTIAL, 0)


def test_a_single_entry_given_as_an_object_is_read_as_a_list_of_one() -> None:
    """`batchItemFailures` as one object instead of a list still names its record."""
    verdict = read_batch_response({"batchItemFailures": {"itemIdentifier": "300"}}, BATCH)

    assert (verdict.outcome, verdict.retry_from) == (InvocationOutcome.PARTIAL, 2)


def test_without_report_batch_item_failures_any_answer_is_a_success() -> None:
    """A mapping without `ReportBatchItemFailures` ignores the list."""
    response = {"batchItemFailures": [{"itemIdentifier": "200"}]}

    verdict = read_batch_response(response, BATCH, report_batch_item_failures=False)

    assert verdict.outcome is InvocationOutcome.OK
