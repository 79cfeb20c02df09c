"""The reconciler: a scheduled pass over every job still in flight, the safety net.

The stream handler is edge-triggered: a job is looked at again only when a record
names it. A batch given up by the event source mapping, an unmapped Jobs stream, a
stream whose 24-hour retention passed, a lost record: each leaves a complete job with
no message and nothing to retry it. The reconciler is level-triggered, as control
loops are: on a schedule it lists every Job in `chunking_complete` (through the Jobs
table's status index), and runs each one through the same machine, on the same
gateways, as the stream handler.

- Cheap: locks are read first (100 per call); a job whose lock is marked or whose
  reassembly has started ends there, without a count.
- Never waits: a lock within its lease is left to its holder (`deferred`); the next
  run looks again. It takes over only what the stream path would take over, with the
  same conditional writes, so it can run beside any number of stream invocations.
- Bounded: every call is bounded by the run's time left, and it starts a chunk of
  jobs whenever its normal case still fits (`timing.RECONCILE_CHUNK_SECONDS`, with the
  cursor's write and the answer kept: about 1.45 s before the deadline), so a run of
  any timeout from 2 s reaches every job it has time for.
  When time runs out it reports `truncated`; the next run starts after the last job
  this one examined (a cursor in ReassemblyTriggered; a job cut short by the deadline
  is not passed over), so a fleet too large for one run is covered in turn.
- Unclaimed messages (sent long ago, never claimed by the media worker) are reported,
  never re-sent automatically: `reassembly-trigger doctor JOB --repair --resend`.

Entry point: `reassembly_trigger.reconcile.lambda_handler`. An event
`{"job_ids": [...]}` reconciles exactly those jobs, whatever their status.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import structlog

from reassembly_trigger.batch import ReassemblyTrigger, outcome_counts
from reassembly_trigger.errors import DeadlineReached
from reassembly_trigger.gateways import BATCH_GET_LIMIT, ReconcileCursorStore
from reassembly_trigger.items import CHUNKING_COMPLETE
from reassembly_trigger.lock import LockRecord
from reassembly_trigger.machine import FailReason, SkipReason, State
from reassembly_trigger.outcome import AWS_ERRORS, JobOutcome, describe_aws_error
from reassembly_trigger.ports import InFlightJob, ReconcileCursor
from reassembly_trigger.records import JobRequest, is_job_id
from reassembly_trigger.runtime import process_trigger
from reassembly_trigger.settings import Settings
from reassembly_trigger.timing import (
    RECONCILE_CHUNK_SECONDS,
    RECONCILE_CURSOR_SECONDS,
    Invocation,
    InvocationBudget,
    SystemClock,
    calls_within,
)

#: The Job status whose jobs are in flight: chunked, waiting for their reassembly.
IN_FLIGHT_STATUS = CHUNKING_COMPLETE
#: The most job ids a targeted event may name.
MAX_TARGETED_JOBS = 10_000


@dataclass(frozen=True, slots=True)
class Unclaimed:
    """A job whose message was sent long ago and never claimed by the media worker."""

    job_id: str
    message_id: str | None
    enqueued_at: int | None
    age_seconds: int | None

    def as_json(self) -> dict[str, Any]:
        """As in the run's summary."""
        return {
            "job_id": self.job_id,
            "message_id": self.message_id,
            "enqueued_at": self.enqueued_at,
            "age_seconds": self.age_seconds,
        }


@dataclass(frozen=True, slots=True)
class WaitingForSegments:
    """A chunked job still missing segments long after it was created."""

    job_id: str
    completions: int | None
    total_segments: int | None
    age_seconds: int | None

    def as_json(self) -> dict[str, Any]:
        """As in the run's summary."""
        return {
            "job_id": self.job_id,
            "completions": self.completions,
            "total_segments": self.total_segments,
            "age_seconds": self.age_seconds,
        }


