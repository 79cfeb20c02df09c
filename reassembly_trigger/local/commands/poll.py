"""`reassembly-trigger poll`: follow the streams like Lambda's event source mappings."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import threading
import time
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

from reassembly_trigger.local.lambda_context import DEFAULT_TIMEOUT_SECONDS
from reassembly_trigger.local.poller import (
    DiscardReport,
    Handler,
    InvocationOutcome,
    InvocationReport,
    MappingSettings,
    PollerGroup,
    PollerReport,
    StartingPosition,
    StreamPoller,
    find_stream_arns,
)
from reassembly_trigger.local.stack import DEFAULT_REGION, LocalAws

DEFAULT_HANDLER = "reassembly_trigger.handler.lambda_handler"
_DEFAULTS = MappingSettings()


def register(subparsers: Any) -> None:
    """Add the `poll` command."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "poll",
        help="follow the DynamoDB streams and invoke the handler like Lambda's ESM",
        description=(
            "Follow the SegmentCompletions stream (and the Jobs stream when it has one) "
            "through the DynamoDB Streams API and invoke the handler in this process with "
            "the event Lambda would deliver, with Lambda's batching, checkpoints, partial "
            "batch failures, bisection, retry and age limits and on-failure destination. "
            "Works against any endpoint: the embedded server (`local up`), LocalStack, "
            "DynamoDB Local, or AWS itself. Tables and queue come from the Lambda's "
            "environment variables."
        ),
    )
    where = parser.add_argument_group("where")
    where.add_argument(
        "--endpoint-url",
        default=os.environ.get("AWS_ENDPOINT_URL"),
        help="AWS endpoint (default: $AWS_ENDPOINT_URL; none: AWS itself)",
    )
    where.add_argument(
        "--region",
        default=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"),
        help=f"region (default: $AWS_REGION, else {DEFAULT_REGION})",
    )
    where.add_argument(
        "--stream-arn",
        action="append",
        default=[],
        metavar="ARN",
        help="a stream to follow (repeatable; default: the streams of $SEGMENT_COMPLETIONS_"
        "TABLE_NAME and $JOBS_TABLE_NAME)",
    )
    esm = parser.add_argument_group("event source mapping (Lambda's defaults)")
    esm.add_argument("--batch-size", type=int, default=_DEFAULTS.batch_size, help="BatchSize")
    esm.add_argument(
        "--batching-window",
        type=float,
        default=_DEFAULTS.batching_window_seconds,
        metavar="SECONDS",
        help="MaximumBatchingWindowInSeconds",
    )
    esm.add_argument(
        "--bisect",
        action=argparse.BooleanOptionalAction,
        default=_DEFAULTS.bisect_on_error,
        help="BisectBatchOnFunctionError",
    )
    esm.add_argument(
        "--max-retries",
        type=int,
        default=_DEFAULTS.maximum_retry_attempts,
        metavar="N",
        help="MaximumRetryAttempts (-1: until the record expires)",
    )
    esm.add_argument(
        "--max-record-age",
        type=int,
        default=_DEFAULTS.maximum_record_age_seconds,
        metavar="SECONDS",
        help="MaximumRecordAgeInSeconds (-1: no limit)",
    )
    esm.add_argument(
        "--starting-position",
        choices=[p.value for p in StartingPosition],
        default=StartingPosition.TRIM_HORIZON.value,
        help="StartingPosition (default TRIM_HORIZON: what the stream already holds too)",
    )
    esm.add_argument(
        "--on-failure-queue-url",
        default=os.environ.get("ON_FAILURE_QUEUE_URL"),
        metavar="URL",
        help="DestinationConfig.OnFailure, an SQS queue (default: $ON_FAILURE_QUEUE_URL)",
    )
    esm.add_argument(
        "--function-timeout",
        type=float,
        default=DEFAULT_TIMEOUT_SECONDS,
        metavar="SECONDS",
        help="the function's Timeout: the context's remaining time counts down from it",
    )
    run_group = parser.add_argument_group("running")
    run_group.add_argument(
        "--handler",
        default=DEFAULT_HANDLER,
        metavar="MODULE.FUNCTION",
        help=f"the handler to invoke (default {DEFAULT_HANDLER})",
    )
    run_group.add_argument(
        "--poll-interval",
        type=float,
        default=_DEFAULTS.poll_interval_seconds,
        metavar="SECONDS",
        help="pause between reads of an idle shard (Lambda: 0.25)",
    )
    run_group.add_argument(
        "--until-idle",
        type=float,
        metavar="SECONDS",
        help="exit once every stream has been quiet this long",
    )
    run_group.add_argument("--duration", type=float, metavar="SECONDS", help="exit after this long")
    run_group.add_argument(
        "--logs",
        choices=["transitions", "console", "json", "none"],
        default="transitions",
        help="the handler's logs: one line per transition (default), structlog's console "
        "format, Lambda's JSON lines, or nothing",
    )
    run_group.add_argument(
        "--metrics", action="store_true", help="also print the handler's EMF metric lines"
    )
    parser.set_defaults(run=run)


