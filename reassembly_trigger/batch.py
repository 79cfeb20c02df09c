"""A stream batch end to end: parse, read the Jobs at once, evaluate every job, answer."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypedDict

import structlog

from reassembly_trigger.evaluation import (
    AWS_ERRORS,
    Gateways,
    Invocation,
    JobEvaluation,
    JobLookup,
    JobOutcome,
)
from reassembly_trigger.gateways import Item
from reassembly_trigger.records import JobRequest, ParsedBatch, parse_batch
from reassembly_trigger.settings import Settings


class BatchItemFailure(TypedDict):
    """One entry of Lambda's partial batch response."""

    itemIdentifier: str


class PartialBatchResponse(TypedDict):
    """What the handler returns: the records Lambda must retry, from the lowest."""

    batchItemFailures: list[BatchItemFailure]


@dataclass(frozen=True, slots=True)
class BatchResult:
    """Everything that happened to one batch."""

    parsed: ParsedBatch
    outcomes: list[JobOutcome]

    def response(self) -> PartialBatchResponse:
        """One failure entry per failed job: the lowest sequence number of its records."""
        failed = sorted({o.lowest_sequence_number for o in self.outcomes if o.failed}, key=int)
        return {"batchItemFailures": [{"itemIdentifier": seq} for seq in failed]}

    def counts(self) -> Counter[str]:
        """Jobs by final state, and skips and failures by reason (`skipped:incomplete`)."""
        counts: Counter[str] = Counter()
        for outcome in self.outcomes:
            counts[outcome.state.value] += 1
            if outcome.reason:
                counts[f"{outcome.state.value}:{outcome.reason}"] += 1
        return counts


def _prefetched(found: dict[str, Item | None]) -> JobLookup:
    return found.__getitem__


def _unavailable(error: Exception) -> JobLookup:
    def lookup(job_id: str) -> Item | None:
        raise error

    return lookup


class ReassemblyTrigger:
    """Evaluates the jobs a stream batch names; one instance per container."""

    def __init__(self, settings: Settings, gateways: Gateways) -> None:
        self.settings = settings
        self.gateways = gateways
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def handle(self, event: dict[str, Any], invocation: Invocation) -> BatchResult:
        """Evaluate every job of a batch once; failures are reported, never swallowed."""
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
        lookup = self._load_jobs([r.job_id for r in parsed.requests])
        outcomes = self._evaluate_all(parsed.requests, lookup, invocation)
        return BatchResult(parsed=parsed, outcomes=outcomes)

    def evaluate(
        self, request: JobRequest, invocation: Invocation, *, dry_run: bool = False
    ) -> JobOutcome:
        """Evaluate one job on its own (doctor, repair)."""
        lookup = self._load_jobs([request.job_id])
        return JobEvaluation(request, self.gateways, invocation, dry_run=dry_run).run(lookup)

    def _load_jobs(self, job_ids: list[str]) -> JobLookup:
        if not job_ids:
            return _prefetched({})
        try:
            return _prefetched(self.gateways.jobs.load_jobs(job_ids))
        except AWS_ERRORS as exc:
            # Each job then fails with this error, and its records are retried.
            return _unavailable(exc)

    def _evaluate_all(
        self, requests: list[JobRequest], lookup: JobLookup, invocation: Invocation
    ) -> list[JobOutcome]:
        def evaluate(request: JobRequest) -> JobOutcome:
            return JobEvaluation(request, self.gateways, invocation).run(lookup)

        if self.settings.evaluation_concurrency == 1 or len(requests) <= 1:
            return [evaluate(request) for request in requests]
        return list(self._executor().map(evaluate, requests))

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    max_workers=self.settings.evaluation_concurrency,
                    thread_name_prefix="evaluate",
                )
            return self._pool
