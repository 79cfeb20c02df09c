"""The context object Lambda passes a handler, for invocations made in this process."""

from __future__ import annotations

from reassembly_trigger.testing.inputs import (
    DEFAULT_FUNCTION_NAME,
    DEFAULT_TIMEOUT_SECONDS,
    LambdaContext,
)

__all__ = [
    "DEFAULT_FUNCTION_NAME",
    "DEFAULT_TIMEOUT_SECONDS",
    "LOCAL_ACCOUNT",
    "LocalLambdaContext",
]
#: The account every local ARN names (moto's default).
LOCAL_ACCOUNT = "123456789012"


#: What the handler reads from Lambda's context: the request id and the time left,
#: running down from `timeout_seconds` on `now` (real monotonic time by default, as in
#: Lambda; a simulated clock's `now` in simulations and tests), so the handler's
#: deadline, and the lease of any lock it takes, follow that clock. The users' own
#: (`reassembly_trigger.testing.LambdaContext`), under the name the tools know.
LocalLambdaContext = LambdaContext
