"""`reassembly-trigger doctor JOB_ID [--json] [--repair]`: why a job did or didn't reassemble."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from rich.console import Console
from rich.table import Table
from rich.text import Text

from reassembly_trigger.local.commands.explain import print_trimmed
from reassembly_trigger.local.doctor import (
    ACTION_NEEDED,
    DEFAULT_GRACE_SECONDS,
    DEFAULT_REPAIR_TIMEOUT_SECONDS,
    MAX_REPAIR_TIMEOUT_SECONDS,
    Diagnosis,
    Doctor,
    DoctorError,
    LockState,
    RepairResult,
    Verdict,
    duration,
    segment_ranges,
    when,
)
from reassembly_trigger.local.explain import transition_facts
from reassembly_trigger.logs import configure_logging
from reassembly_trigger.settings import SettingsError

_STYLES = {
    Verdict.REASSEMBLED: "green",
    Verdict.IN_PROGRESS: "green",
    Verdict.WOULD_TRIGGER: "yellow",
    Verdict.WAITING_FOR_SEGMENTS: "cyan",
    Verdict.WAITING_FOR_CHUNKING: "cyan",
    Verdict.UNCLAIMED: "bold red",
}


def register(subparsers: Any) -> None:
    """Add the `doctor` command."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "doctor",
        help="explain where a job stands and what to do next (--repair: trigger it)",
        description=(
            "Read a job's state through the Lambda's own gateways (same environment "
            "variables and AWS endpoint settings) and run the state machine as a dry run. "
            "Changes nothing unless --repair is given. Exit status 1 when the verdict is "
            "stuck, not_found or invalid (with --repair: when the message was neither sent "
            "nor already sent), 2 on errors."
        ),
    )
    parser.add_argument("job_id", metavar="JOB_ID")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument(
        "--repair",
        action="store_true",
        help="run the real state machine for the job, exactly as the Lambda would",
    )
    parser.add_argument(
        "--resend",
        action="store_true",
        help="with --repair: re-send the message of a job enqueued but never claimed "
        "(conditional on the lock as read: two people cannot both re-send)",
    )
    parser.add_argument(
        "--timeout",
        type=_timeout,
        default=DEFAULT_REPAIR_TIMEOUT_SECONDS,
        metavar="SECONDS",
        help="--repair's deadline: its lease, and how long it may wait for another holder "
        f"(default {DEFAULT_REPAIR_TIMEOUT_SECONDS:g}, at most {MAX_REPAIR_TIMEOUT_SECONDS:g})",
    )
    parser.add_argument(
        "--grace",
        type=_seconds,
        default=DEFAULT_GRACE_SECONDS,
        metavar="SECONDS",
        help="how long after the last completion or lease end a ready job still counts as "
        f"would_trigger rather than stuck (default {DEFAULT_GRACE_SECONDS})",
    )
    parser.set_defaults(run=run)


def _timeout(text: str) -> float:
    value = _seconds(text)
    if value > MAX_REPAIR_TIMEOUT_SECONDS:
        raise argparse.ArgumentTypeError(
            f"at most {MAX_REPAIR_TIMEOUT_SECONDS:g} seconds (no lease outlives Lambda's "
            f"maximum timeout), got {text!r}"
        )
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def run(args: argparse.Namespace) -> int:
    """Diagnose (or repair) one job and print the result."""
    # The machine's transitions are reported from its history; only warnings are logged.
    configure_logging("console", "stderr", force=True, level=logging.WARNING)
    try:
        doctor = Doctor.from_environment(grace_seconds=args.grace)
        if args.resend:
            return _resend(doctor, args)
        if args.repair:
            repaired = doctor.repair(args.job_id, args.timeout)
        else:
            diagnosis = doctor.diagnose(args.job_id)
    except SettingsError as exc:
        print(f"doctor: {exc} (set them as for the Lambda)", file=sys.stderr)
        return 2
    except (DoctorError, ClientError, BotoCoreError) as exc:
        print(f"doctor: {exc}", file=sys.stderr)
        return 2
    if args.repair:
        if args.json:
            print(json.dumps(repaired.as_json(), indent=2, default=str))
        else:
            render_repair(_console(), repaired)
        return repaired.exit_status
    if args.json:
        print(json.dumps(diagnosis.as_json(), indent=2, default=str))
    else:
        render_diagnosis(_console(), diagnosis)
    return diagnosis.exit_status


def _resend(doctor: Doctor, args: argparse.Namespace) -> int:
    if not args.repair:
        print("doctor: --resend needs --repair", file=sys.stderr)
        return 2
    resent = doctor.resend(args.job_id)
    if args.json:
        print(json.dumps(resent.as_json(), indent=2))
    elif resent.sent:
        print(
            f"re-sent {args.job_id}: message {resent.message_id} "
            f"(was {resent.previous_message_id}; resend #{resent.resends})"
        )
    else:
        print(f"not re-sent: {resent.reason}")
    return resent.exit_status


