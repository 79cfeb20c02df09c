"""Fault injection at the HTTP layer of boto3 clients.

A `FaultInjector` hooks botocore's `before-send` event, so the code under test and
botocore's own retry logic see exactly what a failing AWS would give them: an error
response (throttling, 5xx), a connection that times out before the request arrives,
or a request that AWS carried out but whose response was lost. Nothing of ours is
mocked.

Two more kinds model what happens to the Lambda rather than to AWS: a `CRASH` kills the
invocation just before a call goes out (`SimulatedCrash`), and a `PAUSE` holds the
caller at a call while another evaluation runs (a race with a deterministic schedule).
`instant_retries` spends botocore's retry waits on a simulated clock.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, cast

from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.exceptions import ConnectTimeoutError, ReadTimeoutError
from botocore.httpsession import URLLib3Session

from reassembly_trigger.local.aws.library_seams import RetryHandler, replace_retry_handler


class FaultKind(StrEnum):
    """What goes wrong with one AWS call."""

    THROTTLE = "throttle"  # 400 with the service's throttling error code
    SERVER_ERROR = "server_error"  # 500 InternalServerError
    CONNECT_TIMEOUT = "connect_timeout"  # the request never reached AWS
    LOST_RESPONSE = "lost_response"  # AWS did it; the response never came back
    CRASH = "crash"  # the invocation dies before the call goes out (raises SimulatedCrash)
    PAUSE = "pause"  # the caller waits at the call while the rule's `action` runs
    #: The call takes the rule's `seconds` (spent on `advance`, a simulated clock), up
    #: to the attempt's read timeout: past it, AWS carries the request out and the
    #: answer comes too late (a read timeout), as a slow AWS does to a bounded call.
    SLOW = "slow"
    #: BatchGetItem is carried out, but the requested keys that contain the rule's
    #: `body_contains` text (every key without one) come back in `UnprocessedKeys`.
    UNPROCESSED_KEYS = "unprocessed_keys"
    #: A 200 answer whose body is `{}`: none of the fields the caller reads is there.
    EMPTY_RESPONSE = "empty_response"
    #: A 200 answer whose fields have the wrong types: botocore's parser fails with an
    #: error that is neither a `ClientError` nor a `BotoCoreError`.
    GARBLED_RESPONSE = "garbled_response"
    #: 400 AccessDenied(Exception) with IAM's message naming the action and the resource,
    #: as AWS answers a role that lacks the permission.
    ACCESS_DENIED = "access_denied"


class SimulatedCrash(BaseException):
    """The Lambda invocation died here (killed at its timeout, out of memory, ...).

    Derives from `BaseException` so that no `except Exception` in the code under test
    runs: nothing is released, reported or logged after it, as when Lambda kills the
    invocation. Whoever drives the handler catches it and retries the whole batch.
    """

    def __init__(self, message: str, label: str = "") -> None:
        super().__init__(message)
        #: The label of the rule that crashed the invocation.
        self.label = label


def _dying() -> SimulatedCrash | None:
    """The simulated crash this thread is unwinding from, if any.

    Code under test may clean up on any `BaseException` (the evaluation releases its
    lease on Ctrl-C); a killed process runs no such code, so every call it makes while
    a simulated crash unwinds dies too, before it reaches AWS.
    """
    handled = sys.exc_info()[1]
    return handled if isinstance(handled, SimulatedCrash) else None


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
    #: Only calls whose request body contains this text (e.g. a job id), or all of
    #: these texts (e.g. a job id and `SET enqueued_at`).
    body_contains: str | tuple[str, ...] | None = None
    #: For `PAUSE`: what runs while the caller waits at this call.
    action: Callable[[], None] | None = None
    #: For `SLOW`: how long the call takes, and what spends that time.
    seconds: float = 0.0
    advance: Callable[[float], None] | None = None
    #: A name for reports (which scenario this rule belongs to).
    label: str = ""

    def matches(self, operation: str, body: bytes) -> bool:
        """Whether this rule applies to a call (before its probability is drawn)."""
        if self.operation not in ("*", operation):
            return False
        if self.times is not None and self.times <= 0:
            return False
        if self.body_contains is None:
            return True
        texts = (self.body_contains,) if isinstance(self.body_contains, str) else self.body_contains
        return all(text.encode() in body for text in texts)


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


_HEADERS = {"Content-Type": "application/x-amz-json-1.0", "x-amzn-RequestId": "injected"}


def _response(
    request: AWSPreparedRequest, payload: Any, status: int = 200, **headers: str
) -> AWSResponse:
    raw = _Raw(json.dumps(payload).encode())
    return AWSResponse(request.url, status, cast(Any, {**_HEADERS, **headers}), raw)


def _error_response(
    request: AWSPreparedRequest, service: str, code: str, status: int, message: str = ""
) -> AWSResponse:
    payload = {
        "__type": f"com.amazonaws.{service}#{code}",
        "message": message or f"injected {code}",
    }
    extra = {"x-amzn-query-error": f"{code};Sender"} if service == "sqs" else {}
    return _response(request, payload, status, **extra)


#: The account the injected denials name (AWS's documentation account).
_ACCOUNT = "123456789012"


def _denied_response(
    request: AWSPreparedRequest, service: str, operation: str, body: bytes
) -> AWSResponse:
    """IAM's denial of `service:operation` on the resource the request names."""
    # The request's signing scope holds its region: Credential=KEY/DATE/REGION/SERVICE/...
    scope = re.search(r"Credential=[^/]+/[^/]+/([^/]+)/", str(request.headers.get("Authorization")))
    region = scope.group(1) if scope else "unknown"
    fields = json.loads(body or b"{}")
    if service == "sqs":
        name = str(fields.get("QueueUrl", "")).rstrip("/").rsplit("/", 1)[-1]
        resource = f"arn:aws:sqs:{region}:{_ACCOUNT}:{name}"
    else:
        table = fields.get("TableName") or next(iter(fields.get("RequestItems", {})), "")
        resource = f"arn:aws:dynamodb:{region}:{_ACCOUNT}:table/{table}"
    action = f"{service}:{operation}"
    message = (
        f"User: arn:aws:sts::{_ACCOUNT}:assumed-role/reassembly-trigger/reassembly-trigger "
        f"is not authorized to perform: {action} on resource: {resource} because no "
        f"identity-based policy allows the {action} action"
    )
    code = "AccessDenied" if service == "sqs" else "AccessDeniedException"
    return _error_response(request, service, code, 400, message)