@dataclass(slots=True)
class ReconcileResult:
    """What one reconcile run found and did."""

    targeted: bool
    listed: int = 0
    outcomes: list[JobOutcome] = field(default_factory=list)
    unclaimed: list[Unclaimed] = field(default_factory=list)
    waiting_for_segments: list[WaitingForSegments] = field(default_factory=list)
    truncated: bool = False
    #: The AWS error that stopped the run early (listing jobs, reading the cursor).
    error: dict[str, Any] | None = None
    #: Jobs listed but not reached because time ran out (the next run starts with them).
    not_reached: int = 0
    duration_ms: float = 0.0

    @property
    def enqueued(self) -> list[str]:
        """Jobs this run sent a message for: each one a job the stream path missed."""
        return [o.job_id for o in self.outcomes if o.state is State.ENQUEUED]

    @property
    def failed(self) -> list[str]:
        """Jobs whose evaluation failed (retried by the next run)."""
        return [o.job_id for o in self.outcomes if o.failed]

    def counts(self) -> Counter[str]:
        """Jobs by final state, and skips and failures by reason."""
        return outcome_counts(self.outcomes)

    def as_json(self) -> dict[str, Any]:
        """The summary the handler returns (and `reconcile --json` prints)."""
        return {
            "targeted": self.targeted,
            "jobs_listed": self.listed,
            "jobs_examined": len(self.outcomes),
            "jobs_enqueued": self.enqueued,
            "jobs_failed": self.failed,
            "outcomes": dict(sorted(self.counts().items())),
            "unclaimed": [u.as_json() for u in self.unclaimed],
            "waiting_for_segments": [w.as_json() for w in self.waiting_for_segments],
            "truncated": self.truncated,
            "not_reached": self.not_reached,
            "error": self.error,
            "duration_ms": round(self.duration_ms, 3),
        }


