"""Time: the clock, the invocation's deadline, the budget, and every timing constant.

The protocol's safety does not come from time budgets: a lock's lease never outlives
its holder's deadline, and whatever a holder leaves unfinished (a lock without a
message, a message without a mark) is taken over once the lease is over, by the next
delivery or by the reconciler. So the budget here never refuses a step for its worst
case (every retry of every call timing out), which at a 30 s timeout refused every
job (issue 20); it only keeps two promises:

- **A step starts when its normal case fits.** Taking the lock needs one bounded call
  plus the normal time of the send and the mark after it (`LOCK_STEP_SECONDS`, about
  0.7 s), not the worst case of all three.
- **Lambda is answered before the deadline, however slow AWS is.** Every AWS call made
  inside `calls_within(budget)` is bounded by the time left (`clients.bound_by_deadline`):
  each attempt's read timeout is cut to what remains after `ANSWER_RESERVE_SECONDS`,
  an attempt is not started when less than `CALL_FLOOR_SECONDS` remains, and a retry
  whose backoff and attempt would not fit is declined. The call then fails with
  `DeadlineReached`, the job is reported failed, and its lease (the deadline) covers it.

Every timing constant of the Lambda lives here; `LAMBDA_MAX_TIMEOUT_SECONDS` is the
one name of Lambda's 900 s limit (the longest lease, the longest caller deadline).
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol

from reassembly_trigger.errors import DeadlineReached

# ----------------------------------------------------------------- Lambda and clocks

#: Lambda's maximum timeout. No holder outlives it: whatever a lock says, its lease is
#: over this long after it was taken; no caller's deadline and no setting goes beyond.
LAMBDA_MAX_TIMEOUT_SECONDS = 900
#: Clocks of Lambda hosts agree to well under this; a lease counts as over only once it
#: is this far in the past, and a start this far in the future is not believed.
CLOCK_SKEW_SECONDS = 2

# ------------------------------------------------------------------- one AWS call

#: Connect timeout of every attempt (in-region TCP and TLS take milliseconds; a connect
#: that times out is retried by botocore when time allows).
CONNECT_TIMEOUT_SECONDS = 0.3
#: Read timeout of an attempt when time allows (DynamoDB and SQS answer in
#: milliseconds; a slower answer is retried, or the job is retried).
READ_TIMEOUT_SECONDS = 2.0
#: The shortest read timeout an attempt is started with.
MIN_READ_TIMEOUT_SECONDS = 0.2
#: The least time an attempt needs before it may start: its connect and its shortest
#: read both fit, so a started attempt can never outlast the deadline.
CALL_FLOOR_SECONDS = CONNECT_TIMEOUT_SECONDS + MIN_READ_TIMEOUT_SECONDS
#: DynamoDB attempts per call (botocore's standard mode: throttling and 5xx retried).
DYNAMODB_MAX_ATTEMPTS = 3
#: SendMessage attempts: one. A send that SQS carried out but answered too late must not
#: be sent again by botocore; the job fails and its retry sends at most once more.
SQS_MAX_ATTEMPTS = 1
#: How long a DynamoDB or SQS call normally takes, generously (tens of milliseconds in
#: region). Steps are started when their calls' normal case fits, never refused for
#: their worst case.
NORMAL_CALL_SECONDS = 0.1

# -------------------------------------------------------------------- the steps

#: Time kept in hand to answer Lambda (build the response, write the metrics line).
ANSWER_RESERVE_SECONDS = 0.25
#: Taking the lock: the lock write may start, and the send and the mark after it fit in
#: their normal case. With less, a lock would likely be left without its message (the
#: next delivery takes it over after the lease, so this buys liveness, not safety).
LOCK_STEP_SECONDS = CALL_FLOOR_SECONDS + 2 * NORMAL_CALL_SECONDS
#: A reconcile chunk: its locks read, then its Jobs read and a count in their normal
#: case (each job's lock step is then started only if it fits, `LOCK_STEP_SECONDS`).
RECONCILE_CHUNK_SECONDS = CALL_FLOOR_SECONDS + 2 * NORMAL_CALL_SECONDS
#: Kept at the end of a reconcile run for writing its cursor (one bounded call).
RECONCILE_CURSOR_SECONDS = CALL_FLOOR_SECONDS
#: The shortest timeout that works for one job (the stream function, the reconciler,
#: `trigger_job`): the answer reserve, then load, count, lock, send and mark each
#: started with a bounded attempt. Lambda timeouts are whole seconds: 1 s cannot fit.
MIN_FUNCTION_TIMEOUT_SECONDS = 2

# ------------------------------------------------------------ waiting for a holder

#: Polling of a lock within its lease: first interval, growth ceiling.
POLL_FIRST_SECONDS = 0.1
POLL_MAX_SECONDS = 1.0
#: The longest jittered pause between two take-over attempts.
TAKE_OVER_BACKOFF_MAX_SECONDS = 1.0

# ------------------------------------------------------------------- lock items

#: The lock's TTL: the table forgets a trigger after this long.
LOCK_TTL_SECONDS = 90 * 24 * 3600
#: How long a claimed re-send (`doctor --repair --resend`) keeps others from re-sending
#: before its message id is recorded; after it, a re-sender that died is not waited for.
RESEND_LEASE_SECONDS = 60


class Clock(Protocol):
    """Wall-clock time and sleeping (simulated in the fault-injection suite)."""

    def now(self) -> float:
        """Epoch seconds."""
        ...

    def sleep(self, seconds: float) -> None:
        """Block for `seconds`."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> float:
        """Epoch seconds."""
        return time.time()

    def sleep(self, seconds: float) -> None:
        """Block for `seconds`."""
        time.sleep(seconds)


