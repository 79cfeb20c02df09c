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
    details,
    plain,
    plural,
    require_extra,
    seconds,
    use_endpoint,
)
from reassembly_trigger.local.kit.contexts import DEFAULT_TIMEOUT_SECONDS, LocalLambdaContext


def register(subparsers: Any) -> None:
    """Add the `replay` command."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "replay",
        help="invoke the handler once with a saved stream event",
        description=(
            "Invoke the real lambda_handler once, in this process, with a saved DynamoDB "
            "Streams event (e.g. the contract's samples in tests/events/), against the "
            "endpoint and tables of the environment (AWS_ENDPOINT_URL, JOBS_TABLE_NAME, ...: what "
            "`reassembly-trigger local up` prints). Prints the response and the transition "
            "events. Exit 0 when the handler answered, 1 when it reported failed records, "
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
        "--json", action="store_true", help="print the response, log events and metrics as JSON"
    )
    parser.set_defaults(run=run)


class ReplayError(UsageError):
    """The event cannot be replayed."""


def load_event(path: Path) -> dict[str, Any]:
    """A stream event from a file (or stdin for `-`); `ReplayError` if it is not one."""
    try:
        text = sys.stdin.read() if str(path) == "-" else path.read_text()
    except OSError as exc:
        raise ReplayError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        event = json.loads(text)
    except ValueError as exc:
        raise ReplayError(f"{path} is not JSON: {exc}") from exc
    if not isinstance(event, dict) or not isinstance(event.get("Records"), list):
        raise ReplayError(f'{path} is not a stream event: expected {{"Records": [...]}}')
    return event


def replay(event: dict[str, Any], timeout_seconds: float) -> dict[str, Any]:
    """Invoke the handler with `event`; its response, its log events and its metrics."""
    import structlog

    from reassembly_trigger import handler
    from reassembly_trigger.metrics import configure_metrics

    metrics = io.StringIO()
    configure_metrics(metrics)
    try:
        with structlog.testing.capture_logs() as events:
            response = handler.lambda_handler(
                event, LocalLambdaContext(timeout_seconds=timeout_seconds)
            )
    finally:
        configure_metrics(None)
    lines = [json.loads(line) for line in metrics.getvalue().splitlines() if line.strip()]
    return {"response": response, "events": events, "metrics": lines[-1] if lines else None}


def run(args: argparse.Namespace) -> int:
    """Replay the event and print what happened."""
    from reassembly_trigger.settings import Settings

    if not args.json:
        require_extra("ops")
    use_endpoint(args.endpoint_url)
    event = load_event(args.event)
    Settings.from_env()  # before invoking: name every missing variable at once
    outcome = replay(event, args.timeout)
    if args.json:
        sys.stdout.write(json.dumps(outcome, default=str) + "\n")
    else:
        _print_outcome(args.event, event, outcome)
    return EXIT_FAILED if outcome["response"].get("batchItemFailures") else 0


def _print_outcome(path: Path, event: dict[str, Any], outcome: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    from reassembly_trigger.local.ops.explain import transition_facts

    console = Console(width=None if sys.stdout.isatty() else 140)
    console.print(f"replayed {path}: {plural(len(event['Records']), 'record')}", markup=False)
    for entry in outcome["events"]:
        if entry.get("event") == "batch_received":
            console.print(
                f"batch: {plural(int(entry.get('jobs') or 0), 'job')}; ignored records: "
                f"{plain(entry.get('ignored') or {})}; malformed records: "
                f"{plain(entry.get('malformed') or {})}",
                markup=False,
            )
        elif entry.get("log_level") in ("warning", "error") and entry["event"] != "transition":
            facts = details(entry, skip=("event", "log_level"))
            console.print(f"{entry['log_level']}: {entry['event']} {facts}", markup=False)
    transitions = [e for e in outcome["events"] if e.get("event") == "transition"]
    if transitions:
        table = Table("job", "transition", "trigger", "reason", "facts")
        for entry in transitions:
            table.add_row(
                str(entry.get("job_id")),
                f"{entry.get('source')} -> {entry.get('dest')}",
                plain(entry.get("trigger")),
                plain(entry.get("reason") or ""),
                transition_facts(entry),
            )
        console.print(table)
    else:
        console.print("no transitions: no record of the event named a job")
    console.print(f"response: {json.dumps(outcome['response'])}")
