"""The fixtures of the tiers that run against AWS (trigger, tooling, build; each tier's
conftest brings them in): a real moto server on 127.0.0.1, fresh resources per test, the
pipeline around the trigger (`pipeline.py`), a Lambda-style invoker, and the trigger on
faulty clients and simulated time (`adversary.py`). What every tier shares (the
isolated environment and logging) is in `conftest.py`, without any of this."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import structlog

from reassembly_trigger import handler
from reassembly_trigger.batch import PartialBatchResponse
from reassembly_trigger.clients import AwsClients, aws_clients
from reassembly_trigger.local.aws.faults import FaultInjector
from reassembly_trigger.local.aws.stack import (
    DEFAULT_REGION,
    LocalAws,
    Resources,
    embedded_moto_server,
    environment,
)
from reassembly_trigger.local.invocations.contexts import LocalLambdaContext
from reassembly_trigger.local.invocations.triggers import FaultyTrigger, faulty_trigger
from reassembly_trigger.local.simulation.clock import SimulatedClock
from reassembly_trigger.settings import Settings

from adversary import Adversary, Arena, CapturedLogs, adversary, make_arena
from pipeline import Pipeline, fresh_resources

#: The region of the moto resources: the one `conftest.py` sets for every test.
REGION = DEFAULT_REGION
#: Copies of the contract's sample events (`../shared/contract/events/`), kept here so a
#: clone alone passes; `test_contract_events.py` checks they match when ../shared is there.
CONTRACT_EVENTS = Path(__file__).resolve().parent / "events"
#: The per-reason EMF metrics of the core's closed sets of reasons, as the alarms and the
#: dashboard name them: written out, so that renaming a reason must change the tests.
CORE_SKIP_METRICS = [
    "SkippedJobNotFound",
    "SkippedJobInvalid",
    "SkippedNotChunkingComplete",
    "SkippedTotalSegmentsMissing",
    "SkippedIncomplete",
    "SkippedAlreadyTriggered",
    "SkippedReassemblyStarted",
    "SkippedDeferred",
]
CORE_FAIL_METRICS = ["FailedAwsError", "FailedLockLost", "FailedDeadline", "FailedUnexpectedError"]


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A real moto server on 127.0.0.1 at an ephemeral port, for the whole session."""
    with embedded_moto_server() as endpoint:
        yield endpoint


@pytest.fixture
def resources(moto_endpoint: str) -> Resources:
    """Fresh tables and queues (unique names) for one test."""
    return fresh_resources(LocalAws.connect(moto_endpoint, REGION))


@pytest.fixture
def lambda_env(
    monkeypatch: pytest.MonkeyPatch, moto_endpoint: str, resources: Resources
) -> dict[str, str]:
    """The Lambda's environment for this test's resources, pointed at the moto server."""
    env = environment(resources, moto_endpoint, REGION)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture
def pipeline(moto_endpoint: str, resources: Resources) -> Pipeline:
    """Write and read the pipeline's tables and queue as the other workers would."""
    return Pipeline(LocalAws.connect(moto_endpoint, REGION), resources)


def run_cli(
    *args: str, timeout: float = 30, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The CLI in a fresh process with this test's environment (or exactly `env`); a hang
    fails the test at `timeout`."""
    return subprocess.run(
        [sys.executable, "-m", "reassembly_trigger.local.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=None if env is None else dict(env),
    )


def cli_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    """Run `reassembly-trigger <args> --json`; its exit status and the document it printed."""
    from reassembly_trigger.local import cli  # the CLI's imports stay out of the unit tier

    capsys.readouterr()
    status = cli.main([*args, "--json"])
    return status, json.loads(capsys.readouterr().out)


# ------------------------------------------------------------------ invoking


class Invoker(CapturedLogs):
    """Calls `lambda_handler` like Lambda does, capturing the structlog events."""

    def __init__(self) -> None:
        self.logs: list[dict[str, Any]] = []
        self._capturing = False

    @contextmanager
    def capturing(self) -> Iterator[None]:
        """Capture once around several (concurrent) invocations: structlog's capture
        is process-wide, so threads must share one."""
        with structlog.testing.capture_logs() as captured:
            self._capturing = True
            try:
                yield
            finally:
                self._capturing = False
                self.logs.extend(captured)

    def __call__(self, event: dict[str, Any], **context: Any) -> PartialBatchResponse:
        if self._capturing:
            return handler.lambda_handler(event, LocalLambdaContext(**context))
        with self.capturing():
            return handler.lambda_handler(event, LocalLambdaContext(**context))


@pytest.fixture
def invoke(lambda_env: dict[str, str]) -> Invoker:
    """Invoke the real handler with this test's environment."""
    return Invoker()


@pytest.fixture
def lambda_clients(lambda_env: dict[str, str]) -> AwsClients:
    """The very clients the handler will use in this test (created once per container)."""
    return aws_clients(Settings.from_env().evaluation_concurrency)


@pytest.fixture
def faults(lambda_clients: AwsClients) -> FaultInjector:
    """Inject AWS faults into the handler's own clients."""
    injector = FaultInjector()
    injector.attach(lambda_clients.dynamodb)
    injector.attach(lambda_clients.sqs)
    return injector


# ------------------------------------------------------------------ on simulated time


@dataclass(frozen=True, slots=True)
class SimulatedTrigger(FaultyTrigger):
    """The kit's trigger on faulty clients, with the simulated clock it runs on."""

    clock: SimulatedClock


@contextmanager
def simulated_trigger(
    endpoint: str, resources: Resources, **settings: Any
) -> Iterator[SimulatedTrigger]:
    """`faulty_trigger` for `resources` on a new simulated clock; `settings` override the
    Settings' defaults."""
    clock = SimulatedClock()
    built = faulty_trigger(endpoint, resources, clock, **settings)
    yield SimulatedTrigger(built.trigger, built.clients, built.faults, clock)


@pytest.fixture(scope="module")
def arena(moto_endpoint: str) -> Arena:
    """Tables, queues and faulty clients for the module, emptied before each test."""
    return make_arena(moto_endpoint)


@pytest.fixture(scope="module")
def fifo_arena(moto_endpoint: str) -> Arena:
    """Like `arena`, with a FIFO reassembly queue."""
    return make_arena(moto_endpoint, fifo=True)


@pytest.fixture
def adv(monkeypatch: pytest.MonkeyPatch, arena: Arena) -> Iterator[Adversary]:
    """The trigger behind `lambda_handler`, on faulty clients and simulated time."""
    with adversary(monkeypatch, arena) as harness:
        yield harness
