"""The benchmark works and its figures add up (smoke runs at tiny sizes, no timing asserted).

Timing targets are reported by `reassembly-trigger bench`, never asserted here: these
tests check that the latency proxy delays, forwards and counts every call, that the
tuned moto answers exactly like stock moto, that the bounds are the critical paths
they claim, and that each workload makes exactly the AWS calls the design says it
should and does the right thing.
"""

from __future__ import annotations

import json
import math
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config

from reassembly_trigger.local.aws.latency_proxy import (
    ControlClient,
    LatencyProxy,
    SubprocessStack,
    identify_call,
)
from reassembly_trigger.local.aws.stack import LOCAL_CREDENTIALS, LocalAws
from reassembly_trigger.local.cli import main
from reassembly_trigger.local.commands.bench import Bench, BenchConfig, Endpoints, bounds
from reassembly_trigger.local.commands.bench import render as bench_render
from reassembly_trigger.local.commands.bench.cold_start import measure_cold_path
from reassembly_trigger.local.commands.bench.results import PROJECT
from reassembly_trigger.settings import DEFAULT_EVALUATION_CONCURRENCY

from moto_fixtures import REGION, run_cli

QUICK = BenchConfig.quick(
    latency_ms=0, latencies_ms=(0.0,), burst_latencies_ms=(0.0,), cold_start_runs=0
)


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


def test_a_pool_of_128_threads_connecting_at_once_is_never_refused(moto_endpoint: str) -> None:
    """128 connections opened together are all accepted at once: none waits for a SYN
    retransmit (1 s), which with a listen backlog of 5 exceeded the handler's connect
    timeout and made 64 threads slower than 16."""
    start = threading.Barrier(128, timeout=10)
    waits: list[float] = []
    with LatencyProxy(moto_endpoint, latency_ms=0) as proxy:
        port = int(proxy.endpoint_url.rsplit(":", 1)[1])
        sockets: list[socket.socket] = []

        def connect() -> None:
            start.wait()
            began = time.perf_counter()
            sockets.append(socket.create_connection(("127.0.0.1", port), timeout=5))
            waits.append(time.perf_counter() - began)

        threads = [threading.Thread(target=connect) for _ in range(128)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for sock in sockets:
            sock.close()
    assert len(waits) == 128
    assert max(waits) < 0.9


# ------------------------------------------------------------------ the tuned moto


def _handler_calls(aws: LocalAws, names: Any, queue_url: str) -> dict[str, Any]:
    """The answers to every kind of call the handler makes, on data of three jobs."""
    db, table = aws.dynamodb, names.segment_completions_table
    for job in ("job-a", "job-b", "job-c"):
        for index in range(30):
            db.put_item(
                TableName=table,
                Item={
                    "job_id": {"S": job},
                    "segment_index": {"N": str(index)},
                    "pad": {"S": "x" * 100_000},
                    "nested": {"M": {"l": {"L": [{"N": "1.5"}, {"BOOL": True}]}}},
                },
            )
    db.put_item(
        TableName=names.jobs_table,
        Item={"job_id": {"S": "job-b"}, "status": {"S": "s"}, "total_segments": {"N": "3"}},
    )
    answers: dict[str, Any] = {}
    for name, select in (
        ("count pages", {"Select": "COUNT"}),
        ("key pages", {"ProjectionExpression": "segment_index"}),
    ):
        pages, start = [], None
        while True:
            page = db.query(
                TableName=table,
                KeyConditionExpression="job_id = :j AND segment_index BETWEEN :a AND :b",
                ExpressionAttributeValues={
                    ":j": {"S": "job-b"},
                    ":a": {"N": "3"},
                    ":b": {"N": "27"},
                },
                ConsistentRead=True,
                **select,  # type: ignore[arg-type]
                **({"ExclusiveStartKey": start} if start else {}),
            )
            start = page.get("LastEvaluatedKey")
            pages.append((page["Count"], page.get("Items"), start))
            if not start:
                break
        answers[name] = pages
    got = db.batch_get_item(
        RequestItems={
            names.jobs_table: {
                "Keys": [{"job_id": {"S": "job-b"}}, {"job_id": {"S": "none"}}],
                "ConsistentRead": True,
            }
        }
    )
    answers["batch get"] = (got["Responses"][names.jobs_table], got["UnprocessedKeys"])
    key = {"job_id": {"S": "job-a"}, "segment_index": {"N": "1"}}
    answers["get"] = db.get_item(TableName=table, Key=key)["Item"]["nested"]
    lock = names.reassembly_triggered_table
    item = {"job_id": {"S": "job-b"}, "holder": {"S": "h"}, "lease_expires_at": {"N": "9"}}
    condition = "attribute_not_exists(job_id)"
    put = db.put_item(TableName=lock, Item=item, ConditionExpression=condition)
    answers["put"] = sorted(put.keys() - {"ResponseMetadata"})
    with pytest.raises(db.exceptions.ConditionalCheckFailedException) as refused:
        db.put_item(
            TableName=lock,
            Item=item,
            ConditionExpression=condition,
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
    answers["put refused"] = (
        refused.value.response["Error"]["Code"],
        refused.value.response["Item"],
    )
    answers["update"] = db.update_item(
        TableName=lock,
        Key={"job_id": {"S": "job-b"}},
        UpdateExpression="SET enqueued_at = :n",
        ConditionExpression="holder = :h",
        ExpressionAttributeValues={":n": {"N": "5"}, ":h": {"S": "h"}},
        ReturnValues="ALL_NEW",
    )["Attributes"]
    sent = [aws.sqs.send_message(QueueUrl=queue_url, MessageBody=f"m{n}") for n in range(3)]
    answers["send"] = [sorted(s.keys() - {"ResponseMetadata", "MessageId"}) for s in sent]
    attributes = aws.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])
    answers["queue length"] = attributes["Attributes"]["ApproximateNumberOfMessages"]
    return answers


