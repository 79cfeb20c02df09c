"""What must hold at the end of a shard, and why the reconciler sent what it sent.

Every complete job that is `chunking_complete` got at least one message and was
reassembled exactly once, and its lock records the message (no `doctor --repair`);
no job that is not complete got a message; the reconciler never waited on a live
lease and its last run found nothing to do; without faults, exactly one message per
job and none sent by the reconciler.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from reassembly_trigger.local.aws.stack import LocalAws
from reassembly_trigger.local.simulation.fault_run.config import MAX_FINAL_RECONCILES, FaultScenario
from reassembly_trigger.local.simulation.fault_run.planning import ScriptedJob
from reassembly_trigger.local.simulation.fault_run.report import FaultRunReport, Invariant
from reassembly_trigger.lock import LockRecord
from reassembly_trigger.machine import FailReason

if TYPE_CHECKING:
    from reassembly_trigger.local.simulation.fault_run.run import FaultRun


def check(run: FaultRun, jobs: list[ScriptedJob], stuck: str) -> list[Invariant]:
    """The invariants of one shard, from its tables, its media worker and its reconciler."""
    worker, names = run.worker, run.resources.names
    status = {i["job_id"]["S"]: i["status"]["S"] for i in _scan(run.aws, names.jobs_table)}
    raw_locks = _scan(run.aws, names.reassembly_triggered_table)
    locks = {lock.job_id: lock for lock in map(LockRecord.from_raw, raw_locks)}
    complete = [job for job in jobs if job.complete]
    never = [job for job in jobs if not job.complete]
    unsent = [
        j.job_id
        for j in complete
        if (lock := locks.get(j.job_id)) is None or not (lock.enqueued or lock.reassembly_started)
    ]
    checks = [
        Invariant("no batch retried without end (a stuck record)", not stuck, stuck),
        _none(
            "every complete job got at least one message",
            [j.job_id for j in complete if worker.tally(j.job_id).messages_received < 1],
        ),
        _none(
            "every complete job was reassembled exactly once",
            [j.job_id for j in complete if worker.tally(j.job_id).reassemblies != 1],
        ),
        _none(
            "every complete job ends `completed`",
            [j.job_id for j in complete if status.get(j.job_id) != "completed"],
        ),
        _none(
            "no message for a job that is not complete",
            [j.job_id for j in never if worker.tally(j.job_id).messages_received],
        ),
        Invariant(
            "the media worker never refused a message (never an incomplete job)",
            worker.report().refusals == 0 and not worker.malformed,
        ),
        _none("no complete job left without its message at the end (no `doctor --repair`)", unsent),
    ]
    if run.config.reconciler:
        checks.extend(_check_reconciler(run))
    if not run.config.inject_faults:
        extra = [j.job_id for j in complete if worker.tally(j.job_id).messages_received != 1]
        checks.append(_none("without faults, exactly one message per complete job", extra))
    return checks


def _check_reconciler(run: FaultRun) -> list[Invariant]:
    tally = run.schedule.tally
    checks = [
        Invariant(
            "the reconciler never waited on a live lease",
            tally.waits == 0,
            f"{tally.waits} waits" if tally.waits else "",
        ),
        Invariant(
            "the reconciler's last run, after every lease ended, found nothing to do",
            run.converged,
            "" if run.converged else f"shard {run.shard}: not after {MAX_FINAL_RECONCILES} runs",
        ),
        Invariant(
            "no reconcile run failed (a crash is a fault; an error is not)",
            not tally.errors,
            "; ".join(tally.errors[:3]),
        ),
    ]
    if not run.config.inject_faults:
        checks.append(
            _none(
                "without faults, the reconciler enqueued nothing (the stream path missed no job)",
                sorted(tally.enqueued),
            )
        )
    return checks


#: The faults that explain a reconciler enqueue first: those only it recovers from.
_FIRST_CAUSES = (
    FaultScenario.UNMAPPED_JOBS_STREAM,
    FaultScenario.DISCARDED_BATCH,
    FaultScenario.HOLDER_DIES_FAR_LEASE,
)
_CAUSE_ORDER = (*_FIRST_CAUSES, *(f for f in FaultScenario if f not in _FIRST_CAUSES))


def enqueue_causes(run: FaultRun) -> Counter[str]:
    """Each job the reconciler enqueued, by the fault that made the stream path miss it:
    the first of `_CAUSE_ORDER` that hit the job; else (trigger on write) the job's
    last API call failed or was killed: `api_failed`; else a deferral by the stream
    path or the API (a holder that never finished: a failed release, a crash); else
    `none`."""
    fired = run.fired_faults()
    causes: Counter[str] = Counter()
    for job_id in run.schedule.tally.enqueued:
        hit = fired.get(job_id, set())
        cause: str | None = next((f.value for f in _CAUSE_ORDER if f.value in hit), None)
        if cause is None and job_id in run.api_failed:
            cause = "api_failed"
        if cause is None:
            cause = "stream_deferred" if job_id in run.deferred else "none"
        causes[cause] += 1
    return causes


def no_unexpected_error(report: FaultRunReport) -> Invariant:
    """No evaluation, the stream path's or the reconciler's, failed on an unexpected error
    (a bug: anything but AWS, the deadline or a lost lock)."""
    reason = FailReason.UNEXPECTED_ERROR.value
    errors = report.recoveries[f"fail:{reason}"] + report.reconciler[f"failed:{reason}"]
    return Invariant(
        "no unexpected error in any evaluation",
        not errors,
        f"{errors} evaluations failed with {reason}" if errors else "",
    )


def _none(name: str, job_ids: list[str]) -> Invariant:
    """`name` holds when no job is in `job_ids`; else the detail names a few."""
    sample = f"{len(job_ids)} jobs, e.g. {', '.join(job_ids[:5])}" if job_ids else ""
    return Invariant(name, not job_ids, sample)


def _scan(aws: LocalAws, table: str) -> Iterator[dict[str, Any]]:
    for page in aws.dynamodb.get_paginator("scan").paginate(TableName=table):
        yield from page.get("Items", [])
