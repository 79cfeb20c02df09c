"""The world around the code under test: tables, queue, clock, and what the
pipeline's other programs do to them (video workers, the chunker, the media worker).

Everything here is plain data, copied whole to save a state and hashed to compare
two; the code under test reaches it only through the gateways of `core`.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any

from tests.model.dynamo import Attr, Table

#: Where simulated time starts (epoch seconds); traces show times relative to it.
T0 = 1_794_700_000.0
#: DynamoDB Streams sequence numbers of the model's records: base + a record's number.
SEQUENCE_BASE = 10**20
LOCK_TABLE = "ReassemblyTriggered"


@dataclass
class Message:
    """One message on the reassembly queue."""

    message_id: str
    job_id: str
    sent_at: float
    consumed: bool = False


@dataclass
class World:
    """Everything that is not the code under test, at one instant."""

    clock: float = T0
    #: Jobs: job_id -> {"status", "total_segments", "created_at"} (plain values).
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: SegmentCompletions: job_id -> recorded indexes.
    completions: dict[str, set[int]] = field(default_factory=dict)
    locks: Table = field(default_factory=lambda: Table(LOCK_TABLE))
    queue: list[Message] = field(default_factory=list)
    #: Successful media-worker claims per job: reassembly starts.
    starts: dict[str, int] = field(default_factory=dict)
    #: Faults that hit a job after a message for it was sent (crash, lost answer,
    #: error between the send and the mark; a legacy lock counts as one).
    faults_after_send: dict[str, int] = field(default_factory=dict)
    crashes_left: int = 0
    lost_left: int = 0
    errors_left: int = 0
    #: Lock holder string -> the actor whose evaluation wrote it.
    holders: dict[str, str] = field(default_factory=dict)

    def snapshot(self) -> World:
        """A copy no later step of either can change (a field-wise copy: `deepcopy` was
        a fifth of the search's time)."""
        locks = Table(self.locks.name)
        locks.items = {
            job_id: {name: _copy_attr(attr) for name, attr in item.items()}
            for job_id, item in self.locks.items.items()
        }
        return World(
            clock=self.clock,
            jobs={job_id: dict(job) for job_id, job in self.jobs.items()},
            completions={job_id: set(done) for job_id, done in self.completions.items()},
            locks=locks,
            queue=[copy.copy(message) for message in self.queue],
            starts=dict(self.starts),
            faults_after_send=dict(self.faults_after_send),
            crashes_left=self.crashes_left,
            lost_left=self.lost_left,
            errors_left=self.errors_left,
            holders=dict(self.holders),
        )

    # ---------------------------------------------------------------- the pipeline

    def add_job(self, job_id: str, total: int, *, status: str, created_at: float) -> None:
        self.jobs[job_id] = {
            "status": status,
            "total_segments": total,
            "created_at": int(created_at),
        }
        self.completions.setdefault(job_id, set())

    def write_completion(self, job_id: str, index: int) -> None:
        """A video worker records a segment."""
        self.completions.setdefault(job_id, set()).add(index)

    def complete_chunking(self, job_id: str) -> None:
        """The chunker marks the Job `chunking_complete`."""
        self.jobs[job_id]["status"] = "chunking_complete"

    def enqueue(self, job_id: str) -> str:
        """SQS carries out a send."""
        message_id = f"m-{len(self.queue) + 1}"
        self.queue.append(Message(message_id, job_id, self.clock))
        return message_id

    def claim(self, message_id: str) -> bool:
        """The media worker receives a message and claims its job (the contract's
        conditional update); True when reassembly starts."""
        message = next(m for m in self.queue if m.message_id == message_id)
        message.consumed = True
        try:
            self.locks.update_item(
                TableName=LOCK_TABLE,
                Key={"job_id": {"S": message.job_id}},
                UpdateExpression="SET reassembly_started_at = :now",
                ConditionExpression=(
                    "attribute_exists(job_id) AND attribute_not_exists(reassembly_started_at)"
                ),
                ExpressionAttributeValues={":now": {"N": str(int(self.clock))}},
            )
        except Exception:  # another worker has it: the message is deleted, nothing runs
            return False
        self.starts[message.job_id] = self.starts.get(message.job_id, 0) + 1
        return True

    def put_legacy_lock(self, job_id: str, triggered_at: float) -> None:
        """A lock written by the replaced Lambda: `job_id`, `triggered_at`, `ttl` only.
        Its writer may have sent a message we cannot see: one duplicate is allowed."""
        self.locks.items[job_id] = {
            "job_id": {"S": job_id},
            "triggered_at": {"N": str(int(triggered_at))},
            "ttl": {"N": str(int(triggered_at) + 90 * 86400)},
        }
        self.faults_after_send[job_id] = self.faults_after_send.get(job_id, 0) + 1

    def put_orphaned_lock(self, job_id: str, triggered_at: float, lease: float) -> None:
        """A lock whose holder died before the world began, having sent nothing."""
        self.locks.items[job_id] = {
            "job_id": {"S": job_id},
            "triggered_at": {"N": str(int(triggered_at))},
            "ttl": {"N": str(int(triggered_at) + 90 * 86400)},
            "holder": {"S": "ghost/000000000000"},
            "lease_expires_at": {"N": str(int(lease))},
        }

    # ---------------------------------------------------------------- reading it

    def messages(self, job_id: str) -> int:
        return sum(1 for m in self.queue if m.job_id == job_id)

    def lock(self, job_id: str) -> dict[str, Attr] | None:
        return self.locks.items.get(job_id)

    def complete_jobs(self) -> list[str]:
        """Chunked jobs with every segment recorded: each is owed one reassembly."""
        return [
            job_id
            for job_id, job in sorted(self.jobs.items())
            if job["status"] == "chunking_complete"
            and set(range(job["total_segments"])) <= self.completions.get(job_id, set())
        ]

    def key(self) -> str:
        """Everything that decides the future, as one comparable string."""
        return json.dumps(
            [
                self.clock,
                self.jobs,
                {j: sorted(c) for j, c in self.completions.items()},
                self.locks.items,
                [(m.message_id, m.job_id, m.consumed) for m in self.queue],
                self.starts,
                self.faults_after_send,
                [self.crashes_left, self.lost_left, self.errors_left],
            ],
            sort_keys=True,
        )

    # ---------------------------------------------------------------- traces

    def describe(self) -> str:
        """The state in one line, times relative to T0 (`+30` = T0 + 30 s)."""
        parts = [f"t={self.clock - T0:+g}"]
        for job_id in sorted(self.jobs):
            job = self.jobs[job_id]
            segments = "".join(
                "x" if i in self.completions.get(job_id, set()) else "."
                for i in range(job["total_segments"])
            )
            status = "chunked" if job["status"] == "chunking_complete" else "chunking"
            lock = self.lock(job_id)
            parts.append(
                f"{job_id}[{status} {segments} lock={describe_lock(lock)} "
                f"msgs={self.messages(job_id)} starts={self.starts.get(job_id, 0)}]"
            )
        return " ".join(parts)


def _copy_attr(attr: Attr) -> Attr:
    """A DynamoDB attribute value; scalars (`S`, `N`) copied flat, the rest deeply."""
    ((kind, value),) = attr.items()
    return {kind: value} if isinstance(value, str) else copy.deepcopy(attr)


def _plain(attr: Attr | None) -> str | None:
    if attr is None:
        return None
    ((kind, value),) = attr.items()
    return str(value) if kind in ("S", "N") else f"{kind}:{value}"


def describe_lock(item: dict[str, Attr] | None) -> str:
    """A lock item in a few words: holder, lease (relative), marks."""
    if item is None:
        return "-"
    words = []
    holder = _plain(item.get("holder"))
    words.append(f"holder={holder.split('/')[0] if holder else 'legacy'}")
    lease = _plain(item.get("lease_expires_at"))
    if lease is not None:
        words.append("released" if lease == "0" else f"lease={float(lease) - T0:+g}")
    takeovers = _plain(item.get("takeovers"))
    if takeovers:
        words.append(f"takeovers={takeovers}")
    if "enqueued_at" in item:
        words.append("marked")
    if "reassembly_started_at" in item:
        words.append("claimed")
    return "{" + " ".join(words) + "}"
