"""One job's evaluation: the business logic that drives the state machine.

`JobEvaluation` is the model of a `transitions.Machine` built from `machine.py`.
It reads as the trigger's rules: load the Job, count its completions, take the
lock (or decide what an existing lock means), send, mark. Every transition is
logged by one machine-wide callback, so the logs tell why a job was or was not
triggered. An evaluation shares no mutable state with another, so the jobs of a
batch can be evaluated concurrently.
"""

from __future__ import annotations

import functools
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeGuard

import structlog
from botocore.exceptions import BotoCoreError, ClientError
from transitions import EventData, Machine

from reassembly_trigger.gateways import (
    Item,
    JobStore,
    JobsUnavailable,
    LockAlreadyHeld,
    LockChanged,
    LockRecord,
    ReassemblyLock,
    ReassemblyQueue,
    SegmentCompletions,
)
from reassembly_trigger.machine import (
    INITIAL_STATE,
    STATES,
    TRANSITIONS,
    FailReason,
    SkipReason,
    State,
    Trigger,
)
from reassembly_trigger.records import JobRequest, lowest_sequence_number

#: Errors that mean "AWS did not do it": the job fails and Lambda retries.
AWS_ERRORS = (ClientError, BotoCoreError, JobsUnavailable)
#: Clocks of Lambda hosts agree to well under this; a lease counts as over only
#: once it is this far in the past.
CLOCK_SKEW_SECONDS = 2
#: Stop waiting for another holder this long before our own deadline, leaving
#: time to answer Lambda.
WAIT_MARGIN_SECONDS = 5.0
#: Polling of a lock within its lease: first interval, growth, ceiling.
POLL_FIRST_SECONDS = 0.1
POLL_MAX_SECONDS = 1.0


class Clock(Protocol):
    """Wall-clock time and sleeping (simulated in the fault-injection suite)."""

    def now(self) -> float:
        """Epoch seconds."""
        ...

    def sleep(self, seconds: float) -> None:
        """Block for `seconds`."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> float:
        """Epoch seconds."""
        return time.time()

    def sleep(self, seconds: float) -> None:
        """Block for `seconds`."""
        time.sleep(seconds)


@dataclass(frozen=True, slots=True)
class Invocation:
    """The invocation an evaluation runs in: its request id and its deadline."""

    aws_request_id: str
    #: Epoch seconds at which Lambda stops the invocation; a lock taken in it is
    #: leased until then, because past it the holder is certainly gone.
    deadline: float

    @classmethod
    def from_lambda_context(cls, context: Any, clock: Clock) -> Invocation:
        """From Lambda's context object (`aws_request_id`, remaining time)."""
        remaining_ms = context.get_remaining_time_in_millis()
        return cls(
            aws_request_id=str(context.aws_request_id),
            deadline=clock.now() + remaining_ms / 1000.0,
        )

    @classmethod
    def local(
        cls, clock: Clock, timeout_seconds: float, request_id: str | None = None
    ) -> Invocation:
        """For callers outside Lambda (CLI, poller): leased for their own timeout."""
        return cls(
            aws_request_id=request_id or f"local-{uuid.uuid4()}",
            deadline=clock.now() + timeout_seconds,
        )


@dataclass(frozen=True, slots=True)
class Gateways:
    """Everything an evaluation needs from the outside world."""

    jobs: JobStore
    completions: SegmentCompletions
    lock: ReassemblyLock
    queue: ReassemblyQueue
    clock: Clock
    #: Lease assumed for a lock that records none.
    lock_lease_seconds: int


@dataclass(frozen=True, slots=True)
class JobOutcome:
    """How one job's evaluation ended."""

    job_id: str
    state: State
    reason: str | None
    sequence_numbers: tuple[str, ...]
    completions: int | None = None
    total_segments: int | None = None
    message_id: str | None = None
    #: On skips and failures: the facts that explain it (as logged).
    details: dict[str, Any] | None = None

    @property
    def failed(self) -> bool:
        """Whether Lambda must retry this job's records."""
        return self.state is State.FAILED

    @property
    def lowest_sequence_number(self) -> str:
        """Where Lambda resumes when this job failed."""
        return lowest_sequence_number(self.sequence_numbers)


JobLookup = Callable[[str], Item | None]


