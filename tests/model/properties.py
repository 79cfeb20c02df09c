"""The properties the model checks: safety after every step, liveness at the end.

Each returns a list of violations (empty: it holds), each a sentence that names the
property, so a failing test says which rule broke and in which state.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from tests.model.core import lease_bound
from tests.model.world import T0, World, describe_lock

Status = Literal["idle", "running", "done", "crashed", "raised"]

AT_MOST_ONCE = "at-most-once"
LEASE = "lease-bounded"
DEADLINE = "deadline-kept"
DUPLICATES = "messages-bounded"
NO_ESCAPE = "no-exception-escapes"
HONEST = "final-means-finished"
LIVENESS = "liveness"
PROPERTIES = (AT_MOST_ONCE, LEASE, DEADLINE, DUPLICATES, NO_ESCAPE, HONEST, LIVENESS)


@dataclass(frozen=True, slots=True)
class Pending:
    """The call an actor waits on, as the properties and traces need it."""

    label: str
    kind: str
    wake: float | None
    job_id: str | None


@dataclass(frozen=True, slots=True)
class Answered:
    """One call of an actor and its fate: replayed to restore the actor."""

    label: str
    #: ("value", v) or ("raise", factory of the exception).
    answer: tuple[str, object]
    #: The time the actor saw when it resumed.
    now: float
    key: str


@dataclass(frozen=True, slots=True)
class ActorState:
    """Where one actor stands (its thread is rebuilt from `history` when restored)."""

    status: Status = "idle"
    timeout: float | None = None
    start: float | None = None
    #: The deadline the actor's caller has (Lambda's; a `trigger_job` caller's own).
    deadline: float | None = None
    now: float | None = None
    history: tuple[Answered, ...] = ()
    pending: Pending | None = None
    #: Jobs this actor sent a message for and has not marked yet.
    sent: frozenset[str] = field(default_factory=frozenset)
    summary: str | None = None
    #: Jobs the actor reported as finished (skipped: already triggered or started).
    final: tuple[str, ...] = ()

    def key(self) -> tuple[object, ...]:
        if self.status in ("done", "crashed"):
            # A finished actor acts no more: only its deadline still matters (its lease).
            return (self.status, self.deadline, self.final)
        pending = (self.pending.label, self.pending.wake) if self.pending else None
        return (
            self.status,
            self.timeout,
            self.start,
            tuple(a.key for a in self.history),
            pending,
            tuple(sorted(self.sent)),
            self.summary,
        )


def _seconds(value: float) -> str:
    return f"{value - T0:+g}"


def safety(world: World, actors: Mapping[str, ActorState]) -> list[tuple[str, str]]:
    """(property, why) for every safety property the state breaks."""
    broken: list[tuple[str, str]] = []
    for job_id, starts in sorted(world.starts.items()):
        if starts > 1:
            broken.append((AT_MOST_ONCE, f"{job_id}: reassembly started {starts} times"))
    for job_id in sorted(world.jobs):
        sent, allowed = world.messages(job_id), 1 + world.faults_after_send.get(job_id, 0)
        if sent > allowed:
            broken.append(
                (
                    DUPLICATES,
                    f"{job_id}: {sent} messages, at most {allowed} allowed "
                    f"(1 + {allowed - 1} fault(s) after a send)",
                )
            )
    broken += _leases(world, actors)
    for name, actor in sorted(actors.items()):
        broken += [(DEADLINE, f"{name}: {why}") for why in _deadline(actor)]
        for job_id in actor.final:
            item = world.lock(job_id) or {}
            if "enqueued_at" not in item and "reassembly_started_at" not in item:
                broken.append(
                    (
                        HONEST,
                        f"{name}: reported {job_id} as already triggered, but its lock is "
                        f"unfinished ({describe_lock(world.lock(job_id))}): nothing retries it",
                    )
                )
        if actor.status == "raised":
            broken.append((NO_ESCAPE, f"{name}: its entry point raised {actor.summary}"))
    return broken


def _number(item: Mapping[str, Mapping[str, str]], name: str) -> int | None:
    value = item.get(name)
    return int(value["N"]) if value is not None and "N" in value else None


def _leases(world: World, actors: Mapping[str, ActorState]) -> list[tuple[str, str]]:
    broken = []
    for job_id, item in sorted(world.locks.items.items()):
        holder = item.get("holder", {}).get("S")
        lease = _number(item, "lease_expires_at")
        if holder is None or lease is None or lease == 0:
            continue
        name = world.holders.get(holder)
        actor = actors.get(name) if name else None
        if actor is None or actor.deadline is None:
            continue
        starts = [t for t in (_number(item, "triggered_at"), _number(item, "taken_over_at")) if t]
        written = max(starts) if starts else int(world.clock)
        bound = lease_bound(actor.deadline, written)
        if lease > bound:
            broken.append(
                (
                    LEASE,
                    f"{job_id}: {name}'s lease ends at {_seconds(lease)}, after its deadline "
                    f"{_seconds(actor.deadline)} or 900 s after it took the lock "
                    f"({_seconds(written + 900)})",
                )
            )
    return broken


def _deadline(actor: ActorState) -> list[str]:
    if actor.deadline is None or actor.now is None:
        return []
    deadline = actor.deadline
    pending = actor.pending
    if actor.status == "running" and pending is not None:
        if pending.kind == "sleep" and pending.wake is not None and pending.wake > deadline:
            return [
                f"sleeps until {_seconds(pending.wake)}, past its deadline {_seconds(deadline)}"
            ]
        if pending.kind != "sleep" and actor.now >= deadline:
            return [
                f"calls {pending.label} at {_seconds(actor.now)}, at or past its deadline "
                f"{_seconds(deadline)}"
            ]
    if actor.status == "done" and actor.now > deadline:
        return [f"answers at {_seconds(actor.now)}, past its deadline {_seconds(deadline)}"]
    return []


def liveness(world: World) -> list[tuple[str, str]]:
    """After the faults stopped and the reconciler ran: every complete, chunked job has
    a message and a lock that is marked or claimed (nothing left that only a person,
    with `doctor --repair`, could finish)."""
    broken = []
    for job_id in world.complete_jobs():
        item = world.lock(job_id) or {}
        finished = "enqueued_at" in item or "reassembly_started_at" in item
        if world.messages(job_id) == 0 or not finished:
            state = "no lock" if not item else ("marked" if finished else "lock unfinished")
            broken.append(
                (
                    LIVENESS,
                    f"{job_id}: complete and chunked, but {world.messages(job_id)} message(s) "
                    f"and {state} after the reconciler's runs",
                )
            )
    return broken
