"""What a run measured: workloads, the cold path, the report and its targets.

Every figure that matters is a ratio or a bound measured in the same run: a workload
against its critical path at the round trip measured at its latency, the cold path
against the boto3 baseline (and other implementations) measured side by side.
"""

from __future__ import annotations

import itertools
import os
import platform
import re
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from reassembly_trigger.local.commands.bench.config import BenchConfig

#: "Well inside the function timeout": at most this share of it.
TIMEOUT_SHARE = 0.5
#: Two runs closer than this are the same speed here: on a 2-core machine shared with
#: other work, the same run varied by up to ~10% (and more under load spikes).
SAME_SPEED = 1.10
#: Floors that belong to the stand-in AWS, not to the handler.
STAND_IN_FLOORS = frozenset({"moto CPU", "both CPUs / cores"})
#: The derived figures of `WorkloadResult.as_dict`, and the digits each is rounded to.
DERIVED = {
    "calls_per_job": 2,
    "bound_seconds": 4,
    "bound_seconds_here": 4,
    "bound_ratio": 3,
    "effective_parallelism": 2,
    "cpu_ms_per_call": 3,
    "botocore_ms_per_call": 3,
    "ours_ms_per_call": 3,
    "cpu_us_per_record": 2,
    "server_busy": 3,
}


def calls_total(calls: dict[str, dict[str, int]]) -> int:
    """Every AWS call of these counts (service -> action -> calls)."""
    return sum(sum(actions.values()) for actions in calls.values())


