"""Which job gets which fault: rules aimed at chosen jobs' calls, then per-call chances.

The targeted faults (a crash after the lock or the send, a lost send answer, a send or
mark that fails through every retry, an outage, a holder dying with a far lease, the
races) each go to their own complete jobs, drawn from the shard's seeded generator;
the per-call faults (throttling, 5xx, timeouts, lost answers) may hit any call.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

from reassembly_trigger.local.aws.faults import FaultKind, FaultRule
from reassembly_trigger.local.simulation.fault_run.config import (
    CALL_FAULTS,
    FaultScenario,
)
from reassembly_trigger.local.simulation.fault_run.planning import ScriptedJob

if TYPE_CHECKING:
    from reassembly_trigger.local.simulation.fault_run.run import FaultRun

#: Text only one kind of UpdateItem carries: the enqueue mark.
MARK_TEXT = "SET enqueued_at"


class Targets:
    """The fault rules of one shard, and which of them fired for which job."""

    def __init__(self, shard: FaultRun) -> None:
        """The rules of `shard`, drawn from its generator, added to its injector."""
        self._shard = shard
        self._rng = shard.rng
        self._faults = shard.faults
        #: The targeted rules, with their job and initial `times`.
        self._targeted: list[tuple[FaultRule, str, int]] = []
        #: Holders that die with a far lease, by job: the lease, and the job's writes
        #: left to flush (the holder takes the lock once the last one is written).
        self.far_holders: dict[str, tuple[float, int]] = {}

    def plan(self, jobs: list[ScriptedJob]) -> None:
        """The targeted faults (per job) first, the races, then the per-call ones (any call)."""
        c = self._shard.config
        if not c.inject_faults:
            return
        ready = [job for job in jobs if job.complete]
        self._rng.shuffle(ready)
        per_kind = self._quota(c.targeted_rate, len(jobs))
        per_race = self._quota(c.race_rate, len(jobs))
        picks = iter(ready)

        def take(n: int) -> list[ScriptedJob]:
            return list(itertools.islice(picks, n))

        for operation, kind, fault, times, texts in (
            ("SendMessage", FaultKind.CRASH, FaultScenario.CRASH_AFTER_LOCK, 1, ()),
            ("UpdateItem", FaultKind.CRASH, FaultScenario.CRASH_AFTER_SEND, 1, (MARK_TEXT,)),
            ("SendMessage", FaultKind.LOST_RESPONSE, FaultScenario.LOST_SEND_RESPONSE, 1, ()),
            ("SendMessage", FaultKind.SERVER_ERROR, FaultScenario.SEND_FAILS, 3, ()),
            ("UpdateItem", FaultKind.SERVER_ERROR, FaultScenario.MARK_FAILS, 3, (MARK_TEXT,)),
        ):
            for job in take(per_kind):
                label = fault.value
                if kind is FaultKind.CRASH:  # killed at its timeout, or earlier
                    label += ":timeout" if self._rng.random() < 0.7 else ":early"
                self.rule(operation, kind, job, label, times=times, texts=texts)
        for job in take(per_kind * 2):
            operation = self._rng.choice(("BatchGetItem", "Query", "PutItem", "SendMessage"))
            kind = self._rng.choice((FaultKind.THROTTLE, FaultKind.SERVER_ERROR))
            self.rule(operation, kind, job, FaultScenario.OUTAGE, times=3)
        for job in take(per_kind):
            # Its lock is taken once the job is complete (see `FaultRun._flush`).
            self.far_holders[job.job_id] = (self._rng.uniform(*c.far_lease_seconds), 0)
        self._shard.races.plan(take, per_race, self.rule)
        rates = (c.throttle_rate, c.server_error_rate, c.connect_timeout_rate, c.lost_response_rate)
        for kind, rate in zip(CALL_FAULTS, rates, strict=True):
            self._faults.add(FaultRule("*", kind, probability=rate, label=kind.value))

    def rule(
        self,
        operation: str,
        kind: FaultKind,
        job: ScriptedJob | str,
        label: str,
        *,
        times: int = 1,
        texts: tuple[str, ...] = (),
    ) -> FaultRule:
        """A fault on `job`'s next `times` calls of `operation` (whose body holds `texts`)."""
        job_id = job if isinstance(job, str) else job.job_id
        rule = self._faults.add(
            FaultRule(operation, kind, times=times, body_contains=(job_id, *texts), label=label)
        )
        self._targeted.append((rule, job_id, times))
        return rule

    def fired(self) -> dict[str, set[str]]:
        """Per job, the targeted faults that fired for it."""
        fired: dict[str, set[str]] = {}
        for rule, job_id, times in self._targeted:
            if (rule.times or 0) < times:
                fired.setdefault(job_id, set()).add(rule.label.split(":", 1)[0])
        return fired

    def _quota(self, rate: float, jobs: int) -> int:
        """How many jobs of this shard get a targeted fault: `rate` of them on average
        (the fraction drawn), and at least one in the first shard, so every kind occurs."""
        expected = rate * jobs
        count = int(expected) + (1 if self._rng.random() < expected % 1 else 0)
        return max(count, 1) if self._shard.shard == 0 else count
