"""The context object Lambda passes a handler, for invocations made in this process."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

#: The Terraform module's default function_name (so local metrics and log groups match).
DEFAULT_FUNCTION_NAME = "stereo-spot-reassembly-trigger"
#: The timeout of the Lambda this project replaces (`../shared/contract`): tests and
#: tools run where users run, not at the module's more generous default.
DEFAULT_TIMEOUT_SECONDS = 30.0
#: The account every local ARN names (moto's default).
LOCAL_ACCOUNT = "123456789012"


@dataclass(slots=True)
class LocalLambdaContext:
    """What the handler reads from Lambda's context: the request id and the time left.

    The remaining time runs down from `timeout_seconds` on `now` (real monotonic time
    by default, as in Lambda; a simulated clock's `now` in simulations and tests), so
    the handler's deadline, and the lease of any lock it takes, follow that clock.
    """

    function_name: str = DEFAULT_FUNCTION_NAME
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    region: str = "us-east-1"
    account_id: str = LOCAL_ACCOUNT
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
