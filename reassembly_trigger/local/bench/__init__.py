"""The benchmark: the real entry points against a local AWS that answers like a region.

Moto runs in a process of its own behind `latency_proxy`, which delays every call (5,
20 or 50 ms here) and counts it by action; the handler's clients point at the proxy
through `AWS_ENDPOINT_URL`, exactly as a deployed function's point at AWS. The handler
runs in this process, alone, so its wall and CPU time are its own; moto's CPU time is
reported beside it ("moto busy"), so a run where the stand-in AWS set the pace says so.

Modules, one concern each: `config` (sizes), `data` (items and stream events),
`harness` (the container and what an invocation costs), `bounds` (critical paths),
`workloads` (the runs), `cold_start` (fresh interpreters as deployed), `results` (the
report and the issue's targets), `render` (tables for people and Markdown).

Timing targets live here, never in tests: `BenchReport.targets()` compares what one
run measured with the goals of the performance issue.
"""

from reassembly_trigger.local.bench.config import BenchConfig
from reassembly_trigger.local.bench.results import BenchReport, ColdPath, WorkloadResult
from reassembly_trigger.local.bench.workloads import Bench, Endpoints

__all__ = ["Bench", "BenchConfig", "BenchReport", "ColdPath", "Endpoints", "WorkloadResult"]
