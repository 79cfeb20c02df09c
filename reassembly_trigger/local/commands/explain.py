"""`reassembly-trigger explain [LOGFILE ...] [--job ID]`: each job's story from the logs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from reassembly_trigger.local.explain import Explanation, JobStory, read_events

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
        "logfiles", nargs="*", type=Path, metavar="LOGFILE", help="log files ('-' or none: stdin)"
    )
    parser.add_argument("--job", metavar="ID", help="only this job")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Print the timelines and the summary; exit 1 when no transition was found."""
    texts: list[str] = []
    for path in args.logfiles or [Path("-")]:
        if str(path) == "-":
            texts.append(sys.stdin.read())
        elif not path.is_file():
            print(f"explain: no such file: {path}", file=sys.stderr)
            return 2
        else:
            texts.append(path.read_text(errors="replace"))
    explanation = Explanation.of(read_events(texts), args.job)
    console = Console() if sys.stdout.isatty() else Console(width=140)
    if not explanation.stories:
        which = f" for job {args.job}" if args.job else ""
        print(f"explain: no transition events{which}", file=sys.stderr)
        return 1
    render(console, explanation)
    return 0


def print_trimmed(console: Console, *renderables: Any) -> None:
    """Print without the blanks rich pads table titles and grid cells with."""
    with console.capture() as captured:
        console.print(*renderables)
    console.file.write("".join(line.rstrip() + "\n" for line in captured.get().splitlines()))


def render(console: Console, explanation: Explanation) -> None:
    """One timeline per job, then the summary."""
    stories = sorted(
        explanation.stories.values(), key=lambda s: min((st.at or 0.0) for st in s.steps)
    )
    for story in stories:
        print_trimmed(console, _timeline(story), _last_outcome(story), "")
    print_trimmed(console, _summary(explanation))


def _timeline(story: JobStory) -> Table:
    table = Table(
        title=f"{story.job_id}: {len(story.evaluations)} evaluation(s) in "
        f"{len(story.invocations)} invocation(s)",
        title_justify="left",
    )
    for column in ("time", "aws_request_id", "transition", "trigger", "reason"):
        table.add_column(column, no_wrap=True)
    table.add_column("facts", overflow="fold")
    for evaluation in story.evaluations:
        for step in evaluation:
            style = _OUTCOME_STYLES.get(step.dest) if step.final else None
            table.add_row(
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
    outcomes = explanation.outcomes()
    invocations = {s.aws_request_id for st in explanation.stories.values() for s in st.steps}
    heading = Text(
        f"summary: {len(explanation.stories)} job(s), {len(invocations)} invocation(s), "
        f"{sum(outcomes.values())} evaluation(s)",
        style="bold",
    )
    table = Table()
    table.add_column("outcome")
    table.add_column("reason")
    table.add_column("evaluations", justify="right")
    for (dest, reason), count in sorted(outcomes.items(), key=lambda kv: (kv[0][0], -kv[1])):
        table.add_row(Text(dest, style=_OUTCOME_STYLES.get(dest, "")), reason, str(count))
    skips = explanation.skips_by_reason()
    counted = ", ".join(f"{reason} {n}" for reason, n in skips.most_common()) or "none"
    return Group(heading, table, Text(f"skips by reason: {counted}"))
