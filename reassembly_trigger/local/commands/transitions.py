"""How a transition is shown: by `explain` (from logs), `doctor` (its dry run), `poll`
and `replay` (from the outcomes they run), the same fields in the same words."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reassembly_trigger.outcome import JobOutcome


def transition_rows(outcomes: Iterable[JobOutcome]) -> list[dict[str, Any]]:
    """Each transition of each job as its log event has it (`job_id`, states, trigger,
    the counts known then, the facts): the same rows `explain` reads from logs."""
    return [
        {"job_id": outcome.job_id, **step.fields()}
        for outcome in outcomes
        for step in outcome.history
    ]


def transition_facts(event: dict[str, Any]) -> str:
    """The fields that explain one transition, compactly (`3/4 segments`, `would=acquire`)."""
    facts: list[str] = []
    trigger, reason = event.get("trigger"), event.get("reason")
    if "completions" in event and (trigger == "count" or reason == "incomplete"):
        facts.append(f"{event['completions']}/{event.get('total_segments', '?')} segments")
        if event.get("pages", 1) != 1:
            facts.append(f"{event['pages']} pages")
    if "status" in event and (trigger == "load" or reason):
        facts.append(f"status={event['status']}")
    for key in ("would", "message_id", "waited_seconds", "lease_expires_at", "error_code"):
        if key in event:
            facts.append(f"{key}={event[key]}")
    if "error" in event:
        facts.append(f"error={str(event['error'])[:80]}")
    if event.get("errors"):
        facts.append("errors=" + "; ".join(map(str, event["errors"])))
    if "lease_released" in event:
        facts.append(f"lease_released={event['lease_released']}")
    lock = event.get("lock")
    if isinstance(lock, dict):
        facts.append("lock: " + lock_summary(lock))
    if event.get("dry_run"):
        facts.append("(dry run)")
    return " ".join(facts)


def lock_summary(lock: dict[str, Any]) -> str:
    """A lock as logged, in a few words."""
    parts = [f"holder {lock.get('holder', '-')}"]
    lease = lock.get("lease_expires_at")
    if lease == 0:
        parts.append("released")
    elif lease is not None:
        parts.append(f"lease to {lease}")
    if "enqueued_at" in lock:
        parts.append(f"enqueued {lock['enqueued_at']}")
    if "reassembly_started_at" in lock:
        parts.append(f"reassembly started {lock['reassembly_started_at']}")
    if lock.get("takeovers"):
        parts.append(f"{lock['takeovers']} takeovers")
    return ", ".join(parts)