def _console() -> Console:
    # Piped output is not wrapped at 80 columns: reports get pasted into tickets.
    return Console() if sys.stdout.isatty() else Console(width=120)


# ------------------------------------------------------------------ rendering


def render_diagnosis(console: Console, diagnosis: Diagnosis) -> None:
    """The short human report, ending with the next action."""
    style = "bold red" if diagnosis.verdict in ACTION_NEEDED else _STYLES[diagnosis.verdict]
    report = Table.grid(padding=(0, 2))
    report.add_column(style="bold", no_wrap=True)
    report.add_column()
    report.add_row("verdict", Text(diagnosis.verdict.value.upper(), style=style))
    report.add_row("why", diagnosis.reason)
    report.add_row("job", _job_line(diagnosis))
    report.add_row("completions", _completions_line(diagnosis))
    report.add_row("lock", _lock_line(diagnosis.lock, diagnosis.checked_at))
    report.add_row("machine", _machine_line(diagnosis))
    report.add_row(Text("next", style="bold"), Text(diagnosis.next_action, style="bold"))
    print_trimmed(console, Text(f"doctor {diagnosis.job_id}", style="bold underline"), report)


def render_repair(console: Console, result: RepairResult) -> None:
    """The real machine's transitions, its outcome, then the job's verdict after it."""
    table = Table(title=f"repair {result.outcome.job_id}: the state machine's transitions")
    for column in ("#", "transition", "trigger", "reason", "facts"):
        table.add_column(column)
    for number, transition in enumerate(result.machine.transitions, start=1):
        table.add_row(
            str(number),
            f"{transition.get('source')} -> {transition.get('dest')}",
            str(transition.get("trigger", "")),
            str(transition.get("reason", "")),
            transition_facts(transition),
        )
    print_trimmed(console, table)
    outcome = result.outcome
    if result.sent:
        line = Text(f"sent: message {outcome.message_id} is on the reassembly queue", "green")
    elif result.nothing_to_repair:
        line = Text(f"nothing to repair: {outcome.reason}", "green")
    else:
        why = outcome.reason or outcome.state.value
        line = Text(f"refused: the machine ended {outcome.state.value} ({why}); nothing sent")
        line.stylize("bold red")
    console.print(line)
    console.print()
    render_diagnosis(console, result.after)


def _job_line(diagnosis: Diagnosis) -> str:
    if diagnosis.status is None:
        return "no Job item"
    total = diagnosis.total_segments
    return f"status {diagnosis.status}, total_segments {total if total is not None else '-'}"


def _completions_line(diagnosis: Diagnosis) -> str:
    total = diagnosis.total_segments
    counted = f"{diagnosis.completions} of {total}" if total is not None else "total unknown"
    if total is None:
        counted = f"{diagnosis.completions} recorded, {counted}"
    line = f"{counted}; missing: {segment_ranges(diagnosis.missing_segments)}"
    if diagnosis.out_of_range_segments:
        line += f"; out of range (ignored): {segment_ranges(diagnosis.out_of_range_segments)}"
    if diagnosis.latest_completion_at:
        at = diagnosis.latest_completion_at
        line += f"; last written {when(at)} ({duration(diagnosis.checked_at - at)} ago)"
    return line


def _lock_line(lock: LockState | None, now: float) -> str:
    if lock is None:
        return "none"
    record = lock.record
    parts = []
    if record.triggered_at is not None:
        parts.append(
            f"taken {when(record.triggered_at)} ({duration(now - record.triggered_at)} ago)"
        )
    if record.holder:
        parts.append(f"holder {record.holder}")
    if lock.lease == "released":
        parts.append("lease released by its holder")
    elif lock.lease == "active":
        parts.append(
            f"lease until {when(lock.lease_end)} ({duration(lock.lease_seconds_left)} left)"
        )
    else:
        parts.append(
            f"lease over since {when(lock.lease_end)} ({duration(lock.lease_seconds_left)} ago)"
        )
    if record.enqueued_at is not None:
        parts.append(f"enqueued {when(record.enqueued_at)} message {record.message_id}")
    else:
        parts.append("not enqueued")
    if record.reassembly_started_at is not None:
        parts.append(f"reassembly started {when(record.reassembly_started_at)}")
    if record.takeovers:
        parts.append(f"{record.takeovers} takeover(s)")
    return "; ".join(parts)


def _machine_line(diagnosis: Diagnosis) -> str:
    machine = diagnosis.machine
    path = " -> ".join(machine.path) or machine.state
    ending = ", ".join(
        part for part in (machine.reason, f"would {machine.would}" if machine.would else "") if part
    )
    return f"dry run: {path} ({ending})" if ending else f"dry run: {path}"
