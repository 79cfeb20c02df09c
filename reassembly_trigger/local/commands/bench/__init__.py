"""The benchmark: the real entry points against a local AWS that answers like a region
(moto behind `latency_proxy`, which delays and counts every call); docs/performance.md
says how it measures and what it found. `cli.py` is the `bench` command.

Timing targets live here, never in tests: `BenchReport.targets()` compares what one
run measured with the goals of the performance issue.
"""

from reassembly_trigger.local.commands.bench.config import BenchConfig
from reassembly_trigger.local.commands.bench.harness import Endpoints
from reassembly_trigger.local.commands.bench.results import BenchReport, ColdPath, WorkloadResult
from reassembly_trigger.local.commands.bench.workloads import Bench

__all__ = ["Bench", "BenchConfig", "BenchReport", "ColdPath", "Endpoints", "WorkloadResult"]
