"""The handler under measurement: the real `lambda_handler` in a container of this process.

The container is the one the Lambda would have: the environment points its clients at
the latency proxy (`AWS_ENDPOINT_URL`), logs and metric lines are rendered as in Lambda
and written to /dev/null, and a warm-up invocation (a job that triggers) has already
paid the clients, the pool and the lazy imports. Each measured invocation adds its wall
time, the process's CPU time, the part of it spent inside botocore's calls, and the
stand-in AWS's CPU time over the same span.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Callable, Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import structlog

from reassembly_trigger import handler, reconcile
from reassembly_trigger.clients import reset_clients
from reassembly_trigger.local.aws.latency_proxy import ProxyControl
from reassembly_trigger.local.aws.stack import DEFAULT_REGION, Resources, environment
from reassembly_trigger.local.kit.contexts import LocalLambdaContext
from reassembly_trigger.logs import configure_logging
from reassembly_trigger.metrics import configure_metrics


class TransitionTap:
    """A structlog processor that keeps what the checks need (final states, pages)."""

    def __init__(self) -> None:
        self.finals: dict[str, tuple[str, str | None]] = {}
        self.pages: list[int] = []
        self.completions: list[int] = []
        #: Why evaluations failed: `error_code` (or reason) and how many times.
        self.errors: dict[str, int] = {}
        self._lock = threading.Lock()

    def clear(self) -> None:
        """Forget everything seen so far."""
        with self._lock:
            self.errors.clear()
            self.finals.clear()
            self.pages.clear()
            self.completions.clear()

    def __call__(
        self, logger: Any, method: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        """Note the event's facts and pass it on unchanged."""
        if event.get("event") == "transition":
            dest, reason = event.get("dest"), event.get("reason")
            with self._lock:
                if "pages" in event:
                    self.pages.append(int(event["pages"]))
                    self.completions.append(int(event.get("completions") or 0))
                if dest in ("enqueued", "skipped", "failed"):
                    self.finals[str(event["job_id"])] = (str(dest), reason and str(reason))
                if dest == "failed":
                    why = f"{reason}: {event.get('operation', '')} {event.get('error_code', '')}"
                    self.errors[why] = self.errors.get(why, 0) + 1
        return event

    def reasons(self, dest: str) -> dict[str, int]:
        """Final states `dest` by reason, e.g. `{"incomplete": 3}`."""
        counts: dict[str, int] = {}
        for state, reason in self.finals.values():
            if state == dest:
                counts[str(reason)] = counts.get(str(reason), 0) + 1
        return counts


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
        from botocore.client import BaseClient

        # A private method botocore's stubs do not declare.
        original = BaseClient._make_api_call  # type: ignore[attr-defined]

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

        BaseClient._make_api_call = metered  # type: ignore[attr-defined]
        try:
            yield self
        finally:
            BaseClient._make_api_call = original  # type: ignore[attr-defined]


@contextmanager
def quiet_json_logging(tap: TransitionTap) -> Iterator[None]:
    """The production JSON logs and metric lines (their cost is real), sent to /dev/null;
    the transitions tapped on the way."""
    was_configured = structlog.is_configured()
    saved = structlog.get_config()
    with open(os.devnull, "w", encoding="utf-8") as devnull:
        configure_logging("json", stream=devnull, force=True)
        structlog.configure(processors=[tap, *structlog.get_config()["processors"]])
        configure_metrics(devnull)
        try:
            yield
        finally:
            configure_metrics(None)
            if was_configured:
                structlog.configure(**saved)
            else:
                structlog.reset_defaults()


@contextmanager
def lambda_environment(
    resources: Resources, endpoint_url: str, concurrency: int, **extra: str
) -> Iterator[None]:
    """The Lambda's environment pointing at the proxy, and a fresh container."""
    env = environment(resources, endpoint_url, DEFAULT_REGION)
    env["EVALUATION_CONCURRENCY"] = str(concurrency)
    env.update(extra)
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)

    def fresh_container() -> None:
        handler.reset_container()
        reconcile.reset_container()
        reset_clients()

    fresh_container()
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        fresh_container()


@dataclass(slots=True)
class Harness:
    """Invokes an entry point and accumulates what its invocations cost."""

    tap: TransitionTap
    meter: BotocoreMeter
    server: ProxyControl | None = None
    entry_point: Callable[[Any, Any], Any] = handler.lambda_handler
    timeout_seconds: float = 60.0
    wall_seconds: float = 0.0
    cpu_seconds: float = 0.0
    botocore_seconds: float = 0.0
    #: API calls the handler made (botocore's, before any retry) in measured invocations.
    api_calls: int = 0
    server_cpu_seconds: float = 0.0
    records: int = 0
    batches: int = 0
    failed_records: list[str] = field(default_factory=list)
    responses: list[Any] = field(default_factory=list)
    _requests: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def invoke(self, event: dict[str, Any], *, measured: bool = True) -> Any:
        """One invocation; `measured=False` for warm-ups."""
        context = LocalLambdaContext(
            aws_request_id=f"bench-{next(self._requests):05d}",
            timeout_seconds=self.timeout_seconds,
        )
        server_before = self._server_cpu() if measured else 0.0
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
            self.server_cpu_seconds += self._server_cpu() - server_before
            self.records += len(event.get("Records", ()))
            self.batches += 1
            self.responses.append(response)
            if isinstance(response, dict):
                self.failed_records += [
                    f["itemIdentifier"] for f in response.get("batchItemFailures", ())
                ]
        return response

    def _server_cpu(self) -> float:
        return self.server.stats().process_cpu_seconds if self.server is not None else 0.0


@contextmanager
def container(
    resources: Resources,
    proxy_url: str,
    concurrency: int,
    *,
    warm_up: dict[str, Any] | None = None,
    server: ProxyControl | None = None,
    entry_point: Callable[[Any, Any], Any] = handler.lambda_handler,
    timeout_seconds: float = 60.0,
    **environment_extra: str,
) -> Iterator[Harness]:
    """A container pointed at the proxy, warmed by `warm_up` through the same entry point
    (a job that triggers: clients, the pool, lazy imports)."""
    tap = TransitionTap()
    meter = BotocoreMeter()
    with (
        quiet_json_logging(tap),
        lambda_environment(resources, proxy_url, concurrency, **environment_extra),
        meter.installed(),
    ):
        harness = Harness(
            tap, meter, server=server, entry_point=entry_point, timeout_seconds=timeout_seconds
        )
        if warm_up is not None:
            harness.invoke(warm_up, measured=False)
        tap.clear()  # the warm-up's transitions are not part of the workload
        yield harness
