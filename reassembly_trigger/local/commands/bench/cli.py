"""`reassembly-trigger bench`: run the benchmark and print its table (or JSON)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from reassembly_trigger.local.aws.latency_proxy import SubprocessStack
from reassembly_trigger.local.commands.bench import Bench, BenchConfig, Endpoints
from reassembly_trigger.local.commands.bench.render import markdown, render
from reassembly_trigger.local.commands.common import (
    EXIT_FAILED,
    UsageError,
    int_in,
    report_console,
    seconds,
)

_DEFAULTS = BenchConfig()


def _latencies(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        values = ()
    if not values or any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"not a list of milliseconds: {text!r}")
    return values


def _comparison(text: str) -> tuple[str, str]:
    label, _, folder = text.partition("=")
    if not label or not folder or not Path(folder, "reassembly_trigger").is_dir():
        raise argparse.ArgumentTypeError(f"expected LABEL=DIR with DIR/reassembly_trigger/: {text}")
    return label, str(Path(folder).resolve())


def register(subparsers: Any) -> None:
    """Add the `bench` command."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "bench",
        help="benchmark the handler against moto behind a latency proxy",
        description="Run the workloads (a stream of completions over many jobs at several "
        "latencies and concurrencies, a burst over 1,000 jobs, one wide batch of jobs not "
        "ready, one deep job, a reconcile run over 1,000 jobs in flight) and the cold path "
        "as deployed, against an embedded moto server behind a loopback proxy that delays "
        "and counts every AWS call, and compare the figures with the performance targets "
        "(docs/performance.md). Not a test: it reports what it measures. Exit 1 only when a "
        "workload did the wrong thing (a job not triggered, or triggered twice).",
    )
    parser.add_argument(
        "--latency-ms",
        type=seconds(low=0.0, high=10_000, allow_low=True),
        default=_DEFAULTS.latency_ms,
        metavar="MS",
        help="delay added to every AWS call of the wide, deep and reconciler workloads "
        f"(default {_DEFAULTS.latency_ms:g})",
    )
    parser.add_argument(
        "--latencies-ms",
        type=_latencies,
        default=None,
        metavar="MS,MS,...",
        help="comma-separated delays workload 1 runs at (default 5,20,50; the burst 5,20)",
    )
    parser.add_argument(
        "--concurrency",
        type=int_in(1, 1_000),
        default=_DEFAULTS.concurrency,
        metavar="N",
        help="EVALUATION_CONCURRENCY of the runs labelled default; workload 1 also runs "
        f"at 1, 16 and 64, the burst at 16 and 64 (default {_DEFAULTS.concurrency})",
    )
    parser.add_argument(
        "--cold-start-runs",
        type=int_in(0, 1_000),
        default=None,
        metavar="N",
        help="fresh interpreters per cold-path figure, median reported "
        f"(default {_DEFAULTS.cold_start_runs}, 1 with --quick; 0 skips)",
    )
    parser.add_argument(
        "--compare",
        action="append",
        type=_comparison,
        default=[],
        metavar="LABEL=DIR",
        help="also measure the cold path of another implementation whose code (the "
        "reassembly_trigger package, as its zip holds it) is in DIR; label it 'seed' "
        "to compare with the seed's (repeatable; default: none)",
    )
    parser.add_argument(
        "--target-python",
        default=None,
        metavar="PYTHON",
        help="interpreter of the cold path (default: Python 3.12, the target runtime, "
        "when this machine has it; else this one)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=_DEFAULTS.seed,
        help=f"order of the completions (default {_DEFAULTS.seed})",
    )
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
    if args.latencies_ms is not None:
        overrides["latencies_ms"] = args.latencies_ms
        overrides["burst_latencies_ms"] = args.latencies_ms[:2]
    if args.compare:
        overrides["compare"] = tuple(args.compare)
    if args.target_python is not None:
        overrides["target_python"] = args.target_python
    return BenchConfig.quick(**overrides) if args.quick else BenchConfig(**overrides)


def check_output_file(option: str, path: Path) -> None:
    """`UsageError` unless `path` can be written: its folder exists and takes files."""
    if path.is_dir():
        raise UsageError(f"{option} {path}: is a directory")
    if not path.parent.is_dir():
        raise UsageError(f"{option} {path}: no such directory {path.parent}")
    if not os.access(path if path.exists() else path.parent, os.W_OK):
        raise UsageError(f"{option} {path}: not writable")


def check_interpreter(path: str) -> None:
    """`UsageError` unless `path` runs Python 3 (asked once, with a time limit)."""
    try:
        found = subprocess.run(  # noqa: S603 - the interpreter the user named
            [path, "-I", "-c", "import sys; print(sys.version_info[0])"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise UsageError(f"--target-python {path}: {why}") from exc
    if found.returncode != 0 or found.stdout.strip() != "3":
        raise UsageError(f"--target-python {path}: not a Python 3 interpreter")


def run(args: argparse.Namespace) -> int:
    """Start moto behind the proxy in a child process, run, print; 0 when every check held."""
    from rich.console import Console

    # What the run needs at its end is checked at its start: a full run takes minutes.
    if args.save_json is not None:
        check_output_file("--save-json", args.save_json)
    if args.target_python is not None:
        check_interpreter(args.target_python)
    progress = Console(stderr=True)
    config = config_from(args)
    with SubprocessStack(config.latency_ms, tune_moto=config.tuned_moto) as stack:
        assert stack.control is not None
        endpoints = Endpoints(stack.upstream_url, stack.proxy_url, stack.control)
        report = Bench(config, endpoints, progress=progress.log).run()
    document = report.as_dict()
    # A quick run's sizes say nothing about the targets: none are scored.
    document["smoke_run"] = args.quick
    if args.quick:
        document["targets"] = None
    text = json.dumps(document, indent=2) + "\n"
    if args.save_json is not None:
        args.save_json.write_text(text)
    if args.json:
        sys.stdout.write(text)
    elif args.markdown:
        sys.stdout.write(markdown(report, smoke=args.quick))
    else:
        # Piped output has no terminal width; the table reads better wide than folded.
        render(report, report_console(180), smoke=args.quick)
    # Timing targets are reported, never enforced: only a wrong workload fails the command.
    return EXIT_FAILED if report.incorrect() else 0
