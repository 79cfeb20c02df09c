"""`reassembly-trigger explain [LOGFILE ...] [--job ID]`: each job's story from the logs."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reassembly_trigger.local.commands.common import (
    EXIT_FAILED,
    UsageError,
    plural,
    print_trimmed,
    report_console,
    require_extra,
)
from reassembly_trigger.local.commands.explain.story import Explanation, JobStory, Step, read_events

if TYPE_CHECKING:
    from rich.console import Console, Group
    from rich.table import Table
    from rich.text import Text

_OUTCOME_STYLES = {"enqueued": "green", "skipped": "yellow", "failed": "bold red"}


def register(subparsers: Any) -> None:
    """Add the `explain` command."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "explain",
        help="rebuild each job's timeline from the Lambda's JSON logs",
        description=(
            "Read the Lambda's transition events from log files (or stdin): plain JSON "
            "lines, `aws logs tail` / `aws logs filter-log-events` output, CloudWatch Logs "
            "exports, Lambda's JSON log format; other lines are ignored. Prints each job's "
            "timeline across invocations, its last outcome, and skips counted by reason."
        ),
    )
    parser.add_argument(
        "logfiles",
        nargs="*",
        type=Path,
        metavar="LOGFILE",
        help="log files ('-': stdin; none: stdin, which must be piped in)",
    )
    parser.add_argument("--job", metavar="ID", help="only this job (default: every job)")
    parser.add_argument(
        "--json", action="store_true", help="print one JSON document: timelines and counts"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Print the timelines and the summary; exit 1 when no transition was found."""
    if not args.json:
        require_extra("ops")
    if not args.logfiles and sys.stdin.isatty():
        # Nothing piped in: waiting on the terminal would look like a hang.
        raise UsageError(
            "no LOGFILE given and stdin is a terminal: name the log files, or pipe the "
            "logs in (aws logs tail GROUP --format json | reassembly-trigger explain)"
        )
    texts: list[str] = []
    for path in args.logfiles or [Path("-")]:
        if str(path) == "-":
            if sys.stdin.isatty():
                print("explain: reading the logs from stdin (end with Ctrl-D)", file=sys.stderr)
            texts.append(sys.stdin.read())
        elif not path.is_file():
            raise UsageError(f"no such file: {path}")
        else:
            texts.append(path.read_text(errors="replace"))
    explanation = Explanation.of(read_events(texts), args.job)
    if args.json:
        print(json.dumps(as_json(explanation), indent=2, default=str))
    if not explanation.stories:
        which = f" for job {args.job}" if args.job else ""
        print(f"explain: no transition events{which}", file=sys.stderr)
        return EXIT_FAILED
    if not args.json:
        render(report_console(140), explanation)
    return 0


def as_json(explanation: Explanation) -> dict[str, Any]:
    """The document of `explain --json`: each job's evaluations, last outcome, and counts."""

    def step(s: Step) -> dict[str, Any]:
        keys = ("time", "aws_request_id", "source", "dest", "trigger", "reason", "facts")
        return {key: getattr(s, key) for key in keys}

    jobs = {}
    for job_id, story in explanation.stories.items():
        last = story.last_outcome
        jobs[job_id] = {
            "invocations": story.invocations,
            "evaluations": [[step(s) for s in steps] for steps in story.evaluations],
            "last_outcome": None if last is None else step(last),
        }
    return {
        "jobs": jobs,
        "outcomes": [
            {"dest": dest, "reason": reason or None, "evaluations": count}
            for (dest, reason), count in sorted(explanation.outcomes().items())
        ],
        "skips_by_reason": dict(explanation.skips_by_reason().most_common()),
    }


def render(console: Console, explanation: Explanation) -> None:
    """One timeline per job, then the summary."""
    stories = sorted(
        explanation.stories.values(), key=lambda s: min((st.at or 0.0) for st in s.steps)
    )
    for story in stories:
        print_trimmed(console, _timeline(story), _last_outcome(story), "")
    print_trimmed(console, _summary(explanation))


def _timeline(story: JobStory) -> Table:
    from rich.table import Table
    from rich.text import Text

    table = Table(
        title=f"{story.job_id}: {plural(len(story.evaluations), 'evaluation')} in "
        f"{plural(len(story.invocations), 'invocation')}",
        title_justify="left",
    )
    table.add_column("#", justify="right", no_wrap=True)
    for column in ("time", "aws_request_id", "transition", "trigger", "reason"):
        table.add_column(column, no_wrap=True)
    table.add_column("facts", overflow="fold")
    # One section per evaluation, numbered: concurrent ones are shown apart, not interleaved.
    for number, evaluation in enumerate(story.evaluations, start=1):
        for step in evaluation:
            style = _OUTCOME_STYLES.get(step.dest) if step.final else None
            table.add_row(
                str(number),
                step.time,
                step.aws_request_id,
                Text(f"{step.source} -> {step.dest}", style=style or ""),
                step.trigger,
                step.reason or "",
                step.facts,
            )
        table.add_section()
    return table


def _last_outcome(story: JobStory) -> Text:
    from rich.text import Text

    last = story.last_outcome
    if last is None:
        return Text("last outcome: none yet (no evaluation reached a final state)")
    line = Text("last outcome: ")
    line.append(last.dest, style=_OUTCOME_STYLES.get(last.dest, ""))
    if last.reason:
        line.append(f" ({last.reason})")
    message_id = last.event.get("message_id")
    if message_id:
        line.append(f", message {message_id}")
    line.append(f" in {last.aws_request_id} at {last.time}")
    return line


def _summary(explanation: Explanation) -> Group:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    outcomes = explanation.outcomes()
    invocations = {s.aws_request_id for st in explanation.stories.values() for s in st.steps}
    heading = Text(
        f"summary: {plural(len(explanation.stories), 'job')}, "
        f"{plural(len(invocations), 'invocation')}, "
        f"{plural(sum(outcomes.values()), 'evaluation')}",
        style="bold",
    )
    table = Table("outcome", "reason")
    table.add_column("evaluations", justify="right")
    for (dest, reason), count in sorted(outcomes.items(), key=lambda kv: (kv[0][0], -kv[1])):
        table.add_row(Text(dest, style=_OUTCOME_STYLES.get(dest, "")), reason, str(count))
    skips = explanation.skips_by_reason()
    counted = ", ".join(f"{reason} {n}" for reason, n in skips.most_common()) or "none"
    return Group(heading, table, Text(f"skips by reason: {counted}"))
