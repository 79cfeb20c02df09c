"""`reassembly-trigger simulate`: the whole pipeline on an embedded AWS, with a verdict."""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections import Counter
from collections.abc import Callable
from typing import Any

from reassembly_trigger.local.commands.common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    UsageError,
    int_in,
    plural,
    report_console,
    seconds,
)
from reassembly_trigger.local.simulation.pipeline import PipelineSimulation
from reassembly_trigger.local.simulation.report import PipelineReport, Progress
from reassembly_trigger.local.simulation.trigger_modes import TriggerMode
from reassembly_trigger.local.simulation.workload import Workload
from reassembly_trigger.timing import LAMBDA_MAX_TIMEOUT_SECONDS, MIN_FUNCTION_TIMEOUT_SECONDS

_DEFAULTS = Workload()


def register(subparsers: Any) -> None:
    """Add the `simulate` command."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "simulate",
        help="play a realistic workload end to end on an embedded AWS (the main command)",
        description=(
            "Start a moto server, then play a workload through it: the chunker completes "
            "jobs (some after their last segment), video workers write completions "
            "concurrently and out of order, a stream poller invokes the real handler like "
            "Lambda's event source mapping (or, with --mode on-write, each worker calls "
            "trigger_job after its write; --mode both does the two), the reconciler runs "
            "on a schedule, and a "
            "modelled media worker consumes the queue with the contract's lock. Exit 0 only "
            "if every job was reassembled exactly once and nothing is stuck; 1 if not, or if "
            "the run timed out; 130 on Ctrl-C (the report then says how far it got)."
        ),
    )
    parser.add_argument(
        "--jobs", type=int_in(1, 100_000), default=_DEFAULTS.jobs, help="jobs to play"
    )
    parser.add_argument(
        "--segments",
        type=_segment_range,
        metavar="MIN-MAX",
        help=f"segments per job (default {_DEFAULTS.min_segments}-{_DEFAULTS.max_segments})",
    )
    parser.add_argument(
        "--min",
        dest="min_segments",
        type=int_in(1, 100_000),
        help=f"fewest segments per job (default: MIN of --segments, {_DEFAULTS.min_segments})",
    )
    parser.add_argument(
        "--max",
        dest="max_segments",
        type=int_in(1, 100_000),
        help=f"most segments per job (default: MAX of --segments, {_DEFAULTS.max_segments})",
    )
    parser.add_argument(
        "--workers",
        type=int_in(1, 256),
        default=_DEFAULTS.workers,
        help="concurrent video workers",
    )
    parser.add_argument(
        "--seed", type=int, default=_DEFAULTS.seed, help="the workload's random seed"
    )
    parser.add_argument(
        "--fault-rate",
        type=_share(below_one=True),
        default=0.0,
        metavar="RATE",
        help="share of the trigger's own AWS calls that fail (the handler's, the API's and "
        "the reconciler's): throttles, 5xx, lost responses, e.g. 0.05",
    )
    parser.add_argument(
        "--discard-rate",
        type=_share(),
        default=_DEFAULTS.discard_rate,
        metavar="RATE",
        help="share of stream batches the mappings give up on, as once their retries ran "
        "out: never delivered, e.g. 0.3",
    )
    parser.add_argument(
        "--mode",
        choices=[mode.value for mode in TriggerMode],
        default=_DEFAULTS.mode.value,
        help="who evaluates a job when a completion is written: the stream Lambda "
        "(stream, the default), each video worker calling trigger_job right after its "
        "write, and the chunker after its mark (on-write: no stream mapping at all), or "
        "both",
    )
    parser.add_argument(
        "--no-chunker-call",
        action="store_true",
        help="with on-write or both: the chunker does not call trigger_job after marking a "
        "job chunking_complete (a job chunked after its last segment then waits for the "
        "reconciler)",
    )
    parser.add_argument(
        "--no-jobs-stream",
        action="store_true",
        help="no mapping on the Jobs stream: a job chunked after its last segment is named "
        "by no record",
    )
    parser.add_argument(
        "--no-reconciler",
        action="store_true",
        help="no scheduled reconciler: the stream path alone (the verdict names the jobs it "
        "leaves stuck)",
    )
    parser.add_argument(
        "--reconcile-every",
        type=seconds(),
        default=None,
        metavar="SECONDS",
        help=f"run the reconciler this often (default {_DEFAULTS.reconcile_every_seconds:g}; "
        "once the pipeline looks settled it also runs until a run finds nothing to do)",
    )
    parser.add_argument(
        "--function-timeout",
        type=seconds(
            low=MIN_FUNCTION_TIMEOUT_SECONDS, high=LAMBDA_MAX_TIMEOUT_SECONDS, allow_low=True
        ),
        default=_DEFAULTS.function_timeout_seconds,
        metavar="SECONDS",
        help="the timeout of every invocation: the stream function's, each trigger_job "
        f"call's, each reconcile run's (default {_DEFAULTS.function_timeout_seconds:g}, the "
        f"replaced Lambda's; {MIN_FUNCTION_TIMEOUT_SECONDS} to {LAMBDA_MAX_TIMEOUT_SECONDS})",
    )
    parser.add_argument(
        "--timeout",
        type=seconds(),
        default=_DEFAULTS.timeout_seconds,
        metavar="SECONDS",
        help="give up waiting for the pipeline to settle after this long (the run then fails "
        "and reports the jobs it did not get to as unfinished)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(run=run, extra="local")


def _share(*, below_one: bool = False) -> Callable[[str], float]:
    """An argparse type: a share from 0 to 1 (below 1 with `below_one`)."""

    def parse(text: str) -> float:
        try:
            share = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a share such as 0.05, got {text!r}"
            ) from None
        if not 0.0 <= share <= 1.0 or (below_one and share == 1.0):
            bound = "below 1" if below_one else "at most 1"
            raise argparse.ArgumentTypeError(f"must be at least 0 and {bound}, got {text}")
        return share

    return parse


def _segment_range(text: str) -> tuple[int, int]:
    low, _, high = text.partition("-")
    try:
        bounds = (int(low), int(high or low))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MIN-MAX, e.g. 3-60, not {text!r}") from None
    if not 1 <= bounds[0] <= bounds[1]:
        raise argparse.ArgumentTypeError(f"need 1 <= MIN <= MAX, not {text!r}")
    return bounds


def check_combinations(args: argparse.Namespace) -> None:
    """`UsageError` for an option the chosen mode ignores: accepting it silently would
    report a run that is not the one asked for."""
    mode = TriggerMode(args.mode)
    if args.no_chunker_call and not mode.on_write:
        raise UsageError(
            "--no-chunker-call needs --mode on-write or both: in stream mode the chunker "
            "calls nothing"
        )
    if not mode.streams:
        if args.no_jobs_stream:
            raise UsageError(
                "--no-jobs-stream needs --mode stream or both: on-write maps no stream"
            )
        if args.discard_rate > 0:
            raise UsageError(
                "--discard-rate needs --mode stream or both: on-write maps no stream, so "
                "no batch can be given up"
            )
    if args.no_reconciler and args.reconcile_every is not None:
        raise UsageError("--reconcile-every and --no-reconciler contradict each other")


def workload_from(args: argparse.Namespace) -> Workload:
    """The workload the options describe."""
    low, high = args.segments or (_DEFAULTS.min_segments, _DEFAULTS.max_segments)
    return Workload(
        jobs=args.jobs,
        min_segments=args.min_segments if args.min_segments is not None else low,
        max_segments=args.max_segments if args.max_segments is not None else high,
        workers=args.workers,
        seed=args.seed,
        fault_rate=args.fault_rate,
        timeout_seconds=args.timeout,
        discard_rate=args.discard_rate,
        jobs_stream=not args.no_jobs_stream,
        reconciler=not args.no_reconciler,
        reconcile_every_seconds=(
            _DEFAULTS.reconcile_every_seconds
            if args.reconcile_every is None
            else args.reconcile_every
        ),
        mode=TriggerMode(args.mode),
        chunker_calls=not args.no_chunker_call,
        function_timeout_seconds=args.function_timeout,
    )


def run(args: argparse.Namespace) -> int:
    """Play the workload; print the table (or JSON) and the verdict."""
    from rich.console import Console

    check_combinations(args)
    try:
        workload = workload_from(args)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    if args.no_progress:
        result = PipelineSimulation(workload).run()
    else:
        result = _run_with_progress(workload, Console(stderr=True))
    if args.json:
        sys.stdout.write(json.dumps(result.summary()) + "\n")
    else:
        # Wide enough for the table when the output is a file or a pipe.
        _print_report(result, report_console(150))
    if result.interrupted:
        return EXIT_INTERRUPTED
    return 0 if result.passed else EXIT_FAILED


def _run_with_progress(workload: Workload, console: Any) -> PipelineReport:
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as Bar

    with Bar(
        TextColumn("{task.description:<22}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        written = bar.add_task("completions written", total=None, detail="")
        reassembled = bar.add_task("jobs reassembled", total=workload.jobs, detail="")

        def update(progress: Progress) -> None:
            bar.update(written, completed=progress.written, total=progress.to_write)
            bar.update(
                reassembled,
                completed=progress.reassembled,
                detail=f"{plural(progress.invocations, 'invocation')}, "
                f"{plural(progress.records, 'record')}",
            )

        return PipelineSimulation(workload, on_progress=update).run()


def _reasons(counts: Counter[str]) -> str:
    return ", ".join(f"{reason} x{n}" for reason, n in sorted(counts.items())) or "-"


def _named(job_ids: list[str], shown: int = 10) -> str:
    """Job ids for a line: the first `shown`, then how many more."""
    more = len(job_ids) - shown
    return ", ".join(job_ids[:shown]) + (f" and {more} more" if more > 0 else "")


#: How the table shows a job's outcome (anything else: bold red).
_OUTCOME_STYLES = {"reassembled": "green", "unfinished": "yellow"}


def _print_report(result: PipelineReport, console: Any) -> None:
    from rich.table import Table

    workload = result.workload
    # Plain lines: no highlighting, and wrapped by the terminal rather than by rich.
    say = functools.partial(console.print, highlight=False, soft_wrap=True)
    say(
        f"simulate ({workload.mode.value}): {plural(workload.jobs, 'job')} of "
        f"{workload.min_segments}-{workload.max_segments} segments, "
        f"{plural(workload.workers, 'video worker')}, seed {workload.seed}, "
        f"fault rate {workload.fault_rate:g}, discard rate {workload.discard_rate:g}, "
        f"Jobs stream {'mapped' if workload.jobs_stream_mapped else 'unmapped'}, "
        + (
            f"chunker {'calls' if workload.chunker_calls_api else 'does not call'} trigger_job, "
            if workload.mode.on_write
            else ""
        )
        + "reconciler "
        + (f"every {workload.reconcile_every_seconds:g} s" if workload.reconciler else "off")
    )
    table = Table()
    for column in ("job", "segments", "chunked", "outcome", "messages", "reassemblies"):
        table.add_column(column, justify="left" if column in ("job", "outcome") else "right")
    table.add_column("skip reasons seen")
    for job in result.jobs:
        planned = job.job
        chunked = "after last" if planned.late_chunking else f"after {planned.chunk_after}"
        reasons = _reasons(job.skips)
        if job.failures:
            reasons += "; failed: " + _reasons(job.failures)
        if job.reconciler_sends:
            reasons += "; sent by the reconciler"
        table.add_row(
            planned.job_id,
            str(planned.total_segments),
            chunked,
            f"[{_OUTCOME_STYLES.get(job.outcome, 'bold red')}]{job.outcome}[/]",
            str(job.messages),
            str(job.reassemblies),
            reasons,
        )
    console.print(table)
    say(counts_line(result))
    if result.reconciler is not None:
        say(reconciler_line(result))
    for line in cost_lines(result):
        say(line)
    say(f"skips by reason: {_reasons(result.skips_by_reason)}")
    if result.failures_by_reason:
        say(f"failed evaluations (retried): {_reasons(result.failures_by_reason)}")
    for error in result.errors:
        say(f"[red]error:[/] {error}")
    say(verdict_line(result))


def counts_line(result: PipelineReport) -> str:
    """What the pipeline did: completions, stream records, invocations, messages."""
    poller = result.poller
    return (
        f"{plural(result.completions_written, 'completion')} written "
        f"({plural(result.duplicates_written, 'duplicate')}), "
        f"{plural(poller.records_read, 'stream record')}, "
        f"{plural(poller.invocations, 'invocation')} "
        f"({plural(poller.retries, 'retry')}, "
        f"{plural(poller.discarded_batches, 'batch', 'batches')} discarded), "
        f"{plural(result.messages, 'message')}, "
        f"{plural(result.faults_injected, 'fault')} injected, {result.seconds:.1f} s"
    )


def reconciler_line(result: PipelineReport) -> str:
    """What the reconciler's runs did (only when it ran)."""
    tally = result.reconciler
    runs, examined = (tally.runs, tally.jobs_examined) if tally is not None else (0, 0)
    return (
        f"reconciler: {plural(runs, 'run')}, {plural(examined, 'job')} examined, "
        f"{plural(len(result.reconciler_enqueued), 'job')} enqueued by it"
    )


