"""`reassembly-trigger doctor --preflight`: every call the functions make, tried, and
every missing piece named (on the moto server; a denied permission as IAM answers)."""

from __future__ import annotations

import pytest

from reassembly_trigger.local.aws.faults import FaultInjector, FaultKind, FaultRule

from moto_fixtures import REGION, Pipeline, cli_json

#: (action, resource kind) of every call the stream function and the reconciler make.
CALLS = {
    ("dynamodb:BatchGetItem", "JOBS_TABLE_NAME"),
    ("dynamodb:Query", "SEGMENT_COMPLETIONS_TABLE_NAME"),
    ("dynamodb:Query", "JOBS_STATUS_INDEX_NAME"),
    ("dynamodb:GetItem", "REASSEMBLY_TRIGGERED_TABLE_NAME"),
    ("dynamodb:BatchGetItem", "REASSEMBLY_TRIGGERED_TABLE_NAME"),
    ("dynamodb:PutItem", "REASSEMBLY_TRIGGERED_TABLE_NAME"),
    ("dynamodb:UpdateItem", "REASSEMBLY_TRIGGERED_TABLE_NAME"),
    ("sqs:GetQueueAttributes", "REASSEMBLY_QUEUE_URL"),
    ("sqs:SendMessage", "REASSEMBLY_QUEUE_URL"),
}


def _variable(resource: str) -> str:
    return resource.split("(", 1)[1].split(")", 1)[0]


def test_a_working_deployment_passes_every_call_and_writes_nothing(
    capsys: pytest.CaptureFixture[str], lambda_env: dict[str, str], pipeline: Pipeline
) -> None:
    """GIVEN the tables, index and queue WHEN preflight runs with --send-probe THEN every
    call is allowed, nothing is missing, no lock is written and the one probe message
    names a job no lock exists for (the media worker drops it)."""
    status, report = cli_json(capsys, "doctor", "--preflight", "--send-probe")

    assert status == 0, report
    assert report["missing"] == []
    assert {(c["action"], _variable(c["resource"])) for c in report["checks"]} == CALLS
    assert all(c["ok"] for c in report["checks"])
    (body,) = pipeline.bodies()
    assert body["job_id"].startswith("preflight-")
    assert pipeline.lock(body["job_id"]) is None


def test_without_send_probe_sendmessage_is_said_to_be_unchecked(
    capsys: pytest.CaptureFixture[str], lambda_env: dict[str, str], pipeline: Pipeline
) -> None:
    """No message is sent unless asked; the report says SendMessage was not checked."""
    status, report = cli_json(capsys, "doctor", "--preflight")

    assert status == 0
    (send,) = [c for c in report["checks"] if c["action"] == "sqs:SendMessage"]
    assert send["ok"] is None
    assert "--send-probe" in send["detail"]
    assert pipeline.bodies() == []


def test_every_missing_table_index_and_queue_is_named(
    capsys: pytest.CaptureFixture[str],
    lambda_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """GIVEN a lock table, a status index and a queue that do not exist WHEN preflight
    runs THEN it exits 1 and names each, with the variable that holds it."""
    monkeypatch.setenv("REASSEMBLY_TRIGGERED_TABLE_NAME", "no-such-locks")
    monkeypatch.setenv("JOBS_STATUS_INDEX_NAME", "no-such-index")
    monkeypatch.setenv("REASSEMBLY_QUEUE_URL", lambda_env["REASSEMBLY_QUEUE_URL"] + "-gone")

    status, report = cli_json(capsys, "doctor", "--preflight", "--send-probe")

    assert status == 1
    missing = {(c["action"], _variable(c["resource"])) for c in report["checks"] if not c["ok"]}
    assert missing == {
        ("dynamodb:Query", "JOBS_STATUS_INDEX_NAME"),
        ("dynamodb:GetItem", "REASSEMBLY_TRIGGERED_TABLE_NAME"),
        ("dynamodb:BatchGetItem", "REASSEMBLY_TRIGGERED_TABLE_NAME"),
        ("dynamodb:PutItem", "REASSEMBLY_TRIGGERED_TABLE_NAME"),
        ("dynamodb:UpdateItem", "REASSEMBLY_TRIGGERED_TABLE_NAME"),
        ("sqs:GetQueueAttributes", "REASSEMBLY_QUEUE_URL"),
        ("sqs:SendMessage", "REASSEMBLY_QUEUE_URL"),
    }
    assert any("table no-such-locks" in line for line in report["missing"])
    assert any("index no-such-index" in line for line in report["missing"])


def test_a_denied_permission_is_named_with_its_action_and_resource(
    capsys: pytest.CaptureFixture[str], lambda_env: dict[str, str], faults: FaultInjector
) -> None:
    """GIVEN credentials without dynamodb:BatchGetItem WHEN preflight runs THEN exactly
    the two BatchGetItem checks fail, each naming the action and the table's ARN."""
    faults.add(FaultRule("BatchGetItem", FaultKind.ACCESS_DENIED))

    status, report = cli_json(capsys, "doctor", "--preflight")

    assert status == 1
    failed = [c for c in report["checks"] if c["ok"] is False]
    assert {(c["action"], _variable(c["resource"])) for c in failed} == {
        ("dynamodb:BatchGetItem", "JOBS_TABLE_NAME"),
        ("dynamodb:BatchGetItem", "REASSEMBLY_TRIGGERED_TABLE_NAME"),
    }
    jobs_arn = f"arn:aws:dynamodb:{REGION}:123456789012:table/{lambda_env['JOBS_TABLE_NAME']}"
    assert any(f"dynamodb:BatchGetItem on resource: {jobs_arn}" in c["detail"] for c in failed)


def test_a_queue_in_another_region_is_named(
    capsys: pytest.CaptureFixture[str], lambda_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A queue URL of another region than the functions' clients is a misconfiguration."""
    other = "ap-southeast-2" if REGION != "ap-southeast-2" else "eu-north-1"
    monkeypatch.setenv(
        "REASSEMBLY_QUEUE_URL", f"https://sqs.{other}.amazonaws.com/123456789012/queue"
    )

    status, report = cli_json(capsys, "doctor", "--preflight")

    assert status == 1
    (region,) = [c for c in report["checks"] if c["action"] == "region"]
    assert region["ok"] is False
    assert f"the queue is in {other}, the functions' clients in {REGION}" == region["detail"]


def test_doctor_without_a_job_or_preflight_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], lambda_env: dict[str, str]
) -> None:
    """JOB_ID stays required unless --preflight is given."""
    from reassembly_trigger.local import cli

    assert cli.main(["doctor"]) == 2
    assert "JOB_ID is required" in capsys.readouterr().err
