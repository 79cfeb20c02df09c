"""The real trigger on clients whose faults and time a test or simulation controls.

Every harness that drives `ReassemblyTrigger` under faults (the fault simulation, the
adversarial tests, the recovery and reconcile tests) builds it here: the Lambda's
client configuration, a `FaultInjector` on each client, botocore's retry waits spent
on the given clock's `sleep`, and the trigger built by the Lambda's own `build_trigger`.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3

from reassembly_trigger.batch import ReassemblyTrigger
from reassembly_trigger.clients import AwsClients, session_clients
from reassembly_trigger.gateways import BATCH_GET_LIMIT, ReconcileCursorStore
from reassembly_trigger.local.aws.faults import FaultInjector, instant_retries
from reassembly_trigger.local.aws.stack import DEFAULT_REGION, LOCAL_CREDENTIALS, Resources
from reassembly_trigger.ports import Uniform
from reassembly_trigger.reconcile import Reconciler
from reassembly_trigger.runtime import build_trigger


def faulty_clients(
    endpoint_url: str,
    sleep: Callable[[float], None],
    *,
    faults: FaultInjector | None = None,
    pool: int = 1,
    region: str = DEFAULT_REGION,
) -> tuple[AwsClients, FaultInjector]:
    """The Lambda's clients for `endpoint_url`, every call through `faults` (a new one
    if none), retry waits spent on `sleep`."""
    session = boto3.session.Session(
        region_name=region,
        aws_access_key_id=LOCAL_CREDENTIALS["aws_access_key_id"],
        aws_secret_access_key=LOCAL_CREDENTIALS["aws_secret_access_key"],
    )
    clients = session_clients(session, pool, endpoint_url=endpoint_url)
    injector = faults if faults is not None else FaultInjector()
    for client in (clients.dynamodb, clients.sqs):
        injector.attach(client)
        instant_retries(client, sleep)
    return clients, injector


@dataclass(frozen=True, slots=True)
class FaultyTrigger:
    """The trigger, its clients and the faults every one of their calls goes through."""

    trigger: ReassemblyTrigger
    clients: AwsClients
    faults: FaultInjector

    def reconciler(self, *, chunk_size: int = BATCH_GET_LIMIT) -> Reconciler:
        """A reconciler on this trigger (same clients, clock and settings)."""
        table = self.trigger.settings.reassembly_triggered_table_name
        cursor = ReconcileCursorStore(self.clients.dynamodb, table)
        return Reconciler(self.trigger, cursor, chunk_size=chunk_size)


def faulty_trigger(
    endpoint_url: str,
    resources: Resources,
    clock: Any,
    *,
    faults: FaultInjector | None = None,
    pool: int = 1,
    uniform: Uniform = random.uniform,
    **settings: Any,
) -> FaultyTrigger:
    """The real trigger for `resources` on faulty clients and `clock` (which must `sleep`);
    `uniform` jitters its backoffs (a seeded generator's: the same waits every run);
    `settings` override the Settings' defaults (evaluation concurrency 1 unless given)."""
    clients, injector = faulty_clients(endpoint_url, clock.sleep, faults=faults, pool=pool)
    config = {"evaluation_concurrency": 1, **settings}
    trigger = build_trigger(
        resources.settings(**config), clients=clients, clock=clock, renderer=None, uniform=uniform
    )
    return FaultyTrigger(trigger, clients, injector)
