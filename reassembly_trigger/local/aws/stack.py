"""An embedded AWS for local runs and tests: a moto server on 127.0.0.1 and the
pipeline's tables and queues, created idempotently."""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import astuple, dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, cast

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from reassembly_trigger.clients import client_config
from reassembly_trigger.settings import DEFAULT_JOBS_STATUS_INDEX_NAME, Settings
from reassembly_trigger.timing import DYNAMODB_MAX_ATTEMPTS

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodbstreams import DynamoDBStreamsClient
    from mypy_boto3_sqs import SQSClient

DEFAULT_REGION = "us-east-1"
#: Credentials for local endpoints only; moto accepts anything.
LOCAL_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
DEFAULT_PREFIX = "stereo-spot"
#: DynamoDB table names: 3-255 letters, digits, `_`, `-`, `.`.
_TABLE_NAME = re.compile(r"[A-Za-z0-9_.-]{3,255}")
#: SQS queue names: 1-80 letters, digits, `_`, `-`; a FIFO queue's ends in `.fifo`.
_QUEUE_NAME = re.compile(r"(?=.{1,80}$)[A-Za-z0-9_-]+(\.fifo)?")


@dataclass(frozen=True, slots=True)
class ResourceNames:
    """The names of the pipeline's tables and queues."""

    jobs_table: str
    segment_completions_table: str
    reassembly_triggered_table: str
    reassembly_queue: str
    reassembly_dead_letter_queue: str
    #: Where the stream poller (like Lambda's on-failure destination) sends the
    #: metadata of batches it gave up on.
    on_failure_queue: str

    @classmethod
    def with_prefix(cls, prefix: str = DEFAULT_PREFIX, *, fifo: bool = False) -> ResourceNames:
        """Names as the pipeline's Terraform gives them, under `prefix`; `ValueError`
        naming the rule when DynamoDB or SQS would refuse one of them."""
        suffix = ".fifo" if fifo else ""
        names = cls(
            jobs_table=f"{prefix}-jobs",
            segment_completions_table=f"{prefix}-segment-completions",
            reassembly_triggered_table=f"{prefix}-reassembly-triggered",
            reassembly_queue=f"{prefix}-reassembly{suffix}",
            reassembly_dead_letter_queue=f"{prefix}-reassembly-dlq{suffix}",
            on_failure_queue=f"{prefix}-reassembly-trigger-failures",
        )
        for table in astuple(names)[:3]:
            if not _TABLE_NAME.fullmatch(table):
                raise ValueError(
                    f"prefix {prefix!r} makes the table name {table!r}, which DynamoDB refuses "
                    "(3-255 letters, digits, '_', '-', '.')"
                )
        for queue in astuple(names)[3:]:
            if not _QUEUE_NAME.fullmatch(queue):
                raise ValueError(
                    f"prefix {prefix!r} makes the queue name {queue!r}, which SQS refuses "
                    "(at most 80 letters, digits, '_', '-')"
                )
        return names


@dataclass(frozen=True, slots=True)
class LocalAws:
    """Clients for one endpoint (a moto server, LocalStack, DynamoDB Local or AWS)."""

    endpoint_url: str | None
    region: str
    dynamodb: DynamoDBClient
    streams: DynamoDBStreamsClient
    sqs: SQSClient

    @classmethod
    def connect(
        cls, endpoint_url: str | None, region: str = DEFAULT_REGION, *, pool_size: int = 10
    ) -> LocalAws:
        """Clients for `endpoint_url` (None: the standard AWS SDK settings), each with
        connections for `pool_size` threads."""
        credentials: dict[str, Any] = LOCAL_CREDENTIALS if endpoint_url else {}
        session = boto3.session.Session(region_name=region, **credentials)
        # The Lambda's bounded calls (connect 2 s, read 5 s, 3 attempts): no command
        # hangs on an endpoint that accepts connections and never answers. Stream calls
        # carry a StreamArn, which newer botocore routes to account-ID hosts that local
        # stacks do not serve; the CLI's own requests are validated before they leave.
        config = client_config(pool_size, max_attempts=DYNAMODB_MAX_ATTEMPTS).merge(
            Config(account_id_endpoint_mode="disabled", parameter_validation=True)
        )
        return cls(
            endpoint_url=endpoint_url,
            region=region,
            dynamodb=session.client("dynamodb", endpoint_url=endpoint_url, config=config),
            streams=session.client("dynamodbstreams", endpoint_url=endpoint_url, config=config),
            sqs=session.client("sqs", endpoint_url=endpoint_url, config=config),
        )

    def messages_in(self, queue_url: str) -> int:
        """Messages in a queue: visible, in flight and delayed (SQS's approximate counts)."""
        counts = self.sqs.get_queue_attributes(
            QueueUrl=queue_url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        )["Attributes"]
        return sum(int(value) for value in counts.values())


