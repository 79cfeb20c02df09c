"""The boto3 clients, created once per container, every call bounded by the time left.

Each client is configured for the normal case (`timing`: connect 0.3 s, read 2 s per
attempt; DynamoDB in botocore's "standard" retry mode with 3 attempts, SendMessage with
ONE attempt) and then bounded, call by call, by the deadline of the invocation the
calling thread is in (`timing.calls_within`), through botocore's event system:

- `before-send` (every attempt): an attempt is not started when less than
  `CALL_FLOOR_SECONDS` remains before the answer reserve (`DeadlineReached`); otherwise
  its read timeout is cut to the time that remains (botocore's per-request
  `read_timeout` in the request context).
- `needs-retry` (registered first): a retry that botocore's standard conditions would
  make is declined (`DeadlineReached`, naming the error it would have retried) when its
  backoff and one bounded attempt would not fit.

So a call fails fast near the deadline instead of overrunning it, whatever AWS does,
and no step is refused for a worst case that never comes. Outside `calls_within` (the
CLI's reads, doctor) the clients behave as configured.

SendMessage has one attempt because a send that SQS carried out but answered too late
must not be sent again by botocore: a slow or lost answer costs at most one extra
message (the job fails, its retry sends once more).

A botocore older than per-request read timeouts (boto/botocore#3770, August 2026; a
Lambda runtime may bundle one) ignores the cut: there an attempt is only started when
its whole configured connect and read fit before the reserve.

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

import functools
import os
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from reassembly_trigger.errors import DeadlineReached
from reassembly_trigger.timing import (
    ANSWER_RESERVE_SECONDS,
    CALL_FLOOR_SECONDS,
    CONNECT_TIMEOUT_SECONDS,
    DYNAMODB_MAX_ATTEMPTS,
    READ_TIMEOUT_SECONDS,
    SQS_MAX_ATTEMPTS,
    attempt_read_timeout,
    current_budget,
)

if TYPE_CHECKING:
    import boto3
    from botocore.config import Config
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sqs import SQSClient

#: botocore's standard backoff ceiling (`ExponentialBackoff`: base 2, at most 20 s);
#: throttling starts at 1 s, other retryable errors at 50 ms or less.
_MAX_BACKOFF_SECONDS = 20.0
_THROTTLING_BACKOFF_BASE = 1.0
_OTHER_BACKOFF_BASE = 0.05


@functools.cache
def per_attempt_timeouts() -> bool:
    """Whether this botocore honours a per-request `read_timeout` (boto/botocore#3770)."""
    from botocore.httpsession import URLLib3Session

    return hasattr(URLLib3Session, "_get_request_timeout")


def attempt_floor_seconds() -> float:
    """The least usable time an attempt needs before it may start, on this botocore."""
    if per_attempt_timeouts():
        return CALL_FLOOR_SECONDS
    return CONNECT_TIMEOUT_SECONDS + READ_TIMEOUT_SECONDS


def _bound_attempt(request: Any, event_name: str = "", **_: Any) -> None:
    """`before-send`: start this attempt only if it fits, with its read cut to fit.

    The read timeout is set on the request only when it is cut: an uncut one is the
    client's own (`READ_TIMEOUT_SECONDS`), and setting it anyway made botocore build a
    `urllib3.Timeout` for every request.
    """
    budget = current_budget()
    if budget is None:
        return
    if budget.usable_seconds() >= CONNECT_TIMEOUT_SECONDS + READ_TIMEOUT_SECONDS:
        return  # the attempt fits whole: no cut (and above any floor)
    operation = event_name.rsplit(".", 1)[-1] or "AWS call"
    read_timeout = attempt_read_timeout(budget, operation, attempt_floor_seconds())
    if read_timeout >= READ_TIMEOUT_SECONDS:
        return
    context = getattr(request, "context", None)
    if isinstance(context, dict):
        context["read_timeout"] = read_timeout


class _DeadlineRetries:
    """`needs-retry`, registered first: decline a retry that would not fit."""

    def __init__(self, max_attempts: int) -> None:
        from botocore.retries import standard

        self._adapter = standard.RetryEventAdapter()
        self._retryable = standard.StandardRetryConditions(max_attempts=max_attempts)
        self._throttled = standard.ThrottledRetryableChecker()
        #: The longest backoff any retry of this client can have (the last retry's, at
        #: throttling's base); None when it makes no retries at all.
        self._longest_backoff = (
            min(_THROTTLING_BACKOFF_BASE * 2 ** (max_attempts - 2), _MAX_BACKOFF_SECONDS)
            if max_attempts > 1
            else None
        )

    def __call__(self, **kwargs: Any) -> None:
        # `needs-retry` follows every attempt, successful ones included: decide from the
        # time left first. With no retries, or more time left than the longest retry
        # needs, there is nothing to decline, and botocore's retry conditions (a retry
        # context and five checkers, a CRC32 of every DynamoDB body) are not evaluated.
        if self._longest_backoff is None:
            return
        budget = current_budget()
        if budget is None:
            return
        if budget.usable_seconds() >= self._longest_backoff + attempt_floor_seconds():
            return
        context = self._adapter.create_retry_context(**kwargs)
        if not self._retryable.is_retryable(context):
            return  # no retry coming: nothing to decline
        base = (
            _THROTTLING_BACKOFF_BASE
            if self._throttled.is_retryable(context)
            else _OTHER_BACKOFF_BASE
        )
        backoff = min(base * 2 ** (context.attempt_number - 1), _MAX_BACKOFF_SECONDS)
        needed = backoff + attempt_floor_seconds()
        if budget.usable_seconds() < needed:
            operation = getattr(kwargs.get("operation"), "name", "AWS call")
            raise DeadlineReached(
                f"retry {operation} after {_retried_error(kwargs)}",
                budget.seconds_left(),
                needed + ANSWER_RESERVE_SECONDS,
            )


def _retried_error(kwargs: dict[str, Any]) -> str:
    exception = kwargs.get("caught_exception")
    if exception is not None:
        return type(exception).__name__
    response: tuple[Any, dict[str, Any]] = kwargs.get("response") or (None, {})
    return str(response[1].get("Error", {}).get("Code", "an error"))


def bound_by_deadline(client: Any, max_attempts: int) -> Any:
    """Bound every call `client` makes inside `timing.calls_within` by its deadline."""
    service = client.meta.service_model.service_id.hyphenize()
    events = client.meta.events
    events.register_first(f"before-send.{service}", _bound_attempt)
    events.register_first(f"needs-retry.{service}", _DeadlineRetries(max_attempts))
    return client


@dataclass(frozen=True, slots=True)
class AwsClients:
    """The two clients the Lambda uses; both are thread-safe once created."""

    dynamodb: DynamoDBClient
    sqs: SQSClient


def client_config(pool_size: int, *, max_attempts: int) -> Config:
    """Normal-case timeouts, standard retries and a connection pool for `pool_size` threads."""
    from botocore.config import Config

    return Config(
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        read_timeout=READ_TIMEOUT_SECONDS,
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

    def client(service: str, max_attempts: int) -> Any:
        config = client_config(pool_size, max_attempts=max_attempts)
        made = session.client(service, endpoint_url=endpoint_url, config=config)  # type: ignore[call-overload]
        return bound_by_deadline(made, max_attempts)

    return AwsClients(
        dynamodb=client("dynamodb", DYNAMODB_MAX_ATTEMPTS),
        sqs=client("sqs", SQS_MAX_ATTEMPTS),
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
