"""Jobs end to end: read the Jobs at once, evaluate every job (concurrently), answer.

`ReassemblyTrigger` is the one place jobs are evaluated: the stream handler gives it
the jobs a batch names, the reconciler the jobs in flight, and `trigger_job` the jobs
a worker just completed a segment of; all three run the same machine on the same
gateways.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypedDict

import structlog

from reassembly_trigger.evaluation import Gateways, JobEvaluation, JobLookup
from reassembly_trigger.items import InvalidJob, JobItem
from reassembly_trigger.lock import LockRecord
from reassembly_trigger.outcome import JobOutcome
from reassembly_trigger.ports import LoadedJobs
from reassembly_trigger.records import JobRequest, ParsedBatch, parse_batch
from reassembly_trigger.settings import Settings
from reassembly_trigger.timing import Invocation, InvocationBudget, calls_within


class BatchItemFailure(TypedDict):
    """One entry of Lambda's partial batch response."""

    itemIdentifier: str


class PartialBatchResponse(TypedDict):
    """What the handler returns: the records Lambda must retry, from the lowest."""

    batchItemFailures: list[BatchItemFailure]


def outcome_counts(outcomes: Sequence[JobOutcome]) -> Counter[str]:
    """Jobs by final state, and skips and failures by reason (`skipped:incomplete`)."""
    counts: Counter[str] = Counter()
    for outcome in outcomes:
        counts[outcome.state.value] += 1
        if outcome.reason is not None:
            counts[f"{outcome.state.value}:{outcome.reason.value}"] += 1
    return counts


@dataclass(frozen=True, slots=True)
class BatchResult:
    """Everything that happened to one batch."""

    parsed: ParsedBatch
    outcomes: list[JobOutcome]

    def response(self) -> PartialBatchResponse:
        """One failure entry per failed job: the lowest sequence number of its records."""
        failed = {o.lowest_sequence_number for o in self.outcomes if o.failed}
        return {
            "batchItemFailures": [
                {"itemIdentifier": seq} for seq in sorted((s for s in failed if s), key=int)
            ]
        }

    def counts(self) -> Counter[str]:
        """Jobs by final state, and skips and failures by reason (`skipped:incomplete`)."""
        return outcome_counts(self.outcomes)


def job_lookup(loaded: LoadedJobs) -> JobLookup:
    """A lookup over loaded Jobs that raises, for a job whose read failed, why it failed."""
    items: Mapping[str, JobItem | InvalidJob | None] = loaded.items
    unavailable: Mapping[str, Exception] = loaded.unavailable

    def lookup(job_id: str) -> JobItem | InvalidJob | None:
        error = unavailable.get(job_id)
        if error is not None:
            # Each job whose read failed fails with that error, and is retried.
            raise error
        return items.get(job_id)

    return lookup


def _finished(lock: LockRecord | None) -> bool:
    return lock is not None and lock.finished


class ReassemblyTrigger:
    """Evaluates jobs on the container's gateways; one instance per container."""

    def __init__(self, settings: Settings, gateways: Gateways) -> None:
        self.settings = settings
        self.gateways = gateways
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def handle(self, event: Any, invocation: Invocation) -> BatchResult:
        """Evaluate every job of a stream batch once; failures are reported, never swallowed."""
        log = structlog.get_logger("reassembly_trigger").bind(
            aws_request_id=invocation.aws_request_id
        )
        parsed = parse_batch(
            event,
            jobs_table=self.settings.jobs_table_name,
            completions_table=self.settings.segment_completions_table_name,
            log=log,
        )
        log.info(
            "batch_received",
            records=parsed.records,
            jobs=len(parsed.requests),
            ignored=dict(parsed.ignored),
            malformed=dict(parsed.malformed),
        )
        outcomes = self.evaluate_jobs(parsed.requests, invocation)
        return BatchResult(parsed=parsed, outcomes=outcomes)

    def evaluate_jobs(
        self,
        requests: Sequence[JobRequest],
        invocation: Invocation,
        *,
        lease_wait_seconds: float | None = None,
        known_locks: Mapping[str, LockRecord | None] | None = None,
    ) -> list[JobOutcome]:
        """Evaluate each job once: Jobs read together, evaluations on the container's pool.

        `lease_wait_seconds` overrides the setting (the reconciler never waits);
        `known_locks` gives locks already read (the reconciler reads them first).
        """
        if not requests:
            return []
        budget = InvocationBudget(invocation, self.gateways.clock)
        locks = known_locks or {}
        # A job whose lock is known to be finished ends before its Job is read.
        to_load = [r.job_id for r in requests if not _finished(locks.get(r.job_id))]
        with calls_within(budget):
            loaded = self.gateways.jobs.load_jobs(to_load, budget)
        lookup = job_lookup(loaded)
        wait = (
            self.settings.lease_wait_seconds if lease_wait_seconds is None else lease_wait_seconds
        )

        def evaluate(request: JobRequest) -> JobOutcome:
            evaluation = JobEvaluation(
                request,
                self.gateways,
                invocation,
                lease_wait_seconds=wait,
                known_lock=locks.get(request.job_id),
            )
            return evaluation.run(lookup)

        if self.settings.evaluation_concurrency == 1 or len(requests) <= 1:
            return [evaluate(request) for request in requests]
        # Every evaluation bounds its calls by the deadline, so jobs still queued when
        # time runs out end at once (failed: deadline) instead of overrunning.
        return list(self._executor().map(evaluate, requests))

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    max_workers=self.settings.evaluation_concurrency,
                    thread_name_prefix="evaluate",
                )
            return self._pool
