"""Each invocation writes one CloudWatch Embedded Metric Format line, with no API call."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from reassembly_trigger.local.aws.faults import FaultInjector, FaultKind, FaultRule
from reassembly_trigger.local.invocations.records import stream_event
from reassembly_trigger.machine import FailReason, SkipReason
from reassembly_trigger.metrics import METRIC_UNITS, metric_name
from reassembly_trigger.settings import DEFAULT_METRICS_NAMESPACE

from moto_fixtures import CORE_FAIL_METRICS, CORE_SKIP_METRICS, Invoker, Pipeline

#: CloudWatch's metric units (MetricDatum), as the EMF specification's schema lists them.
_SIZES = ("Bytes", "Kilobytes", "Megabytes", "Gigabytes", "Terabytes")
_BITS = ("Bits", "Kilobits", "Megabits", "Gigabits", "Terabits")
CLOUDWATCH_UNITS = {
    "Seconds",
    "Microseconds",
    "Milliseconds",
    "Percent",
    "Count",
    "None",
    "Count/Second",
    *_SIZES,
    *_BITS,
    *(f"{unit}/Second" for unit in (*_SIZES, *_BITS)),
}


def assert_valid_emf(document: Any) -> None:
    """The EMF specification's document structure, checked member by member.

    Root: an object with `_aws` = {Timestamp: integer ms, CloudWatchMetrics: [directive]}
    and no other members in `_aws`. Directive: exactly Namespace (1-255 chars), Dimensions
    (at least one DimensionSet of at most 9 keys, each naming a root member with a string
    value) and Metrics (at most 100 definitions: Name naming a numeric root member, and
    a valid Unit).
    """
    assert isinstance(document, dict)
    metadata = document["_aws"]
    assert set(metadata) == {"Timestamp", "CloudWatchMetrics"}
    timestamp = metadata["Timestamp"]
    assert isinstance(timestamp, int)
    assert not isinstance(timestamp, bool)
    assert 1_500_000_000_000 < timestamp < 4_000_000_000_000  # milliseconds, not seconds
    directives = metadata["CloudWatchMetrics"]
    assert isinstance(directives, list)
    assert directives
    for directive in directives:
        assert set(directive) == {"Namespace", "Dimensions", "Metrics"}
        assert isinstance(directive["Namespace"], str)
        assert 1 <= len(directive["Namespace"]) <= 255
        assert isinstance(directive["Dimensions"], list)
        assert len(directive["Dimensions"]) >= 1
        for dimension_set in directive["Dimensions"]:
            assert isinstance(dimension_set, list)
            assert len(dimension_set) <= 9
            for key in dimension_set:
                assert isinstance(key, str)
                assert 1 <= len(key) <= 255
                assert isinstance(document[key], str)
        metrics = directive["Metrics"]
        assert isinstance(metrics, list)
        assert 1 <= len(metrics) <= 100
        for metric in metrics:
            assert set(metric) <= {"Name", "Unit", "StorageResolution"}
            assert isinstance(metric["Name"], str)
            assert 1 <= len(metric["Name"]) <= 255
            assert metric.get("Unit", "None") in CLOUDWATCH_UNITS
            value = document[metric["Name"]]
            assert isinstance(value, int | float)
            assert not isinstance(value, bool)


def emf_lines(stdout: str) -> list[dict[str, Any]]:
    """The EMF documents among the lines written to stdout."""
    documents = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    return [d for d in documents if "_aws" in d]


def metrics_of(document: dict[str, Any]) -> dict[str, float]:
    names = [m["Name"] for m in document["_aws"]["CloudWatchMetrics"][0]["Metrics"]]
    return {name: document[name] for name in names}


def test_one_invocation_writes_one_valid_line_counting_outcomes_by_reason(
    pipeline: Pipeline, invoke: Invoker, capsys: pytest.CaptureFixture[str]
) -> None:
    """GIVEN a batch naming an enqueued, an incomplete and an unknown job and a malformed
    record WHEN the handler runs THEN stdout holds exactly one EMF line that validates and
    counts records, jobs by outcome and skips by reason, under the function's name."""
    pipeline.add_job("job-done", total_segments=2)
    pipeline.complete("job-done", range(2))
    pipeline.add_job("job-partial", total_segments=3)
    pipeline.complete("job-partial", [0])
    records = [
        *pipeline.completion_records("job-done", range(2)),
        *pipeline.completion_records("job-partial", [0]),
        *pipeline.completion_records("job-ghost", [0]),
    ]
    malformed = pipeline.completion_records("job-x", [0])[0]
    del malformed["dynamodb"]["Keys"]
    capsys.readouterr()

    invoke(stream_event(*records, malformed), function_name="reassembly-trigger-prod")

    lines = emf_lines(capsys.readouterr().out)
    assert len(lines) == 1
    document = lines[0]
    assert_valid_emf(document)
    directive = document["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == DEFAULT_METRICS_NAMESPACE
    assert directive["Dimensions"] == [["FunctionName"]]
    assert document["FunctionName"] == "reassembly-trigger-prod"
    values = metrics_of(document)
    assert values["Records"] == 5
    assert values["MalformedRecords"] == 1
    assert values["JobsEvaluated"] == 3
    assert values["JobsEnqueued"] == 1
    assert values["JobsSkipped"] == 2
    assert values["SkippedIncomplete"] == 1
    assert values["SkippedJobNotFound"] == 1
    assert values["JobsFailed"] == 0
    assert values["InvocationDuration"] > 0
    others = {k: v for k, v in values.items() if k.startswith(("Skipped", "Failed"))}
    assert sum(others.values()) == 2


def test_failures_are_counted_by_reason(
    pipeline: Pipeline,
    invoke: Invoker,
    faults: FaultInjector,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A job whose send keeps failing counts as `JobsFailed` and `FailedAwsError`."""
    pipeline.add_job("job-f", total_segments=1)
    pipeline.complete("job-f", [0])
    faults.add(FaultRule("SendMessage", FaultKind.SERVER_ERROR))
    capsys.readouterr()

    response = invoke(stream_event(*pipeline.completion_records("job-f", [0])))

    assert response["batchItemFailures"]
    (document,) = emf_lines(capsys.readouterr().out)
    assert_valid_emf(document)
    values = metrics_of(document)
    assert (values["JobsFailed"], values["FailedAwsError"], values["JobsEnqueued"]) == (1, 1, 0)


def test_namespace_and_function_name_come_from_the_environment(
    pipeline: Pipeline,
    invoke: Invoker,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """METRICS_NAMESPACE sets the namespace; AWS_LAMBDA_FUNCTION_NAME names the function
    when the context does not; a batch naming no job still writes every metric, as 0."""
    monkeypatch.setenv("METRICS_NAMESPACE", "Team/Custom")
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "from-env")
    record = pipeline.completion_records("job-r", [0])[0]
    record["eventName"] = "REMOVE"
    record["dynamodb"]["OldImage"] = record["dynamodb"].pop("NewImage")
    capsys.readouterr()

    invoke(stream_event(record), function_name="")

    (document,) = emf_lines(capsys.readouterr().out)
    assert_valid_emf(document)
    assert document["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Team/Custom"
    assert document["FunctionName"] == "from-env"
    values = metrics_of(document)
    assert values.pop("Records") == 1
    values.pop("InvocationDuration")
    assert set(values.values()) == {0}


def test_every_reason_of_the_machine_has_its_metric() -> None:
    """One metric per skip and per fail reason of machine.py, named as the alarms and the
    dashboard name them (written out in moto_fixtures: a rename must change the tests)."""
    per_reason = {name for name in METRIC_UNITS if name.startswith(("Skipped", "Failed"))}
    assert per_reason == {*CORE_SKIP_METRICS, *CORE_FAIL_METRICS}
    assert len(per_reason) == len(SkipReason) + len(FailReason)
    assert metric_name("Skipped", "already_triggered") == "SkippedAlreadyTriggered"


def test_the_operations_guide_documents_every_metric() -> None:
    """docs/operations.md names every metric the line carries, and how many there are."""
    guide = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text()

    assert [name for name in METRIC_UNITS if f"`{name}`" not in guide] == []
    assert f"({len(METRIC_UNITS)} per function)" in guide


def test_the_operations_guide_documents_every_reconciler_metric() -> None:
    """docs/operations.md names every metric of the reconciler's line, and their number."""
    from reassembly_trigger.metrics import RECONCILE_METRIC_UNITS

    guide = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text()

    assert [name for name in RECONCILE_METRIC_UNITS if f"`{name}`" not in guide] == []
    assert f"({len(RECONCILE_METRIC_UNITS)} in all)" in guide
