"""Each job's story, rebuilt from the Lambda's logs.

Every transition of the state machine is one JSON log event (`"event": "transition"`,
with `job_id`, `source`, `dest`, `trigger`, `aws_request_id` and, on skips and
failures, `reason`). This module finds those events wherever they sit:

- plain JSON lines, as the handler prints them;
- lines with a prefix (`aws logs tail`: `<time> <stream> {...}`, Lambda's text format:
  `<time>\\t<request id>\\tINFO\\t{...}`), and pretty-printed JSON over several lines;
- wrappers whose `message` (or `@message`) holds the event as a string or an object:
  Lambda's JSON log format, CloudWatch Logs exports (`aws logs filter-log-events`:
  `{"events": [{"timestamp": ..., "message": "..."}]}`), Logs Insights results;

and ignores everything else (START/END/REPORT lines, EMF metric lines, other events).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from reassembly_trigger.local.commands.transitions import transition_facts
from reassembly_trigger.machine import FINAL_STATES

_FINAL = {state.value for state in FINAL_STATES}
#: Keys under which wrappers carry the logged message.
_MESSAGE_KEYS = ("message", "@message")
#: Keys under which wrappers carry lists of log events.
_LIST_KEYS = ("events", "results", "logEvents")


def json_values(text: str) -> Iterator[Any]:
    """Every JSON object in `text`, wherever it starts; text around them is skipped."""
    decoder = json.JSONDecoder()
    position = 0
    while (start := text.find("{", position)) >= 0:
        try:
            value, end = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            position = start + 1
            continue
        yield value
        position = end


def transition_events(
    value: Any, inherited: dict[str, Any] | None = None
) -> Iterator[dict[str, Any]]:
    """The transition events in one decoded JSON value, unwrapping log envelopes.

    An envelope's request id and timestamp are kept for events that lack their own.
    """
    inherited = inherited or {}
    if isinstance(value, list):
        for item in value:
            yield from transition_events(item, inherited)
        return
    if not isinstance(value, dict):
        return
    if value.get("event") == "transition" and "job_id" in value:
        yield {**inherited, **value}
        return
    context = dict(inherited)
    request_id = value.get("requestId") or value.get("aws_request_id")
    if request_id:
        context["aws_request_id"] = request_id
    stamp = value.get("timestamp", value.get("@timestamp"))
    if stamp is not None:
        context["timestamp"] = stamp
    if value.get("field") in _MESSAGE_KEYS:  # a Logs Insights result cell
        yield from _inner(value.get("value"), context)
    for key in _MESSAGE_KEYS:
        yield from _inner(value.get(key), context)
    for key in _LIST_KEYS:
        if isinstance(value.get(key), list):
            yield from transition_events(value[key], context)


def _inner(message: Any, context: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The events in a wrapper's message: an object, a list, or text holding JSON."""
    values = list(json_values(message)) if isinstance(message, str) else message
    return transition_events(values, context)


def read_events(texts: Iterable[str]) -> list[dict[str, Any]]:
    """The transition events of several log texts, duplicates dropped, in time order."""
    unique: dict[str, dict[str, Any]] = {}
    for text in texts:
        for value in json_values(text):
            for event in transition_events(value):
                unique.setdefault(json.dumps(event, sort_keys=True, default=str), event)
    events = list(unique.values())
    # Stable: events without a time keep their place relative to each other.
    if all(epoch_seconds(e.get("timestamp")) is not None for e in events):
        events.sort(key=lambda e: epoch_seconds(e.get("timestamp")) or 0.0)
    return events


def epoch_seconds(stamp: Any) -> float | None:
    """An ISO-8601 string, or epoch seconds or milliseconds, as epoch seconds."""
    if isinstance(stamp, bool):
        return None
    if isinstance(stamp, int | float):
        return stamp / 1000.0 if stamp > 100_000_000_000 else float(stamp)
    if isinstance(stamp, str):
        try:
            parsed = datetime.fromisoformat(stamp.replace(" ", "T"))
        except ValueError:
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()
    return None


