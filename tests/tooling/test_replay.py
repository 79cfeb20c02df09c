"""`replay` invokes the real handler once with a saved event, against the configured
endpoint and tables, and shows the response and the transitions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from reassembly_trigger.local.aws.stack import (
    LocalAws,
    ResourceNames,
    Resources,
    create_resources,
    environment,
)
from reassembly_trigger.local.cli import main

from moto_fixtures import CONTRACT_EVENTS, REGION, Pipeline

#: The contract's events name these tables (`stereo-spot-jobs`, ...).
CONTRACT_PREFIX = "stereo-spot"
JOB_A = "0f1c2d3e-job-a"
JOB_B = "7a8b9c0d-job-b"

#: The repository's copies of the contract's events (tests/events/): never skipped.
contract_events = sorted(CONTRACT_EVENTS.glob("*.json"))


@pytest.fixture
def contract_pipeline(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Pipeline:
    """The contract's tables on the moto server, emptied, and the Lambda's environment."""
    aws = LocalAws.connect(moto_endpoint, REGION)
    resources: Resources = create_resources(aws, ResourceNames.with_prefix(CONTRACT_PREFIX))
    names = resources.names
    for table in (
        names.jobs_table,
        names.segment_completions_table,
        names.reassembly_triggered_table,
    ):
        schema = aws.dynamodb.describe_table(TableName=table)["Table"]["KeySchema"]
        keys = [k["AttributeName"] for k in schema]
        for item in aws.dynamodb.scan(TableName=table).get("Items", []):
            aws.dynamodb.delete_item(TableName=table, Key={k: item[k] for k in keys})
    pipeline = Pipeline(aws, resources)
    pipeline.drain_messages()  # left by an earlier test (PurgeQueue is once a minute)
    pipeline.received.clear()
    for key, value in environment(resources, moto_endpoint, REGION).items():
        monkeypatch.setenv(key, value)
    return pipeline


def replay_json(capsys: pytest.CaptureFixture[str], path: Path) -> tuple[int, dict[str, Any]]:
    status = main(["replay", str(path), "--json"])
    return status, json.loads(capsys.readouterr().out)


def finals(outcome: dict[str, Any]) -> dict[str, tuple[str, str | None]]:
    """Each job's last transition: (dest, reason)."""
    last: dict[str, tuple[str, str | None]] = {}
    for row in outcome["transitions"]:
        last[row["job_id"]] = (row["dest"], row.get("reason"))
    return last


@pytest.mark.parametrize("path", contract_events, ids=lambda p: p.stem)
def test_every_contract_event_replays_against_the_moto_server(
    contract_pipeline: Pipeline, capsys: pytest.CaptureFixture[str], path: Path
) -> None:
    """On empty tables each contract event is handled without failures: jobs it names
    are skipped as not found, a REMOVE names none."""
    status, outcome = replay_json(capsys, path)

    assert status == 0
    assert outcome["response"] == {"batchItemFailures": []}
    named = {
        r["dynamodb"]["Keys"]["job_id"]["S"]
        for r in json.loads(path.read_text())["Records"]
        if r["eventName"] != "REMOVE"
    }
    assert finals(outcome) == dict.fromkeys(named, ("skipped", "job_not_found"))
    assert outcome["metrics"]["Records"] == len(json.loads(path.read_text())["Records"])
    assert contract_pipeline.bodies() == []


def test_the_batch_event_triggers_the_complete_job_only(
    contract_pipeline: Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    """GIVEN job A complete and job B missing a segment WHEN the contract's batch is
    replayed THEN A is enqueued and B waits as incomplete."""
    contract_pipeline.add_job(JOB_A, total_segments=3)
    contract_pipeline.complete(JOB_A, range(3))
    contract_pipeline.add_job(JOB_B, total_segments=5)
    contract_pipeline.complete(JOB_B, [0, 1, 2, 4])

    status, outcome = replay_json(capsys, CONTRACT_EVENTS / "segment-completions-batch.json")

    assert status == 0
    assert finals(outcome) == {JOB_A: ("enqueued", None), JOB_B: ("skipped", "incomplete")}
    assert outcome["jobs"] == {
        JOB_A: {"state": "enqueued", "reason": None},
        JOB_B: {"state": "skipped", "reason": "incomplete"},
    }
    assert outcome["batch"] == {"records": 4, "jobs": 2, "ignored": {}, "malformed": {}}
    assert contract_pipeline.bodies() == [{"job_id": JOB_A}]


def test_the_jobs_event_triggers_a_job_whose_chunking_completed_last(
    contract_pipeline: Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    """The Jobs-stream event of chunking completing triggers a job already complete."""
    contract_pipeline.add_job(JOB_B, total_segments=5)
    contract_pipeline.complete(JOB_B, range(5))

    status, outcome = replay_json(capsys, CONTRACT_EVENTS / "jobs-chunking-complete.json")

    assert status == 0
    assert finals(outcome) == {JOB_B: ("enqueued", None)}
    assert contract_pipeline.bodies() == [{"job_id": JOB_B}]


def test_the_human_output_shows_the_transitions_and_the_response(
    contract_pipeline: Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --json: one row per transition, then the response."""
    contract_pipeline.add_job(JOB_A, total_segments=3)
    contract_pipeline.complete(JOB_A, range(3))

    status = main(["replay", str(CONTRACT_EVENTS / "segment-completions-batch.json")])

    out = capsys.readouterr().out
    assert status == 0
    for step in ("received -> loaded", "loaded -> counted", "sent -> enqueued"):
        assert step in out
    assert "job_not_found" in out
    assert 'response: {"batchItemFailures": []}' in out


def test_a_file_that_is_not_a_stream_event_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A clear error and exit status 2, before anything is invoked."""
    path = tmp_path / "event.json"
    path.write_text('{"records": []}')

    assert main(["replay", str(path)]) == 2
    assert "is not a stream event" in capsys.readouterr().err


def test_a_missing_environment_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Without the Lambda's variables the error names them, with exit status 2."""
    path = tmp_path / "event.json"
    path.write_text('{"Records": []}')

    assert main(["replay", str(path)]) == 2
    err = capsys.readouterr().err
    assert "JOBS_TABLE_NAME" in err
    assert "local up" in err