@pytest.mark.slow
def test_tuned_moto_answers_like_stock_moto(moto_endpoint: str) -> None:
    """The benchmark's moto (Query reads one partition, item results written as JSON,
    sends skip the queue's counts) answers every call the handler makes exactly like
    the stock moto of the test suite: pages, counts, keys, items, errors."""
    import uuid

    from reassembly_trigger.local.aws.stack import ResourceNames, create_resources

    def answers(endpoint: str) -> dict[str, Any]:
        aws = LocalAws.connect(endpoint, REGION)
        names = ResourceNames.with_prefix(f"tune{uuid.uuid4().hex[:8]}")
        resources = create_resources(aws, names)
        return _handler_calls(aws, names, resources.reassembly_queue_url)

    with SubprocessStack(latency_ms=0, tune_moto=True) as tuned:
        tuned_answers = answers(tuned.upstream_url)
    stock_answers = answers(moto_endpoint)

    assert tuned_answers == stock_answers
    assert sum(count for count, _, _ in tuned_answers["count pages"]) == 25
    assert len(tuned_answers["count pages"]) >= 3
    assert tuned_answers["queue length"] == "3"


# ------------------------------------------------------------------ the bounds


def test_a_stream_bound_counts_each_batch_read_and_its_longest_job() -> None:
    """Each batch costs its Jobs read and one count; the batch completing a job also its
    lock, send and mark; with fewer threads than jobs, the calls share the threads."""
    batches = [
        [("a", 0), ("b", 0), ("c", 0)],  # nobody completes: read + count
        [("a", 1), ("b", 1)],  # a and b complete: read + count + lock, send, mark
        [("c", 1)],  # c completes
    ]
    bound = bounds.stream_bound(batches, segments=2)

    assert bound.round_trips() == 2 + 5 + 5
    assert bound.round_trips(concurrency=1) == (1 + 3) + (1 + 8) + (1 + 4)
    assert bound.calls == (1 + 3) + (1 + 8) + (1 + 4)


def test_a_burst_bound_reads_the_jobs_a_hundred_at_a_time_then_triggers_them() -> None:
    """1,000 complete jobs: ten sequential reads of the Jobs, then four calls per job."""
    bound = bounds.burst_bound(1_000)

    assert bound.round_trips() == 10 + 4
    assert bound.round_trips(concurrency=64) == 10 + math.ceil(4_000 / 64)
    assert bound.calls == 10 + 4_000
    assert bound.seconds(0.02) == pytest.approx(14 * 0.02)


# ------------------------------------------------------------------ the workloads


def test_the_completion_stream_triggers_every_job_once_with_calls_that_add_up(
    bench: Bench,
) -> None:
    """Workload 1: one BatchGetItem per batch, one Query per job of each batch, and per
    job one lock, one message and one mark, at the default concurrency and at 1; the
    handler's CPU splits into botocore's and ours."""
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
            "messages": len(jobs) + 1,  # and the warm-up's
            "retried_requests": 0,
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
        assert result.calls_total == result.minimum_calls
        bound = bounds.stream_bound(batches, cfg.stream_segments)
        assert result.bound_round_trips == bound.round_trips()
        assert (result.records, result.batches, result.concurrency) == (
            len(order),
            len(batches),
            concurrency,
        )
        assert 0 < result.botocore_seconds <= result.cpu_seconds