@dataclass(frozen=True, slots=True)
class Step:
    """One transition of one job."""

    at: float | None
    aws_request_id: str
    source: str
    dest: str
    trigger: str
    reason: str | None
    dry_run: bool
    event: dict[str, Any]

    @classmethod
    def of(cls, event: dict[str, Any]) -> Step:
        """From a transition event."""
        reason = event.get("reason")
        return cls(
            at=epoch_seconds(event.get("timestamp")),
            aws_request_id=str(event.get("aws_request_id") or "?"),
            source=str(event.get("source")),
            dest=str(event.get("dest")),
            trigger=str(event.get("trigger")),
            reason=str(reason) if reason is not None else None,
            dry_run=bool(event.get("dry_run")),
            event=event,
        )

    @property
    def final(self) -> bool:
        """Whether this step ends an evaluation."""
        return self.dest in _FINAL

    @property
    def time(self) -> str:
        """`2026-11-27 10:00:00.123Z`, or `?`."""
        if self.at is None:
            return "?"
        return datetime.fromtimestamp(self.at, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"

    @property
    def facts(self) -> str:
        """The fields that explain this step."""
        return transition_facts(self.event)


@dataclass(slots=True)
class JobStory:
    """One job's transitions across invocations."""

    job_id: str
    steps: list[Step] = field(default_factory=list)

    @property
    def evaluations(self) -> list[list[Step]]:
        """The steps split into evaluations, each one invocation's path through the machine.

        Evaluations of one job can overlap in time (two invocations racing for its lock,
        the reconciler beside the stream path): steps are grouped by request id first,
        whatever interleaves with them, then split where one evaluation ends (a final
        state) or the next begins (`received`), so an invocation that evaluated the job
        twice shows both. Each evaluation keeps its steps in time order, and evaluations
        are listed by their first step; only the last of an invocation may lack a final
        state (a log cut short).
        """
        runs: dict[str, list[list[Step]]] = {}
        for step in self.steps:
            mine = runs.setdefault(step.aws_request_id, [[]])
            if mine[-1] and (mine[-1][-1].final or step.source == "received"):
                mine.append([])
            mine[-1].append(step)
        order = {id(step): position for position, step in enumerate(self.steps)}
        evaluations = [run for own in runs.values() for run in own if run]
        return sorted(evaluations, key=lambda run: order[id(run[0])])

    @property
    def invocations(self) -> list[str]:
        """The request ids that evaluated the job, in order."""
        return list(dict.fromkeys(step.aws_request_id for step in self.steps))

    @property
    def last_outcome(self) -> Step | None:
        """The last final step of a real (not dry-run) evaluation."""
        finals = [s for s in self.steps if s.final and not s.dry_run]
        return finals[-1] if finals else None


@dataclass(frozen=True, slots=True)
class Explanation:
    """Every job's story, and the evaluations' outcomes counted."""

    stories: dict[str, JobStory]

    @classmethod
    def of(cls, events: Iterable[dict[str, Any]], job_id: str | None = None) -> Explanation:
        """Group transition events by job (optionally only `job_id`)."""
        stories: dict[str, JobStory] = {}
        for event in events:
            job = str(event["job_id"])
            if job_id is None or job == job_id:
                stories.setdefault(job, JobStory(job)).steps.append(Step.of(event))
        return cls(stories)

    def outcomes(self) -> Counter[tuple[str, str]]:
        """Evaluations by final state and reason (`("skipped", "incomplete")`)."""
        counts: Counter[tuple[str, str]] = Counter()
        for story in self.stories.values():
            for step in story.steps:
                if step.final and not step.dry_run:
                    counts[(step.dest, step.reason or "")] += 1
        return counts

    def skips_by_reason(self) -> Counter[str]:
        """Skipped evaluations by reason."""
        return Counter(
            {reason: n for (dest, reason), n in self.outcomes().items() if dest == "skipped"}
        )
