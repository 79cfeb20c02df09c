"""Metrics without API calls: one CloudWatch Embedded Metric Format line per invocation.

CloudWatch Logs turns the line into metrics; nothing is called, nothing can throttle.
Every metric is written on every invocation, zeros included, so an alarm sees 0 rather
than missing data. Each skip and fail reason is its own metric (`SkippedIncomplete`,
`FailedAwsError`, ...) under the one dimension set `[["FunctionName"]]`: an alarm on a
reason needs no extra dimension, and the set of series is fixed by `machine.py`.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter
from typing import TYPE_CHECKING, Any, TextIO

from reassembly_trigger.batch import BatchResult
from reassembly_trigger.machine import FailReason, SkipReason

if TYPE_CHECKING:
    from reassembly_trigger.reconcile import ReconcileResult

#: The one dimension; its value is the Lambda function's name.
DIMENSION = "FunctionName"
#: Tags the line for Logs Insights (`filter event = "invocation_metrics"`).
EVENT = "invocation_metrics"
RECONCILE_EVENT = "reconcile_metrics"

#: Where the lines go; None: standard output, read at write time (Lambda's log).
_stream: TextIO | None = None


def configure_metrics(stream: TextIO | None) -> None:
    """Send the EMF lines to `stream` (None: stdout), e.g. a local tool's log file."""
    global _stream  # noqa: PLW0603 - one sink per process, like the logging configuration
    _stream = stream


def metric_name(prefix: str, reason: str) -> str:
    """`("Skipped", "already_triggered")` -> `SkippedAlreadyTriggered`."""
    return prefix + "".join(part.capitalize() for part in reason.split("_"))


#: The per-reason metrics and the `BatchResult.counts()` key each one reads.
REASON_METRICS: dict[str, str] = {
    **{metric_name("Skipped", reason): f"skipped:{reason.value}" for reason in SkipReason},
    **{metric_name("Failed", reason): f"failed:{reason.value}" for reason in FailReason},
}

#: Every metric of the line, with its CloudWatch unit.
METRIC_UNITS: dict[str, str] = {
    "Records": "Count",
    "MalformedRecords": "Count",
    "JobsEvaluated": "Count",
    "JobsEnqueued": "Count",
    "JobsSkipped": "Count",
    "JobsFailed": "Count",
    **dict.fromkeys(REASON_METRICS, "Count"),
    "InvocationDuration": "Milliseconds",
}


#: The reconciler's metrics (one line per run), with their CloudWatch units.
RECONCILE_METRIC_UNITS: dict[str, str] = {
    "JobsExamined": "Count",
    "JobsEnqueued": "Count",
    "JobsSkipped": "Count",
    "JobsFailed": "Count",
    "Unclaimed": "Count",
    "WaitingForSegments": "Count",
    "Truncated": "Count",
    **dict.fromkeys(REASON_METRICS, "Count"),
    "ReconcileDuration": "Milliseconds",
}


def _reason_values(counts: Counter[str]) -> dict[str, float]:
    return {name: counts[key] for name, key in REASON_METRICS.items()}


def metric_values(result: BatchResult, duration_ms: float) -> dict[str, float]:
    """Every metric's value for one batch."""
    counts = result.counts()
    values: dict[str, float] = {
        "Records": result.parsed.records,
        "MalformedRecords": sum(result.parsed.malformed.values()),
        "JobsEvaluated": len(result.outcomes),
        "JobsEnqueued": counts["enqueued"],
        "JobsSkipped": counts["skipped"],
        "JobsFailed": counts["failed"],
    }
    values.update(_reason_values(counts))
    values["InvocationDuration"] = round(duration_ms, 3)
    return values


def reconcile_metric_values(result: ReconcileResult) -> dict[str, float]:
    """Every metric's value for one reconcile run."""
    counts = result.counts()
    values: dict[str, float] = {
        "JobsExamined": len(result.outcomes),
        "JobsEnqueued": counts["enqueued"],
        "JobsSkipped": counts["skipped"],
        "JobsFailed": counts["failed"],
        "Unclaimed": len(result.unclaimed),
        "WaitingForSegments": len(result.waiting_for_segments),
        "Truncated": int(result.truncated),
    }
    values.update(_reason_values(counts))
    values["ReconcileDuration"] = round(result.duration_ms, 3)
    return values


def emf_document(
    values: dict[str, float],
    *,
    namespace: str,
    function_name: str,
    timestamp_ms: int,
    request_id: str | None = None,
    units: dict[str, str] | None = None,
    event: str = EVENT,
) -> dict[str, Any]:
    """The EMF document: `_aws` metadata, the dimension, then every metric as a root member."""
    document: dict[str, Any] = {
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [
                {
                    "Namespace": namespace,
                    "Dimensions": [[DIMENSION]],
                    "Metrics": [
                        {"Name": n, "Unit": unit} for n, unit in (units or METRIC_UNITS).items()
                    ],
                }
            ],
        },
        DIMENSION: function_name,
        "event": event,
    }
    if request_id:
        document["aws_request_id"] = request_id  # not a dimension: joins the line to the logs
    document.update(values)
    return document


def function_name(context: Any) -> str:
    """The function's name from Lambda's context, else its environment."""
    name = getattr(context, "function_name", None) or os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
    return str(name) if name else "unknown"


def emit_invocation_metrics(
    result: BatchResult,
    namespace: str,
    context: Any,
    started: float,
    *,
    stream: TextIO | None = None,
) -> dict[str, Any]:
    """Write the invocation's EMF line (duration since `started`, a `perf_counter` value)."""
    duration_ms = (time.perf_counter() - started) * 1000.0
    document = emf_document(
        metric_values(result, duration_ms),
        namespace=namespace,
        function_name=function_name(context),
        timestamp_ms=int(time.time() * 1000),
        request_id=getattr(context, "aws_request_id", None),
    )
    _write(document, stream)
    return document


def emit_reconcile_metrics(
    result: ReconcileResult,
    namespace: str,
    context: Any,
    *,
    stream: TextIO | None = None,
) -> dict[str, Any]:
    """Write the reconcile run's EMF line."""
    document = emf_document(
        reconcile_metric_values(result),
        namespace=namespace,
        function_name=function_name(context),
        timestamp_ms=int(time.time() * 1000),
        request_id=getattr(context, "aws_request_id", None),
        units=RECONCILE_METRIC_UNITS,
        event=RECONCILE_EVENT,
    )
    _write(document, stream)
    return document


def _write(document: dict[str, Any], stream: TextIO | None) -> None:
    out = stream or _stream or sys.stdout
    # One write of one line: CloudWatch Logs reads each line as one event.
    out.write(json.dumps(document, separators=(",", ":")) + "\n")
    out.flush()
