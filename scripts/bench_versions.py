"""Workload 1 of the benchmark for this tree's handler and another commit's, in one run.

Usage: .venv/bin/python scripts/bench_versions.py [--against ac546cd] [--latencies-ms 50,20]
           [--rounds 6] [--json FILE]

The benchmark's own machinery (moto behind the latency proxy, a warmed container per
run, workload 1's checks) from this tree; only the handler under measurement changes:
each version's Lambda package (`reassembly_trigger/` without `local/`, the working
tree's and `git archive REV`'s) is copied under a name of its own with its imports
renamed, so both load side by side in one process. Runs alternate (the order rotates
each round), so a machine whose speed drifts shifts both alike; the summary gives each
version's median and min-max, and the per-round ratio to the other commit.
"""

from __future__ import annotations

import argparse
import importlib
import io
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
_IMPORT = re.compile(r"^(\s*)(from|import)\s+reassembly_trigger([. ])", re.MULTILINE)


def copy_package(source: Path, name: str, into: Path) -> None:
    """`source` (a `reassembly_trigger/` folder) as package `name` in `into`, imports renamed."""
    for path in source.rglob("*.py"):
        relative = path.relative_to(source)
        if relative.parts[0] == "local":
            continue
        target = into / name / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(_IMPORT.sub(rf"\1\2 {name}\3", path.read_text()))


def archived_package(revision: str, into: Path) -> Path:
    """`reassembly_trigger/` as it is at `revision` (git archive), unpacked under `into`."""
    data = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", revision, "reassembly_trigger"],
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        archive.extractall(into / "archive", filter="data")
    return into / "archive" / "reassembly_trigger"


@contextmanager
def using(package: str, failures: list[str]) -> Iterator[Callable[..., Any]]:
    """The `container` of the benchmark's workloads, running `package`'s handler."""
    from reassembly_trigger.local.commands.bench import workloads

    handler = importlib.import_module(f"{package}.handler")
    logs = importlib.import_module(f"{package}.logs")
    metrics = importlib.import_module(f"{package}.metrics")
    clients = importlib.import_module(f"{package}.clients")
    original = workloads.container
    with open(os.devnull, "w", encoding="utf-8") as devnull:

        def container(*args: Any, **kwargs: Any) -> Any:
            fresh = [True]

            def entry(event: Any, context: Any) -> Any:
                if fresh[0]:  # the container's warm-up invocation: set up as Lambda would
                    fresh[0] = False
                    if hasattr(handler, "reset_container"):
                        handler.reset_container()
                    else:
                        importlib.import_module(f"{package}.runtime").reset_process()
                    clients.reset_clients()
                    logs.configure_logging("json", stream=devnull, force=True)
                    metrics.configure_metrics(devnull)
                    return handler.lambda_handler(event, context)
                response = handler.lambda_handler(event, context)
                failures.extend(f["itemIdentifier"] for f in response["batchItemFailures"])
                return response

            return original(*args, entry_point=entry, **kwargs)

        workloads.container = container  # type: ignore[assignment]
        try:
            yield container
        finally:
            workloads.container = original


def summary(rows: list[dict[str, Any]], labels: list[str]) -> list[str]:
    """Per latency and version: median wall and CPU (min-max), and the ratio to the other."""
    lines = []
    for latency in sorted({r["latency_ms"] for r in rows}, reverse=True):
        at = [r for r in rows if r["latency_ms"] == latency]
        for label in labels:
            mine = [r for r in at if r["label"] == label]
            walls, cpus = [r["wall_s"] for r in mine], [r["cpu_s"] for r in mine]
            line = (
                f"{latency:g} ms {label:>8}: wall {statistics.median(walls):.2f} s "
                f"[{min(walls):.2f}-{max(walls):.2f}], CPU {statistics.median(cpus):.3f} s "
                f"[{min(cpus):.3f}-{max(cpus):.3f}]"
            )
            if label != labels[0]:
                base = {r["round"]: r for r in at if r["label"] == labels[0]}
                wall = [r["wall_s"] / base[r["round"]]["wall_s"] for r in mine]
                cpu = [r["cpu_s"] / base[r["round"]]["cpu_s"] for r in mine]
                line += (
                    f"; vs {labels[0]}: wall {statistics.median(wall):.2f}x "
                    f"[{min(wall):.2f}-{max(wall):.2f}], CPU {statistics.median(cpu):.2f}x "
                    f"[{min(cpu):.2f}-{max(cpu):.2f}]"
                )
            lines.append(line)
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", default="ac546cd", help="the other commit (default ac546cd)")
    parser.add_argument("--latencies-ms", default="50,20")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--json", default=None, metavar="FILE", help="every run's figures")
    args = parser.parse_args()
    from reassembly_trigger.local.aws.latency_proxy import SubprocessStack
    from reassembly_trigger.local.commands.bench import Bench, BenchConfig, Endpoints

    latencies = [float(x) for x in args.latencies_ms.split(",")]
    config = BenchConfig(latencies_ms=tuple(latencies), cold_start_runs=0)
    work = Path(tempfile.mkdtemp(prefix="bench-versions-"))
    try:
        copy_package(archived_package(args.against, work), "rt_against", work)
        copy_package(ROOT / "reassembly_trigger", "rt_this", work)
        sys.path.insert(0, str(work))
        versions = [(args.against, "rt_against"), ("this tree", "rt_this")]
        rows: list[dict[str, Any]] = []
        with SubprocessStack(config.latency_ms, tune_moto=config.tuned_moto) as stack:
            endpoints = Endpoints(stack.upstream_url, stack.proxy_url, stack.control)
            bench = Bench(config, endpoints)
            for latency in latencies:
                bench.set_latency(latency)
                bench.measure_round_trip()
                for round_ in range(args.rounds):
                    shift = round_ % len(versions)
                    for label, package in versions[shift:] + versions[:shift]:
                        failures: list[str] = []
                        with using(package, failures):
                            result = bench.stream(config.concurrency)
                        row = {
                            "label": label,
                            "latency_ms": latency,
                            "round": round_,
                            "wall_s": result.wall_seconds,
                            "cpu_s": result.cpu_seconds,
                            "botocore_s": result.botocore_seconds,
                            "calls": result.calls_total,
                            "moto_cpu_s": result.server_cpu_seconds,
                            "failed_records": len(failures),
                            "checks": result.checks,
                        }
                        rows.append(row)
                        print(
                            f"{latency:g} ms round {round_} {label}: wall {row['wall_s']:.3f} s, "
                            f"CPU {row['cpu_s']:.3f} s, {row['calls']} calls, "
                            f"{len(failures)} failed records",
                            file=sys.stderr,
                        )
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=1, default=str))
        print("\n".join(summary(rows, [label for label, _ in versions])))
        return 0 if all(r["failed_records"] == 0 for r in rows) else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
