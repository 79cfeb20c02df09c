"""What a `simulate` run produced: how each job went, progress snapshots, the run's
report and the figures of `simulate --json`."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from reassembly_trigger.local.simulation.latency import LatencySummary
from reassembly_trigger.local.simulation.media_worker import JobTally
from reassembly_trigger.local.simulation.outcome_counts import JobOutcomeCounts
from reassembly_trigger.local.simulation.reconcile_schedule import ReconcileTally
from reassembly_trigger.local.simulation.workload import Workload, WorkloadJob
from reassembly_trigger.local.streams.poller import PollerStats


@dataclass(frozen=True, slots=True)
class JobResult:
    """How one job went."""

    job: WorkloadJob
    messages: int
    reassemblies: int
    refusals: int
    skips: Counter[str]
    failures: Counter[str]
    #: Whether the run settled: only then is a job never reassembled stuck.
    settled: bool = True
    #: Messages the reconciler sent for this job (the stream path had not, yet or at all).
    reconciler_sends: int = 0
    #: Seconds from the write that made the job complete to its first message (None:
    #: never sent), and which write that was: `completion` (its last segment's) or
    #: `chunking` (the chunker's mark, when it came after the last segment).
    latency_seconds: float | None = None
    completed_by: str | None = None

    @classmethod
    def of(
        cls,
        job: WorkloadJob,
        media: JobTally,
        evaluations: JobOutcomeCounts,
        *,
        settled: bool,
        reconciler_sends: int,
        completed_at: tuple[float, str] | None,
    ) -> JobResult:
        """The job's result from what the media worker did with it, how the handler's
        and the API's evaluations of it ended, and when its completing write was issued
        (and which one it was)."""
        latency = by = None
        if completed_at is not None and media.first_sent_at is not None and media.reassemblies:
            latency = media.first_sent_at - completed_at[0]
            by = completed_at[1]
        return cls(
            job=job,
            messages=media.messages_received,
            reassemblies=media.reassemblies,
            refusals=media.refusals,
            skips=evaluations.skips,
            failures=evaluations.failures,
            settled=settled,
            reconciler_sends=reconciler_sends,
            latency_seconds=latency,
            completed_by=by,
        )

    @property
    def outcome(self) -> str:
        """`reassembled`, `stuck`, `unfinished` (the run stopped before it settled),
        `reassembled N times` or `refused`."""
        if self.refusals:
            return "refused"
        if self.reassemblies == 0:
            return "stuck" if self.settled else "unfinished"
        if self.reassemblies == 1:
            return "reassembled"
        return f"reassembled {self.reassemblies} times"


@dataclass(frozen=True, slots=True)
class Progress:
    """A snapshot for a progress display."""

    written: int
    to_write: int
    reassembled: int
    invocations: int
    records: int


@dataclass(frozen=True, slots=True)
class PipelineReport:
    """Everything a run produced."""

    workload: Workload
    jobs: list[JobResult]
    poller: PollerStats
    messages: int
    completions_written: int
    faults_injected: int
    seconds: float
    skips_by_reason: Counter[str]
    failures_by_reason: Counter[str]
    timed_out: bool
    errors: list[str]
    #: Stopped by Ctrl-C or `PipelineSimulation.stop()` before it settled.
    interrupted: bool = False
    #: Completions the plan holds (duplicates included), and how many of those written
    #: were a second write of their segment.
    completions_planned: int = 0
    duplicates_written: int = 0
    #: What the reconciler's runs did (None: it did not run).
    reconciler: ReconcileTally | None = None
    #: AWS calls by operation, per actor: `handler` (the stream Lambda), `api`
    #: (`trigger_job` in the video workers), `reconciler`.
    aws_calls: dict[str, Counter[str]] = field(default_factory=dict)
    #: The outcomes of the API calls (trigger on write), by caller (`workers`,
    #: `chunker`), state and reason.
    api_outcomes: Counter[str] = field(default_factory=Counter)

    def calls(self, *actors: str) -> int:
        """AWS calls made by these actors, together."""
        return sum(sum(self.aws_calls.get(actor, Counter()).values()) for actor in actors)

    @property
    def calls_per_completion(self) -> float:
        """The trigger's AWS calls (the handler's and the API's) per completion written
        (duplicates included)."""
        written = self.completions_written
        return self.calls("handler", "api") / written if written else 0.0

    def latency(self, completed_by: str | None = None) -> LatencySummary | None:
        """From the write that made each job complete to its first message, over jobs
        (those completed by `completion` or `chunking` only, if given)."""
        return LatencySummary.of(
            [
                j.latency_seconds
                for j in self.jobs
                if j.latency_seconds is not None and completed_by in (None, j.completed_by)
            ]
        )

    def latency_by_last_write(self) -> dict[str, LatencySummary | None]:
        """The latency of the jobs completed by their last segment's write, and of those
        completed by the chunker's mark (in `on-write` mode, no worker call sees those)."""
        return {by: self.latency(by) for by in ("completion", "chunking")}

    @property
    def settled(self) -> bool:
        """Whether the run went on until the pipeline settled (no timeout, no interrupt)."""
        return not (self.timed_out or self.interrupted)

    @property
    def stuck_jobs(self) -> list[str]:
        """The jobs never reassembled although the pipeline settled, by id."""
        return [job.job.job_id for job in self.jobs if job.outcome == "stuck"]

    @property
    def reconciler_enqueued(self) -> list[str]:
        """The jobs the reconciler sent a message for (the stream path had not: it lost
        their records, or had not got to them yet)."""
        return sorted(self.reconciler.enqueued) if self.reconciler else []

    @property
    def reassembled_once(self) -> int:
        """Jobs reassembled exactly once."""
        return sum(1 for job in self.jobs if job.reassemblies == 1)

    @property
    def stuck(self) -> int:
        """Jobs never reassembled although the pipeline settled."""
        return len(self.stuck_jobs)

    @property
    def unfinished(self) -> int:
        """Jobs not reassembled when the run stopped before it settled."""
        return sum(1 for job in self.jobs if job.outcome == "unfinished")

    @property
    def duplicate_reassemblies(self) -> int:
        """Reassemblies beyond the first, over every job."""
        return sum(max(0, job.reassemblies - 1) for job in self.jobs)

    @property
    def refusals(self) -> int:
        """Messages for jobs whose completions did not add up (the trigger fired early)."""
        return sum(job.refusals for job in self.jobs)

    @property
    def passed(self) -> bool:
        """Every job reassembled exactly once, nothing stuck, refused or broken."""
        return (
            self.reassembled_once == len(self.jobs)
            and self.refusals == 0
            and not self.timed_out
            and not self.errors
        )

    def summary(self) -> dict[str, Any]:
        """The figures of `simulate --json`."""
        return {
            "jobs": len(self.jobs),
            "reassembled_once": self.reassembled_once,
            "stuck": self.stuck,
            "unfinished": self.unfinished,
            "settled": self.settled,
            "timed_out": self.timed_out,
            "interrupted": self.interrupted,
            "duplicate_reassemblies": self.duplicate_reassemblies,
            "messages": self.messages,
            "invocations": self.poller.invocations,
            "records": self.poller.records_read,
            "skips_by_reason": dict(sorted(self.skips_by_reason.items())),
            "faults_injected": self.faults_injected,
            "seconds": round(self.seconds, 2),
            "passed": self.passed,
            "seed": self.workload.seed,
            "segments": sum(job.job.total_segments for job in self.jobs),
            "completions_written": self.completions_written,
            "completions_planned": self.completions_planned,
            "duplicates_written": self.duplicates_written,
            "refusals": self.refusals,
            "failures_by_reason": dict(sorted(self.failures_by_reason.items())),
            "retries": self.poller.retries,
            "discarded_batches": self.poller.discarded_batches,
            "errors": self.errors,
            "stuck_jobs": self.stuck_jobs,
            "discard_rate": self.workload.discard_rate,
            "jobs_stream": self.workload.jobs_stream_mapped,
            "reconciler": None
            if self.reconciler is None
            else {
                "every_seconds": self.workload.reconcile_every_seconds,
                "runs": self.reconciler.runs,
                "jobs_examined": self.reconciler.jobs_examined,
                "enqueued": self.reconciler_enqueued,
                "outcomes": dict(sorted(self.reconciler.outcomes.items())),
            },
            "mode": self.workload.mode.value,
            "aws_calls": {
                actor: dict(sorted(calls.items()))
                for actor, calls in sorted(self.aws_calls.items())
            },
            "trigger_calls": self.calls("handler", "api"),
            "trigger_calls_per_completion": round(self.calls_per_completion, 3),
            "reconciler_calls": self.calls("reconciler"),
            "api_outcomes": dict(sorted(self.api_outcomes.items())),
            # From the write that made a job complete (its last completion PutItem, or
            # the chunker's mark if later), as it was issued, to SQS's SentTimestamp of
            # the job's first message.
            "latency_ms": _latency_json(self.latency()),
            "latency_ms_by_last_write": {
                by: _latency_json(summary) for by, summary in self.latency_by_last_write().items()
            },
        }


def _latency_json(summary: LatencySummary | None) -> dict[str, Any] | None:
    return None if summary is None else summary.as_json()
