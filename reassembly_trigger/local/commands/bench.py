"""`reassembly-trigger bench`: run the benchmark and print its table (or JSON)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from reassembly_trigger.local.bench import Bench, BenchConfig, BenchReport, Endpoints
from reassembly_trigger.local.commands.common import EXIT_FAILED, int_in, seconds
from reassembly_trigger.local.latency_proxy import DEFAULT_LATENCY_MS, SubprocessStack
from reassembly_trigger.settings import DEFAULT_EVALUATION_CONCURRENCY

_DEFAULTS = BenchConfig()
#: What a quick run prints instead of the targets: its sizes say nothing about them.
SMOKE_NOTE = (
    "quick run: a smoke test at tiny sizes, every path exercised and checked for "
    "correctness; the performance targets are scored only by a full run (without --quick)"
)


def register(subparsers: Any) -> None:
    """Add the `bench` command."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "bench",
        help="benchmark the handler against moto behind a latency proxy",
        description="Run three workloads (a stream of completions over many jobs, one wide "
        "batch of jobs not ready, one deep job) and the cold-start measurement against an "
        "embedded moto server behind a loopback proxy that delays and counts every AWS "
        "call, and compare the figures with the performance targets (docs/performance.md). "
        "Not a test: it reports what it measures. Exit 1 only when a workload did the "
        "wrong thing (a job not triggered, or triggered twice).",
    )
    parser.add_argument(
        "--latency-ms",
        type=seconds(low=0.0, high=10_000, allow_low=True),
        default=DEFAULT_LATENCY_MS,
        metavar="MS",
        help="delay added to every AWS call, in milliseconds",
    )
    parser.add_argument(
        "--concurrency",
        type=int_in(1, 1_000),
        default=DEFAULT_EVALUATION_CONCURRENCY,
        metavar="N",
        help="EVALUATION_CONCURRENCY of the main runs; workload 1 also runs at 1",
    )
    parser.add_argument(
        "--cold-start-runs",
        type=int_in(0, 1_000),
        default=None,
        metavar="N",
        help="fresh interpreters per cold-start figure, median reported "
        f"(default: {_DEFAULTS.cold_start_runs}, 1 with --quick; 0 skips)",
    )
    parser.add_argument("--seed", type=int, default=_DEFAULTS.seed, help="order of the completions")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run: tiny sizes, every path checked for correctness, no targets scored",
    )
    parser.add_argument(
        "--scaling",
        action="store_true",
        help="also measure how one batch's cost grows with records, jobs and segments",
    )
    parser.add_argument(
        "--stock-moto",
        action="store_true",
        help="leave moto's Query as it is (it sorts the whole table on every call)",
    )
    parser.add_argument(
        "--save-json",
        type=Path,
        default=None,
        metavar="FILE",
        help="also write the JSON report to this file (default: none)",
    )
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="machine-readable output")
    output.add_argument("--markdown", action="store_true", help="the table as Markdown")
    parser.set_defaults(run=run, extra="local")


def config_from(args: argparse.Namespace) -> BenchConfig:
    """The run's configuration from the command line."""
    overrides: dict[str, Any] = {
        "latency_ms": args.latency_ms,
        "concurrency": args.concurrency,
        "tuned_moto": not args.stock_moto,
        "scaling": args.scaling,
        "seed": args.seed,
    }
    if args.cold_start_runs is not None:
        overrides["cold_start_runs"] = args.cold_start_runs
    return BenchConfig.quick(**overrides) if args.quick else BenchConfig(**overrides)


