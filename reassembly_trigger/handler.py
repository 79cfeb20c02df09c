"""The Lambda entry point: `reassembly_trigger.handler.lambda_handler`."""

from __future__ import annotations

import time
from typing import Any

from reassembly_trigger.batch import BatchResult, PartialBatchResponse
from reassembly_trigger.deployment_errors import raise_if_misconfigured
from reassembly_trigger.metrics import emit_invocation_metrics
from reassembly_trigger.runtime import process_trigger
from reassembly_trigger.timing import Invocation, SystemClock


def handle_event(event: Any, context: Any) -> BatchResult:
    """One invocation, metrics included, and what happened to every job of its batch.

    Local tools (the poller, the simulations, the benchmark) call this to read the
    outcomes as data; Lambda calls `lambda_handler`, which answers with the response.
    """
    trigger = process_trigger()
    invocation = Invocation.from_lambda_context(context, SystemClock())
    started = time.perf_counter()
    result = trigger.handle(event, invocation)
    emit_invocation_metrics(result, trigger.settings.metrics_namespace, context, started)
    return result


def lambda_handler(event: dict[str, Any], context: Any) -> PartialBatchResponse:
    """Evaluate each job named by a DynamoDB Streams batch; report failed jobs' records.

    A job that failed because the deployment is wrong (a permission the role lacks, a
    table or queue that does not exist) fails the whole invocation instead, with one
    error naming each missing action and resource (`DeploymentMisconfigured`): a
    mapping without ReportBatchItemFailures would drop its per-job failure.
    """
    result = handle_event(event, context)
    raise_if_misconfigured(result.outcomes, process_trigger().settings)
    return result.response()
