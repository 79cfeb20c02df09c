"""`reassembly-trigger reconcile [--repair] [--json] [--job JOB_ID ...]`: the fleet at a glance."""

from __future__ import annotations

import argparse
import json
from typing import Any

from reassembly_trigger.local.commands.common import (
    AwsError,
    add_endpoint_option,
    aws_error_code,
    check_aws_configuration,
    plural,
    quiet_transitions,
    report_console,
    require_extra,
    use_endpoint,
)
from reassembly_trigger.local.commands.doctor.diagnosis import (
    ACTION_NEEDED,
    Doctor,
    DoctorError,
    duration,
)
from reassembly_trigger.local.commands.reconcile.fleet import Fleet, FleetEntry, FleetReport


def register(subparsers: Any) -> None:
    """Add the `reconcile` command."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "reconcile",
        help="every job in flight with its verdict (--repair: run the reconciler on them)",
        description=(
            "List every Job in chunking_complete (through the Jobs table's status index, "
            "JOBS_STATUS_INDEX_NAME) or the jobs named with --job, and show each one's "
            "age, doctor verdict, segments, lock and next action. Changes nothing unless "
            "--repair is given, which runs the reconciler (the real machine, never "
            "waiting on a live holder) on the jobs whose verdict is stuck or "
            "would_trigger. Exit status 1 when any job needs a person (stuck, not_found, "
            "invalid, unclaimed), 2 on a configuration error, 3 on an AWS error."
        ),
    )
    parser.add_argument(
        "--job",
        dest="job_ids",
        action="append",
        metavar="JOB_ID",
        help="look at this job only (repeatable; default: every job in flight)",
    )
    parser.add_argument("--repair", action="store_true", help="run the reconciler on them")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    add_endpoint_option(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Diagnose the fleet (and repair what the machine can), then print it."""
    if not args.json:
        require_extra("ops")
    use_endpoint(args.endpoint_url)
    check_aws_configuration()  # no region or credentials: configuration, not AWS
    quiet_transitions()
    try:
        fleet = Fleet(Doctor.from_environment())
        jobs = fleet.jobs(args.job_ids)
        entries = _diagnose(fleet, jobs, show_progress=not args.json)
        repair = None
        if args.repair:
            repair = fleet.repair(entries)
            entries = _diagnose(fleet, jobs, show_progress=not args.json)
    except DoctorError as exc:
        raise AwsError(str(exc)) from exc
    except Exception as exc:
        if aws_error_code(exc) == "ResourceNotFoundException":
            raise AwsError(
                f"{exc} (is JOBS_STATUS_INDEX_NAME the Jobs table's status index?)"
            ) from exc
        raise
    report = FleetReport(entries, repair)
    if args.json:
        print(json.dumps(report.as_json(), indent=2, default=str))
    else:
        render(report)
    return report.exit_status


def _diagnose(
    fleet: Fleet, jobs: list[tuple[str, int | None]], *, show_progress: bool
) -> list[FleetEntry]:
    if not show_progress or not jobs:
        return fleet.diagnose(jobs)
    from rich.console import Console
    from rich.progress import Progress

    with Progress(transient=True, console=Console(stderr=True)) as progress:
        task = progress.add_task("reading jobs", total=len(jobs))
        return fleet.diagnose(jobs, lambda done, _total: progress.update(task, completed=done))


def render(report: FleetReport) -> None:
    """One row per job, then the counts by verdict and what a repair did."""
    from rich.table import Table

    console = report_console(160)
    table = Table(title=f"{plural(len(report.entries), 'job')} in flight")
    for column in ("job", "age", "verdict", "segments", "lock", "next"):
        table.add_column(column, overflow="fold")
    for entry in report.entries:
        d = entry.diagnosis
        age = entry.age_seconds
        style = "bold red" if d.verdict in ACTION_NEEDED else None
        table.add_row(
            d.job_id,
            duration(age) if age is not None else "-",
            d.verdict.value,
            f"{d.completions}/{d.total_segments if d.total_segments is not None else '?'}",
            _lock(entry),
            d.next_action,
            style=style,
        )
    console.print(table)
    verdicts = ", ".join(f"{name} {count}" for name, count in sorted(report.verdicts().items()))
    console.print(f"verdicts: {verdicts or 'none'}")
    if report.repair is not None:
        enqueued = report.repair.enqueued
        console.print(
            f"repair: {plural(len(enqueued), 'job')} enqueued"
            + (f" ({', '.join(enqueued)})" if enqueued else "")
        )


def _lock(entry: FleetEntry) -> str:
    lock = entry.diagnosis.lock
    if lock is None:
        return "none"
    record = lock.record
    if record.reassembly_started:
        return "reassembly started"
    if record.enqueued:
        return f"enqueued ({record.message_id or '?'})"
    return f"unmarked, lease {lock.lease}"
