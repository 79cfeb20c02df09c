"""A dry run of the real machine: the same evaluation, given gateways that cannot write.

`doctor` runs the Lambda's own `JobEvaluation` with these gateways: every read goes to
AWS, and the first write stops the run with `WouldWrite`, which says which write it
would have been. The evaluation itself has no dry-run branch: what it is given decides.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from reassembly_trigger.errors import LockAlreadyHeld
from reassembly_trigger.evaluation import Gateways
from reassembly_trigger.lock import LockRecord
from reassembly_trigger.machine import Trigger
from reassembly_trigger.ports import Budget, LockStore


class WouldWrite(BaseException):
    """The dry run reached its first write; `trigger` is the step it would have taken.

    A `BaseException`, like `KeyboardInterrupt`: the evaluation's error handling (which
    turns every `Exception` into a failed job) lets it through untouched.
    """

    def __init__(self, trigger: Trigger) -> None:
        super().__init__(f"would {trigger.value}")
        self.trigger = trigger


class ReadOnlyLock:
    """The lock gateway for a dry run: reads pass through, writes stop the run."""

    def __init__(self, lock: LockStore) -> None:
        self._lock = lock

    def read(self, job_id: str) -> LockRecord | None:
        """The lock as it is now."""
        return self._lock.read(job_id)

    def read_many(
        self, job_ids: Sequence[str], budget: Budget | None = None
    ) -> tuple[dict[str, LockRecord | None], dict[str, Exception]]:
        """The locks of many jobs."""
        return self._lock.read_many(job_ids, budget)

    def acquire(self, job_id: str, holder: str, now: int, lease_expires_at: int) -> None:
        """Behave as the conditional create would up to the write: a lock that exists is
        reported as held; otherwise the run stops where it would create one."""
        existing = self._lock.read(job_id)
        if existing is not None:
            raise LockAlreadyHeld(job_id, existing)
        raise WouldWrite(Trigger.ACQUIRE)

    def take_over(self, seen: LockRecord, holder: str, now: int, lease_expires_at: int) -> None:
        """Stop where the take-over would be written."""
        raise WouldWrite(Trigger.TAKE_OVER)

    def mark_enqueued(self, job_id: str, holder: str, message_id: str, now: int) -> None:
        """Never reached: the run stops at the lock."""
        raise WouldWrite(Trigger.MARK)

    def release(self, job_id: str, holder: str) -> bool:
        """Nothing to release in a run that never holds the lock."""
        return False


class ReadOnlyQueue:
    """The queue gateway for a dry run: never sends."""

    def send(self, job_id: str) -> str:
        """Stop where the message would be sent."""
        raise WouldWrite(Trigger.SEND)


def read_only(gateways: Gateways) -> Gateways:
    """The same gateways, unable to write."""
    return replace(gateways, lock=ReadOnlyLock(gateways.lock), queue=ReadOnlyQueue())