def test_a_burst_triggers_every_job_once_inside_the_timeout(bench: Bench) -> None:
    """Workload 2: one batch naming every job of a backlog: ceil(jobs / 100) reads, then
    per job one count, one lock, one message, one mark; nothing handed back."""
    cfg = bench.config
    result = bench.burst(4)

    assert result.checks["triggered"] == result.checks["expected"] == cfg.burst_jobs
    assert result.checks["duplicates"] == 0
    assert result.failed == 0
    jobs = cfg.burst_jobs
    assert result.calls == {
        "dynamodb": {
            "BatchGetItem": math.ceil(jobs / 100),
            "PutItem": jobs,
            "Query": jobs,
            "UpdateItem": jobs,
        },
        "sqs": {"SendMessage": jobs},
    }
    assert result.records == cfg.burst_records
    assert result.timeout_share is not None
    assert result.timeout_share < 1


def test_a_wide_batch_of_jobs_not_ready_costs_one_batched_read_per_hundred_jobs(
    bench: Bench,
) -> None:
    """Workload 3: ceil(jobs / 100) BatchGetItem calls and no other AWS call at all."""
    result = bench.wide()

    assert result.calls == {"dynamodb": {"BatchGetItem": math.ceil(bench.config.wide_jobs / 100)}}
    assert result.records == bench.config.wide_records
    assert result.checks["skipped"] == {"not_chunking_complete": bench.config.wide_jobs}
    assert result.checks["messages"] == 0


def test_a_deep_job_is_counted_with_one_paginated_query_per_evaluation(bench: Bench) -> None:
    """Workload 4: several MB of completions, several pages per count, every page read
    once per evaluation, every segment counted, one message."""
    result = bench.deep()
    checks = result.checks

    assert checks["evaluations"] == 2
    assert all(pages >= 3 for pages in checks["pages"])
    assert result.calls["dynamodb"]["Query"] == sum(checks["pages"])
    assert checks["completions"] == checks["segments"] == bench.config.deep_segments
    assert checks["triggered"] == 1
    assert checks["megabytes"] > 2
    assert result.calls_total == result.minimum_calls


def test_one_reconcile_run_sends_exactly_the_missed_jobs_and_reports_the_rest(
    bench: Bench,
) -> None:
    """Workload 5: the reconciler lists every job in flight, counts only the unfinished
    ones, sends each missed job once, and reports unclaimed messages and long waits."""
    result = bench.reconcile()
    checks = result.checks
    cfg = bench.config
    missed = round(cfg.reconcile_jobs * cfg.reconcile_missed_share)
    triggered = round(cfg.reconcile_jobs * cfg.reconcile_triggered_share)
    waiting = cfg.reconcile_jobs - missed - triggered

    assert checks["correct"] is True
    assert (checks["listed"], checks["enqueued"], checks["failed_jobs"]) == (
        cfg.reconcile_jobs,
        missed,
        0,
    )
    assert checks["waiting_for_segments"] == waiting
    assert checks["unclaimed"] == triggered // 2  # the other half was claimed
    calls = result.calls
    assert calls["dynamodb"]["Query"] == 1 + missed + waiting  # the listing, then the counts
    assert calls["dynamodb"]["GetItem"] == 1  # the cursor
    assert calls["dynamodb"]["PutItem"] == missed + 1  # the locks, then the cursor
    assert calls["sqs"] == {"SendMessage": missed}
    assert result.calls_total == result.minimum_calls


def test_the_report_compares_each_target_and_serialises(bench: Bench) -> None:
    """A whole (tiny) run: every workload at every concurrency, every target reported
    with a measured value, everything correct, as JSON."""
    report = bench.run()

    keys = [w.key for w in report.workloads]
    assert keys == [
        "stream@0ms/c16",
        "stream@0ms/c1",
        "stream@0ms/c4",
        "burst@0ms/c16",
        "burst@0ms/c4",
        "wide",
        "deep",
        "reconcile",
    ]
    assert report.incorrect() == []
    names = [t.name for t in report.targets()]
    assert "every workload did the right thing" in names
    assert "stream at 0 ms: more concurrency never slower" in names
    decoded = json.loads(json.dumps(report.as_dict()))
    assert all(w["calls_total"] > 0 for w in decoded["workloads"])
    assert all(w["bound_seconds"] > 0 for w in decoded["workloads"])


