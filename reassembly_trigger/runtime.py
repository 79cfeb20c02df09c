"""Wiring: settings, clients and gateways into a `ReassemblyTrigger`."""

from __future__ import annotations

from reassembly_trigger.batch import ReassemblyTrigger
from reassembly_trigger.clients import DYNAMODB_CALL_SECONDS, AwsClients, aws_clients
from reassembly_trigger.evaluation import Clock, Gateways, SystemClock
from reassembly_trigger.gateways import (
    JobStore,
    ReassemblyLock,
    ReassemblyQueue,
    SegmentCompletions,
)
from reassembly_trigger.logs import Renderer, configure_logging
from reassembly_trigger.settings import Settings


def build_gateways(settings: Settings, clients: AwsClients, clock: Clock) -> Gateways:
    """The gateways for these settings, on these clients."""
    return Gateways(
        jobs=JobStore(
            clients.dynamodb,
            settings.jobs_table_name,
            sleep=clock.sleep,
            call_seconds=DYNAMODB_CALL_SECONDS,
        ),
        completions=SegmentCompletions(
            clients.dynamodb,
            settings.segment_completions_table_name,
            call_seconds=DYNAMODB_CALL_SECONDS,
        ),
        lock=ReassemblyLock(clients.dynamodb, settings.reassembly_triggered_table_name),
        queue=ReassemblyQueue(clients.sqs, settings.reassembly_queue_url),
        clock=clock,
        lock_lease_seconds=settings.lock_lease_seconds,
    )


def build_trigger(
    settings: Settings | None = None,
    *,
    clients: AwsClients | None = None,
    clock: Clock | None = None,
    renderer: Renderer | None = "json",
) -> ReassemblyTrigger:
    """A trigger from the environment (or the given settings); configures logging."""
    settings = settings or Settings.from_env()
    if renderer is not None:
        configure_logging(renderer)
    clients = clients or aws_clients(settings.evaluation_concurrency)
    return ReassemblyTrigger(settings, build_gateways(settings, clients, clock or SystemClock()))
