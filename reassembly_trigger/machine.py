"""The per-job state machine, declared once, as data.

Everything else reads this module: the evaluation drives a `transitions.Machine`
built from `STATES` and `TRANSITIONS`, the logs name these states, triggers and
reasons, `docs/state-diagram.md` is drawn from them, and the tests iterate over them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TypedDict


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


def _t(trigger: Trigger, source: State | list[State], dest: State) -> TransitionSpec:
    sources = [s.value for s in source] if isinstance(source, list) else source.value
    return {"trigger": trigger.value, "source": sources, "dest": dest.value}


TRANSITIONS: tuple[TransitionSpec, ...] = (
    _t(Trigger.LOAD, State.RECEIVED, State.LOADED),
    _t(Trigger.COUNT, State.LOADED, State.COUNTED),
    _t(Trigger.ACQUIRE, State.COUNTED, State.LOCKED),
    _t(Trigger.CONTEND, State.COUNTED, State.CONTENDED),
    _t(Trigger.WAIT, State.CONTENDED, State.WAITING),
    _t(Trigger.RECHECK, [State.WAITING, State.CONTENDED], State.CONTENDED),
    _t(Trigger.TAKE_OVER, State.CONTENDED, State.LOCKED),
    _t(Trigger.SEND, State.LOCKED, State.SENT),
    _t(Trigger.MARK, State.SENT, State.ENQUEUED),
    _t(
        Trigger.SKIP,
        [State.RECEIVED, State.LOADED, State.COUNTED, State.CONTENDED],
        State.SKIPPED,
    ),
    _t(Trigger.FAIL, [s for s in STATES if s not in FINAL_STATES], State.FAILED),
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
    DRY_RUN = "dry_run"


class FailReason(StrEnum):
    """Why an evaluation failed; every failure is retried by Lambda."""

    AWS_ERROR = "aws_error"
    LEASE_WAIT_TIMEOUT = "lease_wait_timeout"
    LOCK_LOST = "lock_lost"
    UNEXPECTED_ERROR = "unexpected_error"


@dataclass(frozen=True, slots=True)
class ReasonSpec:
    """Where a reason can arise, what it means, and which log fields explain it."""

    state: State | None  # None: from any non-final state
    meaning: str
    fields: tuple[str, ...] = ()


SKIP_REASONS: dict[SkipReason, ReasonSpec] = {
    SkipReason.JOB_NOT_FOUND: ReasonSpec(State.RECEIVED, "no Job item has this `job_id`"),
    SkipReason.JOB_INVALID: ReasonSpec(
        State.RECEIVED,
        "the Job item fails the shared `Job` model",
        ("errors",),
    ),
    SkipReason.NOT_CHUNKING_COMPLETE: ReasonSpec(
        State.RECEIVED,
        "the Job's status is not `chunking_complete` (chunking still running, or the "
        "job already completed or failed); a Jobs-stream record re-evaluates it later",
        ("status",),
    ),
    SkipReason.TOTAL_SEGMENTS_MISSING: ReasonSpec(
        State.RECEIVED, "the Job is `chunking_complete` but has no `total_segments`", ("status",)
    ),
    SkipReason.INCOMPLETE: ReasonSpec(
        State.LOADED,
        "fewer completions than `total_segments`; the last completion re-evaluates it",
        ("completions", "total_segments"),
    ),
    SkipReason.ALREADY_TRIGGERED: ReasonSpec(
        State.CONTENDED, "the lock is marked as enqueued: the message was sent", ("lock",)
    ),
    SkipReason.REASSEMBLY_STARTED: ReasonSpec(
        State.CONTENDED,
        "the media worker has set `reassembly_started_at`: reassembly is under way",
        ("lock",),
    ),
    SkipReason.DRY_RUN: ReasonSpec(
        None,
        "a dry run (`doctor`) stops before any write; `would` says what the next step "
        "would have been (`acquire`, `take_over` or `wait`)",
        ("would",),
    ),
}

FAIL_REASONS: dict[FailReason, ReasonSpec] = {
    FailReason.AWS_ERROR: ReasonSpec(
        None,
        "an AWS call failed after its retries (throttling, 5xx, timeout, missing "
        "resource, denied access)",
        ("error_code", "error", "lease_released"),
    ),
    FailReason.LEASE_WAIT_TIMEOUT: ReasonSpec(
        State.WAITING,
        "another holder stayed within its lease until this invocation ran out of time",
        ("lock",),
    ),
    FailReason.LOCK_LOST: ReasonSpec(
        State.SENT,
        "the lock was taken over before the enqueue mark; the retry reads the new holder",
        ("lease_released",),
    ),
    FailReason.UNEXPECTED_ERROR: ReasonSpec(
        None, "a bug: any other exception", ("error", "error_type", "lease_released")
    ),
}

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
    "pages",
    "lock",
    "lease_expires_at",
    "message_id",
    "would",
    "waited_seconds",
    "error_code",
    "error_type",
    "error",
    "errors",
    "lease_released",
    "dry_run",
)