def test_a_quick_run_reads_as_a_smoke_run_without_scored_targets(bench: Bench) -> None:
    """A tiny run's figures are not held against the full-size goals: no [MISSED], and a
    line saying targets are scored only by a full run."""
    report = bench.run()

    smoke = bench_render.summary_lines(report, smoke=True)
    full = bench_render.summary_lines(report)
    assert smoke[-1] == bench_render.SMOKE_NOTE
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


# ------------------------------------------------------------------ the cold path


@pytest.mark.slow
def test_the_cold_path_runs_each_variant_in_fresh_processes_as_deployed(
    moto_endpoint: str, proxy: LatencyProxy
) -> None:
    """Fresh `python -I -S -B` processes see only the deployment folder and boto3: the
    baseline imports boto3 and creates two clients; the handler variants trigger their
    job with 5 calls, the message sent before the invocation ends, once per job."""
    config = BenchConfig.quick(cold_start_runs=1)
    cold, notes = measure_cold_path(
        config,
        Endpoints(moto_endpoint, proxy.endpoint_url, proxy),
        LocalAws.connect(moto_endpoint, REGION),
        lambda message: None,
    )

    assert cold.checks["correct"] is True
    assert [v.name for v in cold.variants] == [
        "boto3 baseline",
        f"{PROJECT}, no bytecode",
        f"{PROJECT}, bytecode",
    ]
    baseline = cold.baseline
    assert baseline is not None
    assert baseline.seconds("import") > 0
    for variant in cold.variants[1:]:
        assert variant.seconds("calls_per_invocation") == 5
        assert 0 < variant.seconds("to_message") < variant.total
        assert variant.seconds("warm") > 0
    assert any("SnapStart" in note for note in notes)


# ------------------------------------------------------------------ the command


@pytest.mark.slow
def test_the_bench_command_runs_end_to_end_with_json_output(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`reassembly-trigger bench --quick --json`: moto behind the proxy in a child
    process, every workload and the cold path, one JSON document without scored targets
    (a smoke run), exit status 0."""
    status = main(["bench", "--quick", "--json", "--cold-start-runs", "1", "--latency-ms", "1"])

    assert status == 0
    report = json.loads(capsys.readouterr().out)
    assert report["config"]["tuned_moto"] is True
    variants = {v["name"]: v for v in report["cold_path"]["variants"]}
    assert variants["boto3 baseline"]["total"] > 0
    assert variants[f"{PROJECT}, bytecode"]["medians"]["first"] > 0
    # A smoke run: tiny sizes say nothing about the targets, so none is scored.
    assert report["smoke_run"] is True
    assert report["targets"] is None
    wide = next(w for w in report["workloads"] if w["key"] == "wide")
    assert wide["calls"] == {"dynamodb": {"BatchGetItem": 3}}


# ------------------------------------------------------------------ refused at the start


@pytest.mark.parametrize(
    ("option", "value", "why"),
    [
        ("--save-json", "/nonexistent/x.json", "no such directory /nonexistent"),
        ("--target-python", "/usr/bin/nope", "No such file or directory"),
    ],
)
def test_an_unusable_output_or_interpreter_is_refused_before_the_run(
    option: str, value: str, why: str
) -> None:
    """`bench --quick --save-json /nonexistent/x.json` ran its workloads (11 s), then
    exited 2 printing nothing: what the end of the run needs is checked at its start,
    one line naming the option, before the stack starts or anything is measured."""
    started = time.monotonic()
    result = run_cli("bench", "--quick", option, value, timeout=60)

    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"bench: {option} {value}: {why}"]
    assert result.stdout == ""
    assert time.monotonic() - started < 10


def test_ctrl_c_stops_bench_without_a_traceback_from_its_proxy_child() -> None:
    """GIVEN `bench --quick` running (its moto and latency proxy in a child process)
    WHEN Ctrl-C reaches the foreground process group THEN the command says it was
    interrupted (130) and neither it nor the child prints a KeyboardInterrupt traceback."""
    process = subprocess.Popen(
        [sys.executable, "-m", "reassembly_trigger.local.cli", "bench", "--quick"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    try:
        assert process.stderr is not None
        first = process.stderr.readline()  # the first progress line: the child is serving
        assert first
        os.killpg(process.pid, signal.SIGINT)
        _, rest = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    stderr = first + rest
    assert process.returncode == 130
    assert "Traceback" not in stderr
    assert "KeyboardInterrupt" not in stderr
    assert stderr.strip().splitlines()[-1] == "bench: interrupted"