@functools.cache
def job_machine() -> Machine:
    """The per-job machine, built once per process and shared by every evaluation.

    Evaluations are not registered as models: `add_model` binds some thirty
    convenience methods per job (~0.2 ms, as much as building a Machine). Each
    evaluation keeps its own `state` and fires events with itself as the model
    (`Event.trigger(model)`); the machine holds no per-job data and is not queued,
    so concurrent evaluations share it safely.
    """
    return Machine(
        model=None,
        states=[s.value for s in STATES],
        transitions=list(TRANSITIONS),
        initial=INITIAL_STATE.value,
        auto_transitions=False,
        send_event=True,
        # Resolved on each evaluation (the event's model) by name.
        after_state_change="_log_transition",
    )


class LeaseWaitTimeout(Exception):
    """Another holder stayed within its lease until this invocation ran out of time."""


class JobEvaluation:
    """Moves one job of one batch through the machine, logging every transition."""

    state: str  # maintained by the shared `job_machine()`

    def __init__(
        self,
        request: JobRequest,
        gateways: Gateways,
        invocation: Invocation,
        *,
        dry_run: bool = False,
        log: structlog.typing.FilteringBoundLogger | None = None,
    ) -> None:
        self.request = request
        self.job_id = request.job_id
        self._gw = gateways
        self._invocation = invocation
        self._dry_run = dry_run
        # Unique per evaluation: the lock's holder, so a release or mark can only
        # ever touch a lock this evaluation took.
        self._holder = f"{invocation.aws_request_id}/{uuid.uuid4().hex[:12]}"
        self.completions: int | None = None
        self.total_segments: int | None = None
        self.message_id: str | None = None
        self._last_details: dict[str, Any] = {}
        self._lease_released: bool | None = None
        self._log = (log or structlog.get_logger("reassembly_trigger")).bind(
            job_id=request.job_id,
            aws_request_id=invocation.aws_request_id,
            **_logged_sequence_numbers(request.sequence_numbers),
        )
        self.state = INITIAL_STATE.value

    # ------------------------------------------------------------------ the flow

    def run(self, lookup: JobLookup) -> JobOutcome:
        """Evaluate the job to a final state and say how it ended."""
        try:
            self._evaluate(lookup)
        except LeaseWaitTimeout:
            self._fire(Trigger.FAIL, reason=FailReason.LEASE_WAIT_TIMEOUT)
        except LockChanged as exc:
            self._fire(Trigger.FAIL, reason=FailReason.LOCK_LOST, error=str(exc))
        except AWS_ERRORS as exc:
            self._fire(Trigger.FAIL, reason=FailReason.AWS_ERROR, **_describe(exc))
        except Exception as exc:  # never swallowed: the job's records are retried
            self._fire(
                Trigger.FAIL,
                reason=FailReason.UNEXPECTED_ERROR,
                error_type=type(exc).__name__,
                error=str(exc),
            )
            self._log.exception("evaluation_error")
        return self.outcome()

    def _evaluate(self, lookup: JobLookup) -> None:
        total_segments = self._load(lookup(self.job_id))
        if total_segments is None:
            return
        counted = self._gw.completions.count_completions(self.job_id, total_segments)
        self.completions = counted.count
        if counted.count < total_segments:
            self._fire(Trigger.SKIP, reason=SkipReason.INCOMPLETE, pages=counted.pages)
            return
        self._fire(Trigger.COUNT, pages=counted.pages)
        if self._take_lock():
            self._send_and_mark()

    def _load(self, item: Item | None) -> int | None:
        """Validate the Job; skip with the reason when it cannot be triggered."""
        if item is None:
            self._fire(Trigger.SKIP, reason=SkipReason.JOB_NOT_FOUND)
            return None
        # Imported here: pydantic's import is the largest cold-start cost.
        from pydantic import ValidationError

        from stereo_spot_shared import Job, JobStatus

        try:
            job = Job.model_validate(item)
        except ValidationError as exc:
            errors = [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
            self._fire(Trigger.SKIP, reason=SkipReason.JOB_INVALID, errors=errors)
            return None
        if job.status is not JobStatus.CHUNKING_COMPLETE:
            self._fire(Trigger.SKIP, reason=SkipReason.NOT_CHUNKING_COMPLETE, status=job.status)
            return None
        if job.total_segments is None:
            self._fire(Trigger.SKIP, reason=SkipReason.TOTAL_SEGMENTS_MISSING, status=job.status)
            return None
        self.total_segments = job.total_segments
        self._fire(Trigger.LOAD, status=job.status)
        return job.total_segments

    def _take_lock(self) -> bool:
        """Hold the lock (created or taken over), or end in a skip; True when held."""
        lock = self._gw.lock
        if self._dry_run:
            seen = lock.read(self.job_id)
            if seen is None:
                self._fire(Trigger.SKIP, reason=SkipReason.DRY_RUN, would=Trigger.ACQUIRE)
                return False
            self._fire(Trigger.CONTEND, lock=seen.as_log())
            return self._resolve_contention(seen)
        try:
            lock.acquire(self.job_id, self._holder, self._now(), self._lease())
        except LockAlreadyHeld as held:
            seen = held.existing if held.existing is not None else lock.read(self.job_id)
            if self._is_own(seen):
                # Our create went through and only its answer was lost (botocore's
                # retry then met our own lock): we hold it.
                self._fire(Trigger.ACQUIRE, lease_expires_at=self._lease())
                return True
            self._fire(Trigger.CONTEND, lock=seen.as_log() if seen else None)
            return self._resolve_contention(seen)
        self._fire(Trigger.ACQUIRE, lease_expires_at=self._lease())
        return True

    def _resolve_contention(self, seen: LockRecord | None) -> bool:
        """Decide what an existing lock means; never skip while it may be unfinished."""
        lock = self._gw.lock
        while True:
            if seen is not None and seen.enqueued:
                self._fire(Trigger.SKIP, reason=SkipReason.ALREADY_TRIGGERED, lock=seen.as_log())
                return False
            if seen is not None and seen.reassembly_started:
                self._fire(Trigger.SKIP, reason=SkipReason.REASSEMBLY_STARTED, lock=seen.as_log())
                return False
            if self._is_own(seen):
                # Our take-over went through and only its answer was lost: never wait
                # for ourselves.
                self._fire(Trigger.TAKE_OVER, lock=seen.as_log(), lease_expires_at=self._lease())
                return True
            if seen is None or self._lease_over(seen):
                # Unfinished and its holder is gone (or the item vanished): take it.
                if self._dry_run:
                    self._fire(Trigger.SKIP, reason=SkipReason.DRY_RUN, would=Trigger.TAKE_OVER)
                    return False
                try:
                    if seen is None:
                        lock.acquire(self.job_id, self._holder, self._now(), self._lease())
                    else:
                        lock.take_over(seen, self._holder, self._now(), self._lease())
                except (LockChanged, LockAlreadyHeld):
                    seen = lock.read(self.job_id)  # another taker won: look again
                    self._fire(Trigger.RECHECK, lock=seen.as_log() if seen else None)
                    continue
                self._fire(
                    Trigger.TAKE_OVER,
                    lock=seen.as_log() if seen else None,
                    lease_expires_at=self._lease(),
                )
                return True
            if self._dry_run:
                self._fire(Trigger.SKIP, reason=SkipReason.DRY_RUN, would=Trigger.WAIT)
                return False
            lease_end = seen.lease_end(self._gw.lock_lease_seconds)
            self._fire(Trigger.WAIT, lock=seen.as_log(), lease_expires_at=lease_end)
            started = self._gw.clock.now()
            seen = self._wait_for_change(seen)
            self._fire(
                Trigger.RECHECK,
                lock=seen.as_log() if seen else None,
                waited_seconds=round(self._gw.clock.now() - started, 3),
            )

    def _wait_for_change(self, seen: LockRecord) -> LockRecord | None:
        """Poll the lock until it changes or its lease ends, within our own time."""
        clock = self._gw.clock
        lease_over_at = seen.lease_end(self._gw.lock_lease_seconds) + CLOCK_SKEW_SECONDS
        interval = POLL_FIRST_SECONDS
        while True:
            now = clock.now()
            time_left = self._invocation.deadline - WAIT_MARGIN_SECONDS - now
            if time_left <= 0:
                raise LeaseWaitTimeout
            clock.sleep(max(0.0, min(interval, time_left, lease_over_at - now + 0.001)))
            interval = min(interval * 2, POLL_MAX_SECONDS)
            current = self._gw.lock.read(self.job_id)
            if current != seen or clock.now() >= lease_over_at:
                return current

    def _send_and_mark(self) -> None:
        """Send the message and record it; on any error, let go of the lock first."""
        try:
            self.message_id = self._gw.queue.send(self.job_id)
            self._fire(Trigger.SEND, message_id=self.message_id)
            self._gw.lock.mark_enqueued(self.job_id, self._holder, self.message_id, self._now())
            self._fire(Trigger.MARK, message_id=self.message_id)
        except Exception:
            self._lease_released = self._release()
            raise

    def _release(self) -> bool:
        try:
            return self._gw.lock.release(self.job_id, self._holder)
        except AWS_ERRORS as exc:
            self._log.warning("lease_release_failed", **_describe(exc))
            return False

    # ------------------------------------------------------------------ helpers

    def _now(self) -> int:
        return int(self._gw.clock.now())

    def _lease(self) -> int:
        return math.ceil(self._invocation.deadline)

    def _is_own(self, seen: LockRecord | None) -> TypeGuard[LockRecord]:
        """An unfinished lock whose holder is this very evaluation (holders are unique)."""
        return (
            seen is not None
            and seen.holder == self._holder
            and not seen.enqueued
            and not seen.reassembly_started
        )

    def _lease_over(self, seen: LockRecord) -> bool:
        lease_end = seen.lease_end(self._gw.lock_lease_seconds)
        return self._gw.clock.now() >= lease_end + CLOCK_SKEW_SECONDS

    def _fire(self, trigger: Trigger, **details: Any) -> None:
        job_machine().events[trigger.value].trigger(self, **details)

    def _log_transition(self, event: EventData) -> None:
        """The one place transitions are logged (machine-wide `after_state_change`)."""
        details = {k: v for k, v in event.kwargs.items() if v is not None}
        dest = event.transition.dest if event.transition else self.state
        if dest in (State.SKIPPED, State.FAILED):
            if dest == State.FAILED and self._lease_released is not None:
                details["lease_released"] = self._lease_released
            self._last_details = details
        fields: dict[str, Any] = {
            "source": event.transition.source if event.transition else None,
            "dest": dest,
            "trigger": event.event.name if event.event else None,
        }
        if self.completions is not None:
            fields["completions"] = self.completions
        if self.total_segments is not None:
            fields["total_segments"] = self.total_segments
        if self._dry_run:
            fields["dry_run"] = True
        fields.update(details)
        if dest == State.FAILED:
            self._log.error("transition", **fields)
        else:
            self._log.info("transition", **fields)

    def outcome(self) -> JobOutcome:
        """The evaluation's result so far (final once `run` returned)."""
        details = dict(self._last_details)
        reason = details.pop("reason", None)
        return JobOutcome(
            job_id=self.job_id,
            state=State(self.state),
            reason=str(reason) if reason is not None else None,
            sequence_numbers=self.request.sequence_numbers,
            completions=self.completions,
            total_segments=self.total_segments,
            message_id=self.message_id,
            details=details or None,
        )


#: Sequence numbers listed in full on each transition event; beyond this (a batch of
#: up to 10,000 records of one job) the events would near CloudWatch's 256 KB limit.
LOGGED_SEQUENCE_NUMBERS = 50


def _logged_sequence_numbers(sequence_numbers: tuple[str, ...]) -> dict[str, Any]:
    """The job's sequence numbers as logged: all of them, or the first ones and a count."""
    if len(sequence_numbers) <= LOGGED_SEQUENCE_NUMBERS:
        return {"sequence_numbers": list(sequence_numbers)}
    return {
        "sequence_numbers": list(sequence_numbers[:LOGGED_SEQUENCE_NUMBERS]),
        "sequence_number_count": len(sequence_numbers),
        "lowest_sequence_number": lowest_sequence_number(sequence_numbers),
    }


def _describe(exc: BaseException) -> dict[str, Any]:
    """Log fields for an AWS error."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return {
            "error_code": error.get("Code", "Unknown"),
            "error": error.get("Message") or str(exc),
            "operation": exc.operation_name,
        }
    return {"error_code": type(exc).__name__, "error": str(exc)}