def load_handler(spec: str) -> Handler:
    """`package.module.function` or `package.module:function`."""
    module_name, sep, attribute = spec.partition(":")
    if not sep:
        module_name, _, attribute = spec.rpartition(".")
    if not module_name or not attribute:
        raise ValueError(f"--handler {spec!r}: expected MODULE.FUNCTION")
    handler = getattr(importlib.import_module(module_name), attribute, None)
    if not callable(handler):
        raise ValueError(f"--handler {spec!r}: {attribute} is not a function of {module_name}")
    return handler  # type: ignore[no-any-return]


class TransitionPrinter:
    """A structlog processor printing one compact line per transition (and warnings)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def __call__(self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> Any:
        """Print transitions, warnings and errors; drop everything else."""
        import structlog

        from reassembly_trigger.local.explain import transition_facts

        name = event_dict.get("event")
        if name == "transition":
            reason = event_dict.get("reason")
            line = (
                f"  {event_dict.get('job_id')}: {event_dict.get('source')} -> "
                f"{event_dict.get('dest')} ({event_dict.get('trigger')}"
                f"{': ' + str(reason) if reason else ''}) {transition_facts(dict(event_dict))}"
            )
            _say(line.rstrip(), self._lock)
        elif method_name in ("warning", "error", "exception", "critical"):
            details = {k: v for k, v in event_dict.items() if k != "event"}
            _say(f"  {method_name}: {name} {details}", self._lock)
        raise structlog.DropEvent


_print_lock = threading.Lock()


def _say(line: str, lock: threading.Lock = _print_lock) -> None:
    with lock:
        print(line, flush=True)


@contextmanager
def _handler_logs(mode: str, metrics: bool) -> Iterator[None]:
    """Route the handler's logs (and EMF lines) as asked, for the block."""
    import structlog

    from reassembly_trigger.logs import configure_logging
    from reassembly_trigger.metrics import configure_metrics

    previous = structlog.get_config() if structlog.is_configured() else None
    if mode in ("json", "console"):
        configure_logging("json" if mode == "json" else "console", force=True)
    elif mode == "transitions":
        structlog.configure(processors=[TransitionPrinter()], cache_logger_on_first_use=False)
    else:
        structlog.configure(processors=[_drop], cache_logger_on_first_use=False)
    with open(os.devnull, "w") as sink:
        if not metrics:
            configure_metrics(sink)
        try:
            yield
        finally:
            configure_metrics(None)
            if previous is None:
                structlog.reset_defaults()
            else:
                structlog.configure(**previous)


