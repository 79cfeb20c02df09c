"""The per-job state machine, declared once, as data.

Everything else reads this module: the evaluation drives a `transitions.Machine`
built from `STATES` and `TRANSITIONS`, the logs name these states, triggers and
reasons, `docs/state-diagram.md` is drawn from them, and the tests iterate over them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from typing import Any, TypedDict


class State(StrEnum):
    """Where a job stands in one evaluation."""

    RECEIVED = "received"  # named by the batch; nothing read yet
    LOADED = "loaded"  # Job is chunking_complete with total_segments
    COUNTED = "counted"  # every segment in [0, total_segments) is recorded
    CONTENDED = "contended"  # a lock already existed; deciding what it means
    WAITING = "waiting"  # another holder is within its lease: waiting for it
    LOCKED = "locked"  # this evaluation holds the lock
    SENT = "sent"  # the reassembly message is on the queue
    ENQUEUED = "enqueued"  # the lock is marked as enqueued: done
    SKIPPED = "skipped"  # stopped on purpose, with a reason
    FAILED = "failed"  # an error; the job's records go back to Lambda


class Trigger(StrEnum):
    """The events that move a job from state to state."""

    LOAD = "load"
    COUNT = "count"
    ACQUIRE = "acquire"
    CONTEND = "contend"
    WAIT = "wait"
    RECHECK = "recheck"
    TAKE_OVER = "take_over"
    SEND = "send"
    MARK = "mark"
    SKIP = "skip"
    FAIL = "fail"


FINAL_STATES = frozenset({State.ENQUEUED, State.SKIPPED, State.FAILED})
STATES = tuple(State)
INITIAL_STATE = State.RECEIVED


class TransitionSpec(TypedDict):
    """One transition in the form `transitions.Machine` takes."""

    trigger: str
    source: str | list[str]
    dest: str


def transition_spec(trigger: Trigger, source: State | list[State], dest: State) -> TransitionSpec:
    """One entry of `TRANSITIONS`, in the form `transitions.Machine` takes."""
    sources = [s.value for s in source] if isinstance(source, list) else source.value
    return {"trigger": trigger.value, "source": sources, "dest": dest.value}


TRANSITIONS: tuple[TransitionSpec, ...] = (
    transition_spec(Trigger.LOAD, State.RECEIVED, State.LOADED),
    transition_spec(Trigger.COUNT, State.LOADED, State.COUNTED),
    transition_spec(Trigger.ACQUIRE, State.COUNTED, State.LOCKED),
    transition_spec(Trigger.CONTEND, State.COUNTED, State.CONTENDED),
    transition_spec(Trigger.WAIT, State.CONTENDED, State.WAITING),
    transition_spec(Trigger.RECHECK, [State.WAITING, State.CONTENDED], State.CONTENDED),
    transition_spec(Trigger.TAKE_OVER, State.CONTENDED, State.LOCKED),
    transition_spec(Trigger.SEND, State.LOCKED, State.SENT),
    transition_spec(Trigger.MARK, State.SENT, State.ENQUEUED),
    transition_spec(
        Trigger.SKIP,
        [State.RECEIVED, State.LOADED, State.COUNTED, State.CONTENDED],
        State.SKIPPED,
    ),
    transition_spec(Trigger.FAIL, [s for s in STATES if s not in FINAL_STATES], State.FAILED),
)

#: What each trigger means, for the diagram's legend.
TRIGGER_MEANINGS: dict[Trigger, str] = {
    Trigger.LOAD: "the Job is `chunking_complete` with `total_segments`",
    Trigger.COUNT: "a consistent COUNT finds every segment in `[0, total_segments)`",
    Trigger.ACQUIRE: "conditional create of the lock succeeded: this evaluation holds it",
    Trigger.CONTEND: "the lock already exists; it is read to decide",
    Trigger.WAIT: "the lock is unfinished and its holder is within its lease",
    Trigger.RECHECK: "the awaited lock changed, or a take-over lost the race: decide again",
    Trigger.TAKE_OVER: "the lock is unfinished and its lease is over (expired, released "
    "or the item vanished): conditional update on the values read; one taker wins",
    Trigger.SEND: "the reassembly message was sent",
    Trigger.MARK: "the lock records `enqueued_at` and the SQS `message_id`",
    Trigger.SKIP: "the job stops here on purpose; `reason` says why",
    Trigger.FAIL: "an error; a lock this evaluation held is released first and the "
    "job's records are reported in `batchItemFailures`",
}


class SkipReason(StrEnum):
    """Why a job was deliberately not (or not yet) triggered: a closed set of codes."""

    JOB_NOT_FOUND = "job_not_found"
    JOB_INVALID = "job_invalid"
    NOT_CHUNKING_COMPLETE = "not_chunking_complete"
    TOTAL_SEGMENTS_MISSING = "total_segments_missing"
    INCOMPLETE = "incomplete"
    ALREADY_TRIGGERED = "already_triggered"
    REASSEMBLY_STARTED = "reassembly_started"
    DEFERRED = "deferred"


class FailReason(StrEnum):
    """Why an evaluation failed; every failure is retried (Lambda, or the next reconcile)."""

    AWS_ERROR = "aws_error"
    LOCK_LOST = "lock_lost"
    DEADLINE = "deadline"
    UNEXPECTED_ERROR = "unexpected_error"


Reason = SkipReason | FailReason


@dataclass(frozen=True, slots=True)
class ReasonSpec:
    """Where a reason can arise, what it means, and which log fields explain it."""

    states: tuple[State, ...]  # empty: from any non-final state
    meaning: str
    fields: tuple[str, ...] = ()


SKIP_REASONS: dict[SkipReason, ReasonSpec] = {
    SkipReason.JOB_NOT_FOUND: ReasonSpec((State.RECEIVED,), "no Job item has this `job_id`"),
    SkipReason.JOB_INVALID: ReasonSpec(
        (State.RECEIVED,),
        "`status` is not a string, or `total_segments` is not a whole number in "
        "`[1, 100000]` (booleans, fractions and strings are refused, never coerced)",
        ("field", "value"),
    ),
    SkipReason.NOT_CHUNKING_COMPLETE: ReasonSpec(
        (State.RECEIVED,),
        "the Job's status is not `chunking_complete` (chunking still running, or the "
        "job already completed or failed); a Jobs-stream record or the reconciler "
        "re-evaluates it later",
        ("status",),
    ),
    SkipReason.TOTAL_SEGMENTS_MISSING: ReasonSpec(
        (State.RECEIVED,),
        "the Job is `chunking_complete` but has no `total_segments`",
        ("status",),
    ),
    SkipReason.INCOMPLETE: ReasonSpec(
        (State.LOADED,),
        "fewer whole `segment_index` values in `[0, total_segments)` than `total_segments`; "
        "the last completion (or the reconciler) re-evaluates it",
        ("completions", "total_segments", "pages"),
    ),
    SkipReason.ALREADY_TRIGGERED: ReasonSpec(
        (State.RECEIVED, State.CONTENDED),
        "the lock is marked as enqueued: the message was sent (seen before any count when "
        "the lock was read first, as the reconciler does)",
        ("lock",),
    ),
    SkipReason.REASSEMBLY_STARTED: ReasonSpec(
        (State.RECEIVED, State.CONTENDED),
        "the media worker has set `reassembly_started_at`: reassembly is under way",
        ("lock",),
    ),
    SkipReason.DEFERRED: ReasonSpec(
        (State.CONTENDED,),
        "another holder is within its lease and stayed so for `LEASE_WAIT_SECONDS`; not "
        "final: the holder finishes, or fails and its own records are retried, or dies and "
        "the reconciler takes over once the lease is over",
        ("lock", "lease_expires_at"),
    ),
}

FAIL_REASONS: dict[FailReason, ReasonSpec] = {
    FailReason.AWS_ERROR: ReasonSpec(
        (),
        "an AWS call failed after its retries (throttling, 5xx, timeout, missing "
        "resource, denied access)",
        ("error_code", "error", "lease_released"),
    ),
    FailReason.LOCK_LOST: ReasonSpec(
        (State.SENT,),
        "the lock was taken over before the enqueue mark; the retry reads the new holder",
        ("error", "lease_released"),
    ),
    FailReason.DEADLINE: ReasonSpec(
        (),
        "too little of the invocation's time was left to start the next AWS call safely; "
        "nothing is held, and the job is retried",
        ("error", "lease_released"),
    ),
    FailReason.UNEXPECTED_ERROR: ReasonSpec(
        (), "a bug: any other exception", ("error", "error_type", "lease_released")
    ),
}


@dataclass(frozen=True, slots=True)
class Transition:
    """One step of an evaluation's history: what moved it, and the facts that explain it."""

    source: State
    dest: State
    trigger: Trigger
    details: Mapping[str, Any] = field(default_factory=dict)
    #: The job's counts known at this step (`completions`, `total_segments`).
    counts: Mapping[str, int] = field(default_factory=dict)

    def fields(self) -> dict[str, Any]:
        """The transition as its log event carries it: the states and the trigger, the
        counts known then, and the facts, enums as their values."""
        return {
            "source": self.source.value,
            "dest": self.dest.value,
            "trigger": self.trigger.value,
            **self.counts,
            **{k: v.value if isinstance(v, Enum) else v for k, v in self.details.items()},
        }

    @property
    def reason(self) -> Reason | None:
        """The skip or fail reason, on the transition into `skipped` or `failed`."""
        value = self.details.get("reason")
        return value if isinstance(value, SkipReason | FailReason) else None


#: The fields every transition event carries.
TRANSITION_LOG_FIELDS = (
    "event",
    "job_id",
    "source",
    "dest",
    "trigger",
    "aws_request_id",
    "sequence_numbers",
)
#: Fields present once known, or on the transitions they explain.
TRANSITION_LOG_OPTIONAL_FIELDS = (
    "reason",
    # Only when a job has more records in the batch than are listed in full:
    "sequence_number_count",
    "lowest_sequence_number",
    "completions",
    "total_segments",
    "status",
    "field",
    "value",
    "pages",
    "lock",
    "lease_expires_at",
    "message_id",
    "waited_seconds",
    "error_code",
    "error_type",
    "error",
    "operation",
    "lease_released",
)
