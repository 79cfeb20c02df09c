"""Every domain error of the package, under one base (as Powertools' `exceptions.py`).

AWS's own errors (`botocore.exceptions.ClientError`, `BotoCoreError`) are not wrapped:
they pass through the gateways unchanged and the evaluation reports them as
`aws_error`. The errors here are what the gateways and the evaluation mean by a
condition that failed, a budget that ran out, or a configuration that cannot work.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from reassembly_trigger.lock import LockRecord


class ReassemblyTriggerError(Exception):
    """Base of every error this package raises on purpose."""


class LockAlreadyHeld(ReassemblyTriggerError):
    """The lock's conditional create found a lock; `existing` is it, when AWS returned it."""

    def __init__(self, job_id: str, existing: LockRecord | None) -> None:
        super().__init__(f"reassembly lock for {job_id} already exists")
        self.existing = existing


class LockChanged(ReassemblyTriggerError):
    """A conditional update of the lock failed: someone else changed it first."""


class JobsUnavailable(ReassemblyTriggerError):
    """BatchGetItem kept returning these jobs as `UnprocessedKeys` until time ran out."""

    def __init__(self, job_ids: Sequence[str]) -> None:
        shown = ", ".join(job_ids[:5]) + (", ..." if len(job_ids) > 5 else "")
        super().__init__(f"{len(job_ids)} job(s) still unprocessed after retries: {shown}")
        self.job_ids = list(job_ids)


class DeadlineReached(ReassemblyTriggerError):
    """Too little of the invocation's time is left to start the next AWS call safely."""

    def __init__(self, step: str, seconds_left: float, seconds_needed: float) -> None:
        super().__init__(
            f"{seconds_left:.1f} s left before the deadline, {seconds_needed:.1f} s needed "
            f"to {step}"
        )
        self.step = step
        self.seconds_left = seconds_left
        self.seconds_needed = seconds_needed


class SettingsError(ReassemblyTriggerError, ValueError):
    """The environment lacks required variables or holds invalid values (names them all)."""

    def __init__(self, missing: list[str], invalid: list[str]) -> None:
        self.missing = missing
        self.invalid = invalid
        parts = []
        if missing:
            parts.append("missing environment variables: " + ", ".join(missing))
        if invalid:
            parts.append("invalid environment variables: " + "; ".join(invalid))
        super().__init__("; ".join(parts))