@dataclass(frozen=True, slots=True)
class WorkloadResult:
    """What one workload run cost: time, AWS calls, CPU, its bound, and its checks."""

    key: str
    title: str
    latency_ms: float
    concurrency: int
    records: int
    jobs: int
    batches: int
    #: Time inside the entry point, summed over the invocations (data writes excluded).
    wall_seconds: float
    #: CPU time of the handler's process (every thread) over the same spans ...
    cpu_seconds: float
    #: ... of which inside botocore's API calls (the rest is ours).
    botocore_seconds: float
    calls: dict[str, dict[str, int]]
    #: Time the stand-in AWS spent answering, summed over calls (latency excluded).
    upstream_seconds: float
    #: CPU time of the stand-in AWS's process (moto and the proxy) during the invocations.
    server_cpu_seconds: float
    #: The single-call round trip measured through the proxy at this latency.
    round_trip_seconds: float
    #: The critical path in round trips: unbounded concurrency, and at this concurrency.
    bound_round_trips: int = 0
    bound_round_trips_here: int = 0
    #: The calls the design needs for the workload.
    minimum_calls: int = 0
    #: The function's timeout (per invocation), when the workload is about fitting in it.
    timeout_seconds: float | None = None
    #: Cores of the machine (the handler's and moto's processes share them, and with
    #: whatever else runs there).
    cores: int = 2
    checks: dict[str, Any] = field(default_factory=dict)

    @property
    def calls_total(self) -> int:
        """Every AWS call the handler made."""
        return calls_total(self.calls)

    @property
    def calls_per_job(self) -> float:
        """AWS calls per distinct job of the workload."""
        return self.calls_total / self.jobs if self.jobs else 0.0

    @property
    def bound_seconds(self) -> float:
        """The critical path with unbounded concurrency, in seconds."""
        return self.bound_round_trips * self.round_trip_seconds

    @property
    def bound_seconds_here(self) -> float:
        """The critical path at this run's concurrency, in seconds."""
        return self.bound_round_trips_here * self.round_trip_seconds

    @property
    def bound_ratio(self) -> float:
        """Wall time over the unbounded-concurrency critical path."""
        return self.wall_seconds / self.bound_seconds if self.bound_seconds > 0 else 0.0

    @property
    def effective_parallelism(self) -> float:
        """Calls x single-call round trip / wall time: how many calls overlapped on average."""
        if self.wall_seconds <= 0:
            return 0.0
        return self.calls_total * self.round_trip_seconds / self.wall_seconds

    @property
    def cpu_ms_per_call(self) -> float:
        """Handler CPU per AWS call, in milliseconds (logging included)."""
        return self.cpu_seconds / self.calls_total * 1000 if self.calls_total else 0.0

    @property
    def botocore_ms_per_call(self) -> float:
        """The part of `cpu_ms_per_call` spent inside botocore's API calls."""
        return self.botocore_seconds / self.calls_total * 1000 if self.calls_total else 0.0

    @property
    def ours_ms_per_call(self) -> float:
        """The part of `cpu_ms_per_call` spent outside botocore: ours."""
        return self.cpu_ms_per_call - self.botocore_ms_per_call

    @property
    def cpu_us_per_record(self) -> float:
        """Handler CPU per stream record, in microseconds."""
        return self.cpu_seconds / self.records * 1e6 if self.records else 0.0

    @property
    def server_busy(self) -> float:
        """The stand-in AWS's CPU over the wall time: near 1, it set the pace, not us."""
        return self.server_cpu_seconds / self.wall_seconds if self.wall_seconds > 0 else 0.0

    @property
    def floors(self) -> dict[str, float]:
        """What the wall time cannot go below: the critical path at this concurrency, the
        CPU of each process (one core each at most: Python threads share one GIL), and
        both processes' CPU spread over every core of the machine."""
        return {
            "latency": self.bound_seconds_here,
            "handler CPU": self.cpu_seconds,
            "moto CPU": self.server_cpu_seconds,
            "both CPUs / cores": (self.cpu_seconds + self.server_cpu_seconds) / self.cores,
        }

    @property
    def floor(self) -> tuple[str, float]:
        """The highest floor: what set the pace of this run."""
        name = max(self.floors, key=lambda key: self.floors[key])
        return name, self.floors[name]

    @property
    def timeout_share(self) -> float | None:
        """The wall time of the longest invocation's share of the function timeout."""
        if not self.timeout_seconds or not self.batches:
            return None
        return self.wall_seconds / self.batches / self.timeout_seconds

    @property
    def failed(self) -> int:
        """Records (stream) or jobs (reconciler) handed back for a retry."""
        return int(self.checks.get("failed_records", 0)) + int(self.checks.get("failed_jobs", 0))

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, with the derived figures."""
        return {
            **asdict(self),
            "calls_total": self.calls_total,
            **{name: round(getattr(self, name), digits) for name, digits in DERIVED.items()},
            "floor": {"name": self.floor[0], "seconds": round(self.floor[1], 4)},
            "timeout_share": None if self.timeout_share is None else round(self.timeout_share, 3),
        }


@dataclass(frozen=True, slots=True)
class ColdVariant:
    """One way of starting cold, measured in `len(samples)` fresh processes.

    For the boto3 baseline, `import` is `import boto3` and `first` is creating the two
    clients; for a handler, `import` is importing its module and `first` its first
    invocation (the 3 records of a complete job: load, count, lock, send, mark).
    """

    label: str
    bytecode: bool
    samples: tuple[dict[str, float], ...]
    baseline: bool = False

    def median(self, key: str) -> float | None:
        """The median of one figure over the processes (None if no process had it)."""
        values = [s[key] for s in self.samples if s.get(key) is not None]
        return statistics.median(values) if values else None

    def seconds(self, key: str) -> float:
        """The median of a figure every process has."""
        return self.median(key) or 0.0

    @property
    def total(self) -> float:
        """Import plus first invocation (or plus the clients): the median of the sums."""
        return statistics.median(s["import"] + s["first"] for s in self.samples)

    @property
    def total_cpu(self) -> float:
        """The same in CPU time, which the machine's load does not stretch (the first
        invocation's waits on moto excluded)."""
        values = [s["import_cpu"] + s["first_cpu"] for s in self.samples if "import_cpu" in s]
        return statistics.median(values) if values else 0.0

    @property
    def name(self) -> str:
        """How the variant is shown: `this project, no bytecode`, `boto3 baseline`."""
        if self.baseline:
            return self.label
        return f"{self.label}, {'bytecode' if self.bytecode else 'no bytecode'}"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, medians included."""
        keys = sorted({k for s in self.samples for k in s})
        return {
            "label": self.label,
            "name": self.name,
            "bytecode": self.bytecode,
            "baseline": self.baseline,
            "runs": len(self.samples),
            "total": self.total,
            "total_cpu": self.total_cpu,
            "medians": {key: self.median(key) for key in keys},
        }


@dataclass(frozen=True, slots=True)
class ColdPath:
    """The cold path as deployed: every variant, measured interleaved in one run."""

    python: str
    deployment: str
    variants: tuple[ColdVariant, ...]
    checks: dict[str, Any] = field(default_factory=dict)

    def find(self, label: str, *, bytecode: bool | None = None) -> ColdVariant | None:
        """The variant of `label` with this bytecode (any for the baseline; None: absent)."""
        labelled = (v for v in self.variants if v.label == label)
        return next((v for v in labelled if bytecode in (None, v.bytecode) or v.baseline), None)

    @property
    def baseline(self) -> ColdVariant | None:
        """The boto3 baseline."""
        return next((v for v in self.variants if v.baseline), None)

    @property
    def seed(self) -> ColdVariant | None:
        """The seed's implementation as it shipped (without bytecode), when given."""
        return self.find("seed", bytecode=False)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, each variant's medians included."""
        return {**asdict(self), "variants": [v.as_dict() for v in self.variants]}


