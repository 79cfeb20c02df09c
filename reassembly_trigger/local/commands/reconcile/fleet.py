"""Every job in flight at once: `doctor`'s verdict for each, and a repair of those that need it.

The fleet is what the reconciler reconciles: every Job in `chunking_complete`, listed
through the Jobs table's status index (or the jobs named). Each one is diagnosed by
`Doctor` (reads and a dry run, no write); `repair` runs the reconciler itself on the
jobs whose verdict calls for the machine, so an operator's repair and the scheduled one
are the same code.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from reassembly_trigger.local.commands.doctor.diagnosis import (
    ACTION_NEEDED,
    Diagnosis,
    Doctor,
    Verdict,
)
from reassembly_trigger.reconcile import IN_FLIGHT_STATUS, ReconcileResult, build_reconciler
from reassembly_trigger.timing import Invocation

#: Verdicts the machine itself resolves (the others need a person or nothing).
MACHINE_CAN_ACT = frozenset({Verdict.STUCK, Verdict.WOULD_TRIGGER})
#: `--repair`'s deadline: the reconciler's default function timeout.
REPAIR_TIMEOUT_SECONDS = 300.0


@dataclass(frozen=True, slots=True)
class FleetEntry:
    """One job in flight: its age and `doctor`'s diagnosis."""

    diagnosis: Diagnosis
    created_at: int | None

    @property
    def age_seconds(self) -> float | None:
        """Seconds since the Job was created (None when unknown)."""
        return None if self.created_at is None else self.diagnosis.checked_at - self.created_at

    def as_json(self) -> dict[str, Any]:
        """The diagnosis, with the job's age."""
        age = self.age_seconds
        return {**self.diagnosis.as_json(), "age_seconds": round(age) if age is not None else None}


@dataclass(frozen=True, slots=True)
class FleetReport:
    """The fleet as diagnosed, and what a repair did (if one ran)."""

    entries: list[FleetEntry]
    repair: ReconcileResult | None = None

    def verdicts(self) -> Counter[str]:
        """Jobs by verdict."""
        return Counter(entry.diagnosis.verdict.value for entry in self.entries)

    @property
    def exit_status(self) -> int:
        """1 when any job needs a person (stuck, not found, invalid, unclaimed), else 0."""
        return int(any(e.diagnosis.verdict in ACTION_NEEDED for e in self.entries))

    def as_json(self) -> dict[str, Any]:
        """The `reconcile --json` document."""
        return {
            "jobs": [entry.as_json() for entry in self.entries],
            "verdicts": dict(sorted(self.verdicts().items())),
            "repair": self.repair.as_json() if self.repair is not None else None,
        }


class Fleet:
    """Diagnoses (and repairs) every job in flight through the Lambda's gateways."""

    def __init__(self, doctor: Doctor) -> None:
        self.doctor = doctor

    def jobs(self, job_ids: Sequence[str] | None = None) -> list[tuple[str, int | None]]:
        """The jobs to look at: those named, or every job in flight, oldest first."""
        if job_ids:
            return [(job_id, None) for job_id in dict.fromkeys(job_ids)]
        trigger = self.doctor.trigger
        listed = trigger.gateways.jobs.in_flight(
            trigger.settings.jobs_status_index_name,
            status=IN_FLIGHT_STATUS,
            created_before=int(trigger.gateways.clock.now()),
        )
        listed.sort(key=lambda job: (job.created_at, job.job_id))
        return [(job.job_id, job.created_at) for job in listed]

    def diagnose(
        self,
        jobs: Sequence[tuple[str, int | None]],
        progress: Callable[[int, int], None] | None = None,
    ) -> list[FleetEntry]:
        """`doctor`'s diagnosis of each job (reads and a dry run only)."""
        entries: list[FleetEntry] = []
        for done, (job_id, created_at) in enumerate(jobs, start=1):
            entries.append(FleetEntry(self.doctor.diagnose(job_id), created_at))
            if progress is not None:
                progress(done, len(jobs))
        return entries

    def repair(self, entries: Sequence[FleetEntry]) -> ReconcileResult:
        """Run the reconciler (the real machine, never waiting) on the jobs that need it."""
        needing = [e.diagnosis.job_id for e in entries if e.diagnosis.verdict in MACHINE_CAN_ACT]
        reconciler = build_reconciler(self.doctor.trigger)
        clock = self.doctor.trigger.gateways.clock
        invocation = Invocation.outside_lambda(clock, REPAIR_TIMEOUT_SECONDS)
        return reconciler.run({"job_ids": needing}, invocation)
