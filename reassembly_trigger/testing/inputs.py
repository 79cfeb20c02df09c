"""What tests feed the trigger: items as the pipeline writes them, stream records as
Lambda delivers them, a Lambda context, and a clock that moves only when told."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from reassembly_trigger.items import (
    CHUNKING_COMPLETE,
)

#: Any DynamoDB-JSON attribute value (`{"S": "x"}`, `{"N": "1"}`, ...).
Attr = dict[str, Any]

#: Where a `ManualClock` starts (epoch seconds, 2026-11-15): any fixed value keeps runs
#: reproducible.
START = 1_794_700_000.0
#: `created_at` of a Job when no one says otherwise (2023-11-14: long before `START`, so
#: old enough for the reconciler's minimum age).
CREATED_AT = 1_700_000_000
#: The label of every stream ARN `stream_record` gives (a stream's creation time).
STREAM_LABEL = "2026-11-01T10:00:00.000"


# ------------------------------------------------------------------ items


def attribute(value: object) -> Attr:
    """A plain value as DynamoDB JSON: a bool as BOOL, a number as N, None as NULL, a
    mapping with one type key (`{"N": "1.5"}`) as given, anything else as S."""
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int | Decimal):
        return {"N": str(value)}
    if value is None:
        return {"NULL": True}
    if isinstance(value, Mapping) and len(value) == 1:
        return dict(value)
    return {"S": str(value)}


def item(job_id: str, **attributes: object) -> Attr:
    """An item of `job_id` (DynamoDB JSON) whose other attributes are given as plain
    values (see `attribute`)."""
    return {"job_id": {"S": job_id}, **{k: attribute(v) for k, v in attributes.items()}}


def job_item(
    job_id: str,
    *,
    status: str = CHUNKING_COMPLETE,
    total_segments: object = None,
    created_at: int = CREATED_AT,
    mode: str = "sbs",
    **attributes: object,
) -> Attr:
    """A Jobs item as the chunker writes it (DynamoDB JSON); `total_segments` is left
    out when None, and any other attribute is added as given (see `attribute`)."""
    extra = {} if total_segments is None else {"total_segments": total_segments}
    return item(job_id, mode=mode, status=status, created_at=created_at, **extra, **attributes)


# ------------------------------------------------------------------ time


class ManualClock:
    """A clock (`timing.Clock`) whose time moves only when someone sleeps or advances it.

    `sleep(s)` returns at once and moves the time forward by `s`, so the trigger waits
    out a lease, backs off or polls a lock without any real waiting. Safe to share
    between threads: the time is the sum of everyone's sleeps and never goes back.
    """

    def __init__(self, start: float = START) -> None:
        self._now = start
        self._lock = threading.Lock()
        #: Total seconds slept (not counting `advance` and `set`).
        self.slept = 0.0

    def now(self) -> float:
        """The clock's epoch seconds."""
        with self._lock:
            return self._now

    def sleep(self, seconds: float) -> None:
        """Move the time forward by `seconds` (never backwards) and return at once."""
        with self._lock:
            step = max(0.0, seconds)
            self._now += step
            self.slept += step

    def advance(self, seconds: float) -> float:
        """Move the time forward by `seconds` (time passing in a test); the new time."""
        with self._lock:
            self._now += max(0.0, seconds)
            return self._now

    def set(self, when: float) -> None:
        """Jump to `when` if it lies ahead; time never goes back."""
        with self._lock:
            self._now = max(self._now, when)


#: The Terraform module's default function_name (so local metrics and log groups match).
DEFAULT_FUNCTION_NAME = "stereo-spot-reassembly-trigger"
#: The timeout of the Lambda this project replaces (`../shared/contract`): tests run
#: where users run, not at the module's more generous default.
DEFAULT_TIMEOUT_SECONDS = 30.0


@dataclass(slots=True)
class LambdaContext:
    """The context object Lambda passes a handler: the request id, the function's names
    and the time left, which runs down from `timeout_seconds` on `now` (real monotonic
    time by default; give a `ManualClock`'s `now` to make the deadline follow it)."""

    function_name: str = DEFAULT_FUNCTION_NAME
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    region: str = "us-east-1"
    account_id: str = "123456789012"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 256
    now: Callable[[], float] = time.monotonic
    _started: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        self._started = self.now()

    @property
    def invoked_function_arn(self) -> str:
        """The function's ARN, as Lambda gives it."""
        return f"arn:aws:lambda:{self.region}:{self.account_id}:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        """The function's log group."""
        return f"/aws/lambda/{self.function_name}"

    @property
    def deadline(self) -> float:
        """When Lambda would stop this invocation, on `now`'s clock."""
        return self._started + self.timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds until Lambda would stop this invocation (never negative)."""
        return max(0, int((self.deadline - self.now()) * 1000))


# ------------------------------------------------------------------ stream records


def stream_record(
    table: str,
    keys: Mapping[str, Any],
    *,
    event_name: Any = "INSERT",
    new_image: Mapping[str, Any] | None = None,
    old_image: Mapping[str, Any] | None = None,
    sequence_number: Any = "100000000000000000001",
    region: str = "us-east-1",
    account: str = "123456789012",
    arrival: int = CREATED_AT + 100,
) -> dict[str, Any]:
    """A record of `table`'s DynamoDB stream (NEW_AND_OLD_IMAGES) as Lambda delivers it,
    with its `eventSourceARN`; every part is taken as given, malformed ones included."""
    stream_arn = f"arn:aws:dynamodb:{region}:{account}:table/{table}/stream/{STREAM_LABEL}"
    body: dict[str, Any] = {"ApproximateCreationDateTime": arrival, "Keys": keys}
    if new_image is not None:
        body["NewImage"] = new_image
    if old_image is not None:
        body["OldImage"] = old_image
    body["SequenceNumber"] = sequence_number
    body["SizeBytes"] = len(json.dumps([new_image, old_image], separators=(",", ":")))
    body["StreamViewType"] = "NEW_AND_OLD_IMAGES"
    return {
        "eventID": uuid.uuid5(uuid.NAMESPACE_URL, f"{stream_arn}/{sequence_number}").hex,
        "eventName": event_name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": region,
        "dynamodb": body,
        "eventSourceARN": stream_arn,
    }


def stream_event(*records: Mapping[str, Any]) -> dict[str, Any]:
    """The event of one invocation: `{"Records": [...]}`."""
    return {"Records": [dict(r) for r in records]}