def cost_lines(result: PipelineReport) -> list[str]:
    """Each actor's AWS calls by operation, the trigger's calls per completion, and the
    latency from the write that made a job complete to its first message."""
    lines = [
        f"AWS calls, {actor}: {plural(sum(calls.values()), 'call')} ("
        + ", ".join(f"{op} {n}" for op, n in sorted(calls.items()))
        + ")"
        for actor, calls in sorted(result.aws_calls.items())
        if sum(calls.values())
    ]
    lines.append(
        f"trigger (handler + API): {result.calls_per_completion:.2f} calls per completion "
        f"written; {plural(result.messages, 'message')}"
    )
    latency = result.latency()
    by_write = result.latency_by_last_write()
    detail = "; ".join(
        f"completed by {by}: {summary.line()}" for by, summary in by_write.items() if summary
    )
    lines.append(
        "latency, write that completed the job -> first message sent: "
        + (latency.line() if latency else "-")
        + (f" ({detail})" if detail else "")
    )
    if result.api_outcomes:
        lines.append(f"API outcomes: {_reasons(result.api_outcomes)}")
    return lines


def progress_line(result: PipelineReport) -> str:
    """How far a run that stopped before it settled got."""
    return (
        f"after {result.seconds:.1f} s, before the pipeline settled: "
        f"{result.completions_written} of {result.completions_planned} completions written, "
        f"{result.reassembled_once} of {plural(len(result.jobs), 'job')} reassembled, "
        f"{result.unfinished} unfinished"
    )


def verdict_line(result: PipelineReport) -> str:
    """PASS, or FAIL with what went wrong, or how far an interrupted run got (markup)."""
    if result.passed:
        return (
            f"[bold green]PASS[/]: all {plural(len(result.jobs), 'job')} reassembled exactly "
            f"once, none stuck ({plural(result.messages - len(result.jobs), 'extra message')} "
            "absorbed by the media worker's lock)"
        )
    problems = [
        f"{result.stuck} stuck ({_named(result.stuck_jobs)})" if result.stuck else "",
        f"{plural(result.duplicate_reassemblies, 'duplicate reassembly')}"
        if result.duplicate_reassemblies
        else "",
        plural(result.refusals, "refusal") if result.refusals else "",
        plural(len(result.errors), "error") if result.errors else "",
    ]
    if not result.settled:
        stopped = (
            "[bold yellow]INTERRUPTED[/]" if result.interrupted else "[bold red]FAIL[/]: timed out"
        )
        return f"{stopped} " + "; ".join(p for p in [progress_line(result), *problems] if p)
    return (
        f"[bold red]FAIL[/]: {result.reassembled_once} of {plural(len(result.jobs), 'job')} "
        f"reassembled exactly once; " + ", ".join(p for p in problems if p)
    )
