"""One job's evaluation: the business logic that drives the state machine.

`JobEvaluation` is the model of a `transitions.Machine` built from `machine.py`.
It reads as the trigger's rules: load the Job, count its completions, take the
lock (or decide what an existing lock means), send, mark. Every transition is
recorded once, by one machine-wide callback, as a typed `Transition` in the
evaluation's history and as one structlog event; the `JobOutcome` carries that
history, so logs, metrics and tools read the same facts. An evaluation shares no
mutable state with another, so the jobs of a batch can be evaluated concurrently.

Time (`timing`): a step is started when its normal case fits, never refused for its
worst case; every AWS call the evaluation makes is bounded by the invocation's time
left (`timing.calls_within`), so no evaluation overruns its deadline whatever AWS does,
and every loop (waiting for a holder, retrying a take-over) is bounded in time and
count. What a holder cut short leaves unfinished, its lease covers.
"""

from __future__ import annotations

import functools
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeGuard

import structlog
from transitions import EventData, Machine

from reassembly_trigger.errors import LockAlreadyHeld, LockChanged
from reassembly_trigger.items import CHUNKING_COMPLETE, InvalidJob, JobItem
from reassembly_trigger.lock import LockRecord
from reassembly_trigger.machine import (
    INITIAL_STATE,
    STATES,
    TRANSITIONS,
    FailReason,
    SkipReason,
    State,
    Transition,
    Trigger,
)
from reassembly_trigger.outcome import (
    JobOutcome,
    describe_aws_error,
    failure,
    logged_sequence_numbers,
)
from reassembly_trigger.ports import (
    CompletionCounter,
    JobReader,
    LockStore,
    MessageSender,
    Uniform,
)
from reassembly_trigger.records import JobRequest
from reassembly_trigger.timing import (
    CALL_FLOOR_SECONDS,
    CLOCK_SKEW_SECONDS,
    LOCK_STEP_SECONDS,
    POLL_FIRST_SECONDS,
    POLL_MAX_SECONDS,
    TAKE_OVER_BACKOFF_MAX_SECONDS,
    Clock,
    Invocation,
    InvocationBudget,
    calls_within,
)

#: Take-overs that lose their race before the evaluation defers to a later one.
MAX_TAKE_OVER_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class Gateways:
    """Everything an evaluation needs from the outside world."""

    jobs: JobReader
    completions: CompletionCounter
    lock: LockStore
    queue: MessageSender
    clock: Clock
    #: Lease assumed for a lock that records none.
    lock_lease_seconds: int
    #: The jitter of every backoff (a seeded generator's makes a simulation reproducible).
    uniform: Uniform = random.uniform


#: A job's Job, decoded (None: no such job); raises the error its read failed with.
JobLookup = Callable[[str], JobItem | InvalidJob | None]


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
        after_state_change="_record_transition",
    )


class HolderStopped(Exception):
    """An error between the lock and the mark, after the lock was let go."""

    def __init__(self, cause: Exception, lease_released: bool) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.lease_released = lease_released


