"""The report as tables and lines: for a terminal (rich) and as Markdown (the docs)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reassembly_trigger.local.bench.results import (
    PROJECT,
    BenchReport,
    ColdPath,
    ColdVariant,
    WorkloadResult,
    workload_correct,
)

MS = 1000


@dataclass(frozen=True, slots=True)
class Table:
    """One table of the report."""

    title: str
    headers: list[str]
    rows: list[list[str]]


def _calls(calls: dict[str, dict[str, int]]) -> str:
    return ", ".join(
        f"{action} {count}" for actions in calls.values() for action, count in actions.items()
    )


def _ms(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds * MS:.0f}"


def cold_table(cold: ColdPath) -> Table:
    """One row per variant: medians of the fresh processes, against the baseline and seed."""
    baseline = cold.baseline
    seed = next((v for v in cold.variants if v.label == "seed" and not v.bytecode), None)

    def versus(variant: ColdVariant, other: ColdVariant | None) -> str:
        if other is None or variant is other or other.total <= 0:
            return ""
        cpu = f" ({variant.total_cpu / other.total_cpu:.2f}x CPU)" if other.total_cpu else ""
        return f"{variant.total / other.total:.2f}x{cpu}"

    rows = [
        [
            v.name,
            _ms(v.median("import")),
            _ms(v.median("first")),
            _ms(v.total),
            _ms(v.total_cpu),
            _ms(v.median("to_message")),
            _ms(v.median("warm")),
            f"{v.seconds('rss_mb'):.0f}",
            "" if v.baseline else f"{v.seconds('calls_per_invocation'):g}",
            versus(v, baseline),
            versus(v, seed),
        ]
        for v in cold.variants
    ]
    return Table(
        f"cold path as deployed: medians of {len(cold.variants[0].samples)} fresh "
        f"`python -I -S -B` processes each, Python {cold.python.split()[0]}",
        [
            "variant",
            "import ms",
            "first invocation ms",
            "import + first ms",
            "of which CPU ms",
            "to message ms",
            "warm ms",
            "RSS MB",
            "calls/invocation",
            "vs boto3",
            "vs seed",
        ],
        rows,
    )


def _check(result: WorkloadResult) -> str:
    if not workload_correct(result):
        return "WRONG: " + ", ".join(f"{k}={v}" for k, v in result.checks.items())
    checks = result.checks
    text = "ok"
    if "expected" in checks:
        text = f"{checks['triggered']}/{checks['expected']} triggered once"
    if checks.get("retried_requests"):
        text += f", {checks['retried_requests']} retried requests"
    return text


def _cpu(result: WorkloadResult) -> str:
    return (
        f"{result.cpu_ms_per_call:.2f} ({result.botocore_ms_per_call:.2f} + "
        f"{result.ours_ms_per_call:.2f})"
    )


RUN_HEADERS = [
    "ms/call",
    "concurrency",
    "wall s",
    "bound s (round trips)",
    "wall / bound",
    "bound here s",
    "handler CPU s",
    "CPU ms/call (botocore + ours)",
    "moto CPU s",
    "highest floor",
    "AWS calls",
    "checks",
]


def _run_row(result: WorkloadResult, default: int) -> list[str]:
    label = f"{result.concurrency}" + (" (default)" if result.concurrency == default else "")
    return [
        f"{result.latency_ms:g}",
        label,
        f"{result.wall_seconds:.2f}",
        f"{result.bound_seconds:.2f} ({result.bound_round_trips})",
        f"{result.bound_ratio:.2f}x",
        f"{result.bound_seconds_here:.2f}",
        f"{result.cpu_seconds:.2f}",
        _cpu(result),
        f"{result.server_cpu_seconds:.2f}",
        f"{result.floor[0]}: wall {result.wall_seconds / result.floor[1]:.2f}x"
        if result.floor[1] > 0
        else "",
        f"{result.calls_total} (min {result.minimum_calls})",
        _check(result),
    ]


def tables(report: BenchReport) -> list[Table]:
    """Every table of the report, in the order printed."""
    out: list[Table] = []
    if report.cold_path is not None:
        out.append(cold_table(report.cold_path))
    default = report.config.concurrency
    stream = report.of_kind("stream")
    if stream:
        first = stream[0]
        out.append(
            Table(
                f"workload 1: {first.title.split('. ', 1)[1]}",
                RUN_HEADERS,
                [_run_row(r, default) for r in stream],
            )
        )
    burst = report.of_kind("burst")
    if burst:
        out.append(
            Table(
                f"workload 2 (burst): {burst[0].title.split('. ', 1)[1]}, "
                f"timeout {burst[0].timeout_seconds:g} s",
                [*RUN_HEADERS, "of timeout"],
                [[*_run_row(r, default), f"{r.timeout_share or 0:.0%}"] for r in burst],
            )
        )
    others = [w for w in report.workloads if w.key in ("wide", "deep", "reconcile")]
    if others:
        out.append(
            Table(
                f"other workloads at {report.config.latency_ms:g} ms per call, concurrency "
                f"{default}",
                [
                    "workload",
                    "wall s",
                    "bound s (round trips)",
                    "wall / bound",
                    "AWS calls (by action)",
                    "CPU ms/call (botocore + ours)",
                    "CPU us/record",
                    "moto CPU s",
                    "checks",
                ],
                [
                    [
                        w.title,
                        f"{w.wall_seconds:.2f}",
                        f"{w.bound_seconds:.2f} ({w.bound_round_trips})",
                        f"{w.bound_ratio:.2f}x",
                        f"{w.calls_total} ({_calls(w.calls)})",
                        _cpu(w),
                        f"{w.cpu_us_per_record:.1f}" if w.records else "",
                        f"{w.server_cpu_seconds:.2f}",
                        _other_checks(w),
                    ]
                    for w in others
                ],
            )
        )
    if report.scaling:
        out.append(
            Table(
                "how one batch's cost grows",
                ["dimension", "size", "records", "wall ms", "CPU ms", "AWS calls", "pages"],
                [
                    [
                        p.dimension,
                        f"{p.size:,}",
                        f"{p.records:,}",
                        f"{p.wall_seconds * MS:.1f}",
                        f"{p.cpu_seconds * MS:.1f}",
                        f"{p.calls_total} ({_calls(p.calls)})",
                        "" if p.pages is None else str(p.pages),
                    ]
                    for p in report.scaling
                ],
            )
        )
    return out


def _other_checks(result: WorkloadResult) -> str:
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
    return "ok"


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
    cold = report.cold_path
    if cold is not None:
        lines += cold_lines(cold)
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
