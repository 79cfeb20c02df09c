"""`reassembly-trigger simulate`: the whole pipeline on an embedded AWS, with a verdict."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from typing import Any

from reassembly_trigger.local.simulation import (
    JobResult,
    Progress,
    Simulation,
    SimulationResult,
    Workload,
)

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
            "Lambda's event source mapping, the reconciler runs on a schedule, and a "
            "modelled media worker consumes the queue with the contract's lock. Exit 0 only "
            "if every job was reassembled exactly once and nothing is stuck."
        ),
    )
    parser.add_argument("--jobs", type=int, default=_DEFAULTS.jobs, help="jobs to play (20)")
    parser.add_argument(
        "--segments",
        type=_segment_range,
        metavar="MIN-MAX",
        help=f"segments per job (default {_DEFAULTS.min_segments}-{_DEFAULTS.max_segments})",
    )
    parser.add_argument("--min", dest="min_segments", type=int, help="fewest segments per job")
    parser.add_argument("--max", dest="max_segments", type=int, help="most segments per job")
    parser.add_argument(
        "--workers",
        type=int,
        default=_DEFAULTS.workers,
        help=f"concurrent video workers (default {_DEFAULTS.workers})",
    )
    parser.add_argument(
        "--seed", type=int, default=_DEFAULTS.seed, help="the workload's random seed"
    )
    parser.add_argument(
        "--fault-rate",
        type=float,
        default=0.0,
        metavar="RATE",
        help="share of the handler's AWS calls that fail: throttles, 5xx, lost responses "
        "(e.g. 0.05)",
    )
    parser.add_argument(
        "--discard-rate",
        type=_share,
        default=_DEFAULTS.discard_rate,
        metavar="RATE",
        help="share of stream batches the mappings give up on, as once their retries ran "
        "out: never delivered (e.g. 0.3)",
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
        type=float,
        default=_DEFAULTS.reconcile_every_seconds,
        metavar="SECONDS",
        help=f"run the reconciler this often (default {_DEFAULTS.reconcile_every_seconds:g}; "
        "once the pipeline is quiet it also runs until a run finds nothing to do)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=_DEFAULTS.timeout_seconds,
        metavar="SECONDS",
        help="give up waiting for the pipeline to settle after this long",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(run=run)


def _share(text: str) -> float:
    try:
        share = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a share such as 0.3, not {text!r}") from None
    if not 0.0 <= share <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], not {text}")
    return share


def _segment_range(text: str) -> tuple[int, int]:
    low, _, high = text.partition("-")
    try:
        bounds = (int(low), int(high or low))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MIN-MAX, e.g. 3-60, not {text!r}") from None
    if not 1 <= bounds[0] <= bounds[1]:
        raise argparse.ArgumentTypeError(f"need 1 <= MIN <= MAX, not {text!r}")
    return bounds


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
        reconcile_every_seconds=args.reconcile_every,
    )


def run(args: argparse.Namespace) -> int:
    """Play the workload; print the table (or JSON) and the verdict."""
    from rich.console import Console

    try:
        workload = workload_from(args)
    except ValueError as exc:
        print(f"simulate: {exc}", file=sys.stderr)
        return 2
    stderr = Console(stderr=True)
    if args.no_progress:
        result = Simulation(workload).run()
    else:
        result = _run_with_progress(workload, stderr)
    if args.json:
        sys.stdout.write(json.dumps(result.summary()) + "\n")
    else:
        # Wide enough for the table when the output is a file or a pipe.
        _print_report(result, Console(width=None if sys.stdout.isatty() else 150))
    return 0 if result.passed else 1


def _run_with_progress(workload: Workload, console: Any) -> SimulationResult:
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
                detail=f"{progress.invocations} invocations, {progress.records} records",
            )

        return Simulation(workload, on_progress=update).run()


def _reasons(counts: Counter[str]) -> str:
    return ", ".join(f"{reason} x{n}" for reason, n in sorted(counts.items())) or "-"


def _named(job_ids: list[str], shown: int = 10) -> str:
    """Job ids for a line: the first `shown`, then how many more."""
    more = len(job_ids) - shown
    return ", ".join(job_ids[:shown]) + (f" and {more} more" if more > 0 else "")


def _outcome_style(job: JobResult) -> str:
    return "green" if job.outcome == "reassembled" else "bold red"


def _print_report(result: SimulationResult, console: Any) -> None:
    from rich.table import Table

    workload = result.workload
    console.print(
        f"simulate: {workload.jobs} jobs of {workload.min_segments}-{workload.max_segments} "
        f"segments, {workload.workers} video workers, seed {workload.seed}, "
        f"fault rate {workload.fault_rate:g}, discard rate {workload.discard_rate:g}, "
        f"Jobs stream {'mapped' if workload.jobs_stream else 'unmapped'}, reconciler "
        + (f"every {workload.reconcile_every_seconds:g} s" if workload.reconciler else "off")
    )
    table = Table()
    table.add_column("job")
    table.add_column("segments", justify="right")
    table.add_column("chunked", justify="right")
    table.add_column("outcome")
    table.add_column("messages", justify="right")
    table.add_column("reassemblies", justify="right")
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
            f"[{_outcome_style(job)}]{job.outcome}[/]",
            str(job.messages),
            str(job.reassemblies),
            reasons,
        )
    console.print(table)
    poller = result.poller
    duplicates = result.completions_written - sum(job.job.total_segments for job in result.jobs)
    console.print(
        f"{result.completions_written} completions written ({duplicates} duplicates), "
        f"{poller.records_read} stream "
        f"records, {poller.invocations} invocations ({poller.retries} retries, "
        f"{poller.discarded_batches} batches discarded), {result.messages} messages, "
        f"{result.faults_injected} faults injected, {result.seconds:.1f} s"
    )
    if result.reconciler is not None:
        console.print(
            f"reconciler: {result.reconciler.runs} runs, "
            f"{result.reconciler.jobs_examined} jobs examined, "
            f"{len(result.reconciler_enqueued)} jobs enqueued by it"
        )
    console.print(f"skips by reason: {_reasons(result.skips_by_reason)}")
    if result.failures_by_reason:
        console.print(f"failed evaluations (retried): {_reasons(result.failures_by_reason)}")
    for error in result.errors:
        console.print(f"[red]error:[/] {error}")
    if result.passed:
        console.print(
            f"[bold green]PASS[/]: all {len(result.jobs)} jobs reassembled exactly once, "
            f"none stuck ({result.messages - len(result.jobs)} extra messages absorbed by "
            "the media worker's lock)"
        )
    else:
        problems = [
            f"{result.stuck} stuck ({_named(result.stuck_jobs)})" if result.stuck else "",
            f"{result.duplicate_reassemblies} duplicate reassemblies"
            if result.duplicate_reassemblies
            else "",
            f"{result.refusals} refusals" if result.refusals else "",
            "timed out" if result.timed_out else "",
        ]
        console.print(
            f"[bold red]FAIL[/]: {result.reassembled_once}/{len(result.jobs)} jobs reassembled "
            f"exactly once; " + ", ".join(p for p in problems if p)
        )
