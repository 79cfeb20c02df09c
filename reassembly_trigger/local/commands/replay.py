"""`reassembly-trigger replay EVENT.json`: invoke the handler once with a saved event."""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path
from typing import Any

from reassembly_trigger.local.commands.common import (
    EXIT_FAILED,
    UsageError,
    add_endpoint_option,
    check_aws_configuration,
    plain,
    plural,
    quiet_transitions,
    report_console,
    require_extra,
    seconds,
    use_endpoint,
)
from reassembly_trigger.local.commands.transitions import transition_facts, transition_rows
from reassembly_trigger.local.invocations.contexts import (
    DEFAULT_TIMEOUT_SECONDS,
    LocalLambdaContext,
)


def register(subparsers: Any) -> None:
    """Add the `replay` command."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "replay",
        help="invoke the handler once with a saved stream event",
        description=(
            "Invoke the real lambda_handler once, in this process, with a saved DynamoDB "
            "Streams event (e.g. the contract's samples in tests/events/), against the "
            "endpoint and tables of the environment (AWS_ENDPOINT_URL, JOBS_TABLE_NAME, ...: what "
            "`reassembly-trigger local up` prints). Prints the response and each job's "
            "transitions. Exit 0 when the handler answered, 1 when it reported failed records, "
            "2 when the event or the environment is unusable."
        ),
    )
    parser.add_argument("event", type=Path, metavar="EVENT.json", help="the event; - for stdin")
    add_endpoint_option(parser)
    parser.add_argument(
        "--timeout",
        type=seconds(high=900),
        default=DEFAULT_TIMEOUT_SECONDS,
        metavar="SECONDS",
        help="the function timeout the context counts down from "
        f"(default {DEFAULT_TIMEOUT_SECONDS:g})",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the response, the batch, each job's outcome and transitions, and the "
        "metrics line as JSON",
    )
    parser.set_defaults(run=run)


def load_event(path: Path) -> dict[str, Any]:
    """A stream event from a file (or stdin for `-`); `UsageError` if it is not one."""
    try:
        text = sys.stdin.read() if str(path) == "-" else path.read_text()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        event = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"{path} is not JSON: {exc}") from exc
    if not isinstance(event, dict) or not isinstance(event.get("Records"), list):
        raise UsageError(f'{path} is not a stream event: expected {{"Records": [...]}}')
    return event


def replay(event: dict[str, Any], timeout_seconds: float) -> dict[str, Any]:
    """Invoke the handler with `event`: its response, what it made of the batch, each
    job's outcome and transitions, and its metrics line."""
    from reassembly_trigger.handler import handle_event
    from reassembly_trigger.metrics import configure_metrics

    metrics = io.StringIO()
    configure_metrics(metrics)
    try:
        result = handle_event(event, LocalLambdaContext(timeout_seconds=timeout_seconds))
    finally:
        configure_metrics(None)
    lines = [json.loads(line) for line in metrics.getvalue().splitlines() if line.strip()]
    parsed = result.parsed
    return {
        "response": result.response(),
        "batch": {
            "records": parsed.records,
            "jobs": len(parsed.requests),
            "ignored": dict(parsed.ignored),
            "malformed": dict(parsed.malformed),
        },
        "jobs": {
            o.job_id: {"state": o.state.value, "reason": o.reason and o.reason.value}
            for o in result.outcomes
        },
        "transitions": transition_rows(result.outcomes),
        "metrics": lines[-1] if lines else None,
    }


def run(args: argparse.Namespace) -> int:
    """Replay the event and print what happened."""
    from reassembly_trigger.settings import Settings

    if not args.json:
        require_extra("ops")
    use_endpoint(args.endpoint_url)
    event = load_event(args.event)
    Settings.from_env()  # before invoking: name every missing variable at once
    check_aws_configuration()  # no region or credentials: configuration, not AWS
    # What happened is printed from the outcomes; the handler's warnings go to stderr.
    quiet_transitions()
    outcome = replay(event, args.timeout)
    if args.json:
        sys.stdout.write(json.dumps(outcome, default=str) + "\n")
    else:
        _print_outcome(args.event, event, outcome)
    return EXIT_FAILED if outcome["response"].get("batchItemFailures") else 0


def _print_outcome(path: Path, event: dict[str, Any], outcome: dict[str, Any]) -> None:
    from rich.table import Table

    console = report_console(140)
    console.print(f"replayed {path}: {plural(len(event['Records']), 'record')}", markup=False)
    batch = outcome["batch"]
    console.print(
        f"batch: {plural(batch['jobs'], 'job')}; ignored records: {plain(batch['ignored'])}; "
        f"malformed records: {plain(batch['malformed'])}",
        markup=False,
    )
    transitions = outcome["transitions"]
    if transitions:
        table = Table("job", "transition", "trigger", "reason", "facts")
        for row in transitions:
            table.add_row(
                str(row["job_id"]),
                f"{row['source']} -> {row['dest']}",
                row["trigger"],
                plain(row.get("reason") or ""),
                transition_facts(row),
            )
        console.print(table)
    else:
        console.print("no transitions: no record of the event named a job")
    console.print(f"response: {json.dumps(outcome['response'])}")