def warn_about_item_models(outcomes: Sequence[JobOutcome]) -> None:
    """Log how each Job item read differs from the shared `Job` model (never decides).

    Only `status` and `total_segments` decide; the rest of a Job is checked here, on the
    reconciler's schedule, and not on the stream path, where importing pydantic would
    cost every cold start that triggers a job (measured: 60-95 ms of the first
    invocation, holding the GIL and the import lock while the batch's other jobs wait).
    """
    items = [(o.job_id, o.item) for o in outcomes if o.item is not None]
    if not items:
        return
    from pydantic import ValidationError

    from stereo_spot_shared import Job

    log = structlog.get_logger("reassembly_trigger")
    for job_id, item in items:
        try:
            Job.model_validate(item)
        except ValidationError as exc:
            errors = [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
            log.warning("job_item_differs_from_model", job_id=job_id, errors=errors)
        except Exception as exc:  # a warning must never stop the run
            log.warning("job_item_check_failed", job_id=job_id, error=f"{exc!r}"[:500])


class ReconcileFailed(RuntimeError):
    """A reconcile run could not list the jobs in flight (raised by the Lambda handler only,
    after its summary and metrics were written)."""


def targeted_job_ids(event: Any) -> list[str] | None:
    """The job ids of a targeted event (`{"job_ids": [...]}`), or None for a scheduled run.

    Ids that cannot be job ids are dropped (and logged); duplicates are evaluated once.
    """
    if not isinstance(event, dict) or "job_ids" not in event:
        return None
    raw = event["job_ids"]
    values = raw if isinstance(raw, list) else [raw]
    valid = [v for v in values[:MAX_TARGETED_JOBS] if is_job_id(v)]
    dropped = len(values) - len(valid)
    if dropped:
        structlog.get_logger("reassembly_trigger").warning(
            "targeted_job_ids_dropped", dropped=dropped, kept=len(valid)
        )
    return list(dict.fromkeys(valid))


def rotate(jobs: list[InFlightJob], cursor: ReconcileCursor | None) -> list[InFlightJob]:
    """The jobs in index order, starting after `cursor` and wrapping around."""
    if cursor is None:
        return jobs
    after = [j for j in jobs if (j.created_at, j.job_id) > (cursor.created_at, cursor.job_id)]
    before = [j for j in jobs if (j.created_at, j.job_id) <= (cursor.created_at, cursor.job_id)]
    return after + before


class Reconciler:
    """Runs every job in flight (or the jobs named) through the trigger's machine."""

    def __init__(
        self,
        trigger: ReassemblyTrigger,
        cursor: ReconcileCursorStore,
        *,
        chunk_size: int = BATCH_GET_LIMIT,
    ) -> None:
        """`chunk_size`: jobs read and evaluated together (100: one BatchGetItem)."""
        self.trigger = trigger
        self.cursor = cursor
        self._chunk_size = max(1, min(chunk_size, BATCH_GET_LIMIT))

    @property
    def settings(self) -> Settings:
        """The trigger's settings."""
        return self.trigger.settings

    def run(self, event: Any, invocation: Invocation) -> ReconcileResult:
        """One reconcile run within the invocation's time; never raises for AWS errors."""
        started = time.perf_counter()
        log = structlog.get_logger("reassembly_trigger").bind(
            aws_request_id=invocation.aws_request_id
        )
        targeted = targeted_job_ids(event)
        result = ReconcileResult(targeted=targeted is not None)
        clock = self.trigger.gateways.clock
        budget = InvocationBudget(invocation, clock)
        # The jobs' work ends early enough for the cursor's write after it (fairness).
        work = InvocationBudget(
            replace(invocation, deadline=invocation.deadline - RECONCILE_CURSOR_SECONDS), clock
        )
        try:
            with calls_within(work):
                if targeted is not None:
                    jobs = [InFlightJob(job_id, 0) for job_id in targeted]
                else:
                    jobs = self._listed(work)
                result.listed = len(jobs)
                self._reconcile(jobs, work, budget, result, save_cursor=targeted is None)
        except DeadlineReached as exc:
            result.truncated = True
            log.warning("reconcile_truncated", error=str(exc))
        except AWS_ERRORS as exc:
            # Listing the jobs or reading the cursor failed: what was done stands, the
            # next run starts over. The handler reports it as the invocation's error.
            result.error = describe_aws_error(exc)
            log.error("reconcile_failed", **result.error)
        result.duration_ms = (time.perf_counter() - started) * 1000.0
        self._report(result, clock.now(), log)
        return result

    def _listed(self, budget: InvocationBudget) -> list[InFlightJob]:
        now = int(self.trigger.gateways.clock.now())
        jobs = self.trigger.gateways.jobs.in_flight(
            self.settings.jobs_status_index_name,
            status=IN_FLIGHT_STATUS,
            created_before=now - self.settings.reconcile_min_age_seconds,
            budget=budget,
        )
        jobs.sort(key=lambda j: (j.created_at, j.job_id))
        return rotate(jobs, self.cursor.read())

    def _reconcile(
        self,
        jobs: Sequence[InFlightJob],
        work: InvocationBudget,
        budget: InvocationBudget,
        result: ReconcileResult,
        *,
        save_cursor: bool,
    ) -> None:
        now = self.trigger.gateways.clock.now()
        last: InFlightJob | None = None
        for start in range(0, len(jobs), self._chunk_size):
            chunk = jobs[start : start + self._chunk_size]
            if work.usable_seconds() < RECONCILE_CHUNK_SECONDS:
                result.truncated = True
                result.not_reached = len(jobs) - start
                break
            try:
                locks, unread = self.trigger.gateways.lock.read_many(
                    [j.job_id for j in chunk], work
                )
            except DeadlineReached:
                result.truncated = True
                result.not_reached = len(jobs) - start
                break
            # A job whose lock could not be read is evaluated without it: the machine
            # reads the lock itself when it gets that far.
            known: dict[str, LockRecord | None] = {
                job_id: lock for job_id, lock in locks.items() if job_id not in unread
            }
            outcomes = self.trigger.evaluate_jobs(
                [JobRequest(j.job_id) for j in chunk],
                work.invocation,
                lease_wait_seconds=0,
                known_locks=known,
            )
            result.outcomes.extend(outcomes)
            warn_about_item_models(outcomes)
            created = {j.job_id: j.created_at for j in chunk}
            for outcome in outcomes:
                self._note(outcome, created.get(outcome.job_id), now, result)
            cut_short = [i for i, o in enumerate(outcomes) if o.reason is FailReason.DEADLINE]
            if cut_short:
                # The deadline stopped these jobs: the next run starts with the first
                # of them, never after it.
                result.truncated = True
                result.not_reached = len(jobs) - start - cut_short[0]
                last = chunk[cut_short[0] - 1] if cut_short[0] else last
                break
            last = chunk[-1]
        if save_cursor:
            # Truncated: the next run starts after the last job examined. Complete: from
            # the oldest again.
            cursor = (
                ReconcileCursor(last.created_at, last.job_id)
                if result.truncated and last is not None
                else None
            )
            try:
                with calls_within(budget):
                    self.cursor.write(cursor, int(now))
            except (*AWS_ERRORS, DeadlineReached) as exc:
                # The run's work stands; the next one starts from the oldest instead.
                structlog.get_logger("reassembly_trigger").warning(
                    "reconcile_cursor_not_saved", **describe_aws_error(exc)
                )

    def _note(
        self, outcome: JobOutcome, created_at: int | None, now: float, result: ReconcileResult
    ) -> None:
        """Collect unclaimed messages and jobs waiting too long for segments."""
        threshold = self.settings.unclaimed_after_seconds
        lock = outcome.lock
        if outcome.reason is SkipReason.ALREADY_TRIGGERED and lock is not None:
            sent = lock.enqueued_at
            age = int(now - sent) if sent is not None else None
            if not lock.reassembly_started and (age is None or age > threshold):
                result.unclaimed.append(Unclaimed(outcome.job_id, lock.message_id, sent, age))
        elif outcome.reason is SkipReason.INCOMPLETE and created_at:
            age = int(now - created_at)
            if age > threshold:
                result.waiting_for_segments.append(
                    WaitingForSegments(
                        outcome.job_id, outcome.completions, outcome.total_segments, age
                    )
                )

    def _report(self, result: ReconcileResult, now: float, log: Any) -> None:
        for unclaimed in result.unclaimed:
            log.warning("unclaimed_message", **unclaimed.as_json())
        for waiting in result.waiting_for_segments:
            log.warning("waiting_for_segments", **waiting.as_json())
        log.info(
            "reconcile_finished",
            jobs_listed=result.listed,
            jobs_examined=len(result.outcomes),
            jobs_enqueued=result.enqueued,
            unclaimed=len(result.unclaimed),
            waiting_for_segments=len(result.waiting_for_segments),
            truncated=result.truncated,
            duration_ms=round(result.duration_ms, 3),
        )


def build_reconciler(trigger: ReassemblyTrigger) -> Reconciler:
    """The reconciler of a trigger (same settings, clients and gateways)."""
    from reassembly_trigger.clients import aws_clients

    clients = aws_clients(trigger.settings.evaluation_concurrency)
    return Reconciler(
        trigger,
        ReconcileCursorStore(clients.dynamodb, trigger.settings.reassembly_triggered_table_name),
    )


def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    """Reconcile every job in flight (or those `event["job_ids"]` names); return the summary."""
    from reassembly_trigger.deployment_errors import raise_if_misconfigured
    from reassembly_trigger.metrics import emit_reconcile_metrics

    reconciler = build_reconciler(process_trigger())
    invocation = Invocation.from_lambda_context(context, SystemClock())
    result = reconciler.run(event, invocation)
    emit_reconcile_metrics(result, reconciler.settings.metrics_namespace, context)
    # A misconfigured deployment fails the run as a whole (the Errors alarm), naming
    # what is missing, instead of as per-job failures the next run meets again.
    raise_if_misconfigured(result.outcomes, reconciler.settings)
    if result.error is not None:
        # The function's Errors metric (alarmed) must see a run that could not list the
        # jobs in flight; everything it did reach is already done and reported above.
        raise ReconcileFailed(f"reconcile run stopped early: {result.error}")
    return result.as_json()
