"""`reassembly-trigger poll`: follow the streams like Lambda's event source mappings."""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
import threading
import time
from collections.abc import MutableMapping
from contextlib import AbstractContextManager
from typing import Any, TextIO

from reassembly_trigger.local.aws.stack import DEFAULT_REGION, LocalAws
from reassembly_trigger.local.commands.common import (
    AwsError,
    UsageError,
    add_endpoint_option,
    aws_error_code,
    check_aws_configuration,
    details,
    int_in,
    is_region_name,
    plain,
    plural,
    region_name,
    seconds,
    use_endpoint,
)
from reassembly_trigger.local.commands.transitions import transition_facts, transition_rows
from reassembly_trigger.local.streams.batch_response import InvocationOutcome
from reassembly_trigger.local.streams.poller import (
    BATCH_SIZE_LIMITS,
    BATCHING_WINDOW_LIMITS,
    FUNCTION_TIMEOUT_LIMIT,
    RECORD_AGE_LIMITS,
    RETRY_ATTEMPTS_LIMITS,
    DiscardReport,
    Handler,
    InvocationReport,
    MappingSettings,
    PollerGroup,
    PollerReport,
    StartingPosition,
    StreamPoller,
)

#: The Lambda's invocation (`lambda_handler` answers its response), with the outcomes of
#: the batch's jobs as data: `--logs transitions` prints them.
DEFAULT_HANDLER = "reassembly_trigger.handler.handle_event"
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
    add_endpoint_option(where)
    where.add_argument(
        "--region",
        type=region_name,
        default=None,
        help=f"region (default: $AWS_REGION, else $AWS_DEFAULT_REGION, else {DEFAULT_REGION})",
    )
    where.add_argument(
        "--stream-arn",
        action="append",
        type=_stream_arn,
        default=[],
        metavar="ARN",
        help="a stream to follow (repeatable; default: the streams of $SEGMENT_COMPLETIONS_"
        "TABLE_NAME and $JOBS_TABLE_NAME)",
    )
    esm = parser.add_argument_group("event source mapping (Lambda's names, defaults and limits)")
    esm.add_argument(
        "--batch-size",
        type=int_in(*BATCH_SIZE_LIMITS),
        default=_DEFAULTS.batch_size,
        metavar="N",
        help=f"BatchSize, {_limits(BATCH_SIZE_LIMITS)}",
    )
    esm.add_argument(
        "--batching-window",
        type=seconds(low=BATCHING_WINDOW_LIMITS[0], high=BATCHING_WINDOW_LIMITS[1], allow_low=True),
        default=_DEFAULTS.batching_window_seconds,
        metavar="SECONDS",
        help=f"MaximumBatchingWindowInSeconds, {_limits(BATCHING_WINDOW_LIMITS)}",
    )
    esm.add_argument(
        "--bisect",
        action=argparse.BooleanOptionalAction,
        default=_DEFAULTS.bisect_on_error,
        help="BisectBatchOnFunctionError",
    )
    esm.add_argument(
        "--max-retries",
        type=int_in(*RETRY_ATTEMPTS_LIMITS),
        default=_DEFAULTS.maximum_retry_attempts,
        metavar="N",
        help=f"MaximumRetryAttempts, {_limits(RETRY_ATTEMPTS_LIMITS)} "
        "(-1: until the record expires)",
    )
    esm.add_argument(
        "--max-record-age",
        type=_record_age,
        default=_DEFAULTS.maximum_record_age_seconds,
        metavar="SECONDS",
        help=f"MaximumRecordAgeInSeconds, -1 or {_limits(RECORD_AGE_LIMITS)} (-1: no limit)",
    )
    esm.add_argument(
        "--starting-position",
        choices=[p.value for p in StartingPosition],
        default=_DEFAULTS.starting_position.value,
        help="StartingPosition (TRIM_HORIZON: what the stream already holds too)",
    )
    esm.add_argument(
        "--on-failure-queue-url",
        default=None,
        metavar="URL",
        help="DestinationConfig.OnFailure, an SQS queue (default: $ON_FAILURE_QUEUE_URL if set, "
        "else none: discarded batches are only reported)",
    )
    esm.add_argument(
        "--function-timeout",
        type=seconds(high=FUNCTION_TIMEOUT_LIMIT),
        default=_DEFAULTS.function_timeout_seconds,
        metavar="SECONDS",
        help=f"the function's Timeout, at most {FUNCTION_TIMEOUT_LIMIT}: the context's "
        "remaining time counts down from it",
    )
    run_group = parser.add_argument_group("running")
    run_group.add_argument(
        "--handler",
        default=DEFAULT_HANDLER,
        metavar="MODULE.FUNCTION",
        help="the handler to invoke (one that answers with Lambda's response shows no "
        "transitions: --logs console or json shows its logs)",
    )
    run_group.add_argument(
        "--poll-interval",
        type=seconds(high=60),
        default=_DEFAULTS.poll_interval_seconds,
        metavar="SECONDS",
        help="pause between reads of an idle shard (Lambda reads one 4 times a second)",
    )
    run_group.add_argument(
        "--until-idle",
        type=seconds(),
        metavar="SECONDS",
        help="exit once every stream has been quiet this long; exit 3 once a stream has "
        "been unreadable this long (default: run until Ctrl-C or --duration)",
    )
    run_group.add_argument(
        "--duration",
        type=seconds(),
        metavar="SECONDS",
        help="exit after this long (default: run until Ctrl-C or --until-idle)",
    )
    run_group.add_argument(
        "--logs",
        choices=["transitions", "console", "json", "none"],
        default="transitions",
        help="the handler's logs: one line per transition, structlog's console "
        "format, Lambda's JSON lines, or nothing",
    )
    run_group.add_argument(
        "--metrics", action="store_true", help="also print the handler's EMF metric lines"
    )
    parser.set_defaults(run=run)


