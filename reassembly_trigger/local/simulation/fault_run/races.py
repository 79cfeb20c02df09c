"""Rivals: concurrent evaluations of one job, raced on a fixed schedule.

A race pauses the evaluation that makes a given call for a job (the holder) while a
rival evaluates the same job: another invocation delivering the job's chunking record,
or a reconcile run. Which call and when the holder resumes are fixed, so a seed always
gives the same race.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from reassembly_trigger.local.aws.faults import FaultKind, FaultRule
from reassembly_trigger.local.simulation.fault_run.config import FaultScenario
from reassembly_trigger.local.simulation.fault_run.planning import ScriptedJob

if TYPE_CHECKING:
    from reassembly_trigger.local.simulation.fault_run.run import FaultRun

#: Text only one kind of UpdateItem carries: a take-over of the lock.
TAKE_OVER_TEXT = ":takeovers"


#: Adds a fault rule aimed at one job's calls (`targets.Targets.rule`).
RuleMaker = Callable[..., FaultRule]


class Races:
    """The races of one shard; one runs at a time."""

    def __init__(self, shard: FaultRun) -> None:
        """Races in `shard`: its rival lane delivers the rival invocations' records, its
        `hit` records a race run for a job, its `reconcile` is the rival reconcile run."""
        self._shard = shard
        self._rival: tuple[threading.Thread, threading.Event] | None = None

    def plan(
        self, take: Callable[[int], list[ScriptedJob]], per_race: int, rule: RuleMaker
    ) -> None:
        """`per_race` jobs (from `take`) for each race, each on its fixed schedule."""
        for job in take(per_race):
            self._race(job, "SendMessage", FaultScenario.RIVAL_SEES_MARK, meanwhile=True)
        for job in take(per_race):
            self._race(job, "SendMessage", FaultScenario.RIVAL_SEES_RELEASE, meanwhile=True)
            rule("SendMessage", FaultKind.SERVER_ERROR, job, FaultScenario.SEND_FAILS, times=3)
        for job in take(per_race):
            self._race(job, "SendMessage", FaultScenario.RIVAL_OUTLASTED, meanwhile=False)
        crash_after_lock = f"{FaultScenario.CRASH_AFTER_LOCK}:timeout"
        for job in take(per_race):
            # The holder dies at its timeout; the batch's retry takes over the expired
            # lock, and a rival invocation takes it over at the same moment.
            rule("SendMessage", FaultKind.CRASH, job, crash_after_lock)
            self._race(
                job,
                "UpdateItem",
                FaultScenario.TWO_TAKERS,
                meanwhile=False,
                texts=(TAKE_OVER_TEXT,),
            )
        if not self._shard.config.reconciler:
            return
        reconcile = self._shard.reconcile
        for job in take(per_race):
            # A reconcile run while a stream evaluation holds the lock: it defers
            # at once (it never waits).
            self._race(
                job,
                "SendMessage",
                FaultScenario.RECONCILER_MEETS_HOLDER,
                meanwhile=False,
                rival=functools.partial(reconcile, {"job_ids": [job.job_id]}),
            )
        for job in take(per_race):
            # As two takers, the second taker being a reconcile run.
            rule("SendMessage", FaultKind.CRASH, job, crash_after_lock)
            self._race(
                job,
                "UpdateItem",
                FaultScenario.RECONCILER_TAKES_OVER_TOO,
                meanwhile=False,
                texts=(TAKE_OVER_TEXT,),
                rival=functools.partial(reconcile, {"job_ids": [job.job_id]}),
            )

    def end(self) -> None:
        """The holder's invocation is over: let its rival finish."""
        if self._rival is not None:
            thread, holder_done = self._rival
            holder_done.set()
            thread.join()
            self._rival = None

    def _race(
        self,
        job: ScriptedJob,
        operation: str,
        label: FaultScenario,
        *,
        meanwhile: bool,
        texts: tuple[str, ...] = (),
        rival: Callable[[], object] | None = None,
    ) -> None:
        """Pause the evaluation making `operation` for `job` while a rival evaluates it.

        The rival is another invocation delivering the job's chunking record, or
        `rival` (a reconcile run). `meanwhile`: the holder resumes as soon as the rival
        starts waiting, and the rival's wait goes on once the holder's invocation is
        over; otherwise the rival runs to its end while the holder is held.
        """

        rule = FaultRule(
            operation,
            FaultKind.PAUSE,
            times=1,
            body_contains=(job.job_id, *texts),
            label=f"race:{label}",
        )

        def action() -> None:
            if self._rival is not None:
                # One race at a time (the holder of another race is finishing its
                # batch): keep this one for the job's next call.
                rule.times = (rule.times or 0) + 1
                return
            self._shard.hit(job.job_id, label)
            if rival is None:
                self._shard.rival_lane.pending.append(self._shard.chunking_record(job))
            resumed = threading.Event()
            holder_done = threading.Event()

            def hand_back() -> None:
                resumed.set()
                holder_done.wait()

            def run_rival() -> None:
                me = threading.get_ident()
                if meanwhile:
                    self._shard.clock.at_next_sleep(hand_back, thread=me)
                try:
                    (rival or self._shard.rival_lane.deliver)()
                finally:
                    self._shard.clock.cancel_sleep_actions(me)
                    resumed.set()

            thread = threading.Thread(target=run_rival, name=f"rival-{job.job_id}", daemon=True)
            self._rival = (thread, holder_done)
            thread.start()
            if meanwhile:
                resumed.wait()
            else:
                thread.join()

        rule.action = action
        self._shard.faults.add(rule)