def run(args: argparse.Namespace) -> int:
    """Start moto behind the proxy in a child process, run, print; 0 when every check held."""
    from rich.console import Console

    progress = Console(stderr=True)
    config = config_from(args)
    with SubprocessStack(config.latency_ms, tune_moto=config.tuned_moto) as stack:
        assert stack.control is not None
        endpoints = Endpoints(stack.upstream_url, stack.proxy_url, stack.control)
        report = Bench(config, endpoints, progress=progress.log).run()
    document = as_json(report, smoke=args.quick)
    if args.save_json is not None:
        args.save_json.write_text(json.dumps(document, indent=2) + "\n")
    if args.json:
        json.dump(document, sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif args.markdown:
        sys.stdout.write(markdown(report, smoke=args.quick))
    else:
        # Piped output has no terminal width; the table reads better wide than folded.
        render(report, Console(width=None if sys.stdout.isatty() else 180), smoke=args.quick)
    return 0 if correct(report) else EXIT_FAILED


def as_json(report: BenchReport, *, smoke: bool) -> dict[str, Any]:
    """The report as JSON; a smoke run's has no targets (`"smoke_run": true`)."""
    document = report.as_dict()
    document["smoke_run"] = smoke
    if smoke:
        document["targets"] = None
    return document


def correct(report: BenchReport) -> bool:
    """Whether every workload did the right thing (timing targets are reported, not enforced)."""
    ok = True
    for workload in report.workloads:
        checks = workload.checks
        ok &= checks.get("failed_records", 0) == 0
        if workload.key.startswith("stream"):
            ok &= checks["triggered"] == checks["expected"] and checks["duplicates"] == 0
    deep = report.workload("deep").checks
    ok &= deep["completions"] == deep["segments"] and deep["triggered"] == 1
    return bool(ok)


def _calls(calls: dict[str, dict[str, int]]) -> str:
    return ", ".join(
        f"{action} {count}" for actions in calls.values() for action, count in actions.items()
    )


def rows(report: BenchReport) -> list[list[str]]:
    """One row per workload run, as printed."""
    return [
        [
            w.title,
            str(w.concurrency),
            f"{w.wall_seconds:.3f}",
            f"{w.calls_total} ({_calls(w.calls)})",
            f"{w.calls_per_job:.1f}",
            f"{w.effective_parallelism:.1f}",
            f"{w.cpu_us_per_record:.1f}",
            f"{w.upstream_seconds:.2f}",
        ]
        for w in report.workloads
    ]


HEADERS = [
    "workload",
    "concurrency",
    "wall s",
    "AWS calls (by action)",
    "calls/job",
    "eff. parallelism",
    "CPU us/record",
    "moto busy s",
]


def summary_lines(report: BenchReport, *, smoke: bool = False) -> list[str]:
    """The figures under the table: round trip, speed-up, cold start, targets (or, for
    a smoke run, a note that they are not scored)."""
    machine = report.machine
    lines = [
        f"machine: {machine['nproc']} cores, {machine['cpu']}, Python {machine['python']}, "
        f"load {machine['load_average']} before, {machine.get('load_average_after')} after",
        f"latency added per call: {report.config.latency_ms:g} ms; measured single-call "
        f"round trip through the proxy: {report.round_trip_seconds * 1000:.2f} ms",
        f"workload 1 speed-up, concurrency {report.config.concurrency} over 1: "
        f"{report.speedup:.1f}x; if only the handler's CPU time bounded it (moto shares "
        f"these cores, AWS would not): at most {report.cpu_bound_ceiling[0]:.1f}x, "
        f"effective parallelism at most {report.cpu_bound_ceiling[1]:.1f}",
    ]
    cold = report.cold_start
    if cold is not None:
        ms = 1000
        lines += [
            f"cold start, median of {cold.runs} interleaved fresh processes, as deployed "
            f"(no rich): python -c pass {cold.empty_process * ms:.0f} ms, import boto3 "
            f"{cold.boto3_process * ms:.0f} ms, import reassembly_trigger.handler "
            f"{cold.handler_process * ms:.0f} ms: ratio {cold.import_ratio:.2f} "
            f"(with this venv's rich: {cold.handler_process_with_rich * ms:.0f} ms, "
            f"ratio {cold.import_ratio_with_rich:.2f})",
            f"first invocation {cold.first_invocation * ms:.0f} ms vs warm "
            f"{cold.warm_invocation * ms:.0f} ms: {cold.first_invocation_overhead * ms:.0f} ms "
            f"paid once (clients, logging set-up, lazy imports); import + first invocation "
            f"{cold.to_first_response * ms:.0f} ms vs import boto3 {cold.boto3_import * ms:.0f}"
            f" ms + two clients {cold.boto3_clients * ms:.0f} ms",
        ]
    if smoke:
        return [*lines, SMOKE_NOTE]
    lines.append("targets:")
    lines += [
        f"  [{'met' if t.met else 'MISSED'}] {t.name}: {t.measured} (goal {t.goal})"
        for t in report.targets()
    ]
    return lines


SCALING_HEADERS = ["dimension", "size", "records", "wall ms", "CPU ms", "AWS calls", "pages"]


def scaling_rows(report: BenchReport) -> list[list[str]]:
    """One row per batch of the scaling sweep."""
    return [
        [
            p.dimension,
            f"{p.size:,}",
            f"{p.records:,}",
            f"{p.wall_seconds * 1000:.1f}",
            f"{p.cpu_seconds * 1000:.1f}",
            f"{p.calls_total} ({_calls(p.calls)})",
            "" if p.pages is None else str(p.pages),
        ]
        for p in report.scaling
    ]


def render(report: BenchReport, console: Any, *, smoke: bool = False) -> None:
    """The tables and the summary, for a terminal."""
    from rich.table import Table

    table = Table(title="reassembly-trigger benchmark")
    for header in HEADERS:
        table.add_column(header, overflow="fold")
    for row in rows(report):
        table.add_row(*row)
    console.print(table)
    if report.scaling:
        sweep = Table(title="how one batch's cost grows")
        for header in SCALING_HEADERS:
            sweep.add_column(header, overflow="fold")
        for row in scaling_rows(report):
            sweep.add_row(*row)
        console.print(sweep)
    for line in summary_lines(report, smoke=smoke):
        console.print(line, highlight=False, markup=False)


def _markdown_table(headers: list[str], body: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return lines + ["| " + " | ".join(row) + " |" for row in body]


def markdown(report: BenchReport, *, smoke: bool = False) -> str:
    """The tables and the summary as Markdown (for docs/performance.md)."""
    out = _markdown_table(HEADERS, rows(report))
    if report.scaling:
        out += ["", *_markdown_table(SCALING_HEADERS, scaling_rows(report))]
    out += [
        "",
        *(
            f"  - {line.strip()}" if line.startswith("  ") else f"- {line}"
            for line in summary_lines(report, smoke=smoke)
        ),
    ]
    return "\n".join(out) + "\n"