#: `arn:aws:dynamodb:REGION:ACCOUNT:table/TABLE/stream/LABEL` (any partition).
_STREAM_ARN = re.compile(r"arn:[\w-]+:dynamodb:[\w-]+:\d{12}:table/[\w.-]+/stream/\S+")


def _stream_arn(text: str) -> str:
    if not _STREAM_ARN.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"expected arn:aws:dynamodb:REGION:ACCOUNT:table/TABLE/stream/LABEL, got {text!r}"
        )
    return text


def _limits(limits: tuple[int, int]) -> str:
    return f"{limits[0]}..{limits[1]:,}"


def _record_age(text: str) -> int:
    """-1, or seconds within Lambda's MaximumRecordAgeInSeconds limits."""
    value = int_in(-1, RECORD_AGE_LIMITS[1])(text)
    if value != -1 and value < RECORD_AGE_LIMITS[0]:
        raise argparse.ArgumentTypeError(f"must be -1 or {_limits(RECORD_AGE_LIMITS)}, got {value}")
    return value


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


def _print_warnings(logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> Any:
    """A structlog processor printing the handler's warnings and errors in one line each
    (a failed transition, logged as an error, is left to `transition_lines`)."""
    import structlog

    name = event_dict.get("event")
    if method_name in ("warning", "error", "exception", "critical") and name != "transition":
        _say(f"  {method_name}: {name} {details(event_dict, skip=('event',))}")
    raise structlog.DropEvent


_print_lock = threading.Lock()


def _say(line: str) -> None:
    with _print_lock:
        print(line, flush=True)


def _handler_logs(mode: str, metrics: bool) -> AbstractContextManager[None]:
    """Route the handler's logs (and EMF lines) as asked, for the block."""
    import structlog

    from reassembly_trigger.local.invocations.logs import trigger_output
    from reassembly_trigger.logs import configure_logging

    def route(_: TextIO) -> None:
        if mode in ("json", "console"):
            configure_logging("json" if mode == "json" else "console", force=True)
        else:  # one line per warning; the transitions are printed from the outcomes
            structlog.configure(processors=[_print_warnings], cache_logger_on_first_use=False)

    if mode == "none":
        return trigger_output(metrics=metrics)
    return trigger_output(route, metrics=metrics)


def transition_lines(report: InvocationReport) -> list[str]:
    """One compact line per transition of the invocation's jobs, from their outcomes."""
    lines = []
    for row in transition_rows(report.outcomes):
        reason = f": {plain(row['reason'])}" if row.get("reason") else ""
        lines.append(
            f"  {row['job_id']}: {row['source']} -> {row['dest']} ({row['trigger']}{reason}) "
            f"{transition_facts(row)}".rstrip()
        )
    return lines


def describe(report: PollerReport) -> str:
    """One line for a poller report."""
    stamp, table = time.strftime("%H:%M:%S"), report.stream_arn.split("/")[1]
    if isinstance(report, InvocationReport):
        retry = f" (retry {report.attempt})" if report.attempt else ""
        outcome = report.outcome.value
        if report.outcome is InvocationOutcome.PARTIAL:
            outcome += f", retry from {report.retry_from}"
        if report.error:
            outcome += f": {report.error}"
        return (
            f"{stamp} {table} {report.shard_id}: invoked with {plural(report.records, 'record')} "
            f"{report.first_sequence_number}..{report.last_sequence_number}{retry} -> "
            f"{outcome} ({report.seconds * 1000:.0f} ms)"
        )
    if isinstance(report, DiscardReport):
        info = report.document["DDBStreamBatchInfo"]
        where = f"sent to {report.sent_to}" if report.sent_to else "no on-failure queue: dropped"
        return (
            f"{stamp} {table} {report.shard_id}: DISCARDED {plural(report.records, 'record')} "
            f"{info['startSequenceNumber']}..{info['endSequenceNumber']} "
            f"({report.condition.value}); metadata {where}"
        )
    return f"{stamp} poller error on {report.stream_arn}: {report.error} (retrying)"


def _stream_arns(args: argparse.Namespace, aws: LocalAws) -> list[str]:
    if args.stream_arn:
        return list(args.stream_arn)
    completions = os.environ.get("SEGMENT_COMPLETIONS_TABLE_NAME", "").strip()
    if not completions:
        raise UsageError(
            "no --stream-arn and no SEGMENT_COMPLETIONS_TABLE_NAME: run `reassembly-trigger "
            "local up` and export what it prints"
        )
    variables = {completions: "SEGMENT_COMPLETIONS_TABLE_NAME"}
    jobs = os.environ.get("JOBS_TABLE_NAME", "").strip()
    if jobs:
        variables[jobs] = "JOBS_TABLE_NAME"
    found = {}
    for table, variable in variables.items():
        try:
            description = aws.dynamodb.describe_table(TableName=table)["Table"]
        except Exception as exc:
            if aws_error_code(exc) == "ResourceNotFoundException":
                raise AwsError(
                    f"table {table} (${variable}) not found in {aws.region} at "
                    f"{aws.dynamodb.meta.endpoint_url}"
                ) from exc
            raise
        arn = description.get("LatestStreamArn")
        if arn and description.get("StreamSpecification", {}).get("StreamEnabled", False):
            found[table] = arn
    if completions not in found:
        raise UsageError(f"table {completions} has no stream enabled")
    return list(found.values())


def _region(args: argparse.Namespace) -> str:
    """The region to poll in: `--region`, `$AWS_REGION`, `$AWS_DEFAULT_REGION` or the
    default; `UsageError` when a variable holds no region name (an AWS endpoint would
    answer it with an error on every call, a local stack with a server error)."""
    if args.region:
        return str(args.region)
    for variable in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        value = os.environ.get(variable, "").strip()
        if value:
            if not is_region_name(value):
                raise UsageError(
                    f"${variable}={value!r} is not an AWS region name such as us-east-1"
                )
            return value
    return DEFAULT_REGION


def run(args: argparse.Namespace) -> int:
    """Poll until Ctrl-C, `--duration` or `--until-idle`."""
    from reassembly_trigger.settings import Settings

    region = _region(args)
    endpoint_url = use_endpoint(args.endpoint_url)
    # The handler's clients read AWS_DEFAULT_REGION (botocore): poll's region for both.
    os.environ["AWS_REGION"] = os.environ["AWS_DEFAULT_REGION"] = region
    try:
        handler = load_handler(args.handler)
    except (ValueError, ImportError) as exc:
        raise UsageError(str(exc)) from exc
    if args.handler == DEFAULT_HANDLER:
        Settings.from_env()  # fail now, naming every missing variable
        # The handler's own clients need credentials (poll's may use a local stack's).
        check_aws_configuration(region=False)
    aws = LocalAws.connect(endpoint_url, region)
    arns = _stream_arns(args, aws)
    settings = MappingSettings(
        batch_size=args.batch_size,
        batching_window_seconds=args.batching_window,
        bisect_on_error=args.bisect,
        maximum_retry_attempts=args.max_retries,
        maximum_record_age_seconds=args.max_record_age,
        starting_position=StartingPosition(args.starting_position),
        on_failure_queue_url=args.on_failure_queue_url or os.environ.get("ON_FAILURE_QUEUE_URL"),
        function_timeout_seconds=args.function_timeout,
        poll_interval_seconds=args.poll_interval,
    )

    def observe(report: PollerReport) -> None:
        # The transitions first: they happened during the invocation the report ends.
        if args.logs == "transitions" and isinstance(report, InvocationReport):
            for line in transition_lines(report):
                _say(line)
        _say(describe(report))

    group = PollerGroup(
        StreamPoller(aws.streams, arn, handler, settings, sqs=aws.sqs, observer=observe)
        for arn in arns
    )
    for arn in arns:
        _say(f"following {arn}")
    with _handler_logs(args.logs, args.metrics):
        failure = _poll(group, args.duration, args.until_idle)
    stats = group.stats()
    print(
        f"stopped: {plural(stats.records_read, 'record')} read, "
        f"{plural(stats.invocations, 'invocation')} "
        f"({plural(stats.partial_failures, 'partial failure')}, "
        f"{plural(stats.function_errors, 'function error')}, "
        f"{plural(stats.retries, 'retry')}, "
        f"{plural(stats.discarded_batches, 'batch', 'batches')} discarded, "
        f"{plural(stats.errors, 'stream error')})",
        file=sys.stderr,
    )
    if failure is not None:
        raise AwsError(failure)
    return 0


def _poll(group: PollerGroup, duration: float | None, until_idle: float | None) -> str | None:
    """Run the pollers until the first of Ctrl-C, `duration` or `until_idle`; a line
    saying which stream could not be read, when `until_idle` gave up on one."""
    started = time.monotonic()
    group.start()
    try:
        while True:
            time.sleep(0.1)
            if duration is not None and time.monotonic() - started >= duration:
                return None
            if until_idle is None:
                continue
            # The poller failing for longest, if any is failing.
            failing = max(group.pollers, key=lambda poller: poller.failing_for())
            if failing.failing_for() >= until_idle:
                return (
                    f"cannot read {failing.stream_arn}: {failing.last_error} "
                    f"(failing for {failing.failing_for():.0f} s, --until-idle {until_idle:g})"
                )
            if not failing.failing_for() and group.quiet_for() >= until_idle:
                return None
    except KeyboardInterrupt:
        return None
    finally:
        group.stop()
