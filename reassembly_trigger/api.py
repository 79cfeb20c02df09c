"""Trigger on write: the same machine as a library call, for workers that record completions.

A video worker that has just written a SegmentCompletion calls `trigger_job(job_id)`:
the job goes through the very machine the stream handler runs (load, count, lock or
take over, send, mark), on the same settings (the same environment variables),
gateways, logs and metrics. Nothing else is needed to reassemble a job: no stream, no
event source mapping. The reconciler stays the safety net, exactly as for the stream
path: a worker that dies between the lock and the send leaves a lock whose lease is
its own deadline (at most 15 minutes), which the reconciler takes over once it is over.

    from reassembly_trigger import trigger_job

    dynamodb.put_item(TableName=completions, Item=completion)   # the worker's own write
    outcome = trigger_job(job_id)                                # then this
    if outcome.failed:
        log.warning("trigger failed, the reconciler will retry", reason=outcome.reason)

The call never raises for what AWS or the tables do: a failure is a `failed` outcome
with its reason, and any lock it held is released on the way out (Ctrl-C included).
It raises `SettingsError` when the environment is incomplete, and `ValueError` for a
`timeout_seconds` under 2 s (`timing.MIN_FUNCTION_TIMEOUT_SECONDS`: less cannot fit one
job's bounded calls) or one that is not a finite number.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

from reassembly_trigger.batch import BatchResult, ReassemblyTrigger
from reassembly_trigger.outcome import JobOutcome
from reassembly_trigger.records import JobRequest, ParsedBatch, is_job_id
from reassembly_trigger.runtime import process_trigger
from reassembly_trigger.timing import MIN_FUNCTION_TIMEOUT_SECONDS, Invocation

#: A caller's default deadline: the lease it takes when it locks a job, and how long the
#: call may take at most (waiting for another holder included).
DEFAULT_TIMEOUT_SECONDS = 60.0


def trigger_jobs(
    job_ids: Sequence[str],
    *,
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    trigger: ReassemblyTrigger | None = None,
    emit_metrics: bool = True,
) -> list[JobOutcome]:
    """Run each job once through the machine; one outcome per distinct, valid job id.

    `timeout_seconds` is the caller's deadline (capped at 900 s, Lambda's maximum, like
    every lease; at least 2 s, else `ValueError`). Ids that cannot be DynamoDB keys are
    left out. With `emit_metrics`, one EMF line (the stream handler's metrics) is
    written, as the Lambda does.
    """
    check_timeout(timeout_seconds)
    trigger = trigger or process_trigger()
    clock = trigger.gateways.clock
    invocation = Invocation.outside_lambda(clock, timeout_seconds)
    started = time.perf_counter()
    requests = [JobRequest(job_id) for job_id in dict.fromkeys(job_ids) if is_job_id(job_id)]
    outcomes = trigger.evaluate_jobs(requests, invocation)
    if emit_metrics:
        from reassembly_trigger.metrics import emit_invocation_metrics

        result = BatchResult(parsed=ParsedBatch(requests=requests, records=0), outcomes=outcomes)
        emit_invocation_metrics(result, trigger.settings.metrics_namespace, None, started)
    return outcomes


def check_timeout(timeout_seconds: float) -> None:
    """Refuse a caller's timeout that no job could be triggered in (`ValueError`)."""
    if not math.isfinite(timeout_seconds) or timeout_seconds < MIN_FUNCTION_TIMEOUT_SECONDS:
        raise ValueError(
            f"timeout_seconds must be at least {MIN_FUNCTION_TIMEOUT_SECONDS} s (one job's "
            f"bounded calls and the answer reserve), got {timeout_seconds!r}"
        )


def trigger_job(
    job_id: str,
    *,
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    trigger: ReassemblyTrigger | None = None,
    emit_metrics: bool = True,
) -> JobOutcome:
    """Run one job through the machine, right after its worker recorded a completion.

    Returns how it ended: `enqueued` (this call sent the message), `skipped` with a
    reason (`incomplete`, `already_triggered`, `deferred`, ...) or `failed` with a
    reason; the reasons are the logs' reason codes. Raises `ValueError` for an id that
    cannot be a DynamoDB key or a `timeout_seconds` under 2 s.
    """
    if not is_job_id(job_id):
        raise ValueError(f"not a job id: {job_id!r}")
    (outcome,) = trigger_jobs(
        [job_id], timeout_seconds=timeout_seconds, trigger=trigger, emit_metrics=emit_metrics
    )
    return outcome
