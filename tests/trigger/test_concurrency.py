"""The jobs of a batch are evaluated concurrently, and nothing of one job leaks into another.

The handler evaluates the jobs of a batch on a bounded thread pool
(`EVALUATION_CONCURRENCY`, default 16). These tests observe the handler's own boto3
clients (botocore's `before-send` event) to see where and when calls happen, and the
structlog events and the partial batch response to see that every job keeps its own
identity.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

import pytest

from reassembly_trigger.clients import AwsClients, aws_clients
from reassembly_trigger.local.aws.faults import FaultInjector, FaultKind, FaultRule, instant_retries
from reassembly_trigger.local.invocations.records import stream_event
from reassembly_trigger.settings import DEFAULT_EVALUATION_CONCURRENCY

from moto_fixtures import Invoker, Pipeline


def _interleaved(per_job: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Records of several jobs in round-robin order (as a busy stream mixes them)."""
    queues = [list(records) for records in per_job.values()]
    mixed: list[dict[str, Any]] = []
    while any(queues):
        for queue in queues:
            if queue:
                mixed.append(queue.pop(0))
    return mixed


def _sequence_numbers(records: list[dict[str, Any]]) -> list[str]:
    return [r["dynamodb"]["SequenceNumber"] for r in records]


class CallWatcher:
    """Records the thread of every DynamoDB Query; optionally holds the first `rendezvous`
    Queries until all of them are in flight at once."""

    def __init__(self, client: Any, *, rendezvous: int = 0) -> None:
        self.threads: list[str] = []
        self.thread_ids: set[int] = set()
        self._lock = threading.Lock()
        self._waiting = rendezvous
        self._barrier = threading.Barrier(rendezvous, timeout=10) if rendezvous else None
        client.meta.events.register("before-send.dynamodb.Query", self._before_send)

    def _before_send(self, **_: Any) -> None:
        thread = threading.current_thread()
        with self._lock:
            self.threads.append(thread.name)
            self.thread_ids.add(thread.ident or 0)
            hold = self._waiting > 0
            self._waiting -= 1
        if hold and self._barrier is not None:
            # Raises BrokenBarrierError (failing the job) unless the other Queries
            # arrive while this one is still in flight.
            self._barrier.wait()


def test_the_default_concurrency_is_the_one_the_readme_and_the_module_state() -> None:
    """The code's default of EVALUATION_CONCURRENCY is what the README's settings table and
    the Terraform module's variable say (three places a person reads it)."""
    root = Path(__file__).resolve().parents[2]
    readme = (root / "README.md").read_text()
    row = next(
        line for line in readme.splitlines() if line.startswith("| `EVALUATION_CONCURRENCY`")
    )
    assert f"({DEFAULT_EVALUATION_CONCURRENCY}, " in row
    variables = (root / "terraform" / "variables.tf").read_text()
    block = variables[variables.index('variable "evaluation_concurrency"') :]
    assert re.search(rf"default\s*=\s*{DEFAULT_EVALUATION_CONCURRENCY}\b", block.split("}")[0])


def test_jobs_of_one_batch_are_counted_at_the_same_time(
    pipeline: Pipeline, invoke: Invoker, lambda_clients: AwsClients
) -> None:
    """GIVEN four incomplete jobs in one batch WHEN it is handled at the default concurrency
    THEN their four counts are in flight at once, on the evaluation pool's threads."""
    jobs = [f"job-{n}" for n in "wxyz"]
    for job in jobs:
        pipeline.add_job(job, total_segments=3)
        pipeline.complete(job, [0])
    watcher = CallWatcher(lambda_clients.dynamodb, rendezvous=len(jobs))

    response = invoke(
        stream_event(*_interleaved({j: pipeline.completion_records(j, [0]) for j in jobs}))
    )

    assert response == {"batchItemFailures": []}
    assert {invoke.final(j)["reason"] for j in jobs} == {"incomplete"}
    assert len(watcher.thread_ids) == len(jobs)
    assert all(name.startswith("evaluate") for name in watcher.threads)


