"""Why did (or didn't) a job reassemble? The answer, read through the Lambda's own gateways.

`Doctor.diagnose` changes nothing. It reads the Job, the recorded segment indexes (a
keys-only query), the time of the latest completion and the lock, and it runs the real
state machine as a dry run (the Lambda's `JobEvaluation` on gateways that cannot write,
`dry_run.py`), which stops at the first write and says which it would have been.
The facts map to one `Verdict` with a reason and the next action. `Doctor.repair` runs
the real machine for real: the same code path as the Lambda, lease rules included, so it
can only ever send a message the Lambda would have sent.

The verdicts are defined in docs/operations.md ("Verdicts").
"""

from __future__ import annotations

import contextlib
import math
import uuid
from collections.abc import Callable
from dataclasses import KW_ONLY, asdict, dataclass, fields
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from functools import partial
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from reassembly_trigger.batch import ReassemblyTrigger, job_lookup
from reassembly_trigger.clients import aws_clients
from reassembly_trigger.errors import LockChanged
from reassembly_trigger.evaluation import JobEvaluation
from reassembly_trigger.gateways import ReassemblyLock
from reassembly_trigger.items import whole_number
from reassembly_trigger.local.commands.doctor.dry_run import WouldWrite, read_only
from reassembly_trigger.local.commands.doctor.resend import (
    ResendLock,
    resend_in_progress_until,
    segment_indexes,
)
from reassembly_trigger.lock import RELEASED, LockRecord
from reassembly_trigger.machine import SkipReason, State, Trigger
from reassembly_trigger.outcome import JobOutcome
from reassembly_trigger.records import JobRequest
from reassembly_trigger.runtime import build_trigger
from reassembly_trigger.settings import Settings
from reassembly_trigger.timing import (
    LAMBDA_MAX_TIMEOUT_SECONDS,
    MIN_FUNCTION_TIMEOUT_SECONDS,
    Clock,
    Invocation,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

#: How long after the last write that should trigger a job (the last completion, or
#: the end of a holder's lease) the Lambda, retries included, is still expected to act.
#: Past it, a job the machine would trigger is `stuck`: nothing will retry it.
DEFAULT_GRACE_SECONDS = 300
#: `--repair`'s invocation deadline: the lease it takes, and how long it may wait for
#: another holder (Lambda's default timeout in the Terraform module).
DEFAULT_REPAIR_TIMEOUT_SECONDS = 60.0
#: The longest `--repair --timeout` accepted: no lease outlives Lambda's maximum timeout.
MAX_REPAIR_TIMEOUT_SECONDS = float(LAMBDA_MAX_TIMEOUT_SECONDS)
#: The shortest `--repair --timeout`: the shortest that works for one job, as for the
#: Lambda and `trigger_job` (`timing.MIN_FUNCTION_TIMEOUT_SECONDS`).
MIN_REPAIR_TIMEOUT_SECONDS = float(MIN_FUNCTION_TIMEOUT_SECONDS)
#: The dry run never waits, so its deadline only names a lease it never takes.
_DRY_RUN_TIMEOUT_SECONDS = 60.0


class Verdict(StrEnum):
    """Where a job stands, as one word (defined in docs/operations.md)."""

    REASSEMBLED = "reassembled"
    IN_PROGRESS = "in_progress"
    UNCLAIMED = "unclaimed"
    WAITING_FOR_SEGMENTS = "waiting_for_segments"
    WAITING_FOR_CHUNKING = "waiting_for_chunking"
    WOULD_TRIGGER = "would_trigger"
    STUCK = "stuck"
    NOT_FOUND = "not_found"
    INVALID = "invalid"


#: Verdicts that need a person: `doctor` exits 1 on them.
ACTION_NEEDED = frozenset({Verdict.STUCK, Verdict.NOT_FOUND, Verdict.INVALID, Verdict.UNCLAIMED})


def _failure(what: str, machine: MachineView) -> str:
    """`<what> failed (<reason>): <error code> <error>`, from the last transition."""
    details = machine.transitions[-1] if machine.transitions else {}
    return (
        f"{what} failed ({machine.reason}): "
        f"{details.get('error_code', '')} {details.get('error', '')}".strip()
    )


class DoctorError(Exception):
    """The dry run itself failed (an AWS error): there is no verdict to give."""


@dataclass(frozen=True, slots=True)
class LockState:
    """The lock as read, with its lease judged against now."""

    record: LockRecord
    #: When the holder's lease ends (for a lock without lease: triggered_at + the
    #: Lambda's LOCK_LEASE_SECONDS).
    lease_end: int
    #: `released` (the holder gave it up after a failure), `active` or `over`.
    lease: str
    #: Seconds until the lease ends (negative: over that long ago).
    lease_seconds_left: float
    #: Seconds since `triggered_at`.
    age_seconds: float | None

    @classmethod
    def judge(cls, record: LockRecord, now: float, legacy_lease_seconds: int) -> LockState:
        """Judge `record`'s lease at `now`."""
        lease_end = record.lease_end(legacy_lease_seconds, now)
        released = record.lease_expires_at == RELEASED
        return cls(
            record=record,
            lease_end=lease_end,
            lease="released" if released else "active" if now < lease_end else "over",
            lease_seconds_left=round(lease_end - now, 1),
            age_seconds=round(now - record.triggered_at, 1) if record.triggered_at else None,
        )

    def as_json(self) -> dict[str, Any]:
        """The lock item's fields and the lease judgement."""
        return {
            **self.record.as_log(),
            "lease_end": self.lease_end,
            "lease": self.lease,
            "lease_seconds_left": self.lease_seconds_left,
            "age_seconds": self.age_seconds,
        }


@dataclass(frozen=True, slots=True)
class MachineView:
    """What the real state machine did in the dry run (or the repair)."""

    state: str
    reason: str | None
    #: The write a dry run stopped at (`acquire`, `take_over`), if it reached one.
    would: str | None
    transitions: list[dict[str, Any]]
    #: The states it went through, from `received` (none when it took no step).
    path: list[str]

    @classmethod
    def of(cls, outcome: JobOutcome, would: Trigger | None = None) -> MachineView:
        """From the evaluation's outcome (its typed history) and where a dry run stopped."""
        return cls(
            state=outcome.state.value,
            reason=outcome.reason.value if outcome.reason is not None else None,
            would=would.value if would is not None else None,
            transitions=[step.fields() for step in outcome.history],
            path=[state.value for state in outcome.path] if outcome.history else [],
        )

    def as_json(self) -> dict[str, Any]:
        """The final state, reason, `would`, and the path."""
        return {"state": self.state, "reason": self.reason, "would": self.would, "path": self.path}


@dataclass(frozen=True, slots=True, kw_only=True)
class Facts:
    """What `doctor` read about one job, before any verdict."""

    job_id: str
    found: bool
    status: str | None
    total_segments: int | None
    #: Completions counted toward the job: those in `[0, total_segments)` (all of them
    #: while `total_segments` is unknown).
    completions: int
    missing_segments: list[int]
    #: Recorded indexes that can never count: negative, past the end, or fractional.
    out_of_range_segments: list[int | float]
    lock: LockState | None
    #: Epoch seconds of the newest completion's `completed_at`, when recorded.
    latest_completion_at: int | None
    checked_at: float
    #: A message sent longer ago than this and still unclaimed is `unclaimed`.
    unclaimed_after_seconds: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Diagnosis(Facts):
    """One job's verdict, why, the facts behind it, and what to do next."""

    verdict: Verdict
    reason: str
    next_action: str
    machine: MachineView

    @property
    def exit_status(self) -> int:
        """1 when a person must act (stuck, not found, invalid), else 0."""
        return 1 if self.verdict in ACTION_NEEDED else 0

    def as_json(self) -> dict[str, Any]:
        """The `--json` document."""
        return {
            "job_id": self.job_id,
            "verdict": self.verdict.value,
            "reason": self.reason,
            "status": self.status,
            "total_segments": self.total_segments,
            "completions": self.completions,
            "missing_segments": self.missing_segments,
            "out_of_range_segments": self.out_of_range_segments,
            "lock": self.lock.as_json() if self.lock else None,
            "next_action": self.next_action,
            "machine": self.machine.as_json(),
            "latest_completion_at": self.latest_completion_at,
            "checked_at": round(self.checked_at, 3),
        }


@dataclass(frozen=True, slots=True)
class RepairResult:
    """What `--repair` did: the real machine's transitions and outcome, then a fresh look."""

    outcome: JobOutcome
    machine: MachineView
    after: Diagnosis

    @property
    def sent(self) -> bool:
        """Whether this repair sent the reassembly message."""
        return self.outcome.state is State.ENQUEUED

    @property
    def nothing_to_repair(self) -> bool:
        """The machine found the job already triggered or under way."""
        return self.outcome.state is State.SKIPPED and self.outcome.reason in (
            SkipReason.ALREADY_TRIGGERED,
            SkipReason.REASSEMBLY_STARTED,
        )

    @property
    def exit_status(self) -> int:
        """0 when the message was sent or none was needed; 1 when refused or failed."""
        return 0 if self.sent or self.nothing_to_repair else 1

    def as_json(self) -> dict[str, Any]:
        """The `--repair --json` document."""
        return {
            "job_id": self.outcome.job_id,
            "outcome": self.outcome.state.value,
            "reason": self.outcome.reason,
            "message_id": self.outcome.message_id,
            "details": self.outcome.details,
            "transitions": self.machine.transitions,
            "after": self.after.as_json(),
        }


def latest_completion_at(client: DynamoDBClient, table_name: str, job_id: str) -> int | None:
    """The largest `completed_at` over every page of the job's completions."""
    pages = client.get_paginator("query").paginate(
        TableName=table_name,
        KeyConditionExpression="job_id = :job",
        ExpressionAttributeValues={":job": {"S": job_id}},
        ProjectionExpression="#at",
        ExpressionAttributeNames={"#at": "completed_at"},
        ConsistentRead=True,
    )
    times = (
        item.get("completed_at", {}).get("N") for page in pages for item in page.get("Items", [])
    )
    return max((int(Decimal(raw)) for raw in times if raw is not None), default=None)


@dataclass(frozen=True, slots=True)
class ResendResult:
    """What `--repair --resend` did."""

    job_id: str
    sent: bool
    reason: str
    message_id: str | None = None
    previous_message_id: str | None = None
    resends: int = 0

    @property
    def exit_status(self) -> int:
        """0 when the message was re-sent, 1 when refused."""
        return 0 if self.sent else 1

    def as_json(self) -> dict[str, Any]:
        """The `--resend --json` document: every field, in order."""
        return asdict(self)


def segment_ranges(indexes: list[int] | list[int | float]) -> str:
    """`[0, 1, 2, 5, 7, 8]` -> `0-2, 5, 7-8` (or `none`)."""
    runs: list[list[int | float]] = []
    for index in indexes:
        if runs and index == runs[-1][-1] + 1:
            runs[-1].append(index)
        else:
            runs.append([index])
    return ", ".join(f"{r[0]}-{r[-1]}" if len(r) > 1 else str(r[0]) for r in runs) or "none"


def when(epoch: float) -> str:
    """Epoch seconds as `2026-11-27 10:00:00Z`."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def duration(seconds: float) -> str:
    """`5400` -> `1h 30m`; `42` -> `42s`."""
    seconds = abs(int(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


@dataclass
class Doctor:
    """Diagnoses (and repairs) one job through the gateways the Lambda uses."""

    trigger: ReassemblyTrigger
    #: The newest completion's `completed_at` of a job (None when none is recorded).
    completion_times: Callable[[str], int | None]
    _: KW_ONLY
    #: Every recorded `segment_index` of a job.
    indexes: Callable[[str], list[Decimal]]
    lock: ReassemblyLock
    grace_seconds: float = DEFAULT_GRACE_SECONDS

    @classmethod
    def from_environment(
        cls,
        settings: Settings | None = None,
        *,
        clock: Clock | None = None,
        grace_seconds: float = DEFAULT_GRACE_SECONDS,
    ) -> Doctor:
        """The Lambda's settings, clients and gateways, from the same environment variables."""
        settings = settings or Settings.from_env()
        clients = aws_clients(settings.evaluation_concurrency)
        completions_table = settings.segment_completions_table_name
        return cls(
            build_trigger(settings, clients=clients, clock=clock, renderer=None),
            partial(latest_completion_at, clients.dynamodb, completions_table),
            indexes=partial(segment_indexes, clients.dynamodb, completions_table),
            lock=ReassemblyLock(clients.dynamodb, settings.reassembly_triggered_table_name),
            grace_seconds=grace_seconds,
        )

    @property
    def _clock(self) -> Clock:
        return self.trigger.gateways.clock

    def diagnose(self, job_id: str) -> Diagnosis:
        """Read everything, run the machine as a dry run, and give the verdict; writes nothing."""
        machine = self.dry_run(job_id)
        if machine.state == State.FAILED:
            raise DoctorError(_failure(f"the dry run of {job_id}", machine))
        facts = self._read(job_id)
        verdict, reason, action = _classify(facts, machine, self.grace_seconds)
        known = {f.name: getattr(facts, f.name) for f in fields(facts)}
        return Diagnosis(
            **known, verdict=verdict, reason=reason, next_action=action, machine=machine
        )

    def dry_run(self, job_id: str) -> MachineView:
        """The Lambda's evaluation of the job on gateways that cannot write; never waits."""
        invocation = Invocation.outside_lambda(
            self._clock, _DRY_RUN_TIMEOUT_SECONDS, request_id=f"doctor-{uuid.uuid4().hex[:12]}"
        )
        gateways = read_only(self.trigger.gateways)
        evaluation = JobEvaluation(JobRequest(job_id), gateways, invocation, lease_wait_seconds=0)
        lookup = job_lookup(gateways.jobs.load_jobs([job_id]))
        try:
            return MachineView.of(evaluation.run(lookup))
        except WouldWrite as stop:
            return MachineView.of(evaluation.outcome(), stop.trigger)

    def repair(
        self, job_id: str, timeout_seconds: float = DEFAULT_REPAIR_TIMEOUT_SECONDS
    ) -> RepairResult:
        """Run the real machine for the job, as the Lambda would, then diagnose it again.

        The timeout (the lease it takes) is capped at `MAX_REPAIR_TIMEOUT_SECONDS`.
        """
        invocation = Invocation.outside_lambda(
            self._clock,
            min(timeout_seconds, MAX_REPAIR_TIMEOUT_SECONDS),
            request_id=f"repair-{uuid.uuid4().hex[:12]}",
        )
        (outcome,) = self.trigger.evaluate_jobs([JobRequest(job_id)], invocation)
        machine = MachineView.of(outcome)
        try:
            after = self.diagnose(job_id)
        except DoctorError as exc:
            if machine.state != State.FAILED:
                raise
            # The repair failed the way the check after it did (AWS did not answer): the
            # user asked for the repair, so that is what the one line names.
            raise DoctorError(_failure(f"the repair of {job_id}", machine)) from exc
        return RepairResult(outcome, machine, after=after)

    def resend(self, job_id: str) -> ResendResult:
        """Re-send the message of a job enqueued but never claimed, on purpose, once.

        Conditional on the lock as read (its message id and resend count), so two
        people re-sending at once send one message between them.
        """
        refuse = partial(ResendResult, job_id, False)
        lock = self.lock.read(job_id)
        if lock is None or not lock.enqueued:
            return refuse("no message was sent yet: run --repair (without --resend)")
        if lock.reassembly_started:
            return refuse("the media worker has claimed the job: nothing to re-send")
        now = int(self._clock.now())
        sent = lock.enqueued_at
        unclaimed_after = self.trigger.settings.unclaimed_after_seconds
        if sent is not None and now - sent <= unclaimed_after:
            # Only an unclaimed message is re-sent: one sent this recently (perhaps by
            # another re-send a moment ago) still awaits the media worker.
            return refuse(
                f"its message was sent {duration(now - sent)} ago: it is not unclaimed "
                f"until {duration(unclaimed_after)} have passed"
            )
        in_progress = resend_in_progress_until(lock, now)
        if in_progress is not None:
            return refuse(
                f"another re-send was claimed and is in progress until {when(in_progress)}"
            )
        holder = f"resend-{uuid.uuid4().hex[:12]}"
        try:
            ResendLock(self.lock).claim(lock, holder, now)
        except LockChanged:
            return refuse("the lock changed since it was read (someone else re-sent?)")
        try:
            message_id = self.trigger.gateways.queue.send(job_id)
        except BaseException:
            # Nothing went out: end the claim so no one waits for it (best effort; its
            # lease ends by itself otherwise), then report the send's error.
            with contextlib.suppress(Exception):
                ResendLock(self.lock).abandon(job_id, holder)
            raise
        reason = "re-sent"
        try:
            ResendLock(self.lock).record(job_id, holder, message_id, now)
        except (LockChanged, ClientError, BotoCoreError) as exc:
            # Sent: say so, even though the new message id is not on the lock.
            reason = f"re-sent, but the new message id was not recorded ({type(exc).__name__})"
        return ResendResult(
            job_id,
            True,
            reason,
            message_id=message_id,
            previous_message_id=lock.message_id,
            resends=lock.resends + 1,
        )

    def _read(self, job_id: str) -> Facts:
        gateways = self.trigger.gateways
        now = self._clock.now()
        loaded = gateways.jobs.load_jobs([job_id])
        if job_id in loaded.unavailable:
            raise loaded.unavailable[job_id]
        job = loaded.items.get(job_id)
        item = job.item if job is not None else None
        recorded = sorted(set(self.indexes(job_id)))
        whole = {n for n in (whole_number(i) for i in recorded) if n is not None}
        record = gateways.lock.read(job_id)
        status = item.get("status") if item else None
        total = whole_number(item.get("total_segments")) if item else None
        strays: list[int | float] = [float(i) for i in recorded if whole_number(i) is None]
        end = math.inf if total is None else total  # unknown total: only negatives are out
        missing = [] if total is None else [i for i in range(total) if i not in whole]
        out_of_range = sorted([i for i in whole if not 0 <= i < end] + strays)
        completions = len([i for i in whole if 0 <= i < end])
        return Facts(
            job_id=job_id,
            found=item is not None,
            status=str(status) if status is not None else None,
            total_segments=total,
            completions=completions,
            missing_segments=missing,
            out_of_range_segments=out_of_range,
            lock=LockState.judge(record, now, gateways.lock_lease_seconds) if record else None,
            latest_completion_at=self.completion_times(job_id),
            checked_at=now,
            unclaimed_after_seconds=self.trigger.settings.unclaimed_after_seconds,
        )


#: A verdict, its reason (one sentence) and the next action.
Finding = tuple[Verdict, str, str]


def _classify(facts: Facts, machine: MachineView, grace: float) -> Finding:
    """The verdict, its reason and the next action, from the facts and the dry run."""
    if not facts.found or machine.reason == SkipReason.JOB_NOT_FOUND:
        return (
            Verdict.NOT_FOUND,
            "no Job item has this job_id",
            "Check the job id, and that JOBS_TABLE_NAME and the AWS endpoint/region point "
            "at the right environment.",
        )
    if (reassembled := _reassembled(facts)) is not None:
        return reassembled
    if machine.would in (Trigger.ACQUIRE, Trigger.TAKE_OVER):
        return _ready(facts, machine, grace)
    judge = _BY_SKIP_REASON.get(str(machine.reason))
    if judge is None:
        raise DoctorError(f"unexpected dry-run outcome {machine.state}/{machine.reason}")
    return judge(facts, machine, grace)


def _reassembled(facts: Facts) -> Finding | None:
    lock = facts.lock
    if lock and lock.record.reassembly_started_at is not None:
        reason = (
            f"the media worker claimed the job at {when(lock.record.reassembly_started_at)} "
            "(reassembly_started_at)"
        )
        if facts.status == "completed":
            return Verdict.REASSEMBLED, reason + " and the Job is completed", "Nothing to do."
        return (
            Verdict.REASSEMBLED,
            reason + f"; the Job is still `{facts.status}`",
            "Nothing to do for the trigger: reassembly is under way. If the Job never "
            "reaches `completed`, look at the media worker's logs.",
        )
    if facts.status == "completed":
        return Verdict.REASSEMBLED, "the Job is completed", "Nothing to do."
    return None


def _job_invalid(facts: Facts, machine: MachineView, grace: float) -> Finding:
    final = machine.transitions[-1] if machine.transitions else {}
    return (
        Verdict.INVALID,
        f"the Job's `{final.get('field', '?')}` is {final.get('value')!r}, which the trigger "
        "cannot decide on",
        "Fix the Job item (written by the web UI and the chunker); no trigger can count a "
        "job it cannot read.",
    )


def _total_missing(facts: Facts, machine: MachineView, grace: float) -> Finding:
    return (
        Verdict.INVALID,
        "the Job is chunking_complete but has no total_segments",
        "The chunker must set total_segments with chunking_complete; until then the job "
        "cannot be counted. Fix the Job item, then run doctor again.",
    )


def _not_chunked(facts: Facts, machine: MachineView, grace: float) -> Finding:
    if facts.status == "failed":
        return (
            Verdict.INVALID,
            "the Job failed upstream (status `failed`)",
            "Nothing will reassemble it: find out why it failed (chunker or video workers' logs).",
        )
    return (
        Verdict.WAITING_FOR_CHUNKING,
        f"the Job's status is `{facts.status}`, not chunking_complete",
        "Wait for the chunker to set chunking_complete with total_segments: that Jobs-stream "
        "record (or the next completion) re-evaluates the job. If chunking ended long ago, "
        "look at the chunker.",
    )


def _incomplete(facts: Facts, machine: MachineView, grace: float) -> Finding:
    missing = segment_ranges(facts.missing_segments)
    return (
        Verdict.WAITING_FOR_SEGMENTS,
        f"{facts.completions} of {facts.total_segments} segments are recorded; missing: {missing}",
        f"Wait for segment(s) {missing}: the last completion triggers the job. If no video "
        "worker is still converting them, look at the video queue and its dead-letter queue.",
    )


def _enqueued(facts: Facts, machine: MachineView, grace: float) -> Finding:
    record = facts.lock.record if facts.lock else None
    sent = record.enqueued_at if record else None
    at = f" at {when(sent)} ({duration(facts.checked_at - sent)} ago)" if sent else ""
    message = f" {record.message_id}" if record and record.message_id else ""
    if sent is None or facts.checked_at - sent > facts.unclaimed_after_seconds:
        return (
            Verdict.UNCLAIMED,
            f"the reassembly message{message} was sent{at} and nobody claimed it for longer "
            f"than {duration(facts.unclaimed_after_seconds)}: it was lost downstream (queue "
            "purged, retention passed) or the media worker keeps failing it",
            "Check the reassembly queue's dead-letter queue and the media worker's logs; "
            "once the cause is fixed, re-send it on purpose: "
            f"`reassembly-trigger doctor {facts.job_id} --repair --resend`.",
        )
    return (
        Verdict.IN_PROGRESS,
        f"the reassembly message{message} was sent{at} and awaits the media worker",
        "Nothing to do: the media worker claims it. If it stays unclaimed, check the "
        "reassembly queue's depth and its dead-letter queue.",
    )


def _started(facts: Facts, machine: MachineView, grace: float) -> Finding:
    return Verdict.REASSEMBLED, "the media worker has claimed the job", "Nothing to do."


def _deferred(facts: Facts, machine: MachineView, grace: float) -> Finding:
    lock = facts.lock
    if lock is not None:
        holder = lock.record.holder or "an earlier trigger"
        return (
            Verdict.IN_PROGRESS,
            f"{holder} holds the lock until {when(lock.lease_end)} "
            f"({duration(lock.lease_seconds_left)} left) and has not sent yet",
            "Nothing to do: the holder sends within its lease; if it dies, the reconciler "
            f"takes over after {when(lock.lease_end)}. Run doctor again after that.",
        )
    return _ready(facts, machine, grace)


def _ready(facts: Facts, machine: MachineView, grace: float) -> Finding:
    """A complete, chunked job the machine would trigger now: is a retry still due?"""
    lock = facts.lock
    basis: float | None
    if machine.would == Trigger.TAKE_OVER and lock is not None:
        if lock.lease == "released":
            state = "its holder failed and released the lock"
            basis, what = lock.record.triggered_at, "the lock was taken"
        else:
            state = "the lock is unmarked and its lease is over"
            basis, what = lock.lease_end, "the lease ended"
    else:
        state = "no lock exists"
        basis, what = facts.latest_completion_at, "the last completion was written"
    idle = facts.checked_at - basis if basis is not None else None
    since = f"{what} {duration(idle)} ago" if idle is not None else f"{what} at an unknown time"
    repair = f"reassembly-trigger doctor {facts.job_id} --repair"
    if idle is not None and idle < grace:
        return (
            Verdict.WOULD_TRIGGER,
            f"every segment is done and {state}; {since}, within the {grace:g}s the Lambda "
            "and its retries take",
            f"Nothing to do yet: the Lambda (or its retry) should trigger it. If doctor still "
            f"says so after {grace:g}s, run `{repair}`.",
        )
    return (
        Verdict.STUCK,
        f"every segment is done and {state}; {since}: nothing will retry it",
        f"Run `{repair}`: it takes the lock (or takes over the expired one) and sends the "
        "message, exactly as the Lambda would.",
    )


_BY_SKIP_REASON: dict[str, Callable[[Facts, MachineView, float], Finding]] = {
    SkipReason.JOB_INVALID: _job_invalid,
    SkipReason.TOTAL_SEGMENTS_MISSING: _total_missing,
    SkipReason.NOT_CHUNKING_COMPLETE: _not_chunked,
    SkipReason.INCOMPLETE: _incomplete,
    SkipReason.ALREADY_TRIGGERED: _enqueued,
    SkipReason.REASSEMBLY_STARTED: _started,
    SkipReason.DEFERRED: _deferred,
}
