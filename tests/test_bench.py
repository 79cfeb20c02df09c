"""The benchmark works and its figures add up (a smoke run at tiny sizes, no timing asserted).

Timing targets are reported by `reassembly-trigger bench`, never asserted here: these
tests check that the latency proxy delays, forwards and counts every call, and that
each workload makes exactly the AWS calls the design says it should.
"""

from __future__ import annotations

import json
import math
import random
import threading
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config

from reassembly_trigger.local.bench import Bench, BenchConfig, Endpoints
from reassembly_trigger.local.cli import main
from reassembly_trigger.local.commands import bench as bench_command
from reassembly_trigger.local.latency_proxy import (
    ControlClient,
    LatencyProxy,
    SubprocessStack,
    identify_call,
)
from reassembly_trigger.local.stack import LOCAL_CREDENTIALS
from reassembly_trigger.settings import DEFAULT_EVALUATION_CONCURRENCY

from conftest import REGION

QUICK = BenchConfig.quick(latency_ms=0, cold_start_runs=0)


@pytest.fixture
def proxy(moto_endpoint: str) -> Iterator[LatencyProxy]:
    """A latency proxy (no added latency) in front of the session's moto server."""
    with LatencyProxy(moto_endpoint, latency_ms=0) as running:
        yield running


@pytest.fixture
def bench(moto_endpoint: str, proxy: LatencyProxy) -> Bench:
    """The benchmark at tiny sizes against that proxy."""
    return Bench(QUICK, Endpoints(moto_endpoint, proxy.endpoint_url, proxy))


def _dynamodb(endpoint: str) -> Any:
    return boto3.session.Session(region_name=REGION, **LOCAL_CREDENTIALS).client(
        "dynamodb", endpoint_url=endpoint, config=Config(retries={"mode": "standard"})
    )


# ------------------------------------------------------------------ the proxy


@pytest.mark.parametrize(
    ("headers", "path", "body", "expected"),
    [
        (
            {"X-Amz-Target": "DynamoDB_20120810.BatchGetItem"},
            "/",
            b"{}",
            ("dynamodb", "BatchGetItem"),
        ),
        ({"X-Amz-Target": "AmazonSQS.SendMessage"}, "/", b"{}", ("sqs", "SendMessage")),
        (
            {"Authorization": "AWS4-HMAC-SHA256 Credential=k/20260101/us-east-1/sqs/aws4_request"},
            "/",
            b"Action=SendMessage&Version=2012-11-05",
            ("sqs", "SendMessage"),
        ),
        ({}, "/?Action=ListQueues", b"", ("unknown", "ListQueues")),
    ],
)
def test_calls_are_named_by_target_header_or_action_parameter(
    headers: dict[str, str], path: str, body: bytes, expected: tuple[str, str]
) -> None:
    """JSON protocols name the action in X-Amz-Target, the query protocol in Action=."""
    assert identify_call(headers, path, body) == expected


def test_the_proxy_forwards_counts_and_resets(
    moto_endpoint: str, proxy: LatencyProxy, resources: Any
) -> None:
    """Calls through the proxy reach moto and are counted by service and action."""
    client = _dynamodb(proxy.endpoint_url)
    table = resources.names.jobs_table
    client.put_item(TableName=table, Item={"job_id": {"S": "via-proxy"}})
    for _ in range(3):
        client.get_item(TableName=table, Key={"job_id": {"S": "via-proxy"}})

    direct = _dynamodb(moto_endpoint).get_item(TableName=table, Key={"job_id": {"S": "via-proxy"}})
    assert direct["Item"]["job_id"] == {"S": "via-proxy"}
    stats = ControlClient(proxy.endpoint_url).stats()
    assert stats.calls == {"dynamodb": {"GetItem": 3, "PutItem": 1}}
    assert stats.total == 4
    ControlClient(proxy.endpoint_url).reset()
    assert proxy.stats().calls == {}


def test_every_call_waits_at_least_the_configured_latency(
    proxy: LatencyProxy, resources: Any
) -> None:
    """The added latency is a floor on each call's round trip."""
    client = _dynamodb(proxy.endpoint_url)
    table = resources.names.jobs_table
    client.get_item(TableName=table, Key={"job_id": {"S": "x"}})  # connect first
    proxy.set_latency(60)
    started = time.perf_counter()
    client.get_item(TableName=table, Key={"job_id": {"S": "x"}})
    assert time.perf_counter() - started >= 0.060


