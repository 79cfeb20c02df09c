"""Shared fixtures: a real moto server on 127.0.0.1, fresh resources per test, event
factories in the contract's shape, and a Lambda-style invoker."""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
import structlog

from reassembly_trigger import handler
from reassembly_trigger.batch import PartialBatchResponse, ReassemblyTrigger
from reassembly_trigger.clients import AwsClients, aws_clients, reset_clients, session_clients
from reassembly_trigger.gateways import BATCH_GET_LIMIT, ReconcileCursorStore
from reassembly_trigger.local.aws.faults import FaultInjector, instant_retries
from reassembly_trigger.local.aws.stack import (
    LOCAL_CREDENTIALS,
    LocalAws,
    ResourceNames,
    Resources,
    create_resources,
    embedded_moto_server,
    environment,
)
from reassembly_trigger.local.kit.contexts import LocalLambdaContext
from reassembly_trigger.local.simulation.clock import SimulatedClock
from reassembly_trigger.reconcile import Reconciler
from reassembly_trigger.runtime import build_trigger
from reassembly_trigger.settings import ENVIRONMENT_VARIABLES, Settings

REGION = "us-east-1"
ACCOUNT = "123456789012"
#: Copies of the contract's sample events (`../shared/contract/events/`), kept here so a
#: clone alone passes; `test_contract_events.py` checks they match when ../shared is there.
CONTRACT_EVENTS = Path(__file__).resolve().parent / "events"
#: Variables that make rich (and other libraries) colour output that is not a terminal;
#: Nx sets FORCE_COLOR. Tests read plain text whatever the caller's terminal.
COLOUR_VARIABLES = ("FORCE_COLOR", "CLICOLOR_FORCE", "NO_COLOR", "TTY_COMPATIBLE", "COLUMNS")


@pytest.fixture(autouse=True)
def _isolated_aws_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No test can reach real AWS (fake credentials, no profile, no stray endpoint), and
    no test sees the caller's colour settings."""
    for var in (
        "AWS_PROFILE",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_DYNAMODB",
        "AWS_ENDPOINT_URL_SQS",
        "AWS_SESSION_TOKEN",
        "JOBS_TABLE_NAME",
        "SEGMENT_COMPLETIONS_TABLE_NAME",
        "REASSEMBLY_TRIGGERED_TABLE_NAME",
        "REASSEMBLY_QUEUE_URL",
        *ENVIRONMENT_VARIABLES,
    ):
        monkeypatch.delenv(var, raising=False)
    for var in COLOUR_VARIABLES:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("TERM", "dumb")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_ACCOUNT_ID_ENDPOINT_MODE", "disabled")
    handler.reset_container()
    reset_clients()
    yield
    handler.reset_container()
    reset_clients()


@pytest.fixture(autouse=True)
def _isolated_logging() -> Iterator[None]:
    """Each test ends with structlog configured as it found it: a command that configures
    logging for its process (`doctor` writes warnings to the stderr pytest captured, at
    WARNING) must not leave later tests logging to a closed stream or dropping events."""
    configured = structlog.is_configured()
    saved = structlog.get_config()
    yield
    if configured:
        structlog.configure(**saved)
    else:
        structlog.reset_defaults()


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A real moto server on 127.0.0.1 at an ephemeral port, for the whole session."""
    with embedded_moto_server() as endpoint:
        yield endpoint


@pytest.fixture
def resources(moto_endpoint: str) -> Resources:
    """Fresh tables and queues (unique names) for one test."""
    aws = LocalAws.connect(moto_endpoint, REGION)
    return create_resources(aws, ResourceNames.with_prefix(f"t{uuid.uuid4().hex[:10]}"))


@pytest.fixture
def lambda_env(
    monkeypatch: pytest.MonkeyPatch, moto_endpoint: str, resources: Resources
) -> dict[str, str]:
    """The Lambda's environment for this test's resources, pointed at the moto server."""
    env = environment(resources, moto_endpoint, REGION)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


# ------------------------------------------------------------------ events


_sequence = itertools.count(100_000_000_000_000_000_000)


def next_sequence_number() -> str:
    """Increasing, decimal, like DynamoDB Streams'."""
    return str(next(_sequence))


def _arn(table: str) -> str:
    return f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{table}/stream/2026-11-01T10:00:00.000"


