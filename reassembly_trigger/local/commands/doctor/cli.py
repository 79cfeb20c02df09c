"""`reassembly-trigger doctor JOB_ID [--json] [--repair]`: why a job did or didn't reassemble."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from reassembly_trigger.local.commands.common import (
    AwsError,
    add_endpoint_option,
    aws_error_code,
    check_aws_configuration,
    plain,
    plural,
    print_trimmed,
    quiet_transitions,
    report_console,
    require_extra,
    seconds,
    use_endpoint,
)
from reassembly_trigger.local.commands.doctor.diagnosis import (
    ACTION_NEEDED,
    DEFAULT_GRACE_SECONDS,
    DEFAULT_REPAIR_TIMEOUT_SECONDS,
    MAX_REPAIR_TIMEOUT_SECONDS,
    MIN_REPAIR_TIMEOUT_SECONDS,
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

if TYPE_CHECKING:
    from rich.console import Console

    from reassembly_trigger.settings import Settings

_STYLES = {
    Verdict.REASSEMBLED: "green",
    Verdict.IN_PROGRESS: "green",
    Verdict.WOULD_TRIGGER: "yellow",
    Verdict.WAITING_FOR_SEGMENTS: "cyan",
    Verdict.WAITING_FOR_CHUNKING: "cyan",
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
            "stuck, not_found, invalid or unclaimed (with --repair: when the message was "
            "neither sent nor already sent), 2 on a configuration error, 3 on an AWS error. "
            'With --json, an error is also printed as {"error": ..., "exit_status": ...}.'
        ),
    )
    parser.add_argument("job_id", metavar="JOB_ID", nargs="?")
    parser.add_argument(
        "--preflight",
        action="store_true",
        help="instead of a job: try every call the functions make (tables, the status "
        "index, the lock's conditional writes, the queue) and list what is missing; "
        "exit 1 when anything is. Run it with the function's role to check its permissions",
    )
    parser.add_argument(
        "--send-probe",
        action="store_true",
        help="with --preflight: check sqs:SendMessage too, by sending "
        '{"job_id": "preflight-..."}, which the media worker drops (no lock for it)',
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument(
        "--repair",
        action="store_true",
        help="run the real state machine for the job, exactly as the Lambda would",
    )
    add_endpoint_option(parser)
    parser.add_argument(
        "--resend",
        action="store_true",
        help="with --repair: re-send the message of a job enqueued but never claimed "
        "(conditional on the lock as read: two people cannot both re-send)",
    )
    parser.add_argument(
        "--timeout",
        # No lease may outlive Lambda's maximum timeout.
        type=seconds(
            low=MIN_REPAIR_TIMEOUT_SECONDS, high=MAX_REPAIR_TIMEOUT_SECONDS, allow_low=True
        ),
        default=DEFAULT_REPAIR_TIMEOUT_SECONDS,
        metavar="SECONDS",
        help="--repair's deadline: its lease, and how long it may wait for another holder "
        f"(default {DEFAULT_REPAIR_TIMEOUT_SECONDS:g}, from {MIN_REPAIR_TIMEOUT_SECONDS:g}: "
        f"the lock, send and mark must fit; at most {MAX_REPAIR_TIMEOUT_SECONDS:g})",
    )
    parser.add_argument(
        "--grace",
        type=seconds(),
        default=DEFAULT_GRACE_SECONDS,
        metavar="SECONDS",
        help="how long after the last completion or lease end a ready job still counts as "
        f"would_trigger rather than stuck (default {DEFAULT_GRACE_SECONDS})",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Diagnose (or repair) one job and print the result."""
    if not args.json:
        require_extra("ops")
    use_endpoint(args.endpoint_url)
    from reassembly_trigger.settings import Settings

    settings = Settings.from_env()
    check_aws_configuration()  # no region or credentials: configuration, not AWS
    if args.preflight:
        return _preflight(settings, args)
    if args.job_id is None:
        print("doctor: JOB_ID is required (or --preflight)", file=sys.stderr)
        return 2
    # The machine's transitions are reported from its history; only warnings are logged.
    quiet_transitions()
    try:
        doctor = Doctor.from_environment(settings, grace_seconds=args.grace)
        if args.resend:
            return _resend(doctor, args)
        result = doctor.repair(args.job_id, args.timeout) if args.repair else None
        diagnosis = result.after if result else doctor.diagnose(args.job_id)
    except Exception as exc:
        if isinstance(exc, DoctorError) or aws_error_code(exc) == "ResourceNotFoundException":
            message = str(exc)
            # AWS's own message names no table or queue: name which of the Lambda's is missing.
            if "ResourceNotFound" in message or "NonExistentQueue" in message:
                message = "; ".join(missing_resources(settings)) or message
            raise AwsError(message) from exc
        raise
    if args.json:
        print(json.dumps((result or diagnosis).as_json(), indent=2, default=str))
    elif result:
        render_repair(report_console(120), result)
    else:
        render_diagnosis(report_console(120), diagnosis)
    return (result or diagnosis).exit_status


