"""The adversary's harness: Lambda's entry point on the real trigger, against moto.

`lambda_handler` itself is called, with the container's trigger built on clients that
carry a `FaultInjector` (`invocations.triggers.faulty_clients`), and on a simulated clock that
also drives the context's remaining time, so leases, backoffs and deadlines pass
without real waiting while every AWS call still goes to the moto server. Used through
moto_fixtures' `arena`, `fifo_arena` and `adv` fixtures.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
import structlog

from reassembly_trigger import handler, runtime
from reassembly_trigger.batch import ReassemblyTrigger
from reassembly_trigger.clients import AwsClients
from reassembly_trigger.local.aws.faults import FaultInjector, FaultKind, FaultRule
from reassembly_trigger.local.aws.stack import LocalAws, Resources
from reassembly_trigger.local.invocations.contexts import LocalLambdaContext
from reassembly_trigger.local.invocations.triggers import faulty_clients
from reassembly_trigger.local.simulation.clock import SimulatedClock
from reassembly_trigger.local.simulation.media_worker import MediaWorker
from reassembly_trigger.runtime import PerProcess, build_trigger

from pipeline import Pipeline, fresh_resources

#: Only the enqueue mark's UpdateItem carries this text.
MARK = "SET enqueued_at"
#: Only a take-over's UpdateItem carries this text.
TAKE_OVER = "#takeovers = :takeovers"


class CapturedLogs:
    """Reading the structlog events captured around invocations (`logs`)."""

    logs: list[dict[str, Any]]

    def events(self, name: str) -> list[dict[str, Any]]:
        """Log events by name."""
        return [e for e in self.logs if e["event"] == name]

    def transitions(self, job_id: str | None = None) -> list[dict[str, Any]]:
        """Transition events, of one job or of all."""
        return [e for e in self.events("transition") if job_id is None or e["job_id"] == job_id]

    def triggers(self, job_id: str) -> list[str]:
        """The triggers of a job's transitions, in order."""
        return [t["trigger"] for t in self.transitions(job_id)]

    def final(self, job_id: str) -> dict[str, Any]:
        """A job's last transition."""
        return self.transitions(job_id)[-1]


class RecordingClock(SimulatedClock):
    """A simulated clock that also remembers every sleep (backoffs, polls)."""

    def __init__(self) -> None:
        super().__init__()
        self.naps: list[float] = []

    def sleep(self, seconds: float) -> None:
        """Advance simulated time by `seconds`, and note it."""
        self.naps.append(seconds)
        super().sleep(seconds)


@dataclass
class Adversary(CapturedLogs):
    """The trigger on faulty clients and simulated time, and the pipeline around it."""

    trigger: ReassemblyTrigger
    clock: RecordingClock
    faults: FaultInjector
    pipeline: Pipeline
    worker: MediaWorker
    logs: list[dict[str, Any]]
    #: The deadline of the last invocation, and the simulated time it returned at.
    deadline: float = 0.0
    returned_at: float = 0.0

    def invoke(self, event: Any, *, remaining: float = 30.0, request_id: str | None = None) -> Any:
        """Call `lambda_handler` as Lambda would, with `remaining` seconds to live."""
        context = LocalLambdaContext(timeout_seconds=remaining, now=self.clock.now)
        if request_id is not None:
            context.aws_request_id = request_id
        self.deadline = context.deadline
        try:
            return handler.lambda_handler(event, context)
        finally:
            self.returned_at = self.clock.now()

    def messages(self) -> list[str]:
        """The job ids of every message received from the queue so far (drains it)."""
        return [body["job_id"] for body in self.pipeline.bodies()]

    def messages_for(self, job_id: str) -> int:
        """How many messages the queue got for `job_id`, each exactly the contract's
        body (drains it)."""
        return self.pipeline.bodies().count({"job_id": job_id})

    def slow_calls(self, seconds: float, operation: str = "*") -> FaultRule:
        """Make every call (of `operation`) take `seconds` of simulated time, or its
        attempt's read timeout and then a read timeout when that is shorter."""
        return self.faults.add(
            FaultRule(
                operation,
                FaultKind.SLOW,
                seconds=seconds,
                advance=self.clock.advance,
                label=f"slow-{operation}",
            )
        )


