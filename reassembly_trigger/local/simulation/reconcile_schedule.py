"""The reconciler on a schedule, as EventBridge runs it, for the local simulations.

`ScheduledReconciler` runs the real `reconcile.Reconciler` every `every_seconds` of a
clock (the fault simulation's simulated one, or the wall clock in `simulate`), each
run an invocation of `timeout_seconds` with a request id `reconcile-N`, and tallies
what the runs did. A run killed by a simulated crash or raising is recorded, never
fatal: the next scheduled run carries on, as the next EventBridge invocation would.

`ReconcilerLoop` drives one in a thread on the wall clock (`simulate`).
"""

from __future__ import annotations

import itertools
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from reassembly_trigger.local.aws.faults import SimulatedCrash
from reassembly_trigger.machine import SkipReason, State, Trigger
from reassembly_trigger.reconcile import Reconciler, ReconcileResult
from reassembly_trigger.timing import Clock, Invocation

#: The request ids of reconcile runs start with this (logs tell them from the stream path).
REQUEST_PREFIX = "reconcile-"
#: EventBridge's default schedule for the reconciler, `rate(5 minutes)`, and its timeout.
DEFAULT_EVERY_SECONDS = 300.0
DEFAULT_TIMEOUT_SECONDS = 300.0


@dataclass(slots=True)
class ReconcileRun:
    """One run: its invocation, and its result (None if it crashed or raised)."""

    invocation: Invocation
    result: ReconcileResult | None = None
    crash: SimulatedCrash | None = None
    error: str | None = None

    @property
    def clean(self) -> bool:
        """It ran to its end and found nothing to do: no send, no failure, nothing
        deferred, every job reached."""
        result = self.result
        if result is None or result.truncated or result.enqueued or result.failed:
            return False
        if result.error is not None:  # it could not list the jobs: it saw nothing
            return False
        return not any(o.reason is SkipReason.DEFERRED for o in result.outcomes)


@dataclass(slots=True)
class ReconcileTally:
    """What every run did, together."""

    runs: int = 0
    #: Runs killed by a simulated crash, and runs that raised (with why).
    crashed: int = 0
    errors: list[str] = field(default_factory=list)
    truncated: int = 0
    jobs_examined: int = 0
    #: Jobs the reconciler sent a message for, and how often (each one a job the
    #: stream path had missed, or had not reached yet).
    enqueued: Counter[str] = field(default_factory=Counter)
    #: Outcomes by state and reason (`skipped:deferred`), and the transitions of the
    #: reconciler's evaluations by trigger (`take_over`, never `wait`).
    outcomes: Counter[str] = field(default_factory=Counter)
    transitions: Counter[str] = field(default_factory=Counter)

    def add(self, run: ReconcileRun) -> None:
        """Count one run."""
        self.runs += 1
        if run.crash is not None:
            self.crashed += 1
        if run.error is not None:
            self.errors.append(run.error)
        result = run.result
        if result is None:
            return
        self.truncated += int(result.truncated)
        self.jobs_examined += len(result.outcomes)
        self.enqueued.update(result.enqueued)
        self.outcomes.update(result.counts())
        for outcome in result.outcomes:
            self.transitions.update(step.trigger.value for step in outcome.history)

    @property
    def waits(self) -> int:
        """Times a reconciler's evaluation waited on a live lease (it never may)."""
        return self.transitions[Trigger.WAIT.value]

    def counts(self) -> Counter[str]:
        """Every figure as one counter (for reports and merging shards)."""
        figures: Counter[str] = Counter(
            runs=self.runs,
            runs_crashed=self.crashed,
            runs_failed=len(self.errors),
            runs_truncated=self.truncated,
            jobs_examined=self.jobs_examined,
            enqueued=sum(self.enqueued.values()),
            take_over=self.transitions[Trigger.TAKE_OVER.value],
            wait=self.waits,
        )
        # Outcomes by state and reason (`enqueued` is already there).
        figures.update({k: v for k, v in self.outcomes.items() if k != State.ENQUEUED.value})
        return figures


