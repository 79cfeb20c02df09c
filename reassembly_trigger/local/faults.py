"""Fault injection at the HTTP layer of boto3 clients.

A `FaultInjector` hooks botocore's `before-send` event, so the code under test and
botocore's own retry logic see exactly what a failing AWS would give them: an error
response (throttling, 5xx), a connection that times out before the request arrives,
or a request that AWS carried out but whose response was lost. Nothing of ours is
mocked.
"""

from __future__ import annotations

import json
import random
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, cast

from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.exceptions import ConnectTimeoutError, ReadTimeoutError
from botocore.httpsession import URLLib3Session


class FaultKind(StrEnum):
    """What goes wrong with one AWS call."""

    THROTTLE = "throttle"  # 400 with the service's throttling error code
    SERVER_ERROR = "server_error"  # 500 InternalServerError
    CONNECT_TIMEOUT = "connect_timeout"  # the request never reached AWS
    LOST_RESPONSE = "lost_response"  # AWS did it; the response never came back


_THROTTLE_CODES = {
    "dynamodb": "ProvisionedThroughputExceededException",
    "sqs": "RequestThrottled",
}


@dataclass(slots=True)
class FaultRule:
    """Inject `kind` into calls of `operation` (`*`: any), `times` times, with `probability`."""

    operation: str
    kind: FaultKind
    times: int | None = None
    probability: float = 1.0
    #: Only calls whose request body contains this text (e.g. a job id).
    body_contains: str | None = None

    def matches(self, operation: str, body: bytes) -> bool:
        if self.operation not in ("*", operation):
            return False
        if self.times is not None and self.times <= 0:
            return False
        return self.body_contains is None or self.body_contains.encode() in body


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


def _error_response(
    request: AWSPreparedRequest, service: str, code: str, status: int
) -> AWSResponse:
    body = json.dumps({"__type": f"com.amazonaws.{service}#{code}", "message": f"injected {code}"})
    headers = {"Content-Type": "application/x-amz-json-1.0", "x-amzn-RequestId": "injected"}
    if service == "sqs":
        headers["x-amzn-query-error"] = f"{code};Sender"
    return AWSResponse(request.url, status, cast(Any, headers), _Raw(body.encode()))


class FaultInjector:
    """Decides, per call, whether to inject a fault; counts what it injected."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self.rules: list[FaultRule] = []
        self.injected: Counter[tuple[str, FaultKind]] = Counter()
        self.calls: Counter[str] = Counter()
        self._rng = rng or random.Random(0)
        self._lock = threading.Lock()
        self._http = URLLib3Session()
        self.enabled = True

    def add(self, rule: FaultRule) -> FaultRule:
        """Add a rule; rules are tried in order and the first that fires wins."""
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        """Remove every rule."""
        with self._lock:
            self.rules.clear()

    def attach(self, client: Any) -> None:
        """Hook this injector into a boto3 client."""
        service = client.meta.service_model.service_id.hyphenize()
        client.meta.events.register(f"before-send.{service}", self._before_send(service))

    def _pick(self, operation: str, body: bytes) -> FaultKind | None:
        with self._lock:
            self.calls[operation] += 1
            if not self.enabled:
                return None
            for rule in self.rules:
                if rule.matches(operation, body) and self._rng.random() < rule.probability:
                    if rule.times is not None:
                        rule.times -= 1
                    self.injected[(operation, rule.kind)] += 1
                    return rule.kind
        return None

    def _before_send(self, service: str) -> Callable[..., AWSResponse | None]:
        def handler(request: AWSPreparedRequest, **kwargs: Any) -> AWSResponse | None:
            operation = _operation(request, kwargs)
            body = (
                request.body
                if isinstance(request.body, bytes)
                else str(request.body or "").encode()
            )
            kind = self._pick(operation, body)
            if kind is None:
                return None
            if kind is FaultKind.THROTTLE:
                return _error_response(
                    request, service, _THROTTLE_CODES.get(service, "ThrottlingException"), 400
                )
            if kind is FaultKind.SERVER_ERROR:
                return _error_response(request, service, "InternalServerError", 500)
            if kind is FaultKind.CONNECT_TIMEOUT:
                raise ConnectTimeoutError(endpoint_url=request.url)
            # LOST_RESPONSE: let AWS carry the request out, then lose its answer.
            self._http.send(request)
            raise ReadTimeoutError(endpoint_url=request.url)

        return handler


def _operation(request: AWSPreparedRequest, kwargs: dict[str, Any]) -> str:
    event_name = str(kwargs.get("event_name", ""))
    # before-send.<service>.<Operation>
    return event_name.rsplit(".", 1)[-1] if event_name.count(".") >= 2 else "unknown"
