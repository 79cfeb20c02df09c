"""Five bugs planted in patched copies of the real rules, to show the model finds them.

Each is a context manager that replaces one rule of the core (a method of
`JobEvaluation` or `ReassemblyLock`) with a copy that breaks it, and restores the
real one on exit. Like `core`, this module knows the core's internals: when the core
changes, a patch that no longer applies fails loudly (`AttributeError` on the name).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from reassembly_trigger.errors import DeadlineReached
from reassembly_trigger.evaluation import JobEvaluation
from reassembly_trigger.gateways import ReassemblyLock
from reassembly_trigger.lock import LockRecord
from reassembly_trigger.machine import SkipReason, Trigger
from reassembly_trigger.timing import LAMBDA_MAX_TIMEOUT_SECONDS

#: The worst case the code reserved before it took a lock until issue 20: two DynamoDB
#: calls of 18 s (3 attempts of 1 + 4 s, 3 s of backoff), one SQS call of 6 s, 1 s to
#: answer.
WORST_CASE_LOCK_SECONDS = 2 * 18.0 + 6.0 + 1.0


@contextlib.contextmanager
def _patched(owner: type, name: str, replacement: Callable[..., Any]) -> Iterator[None]:
    original = owner.__dict__[name]  # KeyError: the rule moved; adapt the patch
    setattr(owner, name, replacement)
    try:
        yield
    finally:
        setattr(owner, name, original)


def lease_outlives_deadline() -> contextlib.AbstractContextManager[None]:
    """Bug 1: the lease is the 900 s maximum, whatever the holder's deadline."""

    def lease(self: JobEvaluation) -> int:
        return self._now() + LAMBDA_MAX_TIMEOUT_SECONDS

    return _patched(JobEvaluation, "_lease", lease)


def take_over_unconditioned() -> contextlib.AbstractContextManager[None]:
    """Bug 2: a take-over conditioned only on the lock existing, not on it as read."""

    def take_over(
        self: ReassemblyLock, seen: LockRecord, holder: str, now: int, lease_expires_at: int
    ) -> None:
        self.conditional_update(
            seen.job_id,
            update="SET #holder = :holder, #lease = :lease, #taken = :now, #takeovers = :takeovers",
            condition="attribute_exists(job_id)",
            names={
                "#holder": "holder",
                "#lease": "lease_expires_at",
                "#taken": "taken_over_at",
                "#takeovers": "takeovers",
            },
            values={
                ":holder": {"S": holder},
                ":lease": {"N": str(lease_expires_at)},
                ":now": {"N": str(now)},
                ":takeovers": {"N": str(seen.takeovers + 1)},
            },
        )

    return _patched(ReassemblyLock, "take_over", take_over)


def mark_before_send() -> contextlib.AbstractContextManager[None]:
    """Bug 3: the lock is marked as enqueued before the message is sent."""

    def send_and_mark(self: JobEvaluation) -> None:
        self._gw.lock.mark_enqueued(self.job_id, self._holder, "to-be-sent", self._now())
        self.message_id = self._gw.queue.send(self.job_id)
        self._fire(Trigger.SEND, message_id=self.message_id)
        self._fire(Trigger.MARK, message_id=self.message_id)

    return _patched(JobEvaluation, "_send_and_mark", send_and_mark)


def stream_skips_held_job() -> contextlib.AbstractContextManager[None]:
    """Bug 4: the stream path (the one that waits for holders) reports a job held by
    someone else as already triggered, instead of waiting or deferring."""
    original = JobEvaluation._resolve_contention

    def resolve(self: JobEvaluation, seen: LockRecord | None) -> bool:
        held = seen is not None and not seen.finished and not self._is_own(seen)
        if self._lease_wait_seconds > 0 and held:
            assert seen is not None
            self._fire(Trigger.SKIP, reason=SkipReason.ALREADY_TRIGGERED, lock=seen.as_log())
            return False
        return original(self, seen)

    return _patched(JobEvaluation, "_resolve_contention", resolve)


def budget_refuses_normal_case() -> contextlib.AbstractContextManager[None]:
    """Bug 5: taking a lock is refused unless its worst case fits (43 s), although its
    normal case (three calls of milliseconds) fits: the rule before issue 20."""
    original = JobEvaluation._take_lock

    def take_lock(self: JobEvaluation) -> bool:
        left = self._invocation.deadline - self._gw.clock.now()
        if left < WORST_CASE_LOCK_SECONDS:
            raise DeadlineReached("take the lock and send", left, WORST_CASE_LOCK_SECONDS)
        return original(self)

    return _patched(JobEvaluation, "_take_lock", take_lock)
