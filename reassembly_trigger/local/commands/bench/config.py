"""What one benchmark run measures, and at which sizes (the defaults are the issue's)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

from reassembly_trigger.local.aws.latency_proxy import DEFAULT_LATENCY_MS
from reassembly_trigger.settings import DEFAULT_EVALUATION_CONCURRENCY

#: The stream function's timeout in the Terraform module.
INVOCATION_TIMEOUT_MS = 60_000
#: The reconciler's timeout in the Terraform module.
RECONCILE_TIMEOUT_MS = 300_000

#: Where the cold path's deployment folder comes from: the zip the repository's build
#: script makes for the target runtime, or this virtualenv's installed packages (the
#: same files for the running interpreter, offline).
DeploymentSource = Literal["build", "venv"]


@dataclass(frozen=True, slots=True)
class BenchConfig:
    """Sizes and settings of one benchmark run."""

    #: Latency of the single-latency workloads (wide, deep, reconciler, scaling).
    latency_ms: float = DEFAULT_LATENCY_MS
    #: EVALUATION_CONCURRENCY of the runs labelled "default".
    concurrency: int = DEFAULT_EVALUATION_CONCURRENCY
    #: Workload 1 runs at each of these latencies ...
    latencies_ms: tuple[float, ...] = (5.0, 20.0, 50.0)
    #: ... and at each of these concurrencies besides the default.
    concurrencies: tuple[int, ...] = (1, 16, 64)
    seed: int = 20261115
    batch_size: int = 100
    stream_jobs: int = 50
    stream_segments: int = 20
    #: The burst: one batch of `burst_records` over `burst_jobs` complete jobs.
    burst_records: int = 10_000
    burst_jobs: int = 1_000
    burst_latencies_ms: tuple[float, ...] = (5.0, 20.0)
    #: Concurrency 1 is left out: its own bound is past the function timeout.
    burst_concurrencies: tuple[int, ...] = (16, 64)
    wide_records: int = 10_000
    wide_jobs: int = 10
    deep_segments: int = 5_000
    #: Bytes of padding per completion item: 5,000 x ~1.2 KB is ~6 MB, ~6 Query pages.
    deep_padding: int = 1_100
    #: The reconciler's run: jobs in flight, of which these shares are ...
    reconcile_jobs: int = 1_000
    #: ... complete but never triggered (the stream path missed them) ...
    reconcile_missed_share: float = 0.1
    #: ... already triggered (half of those claimed by the media worker); the rest
    #: still wait for segments.
    reconcile_triggered_share: float = 0.3
    #: Fresh interpreters per cold-path figure (median reported); 0 skips the cold path.
    cold_start_runs: int = 7
    #: Where the deployment folder comes from (see `DeploymentSource`).
    deployment: DeploymentSource = "build"
    #: The interpreter of the cold path (None: the target runtime's, else this one).
    target_python: str | None = None
    #: Other implementations measured the same way: (label, folder with their code).
    compare: tuple[tuple[str, str], ...] = ()
    #: Sequential calls whose median is the single-call round trip.
    round_trip_samples: int = 30
    #: moto's Query reads one partition, as DynamoDB's does (`moto_tuning`).
    tuned_moto: bool = True
    #: Also measure how cost grows (`Bench.scaling`); sizes below.
    scaling: bool = False
    scaling_records: tuple[int, ...] = (100, 1_000, 10_000)
    scaling_jobs: tuple[int, ...] = (1, 10, 50, 100, 250)
    scaling_segments: tuple[int, ...] = (100, 1_000, 5_000)

    def runs(self, concurrencies: tuple[int, ...]) -> tuple[int, ...]:
        """The default concurrency first, then `concurrencies` (no repeats)."""
        return tuple(dict.fromkeys((self.concurrency, *concurrencies)))

    @classmethod
    def quick(cls, **overrides: Any) -> BenchConfig:
        """Tiny sizes that still exercise every path (smoke tests, a first try)."""
        small = cls(
            latencies_ms=(1.0,),
            concurrencies=(1, 4),
            batch_size=10,
            stream_jobs=4,
            stream_segments=5,
            burst_records=120,
            burst_jobs=12,
            burst_latencies_ms=(1.0,),
            burst_concurrencies=(4,),
            wide_records=500,
            wide_jobs=250,
            deep_segments=40,
            deep_padding=80_000,
            reconcile_jobs=30,
            cold_start_runs=1,
            deployment="venv",
            round_trip_samples=5,
            scaling_records=(10, 100),
            scaling_jobs=(1, 5),
            scaling_segments=(5, 20),
        )
        return replace(small, **overrides)
