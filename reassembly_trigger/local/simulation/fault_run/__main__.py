"""`python -m reassembly_trigger.local.simulation.fault_run`: run and print the report.

Exit status 0 when every invariant holds, 1 when one fails; an error is one line on
stderr with the exit codes of `reassembly-trigger` (README, "Exit codes"), the
traceback only with `--debug`.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence

from reassembly_trigger.local.cli import classify
from reassembly_trigger.local.commands.common import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK
from reassembly_trigger.local.simulation.fault_run.config import (
    DEFAULT_JOBS,
    DEFAULT_SEED,
    FUNCTION_TIMEOUT_SECONDS,
    FaultRunConfig,
)
from reassembly_trigger.local.simulation.fault_run.report import FaultRunReport
from reassembly_trigger.local.simulation.fault_run.run import run_fault_run
from reassembly_trigger.local.simulation.trigger_modes import TriggerMode
from reassembly_trigger.timing import LAMBDA_MAX_TIMEOUT_SECONDS, MIN_FUNCTION_TIMEOUT_SECONDS


def main(argv: Sequence[str] | None = None) -> int:
    """Run the fault run the arguments describe and print its report; 1 if an invariant
    fails, else 0."""
    parser = argparse.ArgumentParser(
        prog="python -m reassembly_trigger.local.simulation.fault_run",
        description="The fault run: proof that no job is stuck and none is reassembled twice.",
    )
    parser.add_argument("--jobs", type=int, default=DEFAULT_JOBS)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--no-faults", action="store_true", help="the control run")
    parser.add_argument(
        "--function-timeout",
        type=float,
        default=FUNCTION_TIMEOUT_SECONDS,
        metavar="SECONDS",
        help="each stream invocation's and trigger_job call's timeout (default "
        f"{FUNCTION_TIMEOUT_SECONDS:g}; "
        f"{MIN_FUNCTION_TIMEOUT_SECONDS} to {LAMBDA_MAX_TIMEOUT_SECONDS})",
    )
    parser.add_argument(
        "--no-reconciler",
        action="store_true",
        help="the stream path alone: shows the jobs it leaves without a message",
    )
    parser.add_argument(
        "--mode",
        choices=[mode.value for mode in TriggerMode],
        default=TriggerMode.STREAM.value,
        help="on-write: the workers call trigger_job after each completion (no "
        "SegmentCompletions mapping); both: the two",
    )
    parser.add_argument(
        "--endpoint-url",
        action="append",
        default=[],
        help="an existing moto server (repeatable; default: moto in child processes)",
    )
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error("--jobs: at least 1")
    if not MIN_FUNCTION_TIMEOUT_SECONDS <= args.function_timeout <= LAMBDA_MAX_TIMEOUT_SECONDS:
        parser.error(
            f"--function-timeout: {MIN_FUNCTION_TIMEOUT_SECONDS} to {LAMBDA_MAX_TIMEOUT_SECONDS}"
        )
    config = FaultRunConfig(
        jobs=args.jobs,
        function_timeout_seconds=args.function_timeout,
        seed=args.seed,
        inject_faults=not args.no_faults,
        reconciler=not args.no_reconciler,
        mode=TriggerMode(args.mode),
    )
    try:
        report = run_fault_run(config, endpoint_urls=args.endpoint_url)
    except KeyboardInterrupt:
        return _fail(args.debug, "interrupted", EXIT_INTERRUPTED)
    except Exception as exc:
        return _fail(args.debug, *classify(exc))
    _print(report)
    return EXIT_OK if report.ok else EXIT_FAILED


def _fail(debug: bool, message: str, status: int) -> int:
    if debug:
        traceback.print_exc()
    print(f"fault run: {message}", file=sys.stderr)
    return status


def _print(report: FaultRunReport) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for line in report.heading():
        console.print(line)
    for title, counter in report.tables():
        table = Table(title=title)
        table.add_column("what")
        table.add_column("count", justify="right")
        for key, value in sorted(counter.items()):
            table.add_row(str(key), str(value))
        console.print(table)
    for line in report.summary():
        console.print(line)


if __name__ == "__main__":
    sys.exit(main())