@dataclass(frozen=True, slots=True)
class Resources:
    """The created resources: names, queue URLs and stream ARNs."""

    names: ResourceNames
    reassembly_queue_url: str
    reassembly_dead_letter_queue_url: str
    on_failure_queue_url: str
    segment_completions_stream_arn: str | None
    jobs_stream_arn: str | None

    def settings(self, **overrides: Any) -> Settings:
        """The Lambda's settings for these resources."""
        return Settings(
            jobs_table_name=self.names.jobs_table,
            segment_completions_table_name=self.names.segment_completions_table,
            reassembly_triggered_table_name=self.names.reassembly_triggered_table,
            reassembly_queue_url=self.reassembly_queue_url,
            **overrides,
        )


_STREAM = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}


def _keys(*names: str) -> list[dict[str, str]]:
    """A key schema: the hash key, then the range key if there is one."""
    return [
        {"AttributeName": name, "KeyType": ("HASH", "RANGE")[i]} for i, name in enumerate(names)
    ]


def _attributes(**types: str) -> list[dict[str, str]]:
    return [{"AttributeName": name, "AttributeType": kind} for name, kind in types.items()]


def _table_specs(names: ResourceNames) -> list[dict[str, Any]]:
    # The pipeline's index of jobs by status, oldest first: the reconciler lists every
    # job in flight through it (shared/contract/README.md).
    by_status = {
        "IndexName": DEFAULT_JOBS_STATUS_INDEX_NAME,
        "KeySchema": _keys("status", "created_at"),
        "Projection": {"ProjectionType": "ALL"},
    }
    return [
        {
            "TableName": names.jobs_table,
            "KeySchema": _keys("job_id"),
            "AttributeDefinitions": _attributes(job_id="S", status="S", created_at="N"),
            "GlobalSecondaryIndexes": [by_status],
            "StreamSpecification": _STREAM,
        },
        {
            "TableName": names.segment_completions_table,
            "KeySchema": _keys("job_id", "segment_index"),
            "AttributeDefinitions": _attributes(job_id="S", segment_index="N"),
            "StreamSpecification": _STREAM,
        },
        {
            "TableName": names.reassembly_triggered_table,
            "KeySchema": _keys("job_id"),
            "AttributeDefinitions": _attributes(job_id="S"),
        },
    ]


def _ensure_table(dynamodb: DynamoDBClient, spec: Mapping[str, Any]) -> str | None:
    name = spec["TableName"]
    try:
        dynamodb.create_table(BillingMode="PAY_PER_REQUEST", **spec)
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ResourceInUseException":
            raise
    dynamodb.get_waiter("table_exists").wait(
        TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30}
    )
    return dynamodb.describe_table(TableName=name)["Table"].get("LatestStreamArn")


def _ensure_queue(sqs: SQSClient, name: str, **attributes: str) -> str:
    if name.endswith(".fifo"):
        attributes["FifoQueue"] = "true"
    return sqs.create_queue(QueueName=name, Attributes=cast(Any, attributes))["QueueUrl"]


def create_resources(aws: LocalAws, names: ResourceNames) -> Resources:
    """Create (or find) the three tables with their streams, and the queues."""
    stream_arns = {
        spec["TableName"]: _ensure_table(aws.dynamodb, spec) for spec in _table_specs(names)
    }
    try:
        aws.dynamodb.update_time_to_live(
            TableName=names.reassembly_triggered_table,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": "ttl"},
        )
    except ClientError as exc:  # already enabled
        if exc.response["Error"]["Code"] != "ValidationException":
            raise
    dlq_url = _ensure_queue(aws.sqs, names.reassembly_dead_letter_queue)
    dlq = aws.sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])
    dlq_arn = dlq["Attributes"]["QueueArn"]
    queue_url = _ensure_queue(
        aws.sqs,
        names.reassembly_queue,
        VisibilityTimeout="900",
        RedrivePolicy=f'{{"deadLetterTargetArn":"{dlq_arn}","maxReceiveCount":"5"}}',
    )
    on_failure_url = _ensure_queue(aws.sqs, names.on_failure_queue)
    return Resources(
        names=names,
        reassembly_queue_url=queue_url,
        reassembly_dead_letter_queue_url=dlq_url,
        on_failure_queue_url=on_failure_url,
        segment_completions_stream_arn=stream_arns[names.segment_completions_table],
        jobs_stream_arn=stream_arns[names.jobs_table],
    )


#: DynamoDB applies each request whole, a conditional write's check and write included;
#: moto's threaded server does not (two conditional updates of one item can both pass
#: their checks: `tests/test_moto_atomicity.py`). One lock for every moto application of
#: the process, since they share the backends.
_DYNAMODB_REQUESTS = threading.Lock()