@dataclass(frozen=True, slots=True)
class ScalingPoint:
    """One batch of a sweep: how its cost compares with the same batch at other sizes."""

    dimension: str
    size: int
    wall_seconds: float
    cpu_seconds: float
    records: int
    calls: dict[str, dict[str, int]]
    #: Query pages of the count (segments sweep only).
    pages: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {**asdict(self), "calls_total": calls_total(self.calls)}


@dataclass(frozen=True, slots=True)
class Target:
    """One goal of the performance issue and what this run measured."""

    name: str
    goal: str
    measured: str
    #: None: not measurable in this run (the stand-in AWS set the pace).
    met: bool | None

    @property
    def status(self) -> str:
        """`met`, `MISSED`, or `n/a` (the stand-in AWS, not the handler, set the pace)."""
        return "n/a" if self.met is None else "met" if self.met else "MISSED"


#: The project's own label among the cold-path variants.
PROJECT = "this project"


@dataclass(slots=True)
class BenchReport:
    """Everything one run measured."""

    config: BenchConfig
    machine: dict[str, Any]
    #: The measured single-call round trip at each latency (ms -> seconds).
    round_trips: dict[float, float]
    workloads: list[WorkloadResult]
    cold_path: ColdPath | None
    scaling: list[ScalingPoint] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def of_kind(self, kind: str) -> list[WorkloadResult]:
        """Every run of one kind, in run order."""
        return [w for w in self.workloads if w.key == kind or w.key.startswith(kind + "@")]

    def targets(self) -> list[Target]:
        """The issue's targets, each compared with this run."""
        cfg = self.config
        targets: list[Target] = []
        cold = self.cold_path
        if cold is not None:
            project = cold.find(PROJECT, bytecode=True)
            for other, name, goal in (
                (cold.seed, "cold path vs the seed's (import + first invocation)", 0.8),
                (cold.baseline, "cold path vs boto3 baseline (import + 2 clients)", 1.35),
            ):
                if project is None or other is None:
                    continue
                ratio = project.total / other.total
                cpu = project.total_cpu / other.total_cpu if other.total_cpu else 0.0
                targets.append(
                    Target(
                        name,
                        f"<= {goal}x",
                        f"{ratio:.2f}x ({project.total * 1000:.0f} vs {other.total * 1000:.0f}"
                        f" ms; in CPU time {cpu:.2f}x)",
                        ratio <= goal,
                    )
                )
        defaults = {
            w.latency_ms: w for w in self.of_kind("stream") if w.concurrency == cfg.concurrency
        }
        for latency, goal in ((50.0, 1.3), (20.0, 1.6)):
            if (run := defaults.get(latency)) is not None:
                targets.append(
                    Target(
                        f"workload 1 at {latency:g} ms, default concurrency, vs its bound",
                        f"<= {goal}x",
                        f"{run.bound_ratio:.2f}x ({run.wall_seconds:.2f} s vs "
                        f"{run.bound_seconds:.2f} s)",
                        run.bound_ratio <= goal,
                    )
                )
        for kind in ("stream", "burst"):
            ordered = sorted(self.of_kind(kind), key=lambda w: (w.latency_ms, w.concurrency))
            for latency, group in itertools.groupby(ordered, key=lambda w: w.latency_ms):
                runs = list(group)
                if len(runs) < 2:
                    continue
                slower = [
                    (a, b)
                    for a, b in itertools.pairwise(runs)
                    if b.wall_seconds > a.wall_seconds * SAME_SPEED
                ]
                # A step that lost because moto (or the machine's cores, shared with it)
                # set the pace measures the stand-in AWS, not the handler.
                ours = [(a, b) for a, b in slower if b.floor[0] not in STAND_IN_FLOORS]
                measured = "; ".join(
                    f"{b.concurrency} ({b.wall_seconds:.2f} s, highest floor "
                    f"{b.floor[0]}) vs {a.concurrency} ({a.wall_seconds:.2f} s)"
                    for a, b in slower
                ) or ", ".join(f"c{w.concurrency} {w.wall_seconds:.2f} s" for w in runs)
                targets.append(
                    Target(
                        f"{kind} at {latency:g} ms: more concurrency never slower",
                        f"each step within {SAME_SPEED - 1:.0%} or faster",
                        measured,
                        None if slower and not ours else not slower,
                    )
                )
        for run in self.of_kind("burst"):
            share = run.timeout_share or 0.0
            targets.append(
                Target(
                    f"burst at {run.latency_ms:g} ms, concurrency {run.concurrency}: "
                    "well inside the timeout",
                    f"<= {TIMEOUT_SHARE:.0%} of {run.timeout_seconds:g} s, no failure",
                    f"{share:.0%} ({run.wall_seconds:.2f} s), {run.failed} failed",
                    share <= TIMEOUT_SHARE and run.failed == 0,
                )
            )
        wide = next(iter(self.of_kind("wide")), None)
        if wide is not None:
            targets.append(
                Target(
                    "wide: handler CPU per record",
                    "< 20 us",
                    f"{wide.cpu_us_per_record:.1f} us",
                    wide.cpu_us_per_record < 20,
                )
            )
        targets.append(
            Target(
                "every workload did the right thing",
                "all checks pass",
                ", ".join(self.incorrect()) or "all pass",
                not self.incorrect(),
            )
        )
        return targets

    def incorrect(self) -> list[str]:
        """The runs whose checks failed (a job not triggered, twice, miscounted, failed)."""
        bad = [w.key for w in self.workloads if not workload_correct(w)]
        if self.cold_path is not None and not self.cold_path.checks.get("correct", True):
            bad.append("cold path")
        return bad

    def as_dict(self) -> dict[str, Any]:
        """The whole report, JSON-ready."""
        return {
            "config": asdict(self.config),
            "machine": self.machine,
            "round_trip_ms": {
                f"{latency:g}": round(rtt * 1000, 3) for latency, rtt in self.round_trips.items()
            },
            "workloads": [w.as_dict() for w in self.workloads],
            "cold_path": self.cold_path.as_dict() if self.cold_path else None,
            "scaling": [p.as_dict() for p in self.scaling],
            "targets": [{**asdict(t), "status": t.status} for t in self.targets()],
            "notes": self.notes,
        }


def workload_correct(result: WorkloadResult) -> bool:
    """Whether one run did the right thing (its checks, whatever its kind)."""
    checks = result.checks
    if result.failed:
        return False
    if "expected" in checks and (
        checks.get("triggered") != checks["expected"] or checks.get("duplicates", 0) != 0
    ):
        return False
    if "segments" in checks and (
        checks.get("completions") != checks["segments"] or checks.get("triggered") != 1
    ):
        return False
    return bool(checks.get("correct", True))


def machine_description() -> dict[str, Any]:
    """Where the run happened: cores, CPU model, Python, load."""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        cpuinfo = ""
    named = re.search(r"^model name\s*:(.*)$", cpuinfo, re.MULTILINE)
    model = named.group(1).strip() if named else platform.processor() or platform.machine()
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