class JobEvaluation:
    """Moves one job through the machine, recording and logging every transition."""

    state: str  # maintained by the shared `job_machine()`

    def __init__(
        self,
        request: JobRequest,
        gateways: Gateways,
        invocation: Invocation,
        *,
        lease_wait_seconds: float,
        known_lock: LockRecord | None = None,
    ) -> None:
        """`known_lock`: the job's lock as just read (the reconciler reads locks first)."""
        self.request = request
        self.job_id = request.job_id
        self._gw = gateways
        self._invocation = invocation
        self._budget = InvocationBudget(invocation, gateways.clock)
        self._lease_wait_seconds = lease_wait_seconds
        self._known_lock = known_lock
        # Unique per evaluation: the lock's holder, so a release or mark can only
        # ever touch a lock this evaluation took.
        self._holder = f"{invocation.aws_request_id}/{uuid.uuid4().hex[:12]}"
        self.completions: int | None = None
        self.total_segments: int | None = None
        self.message_id: str | None = None
        self.lock: LockRecord | None = known_lock
        self.history: list[Transition] = []
        self._job: JobItem | InvalidJob | None = None
        self._log = structlog.get_logger("reassembly_trigger").bind(
            job_id=request.job_id,
            aws_request_id=invocation.aws_request_id,
            **logged_sequence_numbers(request.sequence_numbers),
        )
        self.state = INITIAL_STATE.value

    # ------------------------------------------------------------------ the flow

    def run(self, lookup: JobLookup) -> JobOutcome:
        """Evaluate the job to a final state and say how it ended.

        Every error ends in one place: `failure` names its reason, and a lock this
        evaluation held was released on the way (`lease_released` says whether).
        An exception that is not an `Exception` (Ctrl-C, a test's simulated crash)
        propagates, after that release.
        """
        try:
            with calls_within(self._budget):
                self._evaluate(lookup)
        except HolderStopped as stopped:
            self._fail(stopped.cause, lease_released=stopped.lease_released)
        except Exception as exc:  # never swallowed: the job is retried
            self._fail(exc)
        return self.outcome()

    def _fail(self, exc: Exception, **details: Any) -> None:
        reason, facts = failure(exc)
        self._fire(Trigger.FAIL, reason=reason, **facts, **details)
        if reason is FailReason.UNEXPECTED_ERROR:
            self._log.error("evaluation_error", exc_info=exc)

    def _evaluate(self, lookup: JobLookup) -> None:
        known = self._known_lock
        if known is not None and known.finished:
            # Read first (reconciler): a finished lock costs no count.
            self._skip_finished(known)
            return
        total_segments = self._load(lookup(self.job_id))
        if total_segments is None:
            return
        counted = self._gw.completions.count_completions(self.job_id, total_segments, self._budget)
        self.completions = counted.count
        extra = {"fractional_indexes": counted.fractional} if counted.fractional else {}
        if counted.count < total_segments:
            self._fire(Trigger.SKIP, reason=SkipReason.INCOMPLETE, pages=counted.pages, **extra)
            return
        self._fire(Trigger.COUNT, pages=counted.pages, **extra)
        if not self._take_lock():
            return
        try:
            self._send_and_mark()
        except Exception as exc:
            # Whatever stops us between the lock and the mark: let go, so nobody
            # waits for our lease (it would end with the invocation anyway).
            raise HolderStopped(exc, self._release()) from exc
        except BaseException:  # Ctrl-C, a crash the runtime lets us see
            self._release()
            raise

    def _load(self, job: JobItem | InvalidJob | None) -> int | None:
        """Decide from the decoded Job; skip with the reason unless it may be triggered."""
        self._job = job
        match job:
            case None:
                self._fire(Trigger.SKIP, reason=SkipReason.JOB_NOT_FOUND)
            case InvalidJob(field=field, value=value):
                self._fire(Trigger.SKIP, reason=SkipReason.JOB_INVALID, field=field, value=value)
            case JobItem(status=status) if status != CHUNKING_COMPLETE:
                self._fire(Trigger.SKIP, reason=SkipReason.NOT_CHUNKING_COMPLETE, status=status)
            case JobItem(status=status, total_segments=None):
                self._fire(Trigger.SKIP, reason=SkipReason.TOTAL_SEGMENTS_MISSING, status=status)
            case JobItem(status=status, total_segments=int(total)):
                self.total_segments = total
                self._fire(Trigger.LOAD, status=status)
                return total
        return None

    def _take_lock(self) -> bool:
        """Hold the lock (created or taken over), or end in a skip; True when held.

        First writer wins: the lock is created only where none exists, and only its
        holder sends, so concurrent evaluations of one job (two shards, the API and the
        stream, the reconciler) start one reassembly. The lease written is this
        invocation's deadline (`lease_end`): whatever happens to us, the job is free
        again by then. Started when the normal case of lock, send and mark fits, never
        refused for a worst case (the lease covers a holder cut short).
        """
        lock = self._gw.lock
        self._budget.ensure("take the lock and send", LOCK_STEP_SECONDS)
        try:
            lock.acquire(self.job_id, self._holder, self._now(), self._lease())
        except LockAlreadyHeld as held:
            seen = held.existing if held.existing is not None else self._read_lock()
            self.lock = seen
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
        """Decide what an existing lock means; never skip as final while it may be unfinished.

        Bounded: a live holder is waited for at most `lease_wait_seconds` (then the job
        is deferred), and a take-over that keeps losing its race is retried with backoff
        at most `MAX_TAKE_OVER_ATTEMPTS` times.
        """
        clock = self._gw.clock
        wait_until = self._budget.wait_until(self._lease_wait_seconds)
        attempts = 0
        while True:
            self.lock = seen
            if seen is not None and seen.finished:
                self._skip_finished(seen)
                return False
            if self._is_own(seen):
                # Our take-over went through and only its answer was lost: never wait
                # for ourselves.
                self._fire(Trigger.TAKE_OVER, lock=seen.as_log(), lease_expires_at=self._lease())
                return True
            if seen is None or self._lease_over(seen):
                if attempts >= MAX_TAKE_OVER_ATTEMPTS:
                    self._defer(seen)
                    return False
                if self._try_take_over(seen):
                    return True
                attempts += 1
                backoff = min(POLL_FIRST_SECONDS * 2**attempts, TAKE_OVER_BACKOFF_MAX_SECONDS)
                # Never sleep through the time the next read needs.
                room = max(0.0, self._budget.usable_seconds() - CALL_FLOOR_SECONDS)
                clock.sleep(min(self._gw.uniform(0, backoff), room))
                seen = self._read_lock()  # another taker won: look again
                self._fire(Trigger.RECHECK, lock=seen.as_log() if seen else None)
                continue
            if clock.now() >= wait_until:
                self._defer(seen)
                return False
            lease_end = seen.lease_end(self._gw.lock_lease_seconds, clock.now())
            self._fire(Trigger.WAIT, lock=seen.as_log(), lease_expires_at=lease_end)
            started = clock.now()
            seen = self._wait_for_change(seen, wait_until)
            self._fire(
                Trigger.RECHECK,
                lock=seen.as_log() if seen else None,
                waited_seconds=round(clock.now() - started, 3),
            )

    def _try_take_over(self, seen: LockRecord | None) -> bool:
        """One conditional take-over of an unfinished lock whose lease is over.

        Conditioned on the lock exactly as `seen` (every decisive attribute), so of
        several takers only one wins, and a holder that marked or a media worker that
        claimed meanwhile makes it fail: without that, two takers would each send
        (two reassemblies), or a taker would resend a job already started.
        """
        self._budget.ensure("take over the lock and send", LOCK_STEP_SECONDS)
        try:
            if seen is None:
                self._gw.lock.acquire(self.job_id, self._holder, self._now(), self._lease())
            else:
                self._gw.lock.take_over(seen, self._holder, self._now(), self._lease())
        except (LockChanged, LockAlreadyHeld):
            return False
        self._fire(
            Trigger.TAKE_OVER,
            lock=seen.as_log() if seen else None,
            lease_expires_at=self._lease(),
        )
        return True

    def _wait_for_change(self, seen: LockRecord, wait_until: float) -> LockRecord | None:
        """Poll the lock until it changes, its lease ends, or the wait is over.

        The stream path waits a little for a live holder (most finish in
        milliseconds) so that its records need no retry; it never waits past the time
        a lock step still needs, nor for ever.
        """
        clock = self._gw.clock
        lease_over_at = seen.lease_end(self._gw.lock_lease_seconds, clock.now()) + (
            CLOCK_SKEW_SECONDS
        )
        interval = POLL_FIRST_SECONDS
        while True:
            now = clock.now()
            clock.sleep(max(0.0, min(interval, wait_until - now, lease_over_at - now + 0.001)))
            interval = min(interval * 2, POLL_MAX_SECONDS)
            current = self._read_lock()
            now = clock.now()
            if current != seen or now >= lease_over_at or now >= wait_until:
                return current

    def _defer(self, seen: LockRecord | None) -> None:
        """Skip as `deferred`: not final. The holder finishes, or fails and its own
        records are retried, or dies and is taken over after its lease by a later
        delivery or the reconciler; skipping as final here would strand the job."""
        lease_end = (
            seen.lease_end(self._gw.lock_lease_seconds, self._gw.clock.now()) if seen else None
        )
        self._fire(
            Trigger.SKIP,
            reason=SkipReason.DEFERRED,
            lock=seen.as_log() if seen else None,
            lease_expires_at=lease_end,
        )

    def _skip_finished(self, seen: LockRecord) -> None:
        reason = SkipReason.ALREADY_TRIGGERED if seen.enqueued else SkipReason.REASSEMBLY_STARTED
        self._fire(Trigger.SKIP, reason=reason, lock=seen.as_log())

    def _send_and_mark(self) -> None:
        """Send the message, then mark the lock with it.

        In this order: a mark before the send, if the send then failed or the holder
        died, would make every later look skip a job that has no message (stuck). A
        send without its mark (a crash, a lost answer) is taken over after the lease and
        sent again: at most one extra message, which the media worker's claim absorbs.
        """
        self.message_id = self._gw.queue.send(self.job_id)
        self._fire(Trigger.SEND, message_id=self.message_id)
        self._budget.ensure("mark the lock")
        self._gw.lock.mark_enqueued(self.job_id, self._holder, self.message_id, self._now())
        self._fire(Trigger.MARK, message_id=self.message_id)

    def _release(self) -> bool:
        """Give the lease up at once after a failure (only our own, unmarked lock), so
        the retry need not wait for the deadline; False when it could not."""
        try:
            # After a failed mark no time may be left: the lease then ends with the
            # invocation, as for a holder that Lambda stopped.
            self._budget.ensure("release the lock")
            return self._gw.lock.release(self.job_id, self._holder)
        except Exception as exc:  # the lease still ends with the invocation
            self._log.warning("lease_release_failed", **describe_aws_error(exc))
            return False

    def _read_lock(self) -> LockRecord | None:
        self._budget.ensure("read the lock")
        return self._gw.lock.read(self.job_id)

    # ------------------------------------------------------------------ helpers

    def _now(self) -> int:
        return int(self._gw.clock.now())

    def _lease(self) -> int:
        return self._budget.lease_end()

    def _is_own(self, seen: LockRecord | None) -> TypeGuard[LockRecord]:
        """An unfinished lock whose holder is this very evaluation (holders are unique)."""
        return seen is not None and seen.held_by(self._holder)

    def _lease_over(self, seen: LockRecord) -> bool:
        return seen.lease_over(self._gw.lock_lease_seconds, self._gw.clock.now())

    def _fire(self, trigger: Trigger, **details: Any) -> None:
        job_machine().events[trigger.value].trigger(self, **details)

    def _record_transition(self, event: EventData) -> None:
        """The one place transitions are recorded and logged (`after_state_change`)."""
        details = {k: v for k, v in event.kwargs.items() if v is not None}
        known = {"completions": self.completions, "total_segments": self.total_segments}
        assert event.transition is not None  # after_state_change: always a transition
        step = Transition(
            source=State(event.transition.source),
            dest=State(self.state),
            trigger=Trigger(event.event.name),
            details=details,
            counts={k: v for k, v in known.items() if v is not None},
        )
        self.history.append(step)
        fields = step.fields()
        if step.dest is State.FAILED:
            self._log.error("transition", **fields)
        else:
            self._log.info("transition", **fields)

    def outcome(self) -> JobOutcome:
        """The evaluation's result so far (final once `run` returned)."""
        reason = self.history[-1].reason if self.history else None
        return JobOutcome(
            job_id=self.job_id,
            state=State(self.state),
            reason=reason if self.state in (State.SKIPPED, State.FAILED) else None,
            sequence_numbers=self.request.sequence_numbers,
            history=tuple(self.history),
            completions=self.completions,
            total_segments=self.total_segments,
            message_id=self.message_id,
            lock=self.lock,
            item=self._job.item if self._job is not None else None,
        )
