"""The proof: under every fault, no job is stuck and none is reassembled twice.

These run `reassembly_trigger.local.simulation.fault_run`: the real handler and the real
reconciler (on its schedule) against moto servers on 127.0.0.1, faults injected into
their AWS calls and invocations, Lambda's redelivery and the batches it gives up on,
an unmapped Jobs stream, holders that die with a far lease, concurrent evaluations on
a fixed schedule, and the media worker's lock (see the package's docstring).
`python -m reassembly_trigger.local.simulation.fault_run --jobs 10000` runs the same proof
ten times larger.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import replace

import pytest

from reassembly_trigger.local.aws.latency_proxy import SubprocessStack
from reassembly_trigger.local.simulation.fault_run.config import (
    DEFAULT_JOBS,
    FaultRunConfig,
    FaultScenario,
)
from reassembly_trigger.local.simulation.fault_run.report import FaultRunReport
from reassembly_trigger.local.simulation.fault_run.run import run_fault_run
from reassembly_trigger.local.simulation.trigger_modes import TriggerMode

#: The recovery paths the faults must drive the stream path through (transition counts).
RECOVERY_PATHS = (
    "take_over",  # a dead, released or expired lock taken over
    "wait",  # a holder within its lease waited for
    "recheck",  # the awaited lock changed, or a take-over lost the race
    "skip:already_triggered",
    "skip:reassembly_started",
    "skip:deferred",  # a holder still within its lease after LEASE_WAIT_SECONDS
    "fail:aws_error",
    "lease_released",
)
#: What the reconciler must have done (its runs' figures).
RECONCILER_PATHS = (
    "enqueued",  # a complete job the stream path missed
    "take_over",  # the lock of a holder that died, once its lease was over
    "skipped:deferred",  # a holder within its lease: left to the next run
)
NO_JOB_LEFT = "no complete job left without its message at the end (no `doctor --repair`)"


@pytest.fixture(scope="module")
def moto_servers() -> Iterator[list[str]]:
    """Two moto servers in child processes (moto's CPU is the bottleneck: two cores)."""
    with ExitStack() as stack:
        yield [stack.enter_context(SubprocessStack(latency_ms=0.0)).proxy_url for _ in range(2)]


def _assert_holds(report: FaultRunReport) -> None:
    print("\n".join(report.lines()))  # the figures, with -s or on failure
    broken = [f"{i.name}: {i.detail}" for i in report.invariants if not i.ok]
    assert broken == []


@pytest.mark.slow
def test_under_every_fault_no_job_is_stuck_and_none_is_reassembled_twice(
    moto_servers: list[str],
) -> None:
    """GIVEN 1,000 jobs of varied sizes with faults at every step (batches given up on,
    an unmapped Jobs stream, holders dying with a far lease among them) WHEN the pipeline
    runs to the end with the reconciler on its schedule THEN every complete job got a
    message and was reassembled exactly once, none was left without one, no incomplete
    job got one, every fault kind occurred and every recovery path was taken."""
    report = run_fault_run(FaultRunConfig(jobs=DEFAULT_JOBS, seed=7), endpoint_urls=moto_servers)

    _assert_holds(report)
    assert report.missing_faults() == []
    assert {
        path: report.recoveries[path] for path in RECOVERY_PATHS if not report.recoveries[path]
    } == {}
    assert [path for path in RECONCILER_PATHS if not report.reconciler[path]] == []
    assert report.reconciler["wait"] == 0
    # Each job the reconciler sent for is one a fault made the stream path miss.
    causes = report.reconciler_enqueues_by_cause
    assert sum(causes.values()) == report.reconciler["enqueued"]
    assert causes["none"] == 0
    for fault in (
        FaultScenario.DISCARDED_BATCH,
        FaultScenario.UNMAPPED_JOBS_STREAM,
        FaultScenario.HOLDER_DIES_FAR_LEASE,
    ):
        assert causes[fault.value] > 0, fault
    # The faults did cost duplicates (absorbed by the media worker's lock), never more.
    assert report.worker.duplicates_absorbed > 0
    assert report.worker.reassemblies == sum(report.messages_per_job.values())


def test_without_the_reconciler_the_same_faults_leave_jobs_without_a_message(
    moto_servers: list[str],
) -> None:
    """Both sides of one seeded run: the stream path alone leaves complete jobs without a
    message (batches given up on, an unmapped Jobs stream, a holder dying with a far
    lease), each named; with the reconciler on its schedule, every one of them is
    reassembled exactly once and every invariant holds."""
    config = FaultRunConfig(
        jobs=80, seed=5, shard_size=40, threads=2, reconciler=False, discard_rate=0.1
    )

    alone = run_fault_run(config, endpoint_urls=moto_servers)
    reconciled = run_fault_run(replace(config, reconciler=True), endpoint_urls=moto_servers)

    print("\n".join(alone.lines()))
    broken = {i.name: i.detail for i in alone.invariants if not i.ok}
    assert NO_JOB_LEFT in broken
    assert "every complete job was reassembled exactly once" in broken
    assert "job-0000" in broken[NO_JOB_LEFT]  # the stuck jobs are named
    assert "no message for a job that is not complete" not in broken
    assert "no unexpected error in any evaluation" not in broken
    assert alone.reconciler == {}

    assert [i.name for i in reconciled.invariants if not i.ok and "fault kind" not in i.name] == []
    assert reconciled.reconciler["enqueued"] > 0
    assert reconciled.reconciler_enqueues_by_cause["none"] == 0


def test_trigger_on_write_under_the_same_faults_reassembles_every_job_once(
    moto_servers: list[str],
) -> None:
    """GIVEN trigger on write (each worker calls `trigger_job` after its completion, no
    SegmentCompletions mapping) under the same faults, workers killed in the call among
    them WHEN the pipeline runs with the reconciler on its schedule THEN every complete
    job is reassembled exactly once, no incomplete job gets a message, none is left
    without one, and each job the reconciler sent for is one a fault made the API miss."""
    config = FaultRunConfig(jobs=80, seed=5, shard_size=40, threads=2, mode=TriggerMode.ON_WRITE)

    report = run_fault_run(config, endpoint_urls=moto_servers)

    print("\n".join(report.lines()))
    assert [i.name for i in report.invariants if not i.ok and "fault kind" not in i.name] == []
    calls = report.deliveries
    assert calls["api_calls"] == sum(
        calls[key] for key in ("api:enqueued", "api:skipped", "api:failed", "api_calls_killed")
    )
    assert calls["api_calls_killed"] > 0
    assert calls["api:failed"] > 0
    assert report.faults[FaultScenario.CRASH_AFTER_LOCK] > 0
    assert report.reconciler["enqueued"] > 0
    causes = report.reconciler_enqueues_by_cause
    assert sum(causes.values()) == report.reconciler["enqueued"]
    assert causes["none"] == 0


def test_without_faults_every_complete_job_gets_exactly_one_message(
    moto_servers: list[str],
) -> None:
    """The control run: the same pipeline (interleaved, duplicated, out-of-order
    completions, late chunking, two lanes) without injected faults sends exactly one
    message per complete job and none for the others."""
    report = run_fault_run(
        FaultRunConfig(jobs=150, seed=11, inject_faults=False, shard_size=75),
        endpoint_urls=moto_servers,
    )

    _assert_holds(report)
    assert report.faults == {}
    assert set(report.messages_per_job) == {1}
    assert report.worker.duplicates_absorbed == 0
    assert report.recoveries["take_over"] == report.recoveries["fail"] == 0
    # The reconciler ran on its schedule and found nothing the stream path had missed.
    assert report.reconciler["runs"] > 0
    assert report.reconciler["jobs_examined"] > 0
    assert report.reconciler["enqueued"] == 0


def test_a_seed_always_gives_the_same_run(moto_servers: list[str]) -> None:
    """Same seed, same run: the faults injected and the paths taken are reproducible,
    whatever the thread scheduling."""
    config = FaultRunConfig(jobs=50, seed=3, shard_size=25, threads=2)

    first = run_fault_run(config, endpoint_urls=moto_servers)
    second = run_fault_run(config, endpoint_urls=moto_servers)

    assert [i.name for i in first.invariants if not i.ok] in (
        [],
        ["every fault kind occurred at least once"],  # 50 jobs may not see them all
    )
    assert first.faults[FaultScenario.CRASH_AFTER_LOCK] > 0
    assert first.reconciler["runs"] > 0

    def figures(report: FaultRunReport) -> tuple[object, ...]:
        return (
            report.faults,
            report.aws_faults,
            report.recoveries,
            report.deliveries,
            report.reconciler,
            report.reconciler_enqueues_by_cause,
        )

    assert figures(first) == figures(second)


def test_at_the_replaced_lambdas_30_s_timeout_every_invariant_holds(
    moto_servers: list[str],
) -> None:
    """The fault run with 30 s invocations and `trigger_job` calls (the replaced Lambda's
    timeout, not the module's 60 s): every invariant holds."""
    config = FaultRunConfig(
        jobs=80, seed=5, shard_size=40, threads=2, function_timeout_seconds=30.0
    )

    report = run_fault_run(config, endpoint_urls=moto_servers)

    print("\n".join(report.lines()))
    # 80 jobs are too few for every fault kind to occur (the 1,000-job run checks that).
    broken = [
        f"{i.name}: {i.detail}"
        for i in report.invariants
        if not i.ok and not i.name.startswith("every fault kind occurred")
    ]
    assert broken == []
