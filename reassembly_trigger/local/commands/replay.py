"""`reassembly-trigger replay EVENT.json`: invoke the handler once with a saved event."""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
from pathlib import Path
from typing import Any

from reassembly_trigger.local.lambda_context import DEFAULT_TIMEOUT_SECONDS, LocalLambdaContext
from reassembly_trigger.settings import SettingsError


def register(subparsers: Any) -> None:
    """Add the `replay` command."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "replay",
        help="invoke the handler once with a saved stream event",
        description=(
            "Invoke the real lambda_handler once, in this process, with a saved DynamoDB "
            "Streams event (e.g. ../shared/contract/events/*.json), against the endpoint and "
            "tables of the environment (AWS_ENDPOINT_URL, JOBS_TABLE_NAME, ...: what "
            "`reassembly-trigger local up` prints). Prints the response and the transition "
            "events. Exit 0 when the handler answered, 1 when it reported failed records, "
            "2 when the event or the environment is unusable."
        ),
    )
    parser.add_argument("event", type=Path, metavar="EVENT.json", help="the event; - for stdin")
    parser.add_argument(
        "--endpoint-url",
        default=None,
        help="AWS endpoint for the handler's clients (default: $AWS_ENDPOINT_URL, else AWS)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_SECONDS,
        metavar="SECONDS",
        help="the function timeout the context counts down from "
        f"(default {DEFAULT_TIMEOUT_SECONDS:g})",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the response, log events and metrics as JSON"
    )
    parser.set_defaults(run=run)


class ReplayError(ValueError):
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
    if args.endpoint_url:
        os.environ["AWS_ENDPOINT_URL"] = args.endpoint_url
        os.environ.setdefault("AWS_ACCOUNT_ID_ENDPOINT_MODE", "disabled")
    try:
        event = load_event(args.event)
        outcome = replay(event, args.timeout)
    except ReplayError as exc:
        print(f"replay: {exc}", file=sys.stderr)
        return 2
    except SettingsError as exc:
        print(
            f"replay: {exc}\n(run `reassembly-trigger local up` and export what it prints)",
            file=sys.stderr,
        )
        return 2
    if args.json:
        sys.stdout.write(json.dumps(outcome, default=str) + "\n")
    else:
        _print_outcome(args.event, event, outcome)
    return 1 if outcome["response"].get("batchItemFailures") else 0


def _print_outcome(path: Path, event: dict[str, Any], outcome: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    from reassembly_trigger.local.explain import transition_facts

    console = Console(width=None if sys.stdout.isatty() else 140)
    console.print(f"replayed {path}: {len(event['Records'])} records")
    for entry in outcome["events"]:
        if entry.get("event") == "batch_received":
            console.print(
                f"batch: {entry.get('jobs')} jobs, ignored {entry.get('ignored') or {}}, "
                f"malformed {entry.get('malformed') or {}}"
            )
        elif entry.get("log_level") in ("warning", "error") and entry["event"] != "transition":
            details = {k: v for k, v in entry.items() if k not in ("event", "log_level")}
            console.print(f"[yellow]{entry['log_level']}[/]: {entry['event']} {details}")
    transitions = [e for e in outcome["events"] if e.get("event") == "transition"]
    if transitions:
        table = Table("job", "transition", "trigger", "reason", "facts")
        for entry in transitions:
            table.add_row(
                str(entry.get("job_id")),
                f"{entry.get('source')} -> {entry.get('dest')}",
                str(entry.get("trigger")),
                str(entry.get("reason") or ""),
                transition_facts(entry),
            )
        console.print(table)
    else:
        console.print("no transitions: no record of the event named a job")
    console.print(f"response: {json.dumps(outcome['response'])}")