#: Output members of the calls we make; a string where a map or list belongs.
_GARBLED_FIELDS = ("Responses", "UnprocessedKeys", "Item", "Items", "Attributes", "Count")


def _held_back(key: Any, texts: tuple[str, ...]) -> bool:
    return all(text in json.dumps(key, ensure_ascii=False) for text in texts)


def _unprocessed_keys_response(
    request: AWSPreparedRequest, body: bytes, answer: AWSResponse, rule: FaultRule
) -> AWSResponse:
    """AWS's BatchGetItem answer with the rule's keys moved to `UnprocessedKeys`."""
    if answer.status_code != 200:
        return answer
    texts = (rule.body_contains,) if isinstance(rule.body_contains, str) else rule.body_contains
    parsed = json.loads(answer.content)
    responses = parsed.setdefault("Responses", {})
    unprocessed = parsed.setdefault("UnprocessedKeys", {})
    for table, wanted in json.loads(body).get("RequestItems", {}).items():
        held = [key for key in wanted["Keys"] if _held_back(key, texts or ())]
        if not held:
            continue
        unprocessed[table] = {**wanted, "Keys": held}
        responses[table] = [
            item
            for item in responses.get(table, [])
            if not any(all(item.get(a) == v for a, v in key.items()) for key in held)
        ]
    return _response(request, parsed)