def _drop(logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> Any:
    import structlog

    raise structlog.DropEvent


def describe(report: PollerReport) -> str:
    """One line for a poller report."""
    stamp = time.strftime("%H:%M:%S")
    if isinstance(report, InvocationReport):
        table = report.stream_arn.split("/")[1]
        retry = f" (retry {report.attempt})" if report.attempt else ""
        outcome = report.outcome.value
        if report.outcome is InvocationOutcome.PARTIAL:
            outcome += f", retry from {report.retry_from}"
        if report.error:
            outcome += f": {report.error}"
        return (
            f"{stamp} {table} {report.shard_id}: invoked with {report.records} records "
            f"{report.first_sequence_number}..{report.last_sequence_number}{retry} -> "
            f"{outcome} ({report.seconds * 1000:.0f} ms)"
        )
    if isinstance(report, DiscardReport):
        table = report.stream_arn.split("/")[1]
        info = report.document["DDBStreamBatchInfo"]
        where = f"sent to {report.sent_to}" if report.sent_to else "no on-failure queue: dropped"
        return (
            f"{stamp} {table} {report.shard_id}: DISCARDED {report.records} records "
            f"{info['startSequenceNumber']}..{info['endSequenceNumber']} "
            f"({report.condition.value}); metadata {where}"
        )
    return f"{stamp} poller error on {report.stream_arn}: {report.error} (retrying)"


def _stream_arns(args: argparse.Namespace, aws: LocalAws) -> list[str]:
    if args.stream_arn:
        return list(args.stream_arn)
    completions = os.environ.get("SEGMENT_COMPLETIONS_TABLE_NAME", "").strip()
    if not completions:
        raise ValueError(
            "no --stream-arn and no SEGMENT_COMPLETIONS_TABLE_NAME: run `reassembly-trigger "
            "local up` and export what it prints"
        )
    tables = [completions]
    jobs = os.environ.get("JOBS_TABLE_NAME", "").strip()
    if jobs:
        tables.append(jobs)
    found = find_stream_arns(aws.dynamodb, tables)
    if completions not in found:
        raise ValueError(f"table {completions} has no stream enabled")
    return [found[table] for table in tables if table in found]


def run(args: argparse.Namespace) -> int:
    """Poll until Ctrl-C, `--duration` or `--until-idle`."""
    from botocore.exceptions import BotoCoreError, ClientError

    from reassembly_trigger.settings import Settings, SettingsError

    region = args.region or DEFAULT_REGION
    if args.endpoint_url:
        # The handler's own clients read the endpoint from the environment.
        os.environ["AWS_ENDPOINT_URL"] = args.endpoint_url
        os.environ.setdefault("AWS_ACCOUNT_ID_ENDPOINT_MODE", "disabled")
    # The handler's clients read AWS_DEFAULT_REGION (botocore): poll's region for both.
    os.environ["AWS_REGION"] = os.environ["AWS_DEFAULT_REGION"] = region
    try:
        handler = load_handler(args.handler)
        if args.handler == DEFAULT_HANDLER:
            Settings.from_env()  # fail now, naming every missing variable
        aws = LocalAws.connect(args.endpoint_url, region)
        arns = _stream_arns(args, aws)
    except (ValueError, ImportError, ClientError, BotoCoreError) as exc:
        hint = "\n(run `reassembly-trigger local up` and export what it prints)"
        print(f"poll: {exc}{hint if isinstance(exc, SettingsError) else ''}", file=sys.stderr)
        return 2
    settings = MappingSettings(
        batch_size=args.batch_size,
        batching_window_seconds=args.batching_window,
        bisect_on_error=args.bisect,
        maximum_retry_attempts=args.max_retries,
        maximum_record_age_seconds=args.max_record_age,
        starting_position=StartingPosition(args.starting_position),
        on_failure_queue_url=args.on_failure_queue_url,
        function_timeout_seconds=args.function_timeout,
        poll_interval_seconds=args.poll_interval,
    )
    group = PollerGroup(
        StreamPoller(aws.streams, arn, handler, settings, sqs=aws.sqs, observer=_observe)
        for arn in arns
    )
    for arn in arns:
        _say(f"following {arn}")
    with _handler_logs(args.logs, args.metrics):
        _poll(group, args.duration, args.until_idle)
    stats = group.stats()
    print(
        f"stopped: {stats.records_read} records read, {stats.invocations} invocations "
        f"({stats.partial_failures} partial failures, {stats.function_errors} errors, "
        f"{stats.retries} retries, {stats.discarded_batches} batches discarded)",
        file=sys.stderr,
    )
    return 0


def _poll(group: PollerGroup, duration: float | None, until_idle: float | None) -> None:
    started = time.monotonic()
    group.start()
    try:
        while True:
            time.sleep(0.1)
            if duration is not None and time.monotonic() - started >= duration:
                break
            if until_idle is not None and group.quiet_for() >= until_idle:
                break
    except KeyboardInterrupt:
        pass
    finally:
        group.stop()


def _observe(report: PollerReport) -> None:
    _say(describe(report))