@dataclass(frozen=True, slots=True)
class Invocation:
    """The invocation an evaluation runs in: its request id and its deadline."""

    aws_request_id: str
    #: Epoch seconds at which Lambda stops the invocation; a lock taken in it is
    #: leased until then (at most `LAMBDA_MAX_TIMEOUT_SECONDS`), because past it the
    #: holder is certainly gone.
    deadline: float

    @classmethod
    def from_lambda_context(cls, context: Any, clock: Clock) -> Invocation:
        """From Lambda's context object (`aws_request_id`, remaining time)."""
        remaining_ms = context.get_remaining_time_in_millis()
        return cls(
            aws_request_id=str(context.aws_request_id),
            deadline=clock.now() + remaining_ms / 1000.0,
        )

    @classmethod
    def outside_lambda(
        cls, clock: Clock, timeout_seconds: float, request_id: str | None = None
    ) -> Invocation:
        """For callers outside Lambda (CLI, workers): their own timeout is the deadline.

        The timeout is capped at `LAMBDA_MAX_TIMEOUT_SECONDS`, like every lease.
        """
        return cls(
            aws_request_id=request_id or f"local-{uuid.uuid4()}",
            deadline=clock.now() + min(max(timeout_seconds, 0.0), LAMBDA_MAX_TIMEOUT_SECONDS),
        )


@dataclass(frozen=True, slots=True)
class InvocationBudget:
    """The time an invocation has left, less what answering Lambda needs."""

    invocation: Invocation
    clock: Clock

    def seconds_left(self) -> float:
        """Seconds until the deadline."""
        return self.invocation.deadline - self.clock.now()

    def usable_seconds(self) -> float:
        """Seconds that calls may still use: the time left less the answer reserve."""
        return self.seconds_left() - ANSWER_RESERVE_SECONDS

    def ensure(self, step: str, seconds_needed: float = CALL_FLOOR_SECONDS) -> None:
        """Raise `DeadlineReached` unless `step`'s normal case fits before the reserve.

        The default is one bounded call: the check before every page, round or poll.
        """
        usable = self.usable_seconds()
        if usable < seconds_needed:
            raise DeadlineReached(
                step, self.seconds_left(), seconds_needed + ANSWER_RESERVE_SECONDS
            )

    def wait_until(self, seconds: float) -> float:
        """The end of a wait of `seconds` from now, but never past when a lock step fits."""
        return min(
            self.clock.now() + seconds,
            self.invocation.deadline - ANSWER_RESERVE_SECONDS - LOCK_STEP_SECONDS,
        )

    def lease_end(self) -> int:
        """The lease of a lock taken now: the deadline, never over Lambda's maximum."""
        now = int(self.clock.now())
        return min(math.ceil(self.invocation.deadline), now + LAMBDA_MAX_TIMEOUT_SECONDS)


def attempt_read_timeout(
    budget: InvocationBudget, operation: str, floor: float = CALL_FLOOR_SECONDS
) -> float:
    """The read timeout of an attempt starting now: the configured one, cut to the time
    left; `DeadlineReached` when less than `floor` remains (the attempt is not started).

    The one rule that keeps a started attempt inside the deadline (the clients apply it
    to every attempt; the unit tier's in-memory gateways apply it to every call).
    """
    budget.ensure(f"call {operation}", floor)
    return min(READ_TIMEOUT_SECONDS, budget.usable_seconds() - CONNECT_TIMEOUT_SECONDS)


_current: ContextVar[InvocationBudget | None] = ContextVar(
    "reassembly_trigger_budget", default=None
)


@contextmanager
def calls_within(budget: InvocationBudget) -> Iterator[InvocationBudget]:
    """Bound every AWS call this thread makes inside the block by `budget`'s deadline.

    A context variable, so concurrent evaluations (threads of the pool) each carry
    their own; each thread enters its own block.
    """
    token = _current.set(budget)
    try:
        yield budget
    finally:
        _current.reset(token)


def current_budget() -> InvocationBudget | None:
    """The budget of the block this thread is in (None: calls are not bounded)."""
    return _current.get()
