"""The boto3 clients, created once per container with bounded calls.

Timeouts and retries are chosen so that every call has a known worst case, which the
evaluation checks against the invocation's time left before it starts a step:

- DynamoDB: connect 1 s, read 4 s per attempt, botocore "standard" retries, 3 attempts
  (throttling and 5xx retried with jittered backoff): at most `DYNAMODB_CALL_SECONDS`.
- SQS `SendMessage`: connect 1 s, read 5 s, ONE attempt. A send that SQS carried out
  but answered too late must not be sent again by botocore: with one attempt, a slow
  or lost answer costs at most one extra message (the job fails, releases its lease,
  and its retry sends once more), so no single fault yields more than 2 messages.
  Throttling or a 5xx on the send fails the job, and Lambda (or the reconciler)
  retries it.

Region and endpoints come from the standard settings, as botocore reads them (checked
on botocore 1.44): the region from `AWS_DEFAULT_REGION`, else the profile's `region`
(`AWS_PROFILE`, `AWS_CONFIG_FILE`); botocore never takes it from `AWS_REGION` (it reads
that only to choose its "auto" defaults mode inside AWS). Lambda sets both variables to
the function's region. `aws_clients` passes `AWS_REGION`, when set, as the session's
region (the AWS CLI's precedence), so a worker calling `trigger_job` works with either
variable alone, as the `reassembly-trigger` CLI does (it copies `AWS_REGION` over
`AWS_DEFAULT_REGION`). Endpoints come from
`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_DYNAMODB`, `AWS_ENDPOINT_URL_SQS`.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import boto3
    from botocore.config import Config
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sqs import SQSClient

CONNECT_TIMEOUT_SECONDS = 1.0
READ_TIMEOUT_SECONDS = 4.0
MAX_ATTEMPTS = 3
SQS_READ_TIMEOUT_SECONDS = 5.0
SQS_MAX_ATTEMPTS = 1
#: Upper bound of botocore's standard-mode backoff over the retries of one call.
RETRY_BACKOFF_SECONDS = 3.0
#: The longest one DynamoDB call can take, retries included.
DYNAMODB_CALL_SECONDS = (
    MAX_ATTEMPTS * (CONNECT_TIMEOUT_SECONDS + READ_TIMEOUT_SECONDS) + RETRY_BACKOFF_SECONDS
)
#: The longest one SendMessage can take.
SQS_CALL_SECONDS = SQS_MAX_ATTEMPTS * (CONNECT_TIMEOUT_SECONDS + SQS_READ_TIMEOUT_SECONDS)


@dataclass(frozen=True, slots=True)
class AwsClients:
    """The two clients the Lambda uses; both are thread-safe once created."""

    dynamodb: DynamoDBClient
    sqs: SQSClient


def client_config(
    pool_size: int,
    *,
    read_timeout: float = READ_TIMEOUT_SECONDS,
    max_attempts: int = MAX_ATTEMPTS,
) -> Config:
    """Bounded timeouts, standard retries and a connection pool for `pool_size` threads."""
    from botocore.config import Config

    return Config(
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        read_timeout=read_timeout,
        retries={"mode": "standard", "total_max_attempts": max_attempts},
        max_pool_connections=max(10, pool_size),
        # Every request is built by the gateways and shaped by their tests; local
        # validation would only repeat what DynamoDB and SQS check anyway, and it
        # costs ~20% of botocore's CPU per call (measured: 1.9 -> 1.5 ms per Query).
        parameter_validation=False,
    )


def session_clients(
    session: boto3.session.Session, pool_size: int, *, endpoint_url: str | None = None
) -> AwsClients:
    """The two clients, each with its own limits, from `session` (optionally at an endpoint).

    The one place clients are configured: the Lambda, the reconciler, the CLI and the
    tests all get DynamoDB's retries and SQS's single attempt from here.
    """
    return AwsClients(
        dynamodb=session.client(
            "dynamodb", endpoint_url=endpoint_url, config=client_config(pool_size)
        ),
        sqs=session.client(
            "sqs",
            endpoint_url=endpoint_url,
            config=client_config(
                pool_size, read_timeout=SQS_READ_TIMEOUT_SECONDS, max_attempts=SQS_MAX_ATTEMPTS
            ),
        ),
    )


_lock = threading.Lock()
_cache: dict[int, AwsClients] = {}


def aws_clients(pool_size: int) -> AwsClients:
    """The container's clients, created on first use (never at import time)."""
    with _lock:
        clients = _cache.get(pool_size)
        if clients is None:
            import boto3

            # A session of our own: boto3's default session is not thread-safe to
            # create clients from, and tests may reset the cache between mocks.
            # botocore reads the region from AWS_DEFAULT_REGION (or the profile), never
            # AWS_REGION; Lambda sets both, a worker calling `trigger_job` may set one.
            region = os.environ.get("AWS_REGION", "").strip() or None
            clients = session_clients(boto3.session.Session(region_name=region), pool_size)
            _cache[pool_size] = clients
        return clients


def reset_clients() -> None:
    """Forget the cached clients (tests switch endpoints and mocks between cases)."""
    with _lock:
        _cache.clear()
