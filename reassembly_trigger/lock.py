"""The reassembly lock as data: what a ReassemblyTriggered item means, and its lease.

No boto3 here (the writes are `gateways.ReassemblyLock`'s); these are the rules every
path reads a lock by: the stream handler, `trigger_job`, the reconciler, `doctor`.

**The protocol.** One item per job; the first writer creates it (a conditional put),
sends the job's message, then marks it (`enqueued_at`). The media worker claims it
(`reassembly_started_at`) before it concatenates. So a lock is:

- *finished* once marked or claimed: nothing is owed any more, whoever looks;
- *held* while unfinished and within its holder's lease: the holder may still send,
  so nobody else may (waiting for it, or deferring to a later look);
- *abandoned* once unfinished and past its lease (plus clock skew): its holder is gone
  (crashed, timed out, or released it after a failure), and exactly one taker may take
  it over, with a write conditioned on every decisive attribute being as read.

**Why a lease, and why it is bounded.** A holder that dies between the lock and the
send would otherwise block its job for ever (a stuck job, the worst failure). The
lease is the holder's own deadline (Lambda stops it then), and never more than
Lambda's 900 s maximum after the lock was taken: whatever an item says (a lease a year
ahead, a start in the future), a holder cannot outlive it. A lock written by the
replaced Lambda has no lease: it is leased for `legacy_lease_seconds` from
`triggered_at`. A start that no clock could give (in the future beyond the skew, or
missing) is not believed: such a lock has no believable holder, and is over.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reassembly_trigger.items import (
    AttributeValue,
    counter,
    deserialize_item,
    is_set,
    shown,
    string,
    timestamp,
    whole_number,
)
from reassembly_trigger.timing import CLOCK_SKEW_SECONDS, LAMBDA_MAX_TIMEOUT_SECONDS

#: The lease value that marks a lock given up by its holder (a release).
RELEASED = 0
#: The attributes whose values decide what a lock means; a take-over is conditioned on
#: every one of them being exactly as read (present with the same raw value, or absent).
DECISIVE_LOCK_ATTRIBUTES = (
    "holder",
    "lease_expires_at",
    "triggered_at",
    "taken_over_at",
    "takeovers",
    "enqueued_at",
    "reassembly_started_at",
)


@dataclass(frozen=True, slots=True)
class LockRecord:
    """A ReassemblyTriggered item: who triggered the job, until when, and how far it got.

    `raw` is the item exactly as read; every other field is a lenient reading of it
    (None where the attribute is missing or of a type that cannot mean what it should).
    """

    job_id: str
    raw: Mapping[str, AttributeValue]
    triggered_at: int | None = None
    holder: str | None = None
    #: Epoch seconds after which the holder is certainly gone; None on locks written
    #: before leases existed, 0 once the holder released it.
    lease_expires_at: int | None = None
    taken_over_at: int | None = None
    message_id: str | None = None
    enqueued: bool = False
    reassembly_started: bool = False
    takeovers: int = 0
    resends: int = 0

    @classmethod
    def from_raw(cls, raw: Mapping[str, AttributeValue]) -> LockRecord:
        """Read a lock item given as DynamoDB JSON, whatever the shape of its attributes."""
        return cls(
            job_id=string(raw.get("job_id")) or "",
            raw=dict(raw),
            triggered_at=timestamp(raw.get("triggered_at")),
            holder=string(raw.get("holder")),
            lease_expires_at=timestamp(raw.get("lease_expires_at")),
            taken_over_at=timestamp(raw.get("taken_over_at")),
            message_id=string(raw.get("message_id")),
            enqueued=is_set(raw.get("enqueued_at")),
            reassembly_started=is_set(raw.get("reassembly_started_at")),
            takeovers=counter(raw.get("takeovers")),
            resends=counter(raw.get("resends")),
        )

    @property
    def enqueued_at(self) -> int | None:
        """When the holder recorded its send (None if not, or not a number)."""
        return timestamp(self.raw.get("enqueued_at")) if self.enqueued else None

    @property
    def reassembly_started_at(self) -> int | None:
        """When the media worker claimed the job (None if not, or not a number)."""
        return timestamp(self.raw.get("reassembly_started_at")) if self.reassembly_started else None

    @property
    def finished(self) -> bool:
        """Marked as enqueued or claimed by the media worker: nothing is owed any more.

        Never skip a job as final on less: an unfinished lock may belong to a holder
        that dies before its send, and a job skipped as final would be stuck.
        """
        return self.enqueued or self.reassembly_started

    def lease_end(self, legacy_lease_seconds: int, now: float) -> int:
        """When the holder's lease ends: its `lease_expires_at`, never more than 900 s
        after the lock was taken or last taken over (`RELEASED` when no start is
        believable); a legacy lock's is `legacy_lease_seconds` after its start."""
        starts = [t for t in (self.triggered_at, self.taken_over_at) if t is not None]
        start = max(starts) if starts else None
        if start is None or start > now + CLOCK_SKEW_SECONDS:
            return RELEASED
        cap = start + LAMBDA_MAX_TIMEOUT_SECONDS
        if self.lease_expires_at is not None:
            return min(self.lease_expires_at, cap)
        return min(start + legacy_lease_seconds, cap)

    def lease_over(self, legacy_lease_seconds: int, now: float) -> bool:
        """Whether the lease ended at least `CLOCK_SKEW_SECONDS` ago: only then may the
        lock be taken over (hosts' clocks differ by less; a holder whose clock runs
        behind ours is never taken over while it may still send)."""
        return now >= self.lease_end(legacy_lease_seconds, now) + CLOCK_SKEW_SECONDS

    def held_by(self, holder: str) -> bool:
        """Unfinished and held by `holder`: a write of ours whose answer was lost (a
        create or take-over that went through) is recognised by the holder id, which is
        unique per evaluation, so an evaluation never waits for itself."""
        return self.holder == holder and not self.finished

    def as_log(self) -> dict[str, Any]:
        """The lock as logged: its attributes as read, numbers and strings made plain."""
        plain = deserialize_item(self.raw)
        return {
            key: number if (number := whole_number(value)) is not None else shown(value)
            for key, value in sorted(plain.items())
            if key != "job_id"
        }
