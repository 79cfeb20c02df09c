"""What an evaluation returns: the job's outcome as data, and why a job failed.

An outcome is data, never rebuilt from logs: the logs, the metrics, `doctor`, the
reconciler, the API and the tools all read the same `JobOutcome`. `failure` is the one
place an error becomes a fail reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from reassembly_trigger.errors import DeadlineReached, JobsUnavailable, LockChanged
from reassembly_trigger.items import Item
from reassembly_trigger.lock import LockRecord
from reassembly_trigger.machine import INITIAL_STATE, FailReason, Reason, State, Transition
from reassembly_trigger.records import lowest_sequence_number

#: Errors that mean "AWS did not do it": the job fails and is retried.
AWS_ERRORS = (ClientError, BotoCoreError, JobsUnavailable)


@dataclass(frozen=True, slots=True)
class JobOutcome:
    """How one job's evaluation ended, with the path it took."""

    job_id: str
    state: State
    reason: Reason | None
    sequence_numbers: tuple[str, ...]
    history: tuple[Transition, ...] = ()
    completions: int | None = None
    total_segments: int | None = None
    message_id: str | None = None
    #: The last lock this evaluation saw (None: none seen, or none read).
    lock: LockRecord | None = None
    #: The Job item as read, plain values (None: none read, or no such job).
    item: Item | None = None

    @property
    def failed(self) -> bool:
        """Whether the job's records must be retried."""
        return self.state is State.FAILED

    @property
    def details(self) -> dict[str, Any]:
        """The facts that explain the final transition (its reason excluded)."""
        if not self.history:
            return {}
        return {k: v for k, v in self.history[-1].details.items() if k != "reason"}

    @property
    def lowest_sequence_number(self) -> str | None:
        """Where Lambda resumes when this job failed (None: not from a stream)."""
        return lowest_sequence_number(self.sequence_numbers) if self.sequence_numbers else None

    @property
    def path(self) -> tuple[State, ...]:
        """The states the evaluation went through, the initial one first."""
        if not self.history:
            return (INITIAL_STATE,)
        return (self.history[0].source, *(step.dest for step in self.history))


def failure(exc: Exception) -> tuple[FailReason, dict[str, Any]]:
    """The fail reason of an evaluation stopped by `exc`, and the facts that explain it.

    Every failure is reported, never swallowed: the job's records are retried.
    """
    if isinstance(exc, DeadlineReached):
        return FailReason.DEADLINE, {"error": str(exc)}
    if isinstance(exc, LockChanged):
        return FailReason.LOCK_LOST, {"error": str(exc)}
    if isinstance(exc, AWS_ERRORS):
        return FailReason.AWS_ERROR, describe_aws_error(exc)
    return FailReason.UNEXPECTED_ERROR, {"error_type": type(exc).__name__, "error": str(exc)}


#: Sequence numbers listed in full on each transition event; beyond this (a batch of
#: up to 10,000 records of one job) the events would near CloudWatch's 256 KB limit.
LOGGED_SEQUENCE_NUMBERS = 50


def logged_sequence_numbers(sequence_numbers: tuple[str, ...]) -> dict[str, Any]:
    """The job's sequence numbers as logged: all of them, or the first ones and a count."""
    if len(sequence_numbers) <= LOGGED_SEQUENCE_NUMBERS:
        return {"sequence_numbers": list(sequence_numbers)}
    return {
        "sequence_numbers": list(sequence_numbers[:LOGGED_SEQUENCE_NUMBERS]),
        "sequence_number_count": len(sequence_numbers),
        "lowest_sequence_number": lowest_sequence_number(sequence_numbers),
    }


def describe_aws_error(exc: BaseException) -> dict[str, Any]:
    """Log fields for an AWS error."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return {
            "error_code": error.get("Code", "Unknown"),
            "error": error.get("Message") or str(exc),
            "operation": exc.operation_name,
        }
    return {"error_code": type(exc).__name__, "error": str(exc)}