def wipe(aws: LocalAws, resources: Resources) -> None:
    """Empty the tables and the reassembly queue, so one set of resources serves many
    tests (creating tables and queues costs more than the tests that use them)."""
    names = resources.names
    keys = {
        names.jobs_table: ("job_id",),
        names.segment_completions_table: ("job_id", "segment_index"),
        names.reassembly_triggered_table: ("job_id",),
    }
    for table, key_names in keys.items():
        for page in aws.dynamodb.get_paginator("scan").paginate(TableName=table):
            for item in page["Items"]:
                aws.dynamodb.delete_item(
                    TableName=table, Key={name: item[name] for name in key_names}
                )
    url = resources.reassembly_queue_url
    while got := aws.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
        for message in got:
            aws.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


class CallBudgetExceeded(BaseException):
    """The code under test made more AWS calls than any bounded evaluation could: a spin.

    A `BaseException`, so no `except Exception` of the code under test can absorb it;
    it ends the invocation and the test, instead of letting a spin run for ever.
    """


def _call_guard(faults: FaultInjector, limit: int) -> FaultRule:
    def check() -> None:
        made = sum(faults.calls.values())
        if made > limit:
            raise CallBudgetExceeded(f"{made} AWS calls (limit {limit}): {dict(faults.calls)}")

    return faults.add(FaultRule("*", FaultKind.PAUSE, action=check, label="call-guard"))


@dataclass
class Arena:
    """What is slow to make, made once per test module: tables and queues, and clients.

    Each test empties it (`wipe`) and resets the fault injector; the simulated clock
    only ever moves forward, so tests place their times relative to `clock.now()`.
    """

    endpoint: str
    resources: Resources
    #: The pipeline's and the media worker's clients (no faults).
    aws: LocalAws
    #: The trigger's clients, with `faults` attached and retries on `clock`.
    clients: AwsClients
    faults: FaultInjector
    clock: RecordingClock


#: Connections of the trigger's clients: enough for the largest pool a test uses.
ARENA_POOL = 16


def make_arena(endpoint: str, *, fifo: bool = False) -> Arena:
    """Fresh tables and queues (a FIFO reassembly queue with `fifo`) and clients."""
    aws = LocalAws.connect(endpoint)
    resources = fresh_resources(aws, fifo=fifo)
    clock = RecordingClock()
    clients, faults = faulty_clients(endpoint, clock.sleep, pool=ARENA_POOL)
    return Arena(endpoint, resources, aws, clients, faults, clock)


def _reset(faults: FaultInjector) -> None:
    faults.clear()
    # The same draws for the same test (hypothesis replays examples to shrink them).
    faults._rng.seed(0)
    faults.enabled = True
    for counter in (faults.calls, faults.injected, faults.fired):
        counter.clear()


@contextmanager
def adversary(
    monkeypatch: pytest.MonkeyPatch,
    arena: Arena,
    *,
    concurrency: int = 1,
    lease_wait_seconds: int = 5,
    call_limit: int = 500,
    wipe_first: bool = True,
) -> Iterator[Adversary]:
    """The harness on `arena` (emptied first), installed as the container's trigger.

    More than `call_limit` AWS calls raise `CallBudgetExceeded`.
    """
    if wipe_first:
        wipe(arena.aws, arena.resources)
    _reset(arena.faults)
    _call_guard(arena.faults, call_limit)
    arena.clock.naps.clear()
    settings = arena.resources.settings(
        evaluation_concurrency=concurrency, lease_wait_seconds=lease_wait_seconds
    )
    trigger = build_trigger(settings, clients=arena.clients, clock=arena.clock, renderer=None)
    # The container's trigger and clock, as `lambda_handler` finds them.
    monkeypatch.setattr(runtime, "PROCESS_TRIGGER", PerProcess(lambda: trigger))
    monkeypatch.setattr(handler, "SystemClock", lambda: arena.clock)
    pipeline = Pipeline(arena.aws, arena.resources)
    worker = MediaWorker(arena.aws, arena.resources, arena.clock)
    with structlog.testing.capture_logs() as logs:
        yield Adversary(trigger, arena.clock, arena.faults, pipeline, worker, logs)
