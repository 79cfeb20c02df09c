"""Lambda's event source mapping: lanes of ordered records delivered to the handler.

Each lane invokes the real handler with its next batch and reads the answer as Lambda
does (`streams.batch_response`, shared with the poller): a crashed invocation is
retried whole, a partial failure from the lowest failed record; now and then a batch
that succeeded is delivered again, and the mapping may give up on a batch for good.
"""

from __future__ import annotations

import itertools
from collections import Counter
from typing import TYPE_CHECKING, Any

from reassembly_trigger.local.aws.faults import SimulatedCrash
from reassembly_trigger.local.simulation.fault_run.config import (
    FaultScenario,
)
from reassembly_trigger.local.streams.batch_response import InvocationOutcome, read_batch_response
from reassembly_trigger.timing import Invocation

if TYPE_CHECKING:
    from reassembly_trigger.local.simulation.fault_run.run import FaultRun

#: A batch retried this often means a stuck job: the run stops and says so.
MAX_DELIVERIES_PER_RECORD = 25

Record = dict[str, Any]


class StuckRecord(RuntimeError):
    """A record kept failing: some job can never be triggered."""


class Lane:
    """One shard-lane of an event source mapping: ordered records, checkpoint, retries.

    It invokes the shard's handler (`FaultRun.handle`: the batch's outcomes as data,
    and the response Lambda reads) on the shard's clock and chances. `gives_up`: the
    mapping may give up on a batch (`discard_rate` of new batches, `give_up_rate` of
    failed ones), whose records are then never delivered again.
    """

    def __init__(self, name: str, shard: FaultRun, *, gives_up: bool = True) -> None:
        self.name = name
        self.pending: list[Record] = []
        self.gives_up = gives_up
        #: Jobs with a record in a batch the mapping gave up on.
        self.discarded_jobs: set[str] = set()
        self._shard = shard
        self._deliveries: Counter[str] = Counter()
        self._invocations = itertools.count(1)

    def deliver(self) -> None:
        """Invoke the handler with the next batch and checkpoint as Lambda would."""
        shard = self._shard
        config, report = shard.config, shard.report
        batch = self.pending[: config.batch_size]
        if not batch:
            return
        for record in batch:
            sequence = record["dynamodb"]["SequenceNumber"]
            self._deliveries[sequence] += 1
            if self._deliveries[sequence] > MAX_DELIVERIES_PER_RECORD:
                raise StuckRecord(f"{self.name}: record {sequence} delivered too often")
        if self.gives_up and shard.chance(config.discard_rate):
            self._give_up(batch, "untried")
            return
        invocation = Invocation(
            f"{self.name}-{next(self._invocations)}",
            shard.clock.now() + config.function_timeout_seconds,
        )
        report.deliveries["invocations"] += 1
        report.deliveries["records"] += len(batch)
        try:
            response = shard.handle({"Records": batch}, invocation).response()
        except SimulatedCrash as crash:
            # Its outcomes die with it (the report's recovery paths leave them out).
            report.deliveries["invocations_crashed"] += 1
            if crash.label.endswith(":timeout"):
                # Killed at its timeout: the retry comes once the deadline has passed.
                shard.clock.set(invocation.deadline)
            # Lambda retries the whole batch of a failed invocation, while it may.
            if not self._gave_up(batch):
                report.count(FaultScenario.REDELIVERY_WHOLE_BATCH)
            return
        verdict = read_batch_response(response, batch)
        if verdict.outcome is InvocationOutcome.PARTIAL:
            retry_from = verdict.retry_from or 0
            if verdict.error is not None:
                report.deliveries["invalid_responses"] += 1
            del self.pending[:retry_from]
            if not self._gave_up(batch[retry_from:]):
                report.count(FaultScenario.REDELIVERY_FROM_FAILED)
            return
        if shard.chance(config.duplicate_delivery_rate):
            report.count(FaultScenario.DUPLICATE_DELIVERY)  # at-least-once: delivered again
            return
        del self.pending[: len(batch)]

    def _gave_up(self, retry: list[Record]) -> bool:
        """Whether the mapping gives up on a failed batch instead of retrying it."""
        if self.gives_up and self._shard.chance(self._shard.config.give_up_rate):
            self._give_up(retry, "after_failure")
            return True
        return False

    def _give_up(self, records: list[Record], when: str) -> None:
        """Move past `records` for good: their jobs are left to the reconciler."""
        report = self._shard.report
        del self.pending[: len(records)]
        report.count(FaultScenario.DISCARDED_BATCH)
        report.deliveries[f"discarded_batches:{when}"] += 1
        report.deliveries["discarded_records"] += len(records)
        self.discarded_jobs.update(r["dynamodb"]["Keys"]["job_id"]["S"] for r in records)
