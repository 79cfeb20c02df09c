"""The report as tables and lines: for a terminal (rich) and as Markdown (the docs)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from reassembly_trigger.local.commands.bench.results import (
    PROJECT,
    BenchReport,
    ColdPath,
    ColdVariant,
    ScalingPoint,
    WorkloadResult,
    calls_total,
    workload_correct,
)

MS = 1000
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Table:
    """One table of the report."""

    title: str
    headers: list[str]
    rows: list[list[str]]


#: A column: its header, and its cell for one item (a run, a variant, a point).
Column = tuple[str, Callable[[T], str]]


def _table(title: str, columns: Sequence[Column[T]], items: Iterable[T]) -> Table:
    return Table(title, [h for h, _ in columns], [[cell(i) for _, cell in columns] for i in items])


def _calls(calls: dict[str, dict[str, int]]) -> str:
    """The total, then each action's calls: `3 (BatchGetItem 2, Query 1)`."""
    each = ", ".join(f"{a} {n}" for actions in calls.values() for a, n in actions.items())
    return f"{calls_total(calls)} ({each})"


def _ms(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds * MS:.0f}"


def _versus(variant: ColdVariant, other: ColdVariant | None) -> str:
    if other is None or variant is other or other.total <= 0:
        return ""
    cpu = f" ({variant.total_cpu / other.total_cpu:.2f}x CPU)" if other.total_cpu else ""
    return f"{variant.total / other.total:.2f}x{cpu}"


def cold_table(cold: ColdPath) -> Table:
    """One row per variant: medians of the fresh processes, against the baseline and seed."""
    columns: list[Column[ColdVariant]] = [
        ("variant", lambda v: v.name),
        ("import ms", lambda v: _ms(v.median("import"))),
        ("first invocation ms", lambda v: _ms(v.median("first"))),
        ("import + first ms", lambda v: _ms(v.total)),
        ("of which CPU ms", lambda v: _ms(v.total_cpu)),
        ("to message ms", lambda v: _ms(v.median("to_message"))),
        ("warm ms", lambda v: _ms(v.median("warm"))),
        ("RSS MB", lambda v: f"{v.seconds('rss_mb'):.0f}"),
        (
            "calls/invocation",
            lambda v: "" if v.baseline else f"{v.seconds('calls_per_invocation'):g}",
        ),
        ("vs boto3", lambda v: _versus(v, cold.baseline)),
        ("vs seed", lambda v: _versus(v, cold.seed)),
    ]
    return _table(
        f"cold path as deployed: medians of {len(cold.variants[0].samples)} fresh "
        f"`python -I -S -B` processes each, Python {cold.python.split()[0]}",
        columns,
        cold.variants,
    )


def _check(result: WorkloadResult) -> str:
    """What the run's checks say, in a few words (all of them when one failed)."""
    checks = result.checks
    if not workload_correct(result):
        return "WRONG: " + ", ".join(f"{k}={v}" for k, v in checks.items())
    if result.key == "reconcile":
        return (
            f"{checks['enqueued']}/{checks['missed']} missed jobs sent once, "
            f"{checks['unclaimed']} unclaimed, {checks['waiting_for_segments']} waiting, "
            f"{result.timeout_share or 0:.1%} of the timeout"
        )
    if result.key == "deep":
        return (
            f"{checks['completions']}/{checks['segments']} counted, pages {checks['pages']}, "
            f"sent {checks['triggered']}"
        )
    if result.key == "wide":
        return f"skipped {checks['skipped']}"
    text = "ok"
    if "expected" in checks:
        text = f"{checks['triggered']}/{checks['expected']} triggered once"
    if checks.get("retried_requests"):
        text += f", {checks['retried_requests']} retried requests"
    return text


def _floor(result: WorkloadResult) -> str:
    name, seconds = result.floor
    return f"{name}: wall {result.wall_seconds / seconds:.2f}x" if seconds > 0 else ""