def test_the_proxy_serves_concurrent_connections_at_once(moto_endpoint: str) -> None:
    """Four clients' calls are in the proxy at the same time (else the upstream's
    rendezvous would break and the calls would fail with 502)."""
    rendezvous = threading.Barrier(4, timeout=10)

    class Rendezvous:
        def send(self, method: str, path: str, headers: Any, body: bytes) -> Any:
            rendezvous.wait()
            return 200, [("Content-Type", "application/json")], b"{}"

    statuses: list[int] = []
    with LatencyProxy(Rendezvous(), latency_ms=0) as proxy:
        import http.client

        def call() -> None:
            connection = http.client.HTTPConnection(
                "127.0.0.1", int(proxy.endpoint_url.rsplit(":", 1)[1])
            )
            connection.request("POST", "/", body=b"{}", headers={"X-Amz-Target": "X.Y"})
            statuses.append(connection.getresponse().status)
            connection.close()

        threads = [threading.Thread(target=call) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert proxy.stats().calls == {"x": {"Y": 4}}
    assert statuses == [200] * 4


# ------------------------------------------------------------------ the workloads


def test_the_completion_stream_triggers_every_job_once_with_calls_that_add_up(
    bench: Bench,
) -> None:
    """Workload 1: one BatchGetItem per batch, one Query per job of each batch, and per
    job one lock, one message and one mark, at the default concurrency and at 1."""
    cfg = bench.config
    jobs = [f"job-{n:04d}" for n in range(cfg.stream_jobs)]
    order = [(j, i) for j in jobs for i in range(cfg.stream_segments)]
    random.Random(cfg.seed).shuffle(order)
    batches = [order[s : s + cfg.batch_size] for s in range(0, len(order), cfg.batch_size)]
    jobs_per_batch = sum(len({job for job, _ in batch}) for batch in batches)

    for concurrency in (DEFAULT_EVALUATION_CONCURRENCY, 1):
        result = bench.stream(concurrency)
        assert result.checks == {
            "failed_records": 0,
            "triggered": len(jobs),
            "duplicates": 0,
            "expected": len(jobs),
        }
        assert result.calls == {
            "dynamodb": {
                "BatchGetItem": len(batches),
                "PutItem": len(jobs),
                "Query": jobs_per_batch,
                "UpdateItem": len(jobs),
            },
            "sqs": {"SendMessage": len(jobs)},
        }
        assert (result.records, result.batches, result.concurrency) == (
            len(order),
            len(batches),
            concurrency,
        )


def test_a_wide_batch_of_jobs_not_ready_costs_one_batched_read_per_hundred_jobs(
    bench: Bench,
) -> None:
    """Workload 2: ceil(jobs / 100) BatchGetItem calls and no other AWS call at all."""
    result = bench.wide()

    assert result.calls == {"dynamodb": {"BatchGetItem": math.ceil(bench.config.wide_jobs / 100)}}
    assert result.records == bench.config.wide_records
    assert result.checks["skipped"] == {"not_chunking_complete": bench.config.wide_jobs}
    assert result.checks["messages"] == 0


def test_a_deep_job_is_counted_with_one_paginated_query_per_evaluation(bench: Bench) -> None:
    """Workload 3: several MB of completions, several pages per count, every page read
    once per evaluation, every segment counted, one message."""
    result = bench.deep()
    checks = result.checks

    assert checks["evaluations"] == 2
    assert all(pages >= 3 for pages in checks["pages"])
    assert result.calls["dynamodb"]["Query"] == sum(checks["pages"])
    assert checks["completions"] == checks["segments"] == bench.config.deep_segments
    assert checks["triggered"] == 1
    assert checks["megabytes"] > 2


def test_the_report_compares_each_target_and_serialises(bench: Bench) -> None:
    """A whole (tiny) run: every target is reported with a measured value, as JSON."""
    report = bench.run()

    names = [t.name for t in report.targets()]
    assert len(names) == 6  # no cold start in this run
    assert report.speedup > 0
    decoded = json.loads(json.dumps(report.as_dict()))
    assert [w["key"] for w in decoded["workloads"]] == ["stream", "stream@1", "wide", "deep"]
    assert all(w["calls_total"] > 0 for w in decoded["workloads"])


def test_a_quick_run_reads_as_a_smoke_run_without_scored_targets(bench: Bench) -> None:
    """A tiny run's figures are not held against the full-size goals: no [MISSED], and a
    line saying targets are scored only by a full run."""
    report = bench.run()

    smoke = bench_command.summary_lines(report, smoke=True)
    full = bench_command.summary_lines(report)
    assert smoke[-1] == bench_command.SMOKE_NOTE
    assert not any("MISSED" in line or line == "targets:" for line in smoke)
    assert "targets:" in full


@pytest.mark.parametrize("option", [["--concurrency", "0"], ["--latency-ms", "-1"]])
def test_bench_refuses_impossible_options_in_one_line(
    option: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """`bench --quick --concurrency 0` used to end in a SettingsError traceback."""
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "--quick", *option])

    assert exit_info.value.code == 2
    assert f"argument {option[0]}" in capsys.readouterr().err