def completion_record(
    table: str,
    job_id: str,
    index: int,
    *,
    event_name: str = "INSERT",
    sequence_number: str | None = None,
) -> dict[str, Any]:
    """A SegmentCompletions stream record as Lambda delivers it."""
    keys = {"job_id": {"S": job_id}, "segment_index": {"N": str(index)}}
    image = {
        **keys,
        "output_s3_uri": {"S": f"s3://out/jobs/{job_id}/segments/{index:05d}.mp4"},
        "completed_at": {"N": "1794000000"},
    }
    body: dict[str, Any] = {
        "ApproximateCreationDateTime": 1794000000,
        "Keys": keys,
        "SequenceNumber": sequence_number or next_sequence_number(),
        "SizeBytes": 180,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    if event_name == "REMOVE":
        body["OldImage"] = image
    else:
        body["NewImage"] = image
    return {
        "eventID": uuid.uuid4().hex,
        "eventName": event_name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": REGION,
        "dynamodb": body,
        "eventSourceARN": _arn(table),
    }


def job_record(
    table: str, job_id: str, *, status: str, total_segments: int | None, old_status: str
) -> dict[str, Any]:
    """A Jobs stream MODIFY record (status change)."""
    new: dict[str, Any] = {
        "job_id": {"S": job_id},
        "mode": {"S": "sbs"},
        "status": {"S": status},
        "created_at": {"N": "1793999000"},
    }
    if total_segments is not None:
        new["total_segments"] = {"N": str(total_segments)}
    old = {**new, "status": {"S": old_status}}
    old.pop("total_segments", None)
    return {
        "eventID": uuid.uuid4().hex,
        "eventName": "MODIFY",
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": REGION,
        "dynamodb": {
            "ApproximateCreationDateTime": 1794000100,
            "Keys": {"job_id": {"S": job_id}},
            "NewImage": new,
            "OldImage": old,
            "SequenceNumber": next_sequence_number(),
            "SizeBytes": 150,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
        "eventSourceARN": _arn(table),
    }


def stream_event(*records: dict[str, Any]) -> dict[str, Any]:
    """A Lambda DynamoDB Streams event."""
    return {"Records": list(records)}


# ------------------------------------------------------------------ the pipeline


@dataclass
class Pipeline:
    """The pipeline around the trigger: what the chunker, video workers and media worker
    write, read back through moto."""

    aws: LocalAws
    resources: Resources
    received: list[dict[str, Any]] = field(default_factory=list)

    @property
    def names(self) -> ResourceNames:
        return self.resources.names

    def add_job(
        self,
        job_id: str,
        *,
        total_segments: int | None = 3,
        status: str = "chunking_complete",
        mode: str = "sbs",
        created_at: int = 1793999000,
        total_segments_raw: dict[str, Any] | None = None,
        **extra: dict[str, Any],
    ) -> None:
        """Write a Job item; `total_segments_raw` stores any attribute value as given."""
        item: dict[str, Any] = {
            "job_id": {"S": job_id},
            "mode": {"S": mode},
            "status": {"S": status},
            "created_at": {"N": str(created_at)},
            **extra,
        }
        if total_segments is not None:
            item["total_segments"] = {"N": str(total_segments)}
        if total_segments_raw is not None:
            item["total_segments"] = total_segments_raw
        self.aws.dynamodb.put_item(TableName=self.names.jobs_table, Item=item)

    def complete(self, job_id: str, indexes: range | list[int], *, padding: int = 0) -> None:
        for index in indexes:
            self.aws.dynamodb.put_item(
                TableName=self.names.segment_completions_table,
                Item={
                    "job_id": {"S": job_id},
                    "segment_index": {"N": str(index)},
                    "output_s3_uri": {"S": f"s3://out/{job_id}/{index:05d}.mp4" + "x" * padding},
                    "completed_at": {"N": "1794000000"},
                },
            )

    def completion_records(self, job_id: str, indexes: range | list[int]) -> list[dict[str, Any]]:
        table = self.names.segment_completions_table
        return [completion_record(table, job_id, index) for index in indexes]

    def job_record(self, job_id: str, **kwargs: Any) -> dict[str, Any]:
        return job_record(self.names.jobs_table, job_id, **kwargs)

    def lock(self, job_id: str) -> dict[str, Any] | None:
        item = self.aws.dynamodb.get_item(
            TableName=self.names.reassembly_triggered_table,
            Key={"job_id": {"S": job_id}},
            ConsistentRead=True,
        ).get("Item")
        return {k: next(iter(v.values())) for k, v in item.items()} if item else None

    def put_lock(self, job_id: str, **attributes: int | str) -> None:
        item: dict[str, Any] = {"job_id": {"S": job_id}}
        for key, value in attributes.items():
            item[key] = {"N": str(value)} if isinstance(value, int) else {"S": value}
        self.aws.dynamodb.put_item(TableName=self.names.reassembly_triggered_table, Item=item)

    def drain_messages(self) -> list[dict[str, Any]]:
        """Receive (and delete) everything on the reassembly queue; keep it in `received`."""
        url = self.resources.reassembly_queue_url
        while True:
            got = self.aws.sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=0,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if not got:
                return self.received
            for message in got:
                self.received.append(
                    {"body": json.loads(message["Body"]), "attributes": message["Attributes"]}
                )
                self.aws.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])

    def bodies(self) -> list[dict[str, Any]]:
        return [m["body"] for m in self.drain_messages()]


