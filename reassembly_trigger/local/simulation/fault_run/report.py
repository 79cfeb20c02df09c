"""What a run did, what it injected, which recovery paths it took, and what holds."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from typing import Any

from reassembly_trigger.local.aws.faults import FaultKind
from reassembly_trigger.local.simulation.fault_run.config import (
    TRIGGER_OPERATIONS,
    FaultRunConfig,
    FaultScenario,
)
from reassembly_trigger.local.simulation.media_worker import MediaWorkerReport
from reassembly_trigger.machine import Transition


@dataclass(frozen=True, slots=True)
class Invariant:
    """One property checked at the end of a run."""

    name: str
    ok: bool
    detail: str = ""


@dataclass(slots=True)
class FaultRunReport:
    """What a run (or one shard of it) did, injected and proved."""

    config: FaultRunConfig
    wall_seconds: float = 0.0
    simulated_seconds: float = 0.0
    jobs_by_kind: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    #: Per-call faults by operation: `Operation:kind`.
    aws_faults: Counter[str] = field(default_factory=Counter)
    #: The stream path's (and the API's) evaluations: transitions by trigger, skips and
    #: failures by reason, leases released (or not) on a failure; from the outcomes of
    #: the invocations that returned (a crashed one's are lost with it, as in Lambda).
    recoveries: Counter[str] = field(default_factory=Counter)
    deliveries: Counter[str] = field(default_factory=Counter)
    aws_calls: Counter[str] = field(default_factory=Counter)
    worker: MediaWorkerReport = field(default_factory=MediaWorkerReport)
    #: How many complete jobs got 1, 2, ... messages.
    messages_per_job: Counter[int] = field(default_factory=Counter)
    #: What the scheduled reconcile runs did (`ReconcileTally.counts`), and the jobs it
    #: enqueued (each one the stream path missed) by the fault that made it miss them.
    reconciler: Counter[str] = field(default_factory=Counter)
    reconciler_enqueues_by_cause: Counter[str] = field(default_factory=Counter)
    invariants: list[Invariant] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Every invariant holds."""
        return all(invariant.ok for invariant in self.invariants)

    def count(self, fault: FaultScenario) -> None:
        """Record that `fault` happened once more."""
        self.faults[fault.value] += 1

    def count_transitions(self, history: Iterable[Transition]) -> None:
        """Add one evaluation's transitions to the recovery paths."""
        for step in history:
            trigger = step.trigger.value
            self.recoveries[trigger] += 1
            if step.reason is not None:
                self.recoveries[f"{trigger}:{step.reason.value}"] += 1
            released = step.details.get("lease_released")
            if released is not None:
                self.recoveries["lease_released" if released else "lease_not_released"] += 1

    def missing_faults(self) -> list[str]:
        """Fault scenarios that never occurred (with faults on, there must be none)."""
        expected = self.config.expected_faults()
        missing = [fault.value for fault in expected if not self.faults[fault.value]]
        if not expected:
            return missing
        for operation in TRIGGER_OPERATIONS:
            for kind in (FaultKind.THROTTLE, FaultKind.SERVER_ERROR):
                if not self.aws_faults[f"{operation}:{kind.value}"]:
                    missing.append(f"{operation}:{kind.value}")
        return missing

    def lines(self) -> list[str]:
        """The report as plain text: the heading, each table as a line, the summary."""
        tables = [f"{title.lower()}: {_counts(counter)}" for title, counter in self.tables()]
        return [*self.heading(), *tables, *self.summary()]

    def heading(self) -> list[str]:
        """What ran: mode, size, seed, time, the jobs by kind."""
        c = self.config
        return [
            f"fault run ({c.mode.value}): {c.jobs} jobs, seed {c.seed}, "
            f"faults {'on' if c.inject_faults else 'off'}",
            f"wall time {self.wall_seconds:.1f} s, simulated time {self.simulated_seconds:.0f} s",
            "jobs: " + _counts(self.jobs_by_kind),
        ]

    def tables(self) -> list[tuple[str, Counter[Any]]]:
        """The counts the command shows as tables: (title, counts)."""
        return [
            ("faults injected", self.faults),
            ("AWS faults by operation", self.aws_faults),
            ("recovery paths (transitions)", self.recoveries),
            ("deliveries", self.deliveries),
        ]

    def summary(self) -> list[str]:
        """The reconciler, the calls, the media worker, and every invariant's verdict."""
        c = self.config
        out = [
            "reconciler: " + (_counts(self.reconciler) if c.reconciler else "off"),
            "reconciler enqueues by cause: " + _counts(self.reconciler_enqueues_by_cause),
            "aws calls by the Lambda: " + _counts(self.aws_calls),
            f"media worker: messages {self.worker.messages_received}, reassemblies "
            f"{self.worker.reassemblies}, duplicates absorbed {self.worker.duplicates_absorbed}, "
            f"already completed {self.worker.already_completed}, refusals "
            f"{self.worker.refusals}, malformed {self.worker.malformed_messages}",
            "complete jobs by messages received: "
            + _counts(Counter({str(k): v for k, v in sorted(self.messages_per_job.items())})),
        ]
        out.extend(
            f"invariant {'OK  ' if i.ok else 'FAIL'} {i.name}"
            + (f": {i.detail}" if i.detail else "")
            for i in self.invariants
        )
        return out


def _counts(counter: Counter[Any]) -> str:
    return ", ".join(f"{key}={value}" for key, value in sorted(counter.items())) or "-"


def merge_reports(config: FaultRunConfig, reports: list[FaultRunReport]) -> FaultRunReport:
    """The shards' reports as one: counters (every `Counter` field) added up, the
    longest simulated time."""
    merged = FaultRunReport(config)
    for report in reports:
        for counter in fields(FaultRunReport):
            if counter.default_factory is Counter:
                getattr(merged, counter.name).update(getattr(report, counter.name))
        merged.worker.add(report.worker)
        merged.simulated_seconds = max(merged.simulated_seconds, report.simulated_seconds)
    return merged


def merge_invariants(per_shard: list[list[Invariant]]) -> list[Invariant]:
    """Each invariant once: it holds where it holds in every shard; details joined."""
    merged: dict[str, Invariant] = {}
    for invariants in per_shard:
        for inv in invariants:
            seen = merged.get(inv.name)
            if seen is None:
                merged[inv.name] = inv
            else:
                detail = "; ".join(d for d in (seen.detail, inv.detail) if d)
                merged[inv.name] = Invariant(inv.name, seen.ok and inv.ok, detail)
    return list(merged.values())
