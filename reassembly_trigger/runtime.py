"""Wiring: settings, clients and gateways into a `ReassemblyTrigger`, once per process.

SnapStart: every entry point (stream handler, reconciler, trigger on write) imports
this module, so it is where what init leaves behind is made safe to snapshot. Init
creates nothing per process today (settings, clients and the pool are built on first
use, after any restore); the one thing a snapshot would duplicate is the `random`
module's state, seeded at import: every sandbox restored from one snapshot would draw
the same retry jitter (ours and botocore's) and retry in step. It is reseeded from
the OS after each restore.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from reassembly_trigger.batch import ReassemblyTrigger
from reassembly_trigger.clients import AwsClients, aws_clients, reset_clients
from reassembly_trigger.evaluation import Gateways
from reassembly_trigger.gateways import (
    JobStore,
    ReassemblyLock,
    ReassemblyQueue,
    SegmentCompletions,
)
from reassembly_trigger.logs import Renderer, configure_logging
from reassembly_trigger.ports import Uniform
from reassembly_trigger.settings import Settings
from reassembly_trigger.timing import Clock, SystemClock


def reseed_after_restore() -> None:
    """Reseed `random` from the OS: sandboxes restored from one snapshot must not share it."""
    random.seed()


def register_snapstart_hooks() -> bool:
    """Register `reseed_after_restore` with Lambda's SnapStart hooks; False outside Lambda.

    `snapshot_restore_py` ships with Lambda's Python runtimes (3.12 and later) and runs
    the hooks of a SnapStart function on every restore; elsewhere it is absent.
    """
    try:
        from snapshot_restore_py import register_after_restore  # type: ignore[import-not-found]
    except ImportError:
        return False
    register_after_restore(reseed_after_restore)
    return True


register_snapstart_hooks()


def build_gateways(
    settings: Settings, clients: AwsClients, clock: Clock, uniform: Uniform = random.uniform
) -> Gateways:
    """The gateways for these settings, on these clients; `uniform` jitters every backoff."""
    return Gateways(
        jobs=JobStore(
            clients.dynamodb,
            settings.jobs_table_name,
            sleep=clock.sleep,
            uniform=uniform,
        ),
        completions=SegmentCompletions(clients.dynamodb, settings.segment_completions_table_name),
        lock=ReassemblyLock(
            clients.dynamodb,
            settings.reassembly_triggered_table_name,
            sleep=clock.sleep,
            uniform=uniform,
        ),
        queue=ReassemblyQueue(clients.sqs, settings.reassembly_queue_url),
        clock=clock,
        lock_lease_seconds=settings.lock_lease_seconds,
        uniform=uniform,
    )


def build_trigger(
    settings: Settings | None = None,
    *,
    clients: AwsClients | None = None,
    clock: Clock | None = None,
    renderer: Renderer | None = "json",
    uniform: Uniform = random.uniform,
) -> ReassemblyTrigger:
    """A trigger from the environment (or the given settings); configures logging."""
    settings = settings or Settings.from_env()
    if renderer is not None:
        configure_logging(renderer)
    clients = clients or aws_clients(settings.evaluation_concurrency)
    gateways = build_gateways(settings, clients, clock or SystemClock(), uniform)
    return ReassemblyTrigger(settings, gateways)


T = TypeVar("T")


class PerProcess(Generic[T]):
    """One `T` per process (a Lambda container, a worker), built on first use.

    Nothing is created at import time (the cold start, and a SnapStart snapshot, hold
    no trigger, client or connection); tests that change the environment `reset` it.
    """

    def __init__(self, build: Callable[[], T]) -> None:
        self._build = build
        self._value: T | None = None
        self._lock = threading.Lock()

    def get(self) -> T:
        """The process's object, built by the first caller."""
        with self._lock:
            if self._value is None:
                self._value = self._build()
            return self._value

    @property
    def built(self) -> bool:
        """Whether the object exists yet (SnapStart: init must not have built it)."""
        return self._value is not None

    def reset(self) -> None:
        """Forget it: the next `get` builds a new one."""
        with self._lock:
            self._value = None


#: The process's trigger, shared by every entry point it runs: the stream handler, the
#: reconciler and `trigger_job` (a Lambda container runs one of them; a worker, the API).
PROCESS_TRIGGER: PerProcess[ReassemblyTrigger] = PerProcess(build_trigger)


def process_trigger() -> ReassemblyTrigger:
    """The process's trigger: settings, clients and logging set up on first use."""
    return PROCESS_TRIGGER.get()


def reset_process() -> None:
    """Forget the process's trigger and clients, as a new container would (tests)."""
    PROCESS_TRIGGER.reset()
    reset_clients()