#: The services of the pipeline: a region must have all three to hold it.
_SERVICES = ("dynamodb", "dynamodbstreams", "sqs")
#: The region of a request, from its SigV4 credential scope (`Credential=KEY/DATE/REGION/`).
_SIGNED_REGION = re.compile(r"Credential=[^/,]+/[0-9]+/([^/,]+)/")


@lru_cache(maxsize=1)
def served_regions() -> frozenset[str]:
    """The regions moto serves the pipeline's services in: those botocore knows for all
    of them, in every partition (moto answers any other with a server error)."""
    import botocore.session

    # botocore's endpoint data alone: no profile is read (a missing one must not matter).
    session = botocore.session.Session(session_vars={"profile": (None, None, None, None)})
    return frozenset.intersection(
        *(
            frozenset(
                region
                for partition in session.get_available_partitions()
                for region in session.get_available_regions(service, partition_name=partition)
            )
            for service in _SERVICES
        )
    )


def _unknown_region(environ: Mapping[str, Any], start_response: Any) -> list[bytes] | None:
    """AWS's answer to a request signed for a region moto does not serve (a 400 naming
    it), instead of moto's `KeyError` traceback and an HTML 500; None for other requests."""
    found = _SIGNED_REGION.search(str(environ.get("HTTP_AUTHORIZATION", "")))
    if found is None or found.group(1) in served_regions():
        return None
    message = (
        f"Credential should be scoped to a valid region, not {found.group(1)!r} "
        f"(this local stack serves AWS's regions, e.g. {DEFAULT_REGION})"
    )
    body = json.dumps(
        {"__type": "com.amazon.coral.service#InvalidSignatureException", "message": message}
    ).encode()
    start_response(
        "400 Bad Request",
        [
            ("Content-Type", "application/x-amz-json-1.0"),
            ("Content-Length", str(len(body))),
            ("x-amzn-query-error", "InvalidSignatureException;Sender"),
        ],
    )
    return [body]


def moto_application() -> Any:
    """moto's WSGI application, each DynamoDB request handled whole, as DynamoDB does,
    and a request for a region moto does not serve refused as AWS does."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    app = DomainDispatcherApplication(create_backend_app)

    def application(environ: dict[str, Any], start_response: Any) -> Any:
        refused = _unknown_region(environ, start_response)
        if refused is not None:
            return refused
        if not str(environ.get("HTTP_X_AMZ_TARGET", "")).startswith("DynamoDB"):
            return app(environ, start_response)
        with _DYNAMODB_REQUESTS:
            return list(app(environ, start_response))  # the whole answer, inside the lock

    return application


@contextmanager
def embedded_moto_server(port: int = 0) -> Iterator[str]:
    """A moto server on 127.0.0.1 (ephemeral port by default), in a thread of this process,
    for the duration of the block; yields its endpoint URL.

    It is moto's `ThreadedMotoServer` with two differences: each DynamoDB request is
    handled whole (`moto_application`), and the port is bound on entry, in the caller's
    thread, so a port in use raises `OSError` at once. (Werkzeug, binding by itself in
    the serving thread, answers that with `sys.exit` there, and the caller waits for
    ever.)
    """
    from moto.moto_server.werkzeug_app import MotoRequestHandler
    from werkzeug.serving import make_server

    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} is not in 0-65535")
    # One log line per request would drown everything else.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        # As werkzeug's own servers do: a port left in TIME_WAIT can be had again.
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(128)
        server = make_server(
            "127.0.0.1",
            port,
            moto_application(),
            threaded=True,
            request_handler=MotoRequestHandler,
            fd=listener.fileno(),  # werkzeug serves a duplicate of it
        )
    finally:
        listener.close()
    thread = threading.Thread(target=server.serve_forever, name="moto-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.port}"  # the bound port, when 0 asked for any
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def environment(resources: Resources, endpoint_url: str | None, region: str) -> dict[str, str]:
    """The environment a process needs to use these resources (Lambda's env plus endpoint)."""
    env = resources.settings().as_environment()
    env["AWS_REGION"] = env["AWS_DEFAULT_REGION"] = region
    if endpoint_url:
        env["AWS_ENDPOINT_URL"] = endpoint_url
        env["AWS_ACCOUNT_ID_ENDPOINT_MODE"] = "disabled"
        # The local stack's own credentials: never echo whatever real ones are set.
        env["AWS_ACCESS_KEY_ID"] = LOCAL_CREDENTIALS["aws_access_key_id"]
        env["AWS_SECRET_ACCESS_KEY"] = LOCAL_CREDENTIALS["aws_secret_access_key"]
    return env