class FaultInjector:
    """Decides, per call, whether to inject a fault; counts what it injected.

    By default probabilities are drawn from one shared `rng`, in call order. With
    `call_key` (e.g. the job id found in the request), each draw is instead a hash of
    `seed`, the operation, the key and how many calls with that key came before: the
    same seed then injects the same faults into the same job's calls whatever order
    threads make their calls in.
    """

    def __init__(
        self,
        rng: random.Random | None = None,
        *,
        seed: int = 0,
        call_key: Callable[[bytes], str] | None = None,
    ) -> None:
        self.rules: list[FaultRule] = []
        self.injected: Counter[tuple[str, FaultKind]] = Counter()
        #: Injections by rule label (rules without a label are counted by kind).
        self.fired: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()
        self._rng = rng or random.Random(0)
        self._seed = seed
        self._call_key = call_key
        self._ordinals: Counter[tuple[str, str]] = Counter()
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

    def _pick(self, operation: str, body: bytes) -> tuple[list[FaultRule], FaultRule | None]:
        """The pauses to run before this call, and the fault to inject into it (if any).

        A pause does not end the scan: the call it holds may still fail afterwards.
        """
        key = self._call_key(body) if self._call_key is not None else None
        pauses: list[FaultRule] = []
        with self._lock:
            self.calls[operation] += 1
            if not self.enabled:
                return pauses, None
            ordinal = 0
            if key is not None:
                ordinal = self._ordinals[(operation, key)]
                self._ordinals[(operation, key)] += 1
            for index, rule in enumerate(self.rules):
                if not rule.matches(operation, body):
                    continue
                draw = (
                    self._rng.random()
                    if key is None
                    else _hashed_draw(self._seed, operation, key, ordinal, index)
                )
                if draw >= rule.probability:
                    continue
                if rule.times is not None:
                    rule.times -= 1
                self.injected[(operation, rule.kind)] += 1
                self.fired[rule.label or rule.kind.value] += 1
                if rule.kind not in _DELAYS:
                    return pauses, rule
                pauses.append(rule)
        return pauses, None

    def _delay(self, request: AWSPreparedRequest, pauses: list[FaultRule]) -> None:
        """Run the pauses' actions and spend the slow rules' time (a late answer raises)."""
        slow = 0.0
        for pause in pauses:
            # Outside the injector's lock: the action makes calls of its own.
            if pause.action is not None:
                pause.action()
            if pause.kind is FaultKind.SLOW and pause.advance is not None:
                slow += pause.seconds
        if slow:
            late = _late_answer(request, slow, pauses)
            if late is not None:
                self._http.send(request)  # AWS did it; the answer is too late
                raise late

    def _before_send(self, service: str) -> Callable[..., AWSResponse | None]:
        def handler(request: AWSPreparedRequest, **kwargs: Any) -> AWSResponse | None:
            operation = _operation(request, kwargs)
            dying = _dying()
            if dying is not None:
                raise SimulatedCrash(f"invocation already dead before {operation}", dying.label)
            body = (
                request.body
                if isinstance(request.body, bytes)
                else str(request.body or "").encode()
            )
            pauses, rule = self._pick(operation, body)
            self._delay(request, pauses)
            if rule is None:
                return None
            kind = rule.kind
            if kind is FaultKind.CRASH:
                raise SimulatedCrash(f"invocation killed before {operation}", rule.label)
            if kind is FaultKind.THROTTLE:
                return _error_response(
                    request, service, _THROTTLE_CODES.get(service, "ThrottlingException"), 400
                )
            if kind is FaultKind.SERVER_ERROR:
                return _error_response(request, service, "InternalServerError", 500)
            if kind is FaultKind.ACCESS_DENIED:
                return _denied_response(request, service, operation, body)
            if kind is FaultKind.CONNECT_TIMEOUT:
                raise ConnectTimeoutError(endpoint_url=request.url)
            if kind is FaultKind.EMPTY_RESPONSE:
                return _response(request, {})
            if kind is FaultKind.GARBLED_RESPONSE:
                return _response(request, dict.fromkeys(_GARBLED_FIELDS, "garbled"))
            if kind is FaultKind.UNPROCESSED_KEYS:
                return _unprocessed_keys_response(request, body, self._http.send(request), rule)
            # LOST_RESPONSE: let AWS carry the request out, then lose its answer.
            self._http.send(request)
            raise ReadTimeoutError(endpoint_url=request.url)

        return handler


#: Kinds that delay a call and let the scan of rules go on.
_DELAYS = frozenset({FaultKind.PAUSE, FaultKind.SLOW})


def _late_answer(
    request: AWSPreparedRequest, seconds: float, pauses: list[FaultRule]
) -> ReadTimeoutError | None:
    """Spend a slow call's time, bounded by the attempt's read timeout (the per-request
    one the trigger sets from its deadline, else the client's); past it, the error."""
    from reassembly_trigger.timing import READ_TIMEOUT_SECONDS

    context = getattr(request, "context", None) or {}
    limit = float(context.get("read_timeout") or READ_TIMEOUT_SECONDS)
    advance = next(p.advance for p in pauses if p.advance is not None)
    advance(min(seconds, limit))
    return ReadTimeoutError(endpoint_url=request.url) if seconds > limit else None


def _hashed_draw(seed: int, operation: str, key: str, ordinal: int, rule: int) -> float:
    """A uniform draw in [0, 1) fixed by its inputs (reproducible across threads)."""
    digest = hashlib.blake2b(
        f"{seed}|{operation}|{key}|{ordinal}|{rule}".encode(), digest_size=8
    ).digest()
    return int.from_bytes(digest, "big") / 2**64


def instant_retries(client: Any, sleep: Callable[[float], None]) -> None:
    """Let botocore retry as configured, but spend the backoff on `sleep` (a simulated clock).

    botocore still decides whether a call is retried (standard mode, the client's
    attempts, its retry quota); only the wait changes: the upper bound of the
    exponential backoff for that attempt, without jitter (reproducible), handed to
    `sleep`, and botocore itself then waits 0 s.
    """
    retries = client.meta.config.retries or {}
    attempts = retries.get("total_max_attempts") or retries.get("max_attempts", 2) + 1

    def wrap(decide: RetryHandler) -> RetryHandler:
        def needs_retry(**kwargs: Any) -> float | None:
            if decide(**kwargs) is None:
                return None
            attempt = int(kwargs.get("attempts", 1))
            base = 1.0 if _is_throttle(kwargs.get("response")) else 0.05
            sleep(min(base * 2 ** (attempt - 1), 20.0))
            return 0.0

        return needs_retry

    replace_retry_handler(client, attempts, wrap)


def _is_throttle(response: Any) -> bool:
    if not response:
        return False
    code = str(response[1].get("Error", {}).get("Code", ""))
    return "Throttl" in code or code == "ProvisionedThroughputExceededException"


def _operation(request: AWSPreparedRequest, kwargs: dict[str, Any]) -> str:
    event_name = str(kwargs.get("event_name", ""))
    # before-send.<service>.<Operation>
    return event_name.rsplit(".", 1)[-1] if event_name.count(".") >= 2 else "unknown"
