"""The Lambda entry point: `reassembly_trigger.handler.lambda_handler`."""

from __future__ import annotations

import threading
import time
from typing import Any

from reassembly_trigger.batch import PartialBatchResponse, ReassemblyTrigger
from reassembly_trigger.evaluation import Invocation, SystemClock
from reassembly_trigger.metrics import emit_invocation_metrics
from reassembly_trigger.runtime import build_trigger

_trigger: ReassemblyTrigger | None = None
_init_lock = threading.Lock()


def container_trigger() -> ReassemblyTrigger:
    """The container's trigger: settings, clients and logging set up on first use."""
    global _trigger  # noqa: PLW0603 - one per container, by design
    with _init_lock:
        if _trigger is None:
            _trigger = build_trigger()
        return _trigger


def reset_container() -> None:
    """Forget the container's trigger (tests change the environment between cases)."""
    global _trigger  # noqa: PLW0603
    with _init_lock:
        _trigger = None


def lambda_handler(event: dict[str, Any], context: Any) -> PartialBatchResponse:
    """Evaluate each job named by a DynamoDB Streams batch; report failed jobs' records."""
    trigger = container_trigger()
    invocation = Invocation.from_lambda_context(context, SystemClock())
    started = time.perf_counter()
    result = trigger.handle(event, invocation)
    emit_invocation_metrics(result, trigger.settings.metrics_namespace, context, started)
    return result.response()