class ScheduledReconciler:
    """Runs a reconciler every `every_seconds` of `clock`, each run `timeout_seconds` long."""

    def __init__(
        self,
        reconciler: Reconciler,
        clock: Clock,
        *,
        every_seconds: float = DEFAULT_EVERY_SECONDS,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        """The first run is due `every_seconds` from now."""
        if every_seconds <= 0 or timeout_seconds <= 0:
            raise ValueError("the schedule and the timeout must be positive")
        self.reconciler = reconciler
        self.clock = clock
        self.every_seconds = every_seconds
        self.timeout_seconds = timeout_seconds
        self.next_at = clock.now() + every_seconds
        self.tally = ReconcileTally()
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()

    def due(self) -> bool:
        """Whether the next scheduled run's time has come."""
        return self.clock.now() >= self.next_at

    def run_scheduled(self) -> ReconcileRun:
        """The next scheduled run, now; the one after is due at the first slot after
        it (one run however many slots passed: the runs missed would have found the
        same)."""
        run = self.run()
        now = self.clock.now()
        while self.next_at <= now:
            self.next_at += self.every_seconds
        return run

    def run(self, event: Any = None) -> ReconcileRun:
        """One run now (`{"job_ids": [...]}`: a targeted one), off the schedule."""
        with self._lock:
            number = next(self._numbers)
        invocation = Invocation(
            f"{REQUEST_PREFIX}{number}", self.clock.now() + self.timeout_seconds
        )
        run = ReconcileRun(invocation)
        try:
            run.result = self.reconciler.run(event if event is not None else {}, invocation)
            if run.result.error is not None:  # the Lambda would fail the invocation
                run.error = f"{run.result.error.get('error_code')}: {run.result.error.get('error')}"
        except SimulatedCrash as crash:  # killed, like a Lambda at its timeout
            run.crash = crash
        except Exception as exc:  # the Lambda would fail; the next run carries on
            run.error = f"{type(exc).__name__}: {exc}"
        with self._lock:
            self.tally.add(run)
        return run


class ReconcilerLoop:
    """Runs a `ScheduledReconciler` on the wall clock in a thread until stopped."""

    def __init__(self, scheduled: ScheduledReconciler, *, min_gap_seconds: float = 0.5) -> None:
        """`min_gap_seconds`: the least time between the end of a run and a run asked for
        (pacing only: the settling wait takes only a run started once all looked settled)."""
        self.scheduled = scheduled
        self._min_gap = min_gap_seconds
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._asked = False
        self._last_end: float | None = None
        #: When the latest run that found nothing to do started.
        self._clean_from: float | None = None

    def run(self) -> None:
        """Run when due (or when asked), until `stop()`."""
        clock = self.scheduled.clock
        while not self._stop.is_set():
            with self._lock:
                asked = self._asked and (
                    self._last_end is None or clock.now() - self._last_end >= self._min_gap
                )
            if asked or self.scheduled.due():
                started = clock.now()
                run = self.scheduled.run_scheduled()
                with self._lock:
                    self._asked = False
                    self._last_end = clock.now()
                    if run.clean:
                        self._clean_from = started
                continue
            self._wake.wait(min(max(0.0, self.scheduled.next_at - clock.now()), self._min_gap))
            self._wake.clear()

    def ask_for_run(self) -> None:
        """Run soon (at least `min_gap_seconds` after the last run) instead of at the next
        slot: the pipeline has gone quiet and wants the reconciler's word on it."""
        with self._lock:
            self._asked = True
        self._wake.set()

    def clean_since(self, when: float) -> bool:
        """Whether a run that started at or after `when` found nothing to do."""
        with self._lock:
            return self._clean_from is not None and self._clean_from >= when

    def stop(self) -> None:
        """Return from `run` (a run under way finishes first)."""
        self._stop.set()
        self._wake.set()