# The columns every workload's table shows.
WALL: Column[WorkloadResult] = ("wall s", lambda w: f"{w.wall_seconds:.2f}")
BOUND: Column[WorkloadResult] = (
    "bound s (round trips)",
    lambda w: f"{w.bound_seconds:.2f} ({w.bound_round_trips})",
)
RATIO: Column[WorkloadResult] = ("wall / bound", lambda w: f"{w.bound_ratio:.2f}x")
CPU: Column[WorkloadResult] = (
    "CPU ms/call (botocore + ours)",
    lambda w: f"{w.cpu_ms_per_call:.2f} ({w.botocore_ms_per_call:.2f} + {w.ours_ms_per_call:.2f})",
)
MOTO: Column[WorkloadResult] = ("moto CPU s", lambda w: f"{w.server_cpu_seconds:.2f}")
CHECKS: Column[WorkloadResult] = ("checks", _check)


def _run_columns(default: int) -> list[Column[WorkloadResult]]:
    """The columns of a workload run at several latencies and concurrencies."""
    return [
        ("ms/call", lambda r: f"{r.latency_ms:g}"),
        (
            "concurrency",
            lambda r: f"{r.concurrency}{' (default)' if r.concurrency == default else ''}",
        ),
        WALL,
        BOUND,
        RATIO,
        ("bound here s", lambda r: f"{r.bound_seconds_here:.2f}"),
        ("handler CPU s", lambda r: f"{r.cpu_seconds:.2f}"),
        CPU,
        MOTO,
        ("highest floor", _floor),
        ("AWS calls", lambda r: f"{r.calls_total} (min {r.minimum_calls})"),
        CHECKS,
    ]


def tables(report: BenchReport) -> list[Table]:
    """Every table of the report, in the order printed."""
    out: list[Table] = []
    if report.cold_path is not None:
        out.append(cold_table(report.cold_path))
    default = report.config.concurrency
    if stream := report.of_kind("stream"):
        title = f"workload 1: {stream[0].title.split('. ', 1)[1]}"
        out.append(_table(title, _run_columns(default), stream))
    if burst := report.of_kind("burst"):
        title = (
            f"workload 2 (burst): {burst[0].title.split('. ', 1)[1]}, "
            f"timeout {burst[0].timeout_seconds:g} s"
        )
        timeout: Column[WorkloadResult] = ("of timeout", lambda r: f"{r.timeout_share or 0:.0%}")
        out.append(_table(title, [*_run_columns(default), timeout], burst))
    if others := [w for w in report.workloads if w.key in ("wide", "deep", "reconcile")]:
        columns: list[Column[WorkloadResult]] = [
            ("workload", lambda w: w.title),
            WALL,
            BOUND,
            RATIO,
            ("AWS calls (by action)", lambda w: _calls(w.calls)),
            CPU,
            ("CPU us/record", lambda w: f"{w.cpu_us_per_record:.1f}" if w.records else ""),
            MOTO,
            CHECKS,
        ]
        title = (
            f"other workloads at {report.config.latency_ms:g} ms per call, concurrency {default}"
        )
        out.append(_table(title, columns, others))
    if report.scaling:
        points: list[Column[ScalingPoint]] = [
            ("dimension", lambda p: p.dimension),
            ("size", lambda p: f"{p.size:,}"),
            ("records", lambda p: f"{p.records:,}"),
            ("wall ms", lambda p: f"{p.wall_seconds * MS:.1f}"),
            ("CPU ms", lambda p: f"{p.cpu_seconds * MS:.1f}"),
            ("AWS calls", lambda p: _calls(p.calls)),
            ("pages", lambda p: "" if p.pages is None else str(p.pages)),
        ]
        out.append(_table("how one batch's cost grows", points, report.scaling))
    return out


#: What a quick run prints instead of the targets: its sizes say nothing about them.
SMOKE_NOTE = (
    "quick run: a smoke test at tiny sizes, every path exercised and checked for "
    "correctness; the performance targets are scored only by a full run (without --quick)"
)