@pytest.fixture
def pipeline(moto_endpoint: str, resources: Resources) -> Pipeline:
    """Write and read the pipeline's tables and queue as the other workers would."""
    return Pipeline(LocalAws.connect(moto_endpoint, REGION), resources)


# ------------------------------------------------------------------ invoking


#: The one Lambda context of the local tooling and the tests (its time runs down in
#: real time from `timeout_seconds`, as Lambda's does).
LambdaContext = LocalLambdaContext


class Invoker:
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
            return handler.lambda_handler(event, LambdaContext(**context))
        with self.capturing():
            return handler.lambda_handler(event, LambdaContext(**context))

    def transitions(self, job_id: str | None = None) -> list[dict[str, Any]]:
        return [
            e
            for e in self.logs
            if e["event"] == "transition" and (job_id is None or e["job_id"] == job_id)
        ]

    def final(self, job_id: str) -> dict[str, Any]:
        return self.transitions(job_id)[-1]


@pytest.fixture
def invoke(lambda_env: dict[str, str]) -> Invoker:
    """Invoke the real handler with this test's environment."""
    return Invoker()


@pytest.fixture
def lambda_clients(lambda_env: dict[str, str]) -> AwsClients:
    """The very clients the handler will use in this test (created once per container)."""
    return aws_clients(Settings.from_env().evaluation_concurrency)


@dataclass
class SimulatedTrigger:
    """The real trigger on its own clients, with faults at their HTTP layer, a simulated
    clock (botocore's retries sleep on it) and this test's resources."""

    trigger: ReassemblyTrigger
    clock: SimulatedClock
    faults: FaultInjector
    clients: AwsClients

    def reconciler(self, *, chunk_size: int = BATCH_GET_LIMIT) -> Reconciler:
        """A reconciler on the same trigger (same clients, clock and settings)."""
        cursor = ReconcileCursorStore(
            self.clients.dynamodb, self.trigger.settings.reassembly_triggered_table_name
        )
        return Reconciler(self.trigger, cursor, chunk_size=chunk_size)


@contextmanager
def simulated_trigger(
    endpoint: str, resources: Resources, **settings: Any
) -> Iterator[SimulatedTrigger]:
    """A `SimulatedTrigger` for `resources`; `settings` override the Settings' defaults."""
    clock = SimulatedClock()
    session = boto3.session.Session(region_name=REGION, **LOCAL_CREDENTIALS)
    clients = session_clients(session, 1, endpoint_url=endpoint)
    faults = FaultInjector()
    for client in (clients.dynamodb, clients.sqs):
        faults.attach(client)
        instant_retries(client, clock.sleep)
    config = {"evaluation_concurrency": 1, **settings}
    trigger = build_trigger(
        resources.settings(**config), clients=clients, clock=clock, renderer=None
    )
    yield SimulatedTrigger(trigger, clock, faults, clients)


@pytest.fixture
def faults(lambda_clients: AwsClients) -> FaultInjector:
    """Inject AWS faults into the handler's own clients."""
    injector = FaultInjector()
    injector.attach(lambda_clients.dynamodb)
    injector.attach(lambda_clients.sqs)
    return injector
