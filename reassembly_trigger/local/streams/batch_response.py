"""How Lambda's event source mapping reads a function's answer to a stream batch.

One model, used by everything here that plays Lambda's part: the stream poller
(`poller.StreamPoller`) and the fault run's mapping lanes
(`simulation.fault_run.lanes`), so both retry exactly what Lambda would retry.

With `ReportBatchItemFailures` on, Lambda reads `batchItemFailures`:

- no response, no list, or an empty list: the whole batch succeeded;
- otherwise it checkpoints before the lowest failed sequence number and retries
  from there;
- an entry that is not an object, whose `itemIdentifier` is missing, empty, not a
  string or names no record of the batch, makes the whole batch count as failed
  (retried from its first record).

With the setting off, any answer is a success. A function error (an exception, a
timeout) is not an answer: the caller treats it as `InvocationOutcome.ERROR`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from reassembly_trigger.local.streams.shapes import sequence_number


class InvocationOutcome(StrEnum):
    """How one invocation ended, from the mapping's point of view."""

    OK = "ok"
    PARTIAL = "partial"  # batchItemFailures: retry from the lowest
    ERROR = "error"  # an exception, a timeout or an invalid response


@dataclass(frozen=True, slots=True)
class BatchVerdict:
    """What the mapping does after one invocation."""

    outcome: InvocationOutcome
    #: On a partial failure: the index in the batch of the first record to retry.
    retry_from: int | None = None
    #: Why the batch failed, when it did (a function error, an invalid entry).
    error: str | None = None


def read_batch_response(
    response: Any,
    records: Sequence[Mapping[str, Any]],
    *,
    report_batch_item_failures: bool = True,
) -> BatchVerdict:
    """Lambda's reading of a function's answer to `records` (a partial batch response)."""
    if not report_batch_item_failures:
        return BatchVerdict(InvocationOutcome.OK)
    failures = response.get("batchItemFailures") if isinstance(response, Mapping) else None
    if not failures:
        return BatchVerdict(InvocationOutcome.OK)
    positions = {sequence_number(r): i for i, r in enumerate(records)}
    lowest: int | None = None
    for failure in failures if isinstance(failures, list) else [failures]:
        identifier = failure.get("itemIdentifier") if isinstance(failure, Mapping) else None
        if not isinstance(identifier, str) or identifier not in positions:
            return BatchVerdict(
                InvocationOutcome.PARTIAL,
                retry_from=0,
                error=f"invalid batchItemFailures entry: {failure!r}",
            )
        index = positions[identifier]
        lowest = index if lowest is None else min(lowest, index)
    return BatchVerdict(InvocationOutcome.PARTIAL, retry_from=lowest)