def test_the_scaling_sweep_grows_calls_only_with_jobs_and_pages(bench: Bench) -> None:
    """More records cost no more calls; each job costs one Query and a share of one
    BatchGetItem per hundred; more completions cost more pages of one count."""
    points = bench.scaling()
    by_dimension: dict[str, list[Any]] = {}
    for point in points:
        by_dimension.setdefault(point.dimension, []).append(point)

    for point in by_dimension["records per batch"]:
        assert point.records == point.size
        assert point.calls == {"dynamodb": {"BatchGetItem": 1}}
    for point in by_dimension["jobs per batch"]:
        assert point.calls == {
            "dynamodb": {"BatchGetItem": math.ceil(point.size / 100), "Query": point.size}
        }
    pages = [point.pages for point in by_dimension["segments per job"]]
    assert all(p is not None and p >= 1 for p in pages)
    assert pages == sorted(pages)
    assert [p.calls["dynamodb"]["Query"] for p in by_dimension["segments per job"]] == pages


@pytest.mark.slow
def test_the_bench_command_runs_end_to_end_with_json_output(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`reassembly-trigger bench --quick --json`: moto behind the proxy in a child
    process, every workload and the cold start, one JSON document without scored
    targets (a smoke run), exit status 0."""
    status = main(["bench", "--quick", "--json", "--cold-start-runs", "1", "--latency-ms", "1"])

    assert status == 0
    report = json.loads(capsys.readouterr().out)
    assert report["config"]["tuned_moto"] is True
    assert report["cold_start"]["boto3_process"] > 0
    assert report["cold_start"]["first_invocation"] >= report["cold_start"]["warm_invocation"] > 0
    # A smoke run: tiny sizes say nothing about the targets, so none is scored.
    assert report["smoke_run"] is True
    assert report["targets"] is None
    wide = next(w for w in report["workloads"] if w["key"] == "wide")
    assert wide["calls"] == {"dynamodb": {"BatchGetItem": 3}}


@pytest.mark.slow
def test_tuned_moto_answers_queries_exactly_like_stock_moto(moto_endpoint: str) -> None:
    """The benchmark's moto (Query reads one partition) pages, counts and orders like the
    stock moto of the test suite, neighbours' items never included."""
    import uuid

    from reassembly_trigger.local.stack import LocalAws, ResourceNames, create_resources

    def pages(endpoint: str) -> list[tuple[int, Any]]:
        aws = LocalAws.connect(endpoint, REGION)
        names = ResourceNames.with_prefix(f"tune{uuid.uuid4().hex[:8]}")
        create_resources(aws, names)
        table = names.segment_completions_table
        for job in ("job-a", "job-b", "job-c"):
            for index in range(30):
                aws.dynamodb.put_item(
                    TableName=table,
                    Item={
                        "job_id": {"S": job},
                        "segment_index": {"N": str(index)},
                        "pad": {"S": "x" * 100_000},
                    },
                )
        found: list[tuple[int, Any]] = []
        start: Any = None
        while True:
            extra = {"ExclusiveStartKey": start} if start else {}
            page = aws.dynamodb.query(
                TableName=table,
                KeyConditionExpression="job_id = :j AND segment_index BETWEEN :a AND :b",
                ExpressionAttributeValues={
                    ":j": {"S": "job-b"},
                    ":a": {"N": "3"},
                    ":b": {"N": "27"},
                },
                Select="COUNT",
                ConsistentRead=True,
                **extra,
            )
            start = page.get("LastEvaluatedKey")
            found.append((page["Count"], start))
            if not start:
                return found

    with SubprocessStack(latency_ms=0, tune_moto=True) as tuned:
        tuned_pages = pages(tuned.upstream_url)
    stock_pages = pages(moto_endpoint)

    assert tuned_pages == stock_pages
    assert sum(count for count, _ in tuned_pages) == 25
    assert len(tuned_pages) >= 3