def summary_lines(report: BenchReport, *, smoke: bool = False) -> list[str]:
    """The figures under the tables: machine, round trips, levers, notes, targets (or, for
    a smoke run, a note that they are not scored)."""
    machine = report.machine
    lines = [
        f"machine: {machine['nproc']} cores, {machine['cpu']}, Python {machine['python']}, "
        f"load {machine['load_average']} before, {machine.get('load_average_after')} after",
        "single-call round trip through the proxy: "
        + ", ".join(
            f"{rtt * MS:.1f} ms at {latency:g} ms added"
            for latency, rtt in sorted(report.round_trips.items())
        ),
        "bound = the critical path with unbounded concurrency (sequential round trips x the "
        "round trip measured at that latency); bound here = the same at the run's "
        "concurrency; floors = bound here, the handler's CPU, moto's CPU (each process "
        "runs Python on one core at a time) and both CPUs over the machine's cores: the "
        "highest set the pace (other processes on the machine take cores too); CPU ms/call = the "
        "handler's CPU per AWS call, inside botocore's calls + ours",
    ]
    if report.cold_path is not None:
        lines += cold_lines(report.cold_path)
    lines += [f"note: {note}" for note in report.notes]
    if smoke:
        return [*lines, SMOKE_NOTE]
    lines.append("targets:")
    lines += [f"  [{t.status}] {t.name}: {t.measured} (goal {t.goal})" for t in report.targets()]
    return lines


def cold_lines(cold: ColdPath) -> list[str]:
    """What each lever is worth, from the cold-path variants of the same run."""
    lines = [f"cold path deployment: {cold.deployment}"]
    plain = cold.find(PROJECT, bytecode=False)
    compiled = cold.find(PROJECT, bytecode=True)
    if plain is not None and compiled is not None:
        lines.append(
            f"lever, bytecode in the zip: import + first invocation {plain.total * MS:.0f} -> "
            f"{compiled.total * MS:.0f} ms ({compiled.total / plain.total:.2f}x)"
        )
    if compiled is not None:
        lines.append(f"import to message: {compiled.seconds('to_message') * MS:.0f} ms (bytecode)")
    for variant in cold.variants:
        if variant.label not in (PROJECT, "boto3 baseline") and compiled is not None:
            lines.append(
                f"{variant.name}: import + first {variant.total * MS:.0f} ms; this project "
                f"(bytecode) is {compiled.total / variant.total:.2f}x of it"
            )
    if not cold.checks.get("correct", True):
        lines.append(f"cold path checks FAILED: {cold.checks}")
    return lines


def render(report: BenchReport, console: Any, *, smoke: bool = False) -> None:
    """The tables and the summary, for a terminal."""
    from rich.table import Table as RichTable

    for table in tables(report):
        rich_table = RichTable(title=table.title)
        for header in table.headers:
            rich_table.add_column(header, overflow="fold")
        for row in table.rows:
            rich_table.add_row(*row)
        console.print(rich_table)
    for line in summary_lines(report, smoke=smoke):
        console.print(line, highlight=False, markup=False)


def _markdown_table(table: Table) -> list[str]:
    lines = [f"**{table.title}**", "", "| " + " | ".join(table.headers) + " |"]
    lines.append("|" + "---|" * len(table.headers))
    return lines + ["| " + " | ".join(row) + " |" for row in table.rows] + [""]


def markdown(report: BenchReport, *, smoke: bool = False) -> str:
    """The tables and the summary as Markdown (for docs/performance.md)."""
    out: list[str] = []
    for table in tables(report):
        out += _markdown_table(table)
    out += [
        f"  - {line.strip()}" if line.startswith("  ") else f"- {line}"
        for line in summary_lines(report, smoke=smoke)
    ]
    return "\n".join(out) + "\n"
