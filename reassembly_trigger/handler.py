"""The Lambda entry point: `reassembly_trigger.handler.lambda_handler`."""

from __future__ import annotations

import time
from typing import Any

from reassembly_trigger.batch import BatchResult, PartialBatchResponse, ReassemblyTrigger
from reassembly_trigger.deployment_errors import raise_if_misconfigured
from reassembly_trigger.metrics import emit_invocation_metrics
from reassembly_trigger.runtime import PerProcess, build_trigger
from reassembly_trigger.timing import Invocation, SystemClock

#: The container's trigger: settings, clients and logging set up on first use.
_trigger: PerProcess[ReassemblyTrigger] = PerProcess(build_trigger)


def container_trigger() -> ReassemblyTrigger:
    """The container's trigger: settings, clients and logging set up on first use."""
    return _trigger.get()


def reset_container() -> None:
    """Forget the container's trigger (tests change the environment between cases)."""
    _trigger.reset()


def handle_event(event: Any, context: Any) -> BatchResult:
    """One invocation, metrics included, and what happened to every job of its batch.

    Local tools (the poller, the simulations, the benchmark) call this to read the
    outcomes as data; Lambda calls `lambda_handler`, which answers with the response.
    """
    trigger = container_trigger()
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
    raise_if_misconfigured(result.outcomes, container_trigger().settings)
    return result.response()
