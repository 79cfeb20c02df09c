"""The handler under measurement: the real entry point in a container of this process,
pointed at the latency proxy, its production logs discarded, warmed before measuring
(docs/performance.md, "The handler's process is measured alone")."""

from __future__ import annotations

import functools
import itertools
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from reassembly_trigger import handler
from reassembly_trigger.batch import BatchResult
from reassembly_trigger.local.aws import library_seams
from reassembly_trigger.local.aws.latency_proxy import ProxyControl
from reassembly_trigger.local.aws.stack import DEFAULT_REGION, Resources, environment
from reassembly_trigger.local.commands.bench.config import INVOCATION_TIMEOUT_MS
from reassembly_trigger.local.invocations.contexts import LocalLambdaContext
from reassembly_trigger.local.invocations.environment import lambda_environment
from reassembly_trigger.local.invocations.logs import trigger_output
from reassembly_trigger.logs import configure_logging
from reassembly_trigger.machine import State
from reassembly_trigger.outcome import JobOutcome


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Moto directly (for writing data) and through the proxy (for the handler)."""

    upstream_url: str
    proxy_url: str
    control: ProxyControl


class BotocoreMeter:
    """CPU time spent inside botocore's API calls (every thread), while counting.

    Wraps `BaseClient._make_api_call`: everything from building the request to the
    parsed response (signing, serialising, urllib3 and http.client, parsing, retries)
    is botocore's; the rest of the handler's CPU time is ours.
    """

    def __init__(self) -> None:
        self.seconds = 0.0
        self.calls = 0
        self.counting = False
        self._lock = threading.Lock()

    @contextmanager
    def installed(self) -> Iterator[BotocoreMeter]:
        """Wrap botocore's call path for the duration of the block."""
        original = library_seams.API_CALL.get()

        @functools.wraps(original)
        def metered(client: Any, operation: str, params: Any) -> Any:
            if not self.counting:
                return original(client, operation, params)
            started = time.thread_time()
            try:
                return original(client, operation, params)
            finally:
                spent = time.thread_time() - started
                with self._lock:
                    self.seconds += spent
                    self.calls += 1

        library_seams.API_CALL.set(metered)
        try:
            yield self
        finally:
            library_seams.API_CALL.set(original)


@dataclass(slots=True)
class InvocationMeter:
    """Invokes an entry point, accumulates what its invocations cost, and keeps the
    outcomes of their jobs (from `handle_event`) for the workloads' checks."""

    meter: BotocoreMeter
    server: ProxyControl
    entry_point: Callable[[Any, Any], Any]
    timeout_seconds: float
    wall_seconds: float = 0.0
    cpu_seconds: float = 0.0
    botocore_seconds: float = 0.0
    #: API calls the handler made (botocore's, before any retry) in measured invocations.
    api_calls: int = 0
    server_cpu_seconds: float = 0.0
    records: int = 0
    batches: int = 0
    failed_records: list[str] = field(default_factory=list)
    #: The outcome of every job of the measured invocations, in invocation order.
    outcomes: list[JobOutcome] = field(default_factory=list)
    _requests: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def invoke(self, event: dict[str, Any], *, measured: bool = True) -> Any:
        """One invocation; `measured=False` for warm-ups."""
        context = LocalLambdaContext(
            aws_request_id=f"bench-{next(self._requests):05d}",
            timeout_seconds=self.timeout_seconds,
        )
        server_before = self.server.stats().process_cpu_seconds if measured else 0.0
        botocore_before, calls_before = self.meter.seconds, self.meter.calls
        self.meter.counting = measured
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            response = self.entry_point(event, context)
        finally:
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            self.meter.counting = False
        if measured:
            self.wall_seconds += wall
            self.cpu_seconds += cpu
            self.botocore_seconds += self.meter.seconds - botocore_before
            self.api_calls += self.meter.calls - calls_before
            self.server_cpu_seconds += self.server.stats().process_cpu_seconds - server_before
            self.records += len(event.get("Records", ()))
            self.batches += 1
            if isinstance(response, BatchResult):
                self.outcomes += response.outcomes
                self.failed_records += [
                    f["itemIdentifier"] for f in response.response()["batchItemFailures"]
                ]
        return response

    def reasons(self, state: State) -> dict[str, int]:
        """Jobs that ended in `state`, by reason, e.g. `{"incomplete": 3}`."""
        return dict(Counter(str(o.reason) for o in self.outcomes if o.state is state))

    def errors(self) -> dict[str, int]:
        """Why evaluations failed: the reason, the AWS operation and error code, and how often."""
        return dict(
            Counter(
                f"{o.reason}: {o.details.get('operation', '')} {o.details.get('error_code', '')}"
                for o in self.outcomes
                if o.failed
            )
        )


def count_pages(outcomes: Iterable[JobOutcome]) -> list[int]:
    """The Query pages of each count of these outcomes, in order."""
    return [int(s.details["pages"]) for o in outcomes for s in o.history if "pages" in s.details]


@contextmanager
def container(
    resources: Resources,
    endpoints: Endpoints,
    concurrency: int,
    warm_up: dict[str, Any],
    *,
    entry_point: Callable[[Any, Any], Any] = handler.handle_event,
    timeout_seconds: float = INVOCATION_TIMEOUT_MS / 1000,
) -> Iterator[InvocationMeter]:
    """A container pointed at the proxy, warmed by `warm_up` through the same entry point
    (a job that triggers: clients, the pool, lazy imports); the proxy counts from then on."""
    values = {
        **environment(resources, endpoints.proxy_url, DEFAULT_REGION),
        "EVALUATION_CONCURRENCY": str(concurrency),
    }
    meter = BotocoreMeter()
    # The production JSON logs and metric lines (their cost is real), sent to /dev/null.
    json_logs = trigger_output(lambda sink: configure_logging("json", stream=sink, force=True))
    with json_logs, lambda_environment(values), meter.installed():
        invocations = InvocationMeter(meter, endpoints.control, entry_point, timeout_seconds)
        invocations.invoke(warm_up, measured=False)
        endpoints.control.reset()
        yield invocations