def _preflight(settings: Settings, args: argparse.Namespace) -> int:
    from reassembly_trigger.clients import aws_clients
    from reassembly_trigger.local.commands.doctor.preflight import preflight

    report = preflight(
        settings, aws_clients(settings.evaluation_concurrency), send_probe=args.send_probe
    )
    if args.json:
        print(json.dumps(report.as_json(), indent=2))
        return report.exit_status
    marks = {True: "ok", False: "MISSING", None: "unchecked"}
    print(f"preflight in {report.region}: every call the functions make")
    for check in report.checks:
        print(f"  {marks[check.ok]:9} {check.action} on {check.resource} ({check.used_by})")
        if check.ok is not True:
            print(f"            {check.detail}")
    if report.missing:
        print(f"missing ({len(report.missing)}):")
        for check in report.missing:
            print(f"  - {check.action} on {check.resource}: {check.detail}")
    else:
        print("nothing missing")
    return report.exit_status


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


#: The codes SQS answers for a queue URL that names no queue (JSON and query protocols).
_NO_SUCH_QUEUE = ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist")


def missing_resources(settings: Settings) -> list[str]:
    """Each of the Lambda's tables and its queue that the endpoint says does not exist,
    as `table NAME ($VARIABLE) not found in REGION at ENDPOINT`."""
    from reassembly_trigger.clients import aws_clients

    clients = aws_clients(settings.evaluation_concurrency)
    where = f"in {clients.dynamodb.meta.region_name} at {clients.dynamodb.meta.endpoint_url}"
    found = []
    tables = {
        "JOBS_TABLE_NAME": settings.jobs_table_name,
        "SEGMENT_COMPLETIONS_TABLE_NAME": settings.segment_completions_table_name,
        "REASSEMBLY_TRIGGERED_TABLE_NAME": settings.reassembly_triggered_table_name,
    }
    for variable, table in tables.items():
        try:
            clients.dynamodb.describe_table(TableName=table)
        except Exception as exc:
            if aws_error_code(exc) == "ResourceNotFoundException":
                found.append(f"table {table} (${variable}) not found {where}")
    try:
        clients.sqs.get_queue_attributes(
            QueueUrl=settings.reassembly_queue_url, AttributeNames=["QueueArn"]
        )
    except Exception as exc:
        if aws_error_code(exc) in _NO_SUCH_QUEUE:
            found.append(f"queue {settings.reassembly_queue_url} ($REASSEMBLY_QUEUE_URL) not found")
    return found


def render_diagnosis(console: Console, diagnosis: Diagnosis) -> None:
    """The short human report, ending with the next action."""
    from rich.table import Table
    from rich.text import Text

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
    from rich.table import Table
    from rich.text import Text

    from reassembly_trigger.local.commands.transitions import transition_facts

    table = Table(title=f"repair {result.outcome.job_id}: the state machine's transitions")
    for column in ("#", "transition", "trigger", "reason", "facts"):
        table.add_column(column)
    for number, transition in enumerate(result.machine.transitions, start=1):
        table.add_row(
            str(number),
            f"{transition.get('source')} -> {transition.get('dest')}",
            plain(transition.get("trigger", "")),
            plain(transition.get("reason", "")),
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
    total, done = diagnosis.total_segments, diagnosis.completions
    counted = f"{done} of {total}" if total is not None else f"{done} recorded, total unknown"
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
    else:
        since, tail = ("until", "left") if lock.lease == "active" else ("over since", "ago")
        left = duration(lock.lease_seconds_left)
        parts.append(f"lease {since} {when(lock.lease_end)} ({left} {tail})")
    if record.enqueued_at is not None:
        parts.append(f"enqueued {when(record.enqueued_at)} message {record.message_id}")
    else:
        parts.append("not enqueued")
    if record.reassembly_started_at is not None:
        parts.append(f"reassembly started {when(record.reassembly_started_at)}")
    if record.takeovers:
        parts.append(plural(record.takeovers, "takeover"))
    return "; ".join(parts)


def _machine_line(diagnosis: Diagnosis) -> str:
    machine = diagnosis.machine
    path = " -> ".join(machine.path) or machine.state
    ending = ", ".join(
        part for part in (machine.reason, f"would {machine.would}" if machine.would else "") if part
    )
    return f"dry run: {path} ({ending})" if ending else f"dry run: {path}"