def test_every_log_event_of_a_job_carries_that_job_and_only_its_records(
    pipeline: Pipeline, invoke: Invoker
) -> None:
    """Twelve jobs evaluated concurrently: each transition names its own job_id, its own
    sequence numbers and its own total_segments, and ends in that job's own outcome."""
    totals = {f"job-{n:02d}": n for n in range(2, 14)}
    complete = {job for job, total in totals.items() if total % 2 == 0}
    records: dict[str, list[dict[str, Any]]] = {}
    for job, total in totals.items():
        pipeline.add_job(job, total_segments=total)
        done = range(total) if job in complete else range(total - 1)
        pipeline.complete(job, done)
        records[job] = pipeline.completion_records(job, done)

    response = invoke(stream_event(*_interleaved(records)))

    assert response == {"batchItemFailures": []}
    events = invoke.transitions()
    assert {e["job_id"] for e in events} == set(totals)
    for event in events:
        job = event["job_id"]
        assert event["sequence_numbers"] == _sequence_numbers(records[job])
        assert event["total_segments"] == totals[job]
    for job, total in totals.items():
        final = invoke.final(job)
        if job in complete:
            assert final["dest"] == "enqueued"
            assert final["completions"] == total
        else:
            assert (final["dest"], final["reason"]) == ("skipped", "incomplete")
            assert final["completions"] == total - 1
    assert sorted(b["job_id"] for b in pipeline.bodies()) == sorted(complete)


def test_several_failing_jobs_are_reported_each_by_its_own_lowest_sequence_number(
    pipeline: Pipeline, invoke: Invoker, faults: FaultInjector, lambda_clients: AwsClients
) -> None:
    """GIVEN eight complete jobs of which three cannot be counted (throttled past every
    retry) WHEN the batch is handled concurrently THEN the response names exactly the
    lowest sequence number of each failing job, and the other five are enqueued."""
    instant_retries(lambda_clients.dynamodb, lambda seconds: None)
    jobs = [f"job-{n:02d}" for n in range(1, 9)]
    failing = {"job-02", "job-05", "job-07"}
    records: dict[str, list[dict[str, Any]]] = {}
    for job in jobs:
        pipeline.add_job(job, total_segments=2)
        pipeline.complete(job, range(2))
        records[job] = pipeline.completion_records(job, [1, 0])
    for job in failing:
        faults.add(FaultRule("Query", FaultKind.THROTTLE, body_contains=job))
    # Jobs in reverse order, so a job's records are not the batch's first or last.
    event = stream_event(*_interleaved(dict(reversed(records.items()))))

    response = invoke(event)

    expected = sorted((min(_sequence_numbers(records[j]), key=int) for j in failing), key=int)
    assert response == {"batchItemFailures": [{"itemIdentifier": s} for s in expected]}
    for job in failing:
        assert (invoke.final(job)["dest"], invoke.final(job)["reason"]) == ("failed", "aws_error")
    assert sorted(b["job_id"] for b in pipeline.bodies()) == sorted(set(jobs) - failing)


def test_concurrency_one_evaluates_every_job_inline_with_the_same_outcomes(
    monkeypatch: pytest.MonkeyPatch, pipeline: Pipeline, invoke: Invoker
) -> None:
    """EVALUATION_CONCURRENCY=1 is valid: the jobs are evaluated one after another on the
    invoking thread, and end exactly as they would concurrently."""
    monkeypatch.setenv("EVALUATION_CONCURRENCY", "1")
    # The clients the handler will build for this setting (one set per pool size).
    watcher = CallWatcher(aws_clients(1).dynamodb)
    for job, total in (("job-p", 2), ("job-q", 3), ("job-r", 2)):
        pipeline.add_job(job, total_segments=total)
        pipeline.complete(job, range(2))
    records = {j: pipeline.completion_records(j, range(2)) for j in ("job-p", "job-q", "job-r")}

    response = invoke(stream_event(*_interleaved(records)))

    assert response == {"batchItemFailures": []}
    assert watcher.thread_ids == {threading.get_ident()}
    assert len(watcher.threads) == 3
    assert invoke.final("job-p")["dest"] == "enqueued"
    assert invoke.final("job-q")["reason"] == "incomplete"
    assert invoke.final("job-r")["dest"] == "enqueued"
    assert sorted(b["job_id"] for b in pipeline.bodies()) == ["job-p", "job-r"]
