"""What the trigger's evaluations in a `simulate` run ended in, read from their outcomes.

The stream handler's arrive with each invocation the pollers report
(`InvocationReport.outcomes`); the API's are what `trigger_job` returns to the video
workers and the chunker. The reconciler's are its runs' results, kept apart
(`reconcile_schedule.ReconcileTally`), as the report shows them apart.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from reassembly_trigger.local.streams.poller import InvocationReport, PollerReport
from reassembly_trigger.machine import FailReason, State
from reassembly_trigger.outcome import JobOutcome


@dataclass(slots=True)
class JobOutcomeCounts:
    """How the handler's and the API's evaluations of one job ended short of a send."""

    skips: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)


class OutcomeCounts:
    """The outcomes of the handler's and the API's evaluations, per job and per API
    caller; fed from the pollers', the workers' and the chunker's threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, JobOutcomeCounts] = {}
        #: API calls by caller, state and reason (`workers:skipped:incomplete`).
        self.api_calls: Counter[str] = Counter()
        #: Evaluations that ended on an unexpected error (a bug, never a fault of AWS).
        self.unexpected_errors = 0

    def add(self, outcomes: Iterable[JobOutcome], *, caller: str | None = None) -> None:
        """Count `outcomes`: the handler's, or (with `caller`) those an API caller got."""
        with self._lock:
            for outcome in outcomes:
                reason = outcome.reason.value if outcome.reason is not None else None
                if caller is not None:
                    key = f"{caller}:{outcome.state.value}"
                    self.api_calls[key if reason is None else f"{key}:{reason}"] += 1
                job = self._jobs.setdefault(outcome.job_id, JobOutcomeCounts())
                if outcome.state is State.SKIPPED:
                    job.skips[str(reason)] += 1
                elif outcome.state is State.FAILED:
                    job.failures[str(reason)] += 1
                if outcome.reason is FailReason.UNEXPECTED_ERROR:
                    self.unexpected_errors += 1

    def observe(self, report: PollerReport) -> None:
        """A poller's observer: counts the outcomes of every invocation it reports."""
        if isinstance(report, InvocationReport):
            self.add(report.outcomes)

    def job(self, job_id: str) -> JobOutcomeCounts:
        """One job's counts (empty if neither the handler nor the API evaluated it)."""
        with self._lock:
            return self._jobs.get(job_id) or JobOutcomeCounts()

    def skips_by_reason(self) -> Counter[str]:
        """Skips over every job, by reason."""
        with self._lock:
            return sum((job.skips for job in self._jobs.values()), Counter())

    def failures_by_reason(self) -> Counter[str]:
        """Failed evaluations over every job, by reason."""
        with self._lock:
            return sum((job.failures for job in self._jobs.values()), Counter())
