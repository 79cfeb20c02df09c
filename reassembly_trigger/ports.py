"""What the machine needs from the outside world: the interfaces, and what they return.

The evaluation depends on these protocols, never on boto3: `gateways` implements them
on DynamoDB and SQS, the unit tier and the protocol model give in-memory ones, and
`doctor`'s dry run gives a lock that cannot write.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from reassembly_trigger.items import InvalidJob, JobItem
from reassembly_trigger.lock import LockRecord
from reassembly_trigger.timing import CALL_FLOOR_SECONDS

#: Draws a uniform random number in [a, b]: `random.uniform` (the process's generator,
#: reseeded after a SnapStart restore), or a seeded generator's for reproducible runs.
Uniform = Callable[[float, float], float]


class Budget(Protocol):
    """The time an invocation has left; raises `DeadlineReached` when a step cannot fit."""

    def ensure(self, step: str, seconds_needed: float = CALL_FLOOR_SECONDS) -> None:
        """Raise unless `step`'s normal case (default: one bounded call) still fits."""
        ...


@dataclass(frozen=True, slots=True)
class LoadedJobs:
    """Jobs by id, decoded where read (None: no such job), and the ids whose read
    failed, with why."""

    items: dict[str, JobItem | InvalidJob | None]
    unavailable: dict[str, Exception] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class InFlightJob:
    """A job listed by the status index as waiting for its reassembly."""

    job_id: str
    created_at: int


@dataclass(frozen=True, slots=True)
class CompletionCount:
    """How many whole indexes of a job lie in `[0, total_segments)`, over how many pages."""

    count: int
    pages: int
    #: Recorded indexes inside the range that are not whole numbers (never counted).
    fractional: int = 0


@dataclass(frozen=True, slots=True)
class ReconcileCursor:
    """Where the last truncated reconcile run stopped: the next one starts after it."""

    created_at: int
    job_id: str


class JobReader(Protocol):
    """Reads Job items and lists the jobs in flight."""

    def load_jobs(self, job_ids: Sequence[str], budget: Budget | None = None) -> LoadedJobs:
        """Every id's Job, decoded (None: no such job), and the ids that could not be read."""
        ...

    def in_flight(
        self, index_name: str, *, status: str, created_before: int, budget: Budget | None = None
    ) -> list[InFlightJob]:
        """Every job in `status` created at or before `created_before`."""
        ...


class CompletionCounter(Protocol):
    """Counts a job's completions."""

    def count_completions(
        self, job_id: str, total_segments: int, budget: Budget | None = None
    ) -> CompletionCount:
        """The number of whole indexes in `[0, total_segments)`."""
        ...


class LockStore(Protocol):
    """The ReassemblyTriggered lock: conditional create, take-over, mark, release."""

    def acquire(self, job_id: str, holder: str, now: int, lease_expires_at: int) -> None:
        """Create the lock or raise `LockAlreadyHeld`."""
        ...

    def read(self, job_id: str) -> LockRecord | None:
        """The lock as it is now."""
        ...

    def read_many(
        self, job_ids: Sequence[str], budget: Budget | None = None
    ) -> tuple[dict[str, LockRecord | None], dict[str, Exception]]:
        """The locks of many jobs, and the ids that could not be read."""
        ...

    def take_over(self, seen: LockRecord, holder: str, now: int, lease_expires_at: int) -> None:
        """Become the holder of `seen`, or raise `LockChanged`."""
        ...

    def mark_enqueued(self, job_id: str, holder: str, message_id: str, now: int) -> None:
        """Record the send, or raise `LockChanged`."""
        ...

    def release(self, job_id: str, holder: str) -> bool:
        """End our lease at once; False if the lock is not ours."""
        ...


class MessageSender(Protocol):
    """Sends the reassembly message."""

    def send(self, job_id: str) -> str:
        """Send the job's message; return its id."""
        ...
