"""The region: botocore reads `AWS_DEFAULT_REGION` (or a profile's `region`), never
`AWS_REGION`; Lambda sets both, a shell often only one. The CLI works with either alone.

The pipeline lives in eu-west-1 on the moto server (moto keeps regions apart), so a
command that fell back to any other region would not find its tables.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from reassembly_trigger.local import cli
from reassembly_trigger.local.aws.stack import (
    LocalAws,
    environment,
)

from pipeline import Pipeline, fresh_resources

PIPELINE_REGION = "eu-west-1"
CLI = Path(sys.executable).with_name("reassembly-trigger")


@pytest.fixture
def far_pipeline(moto_endpoint: str) -> Pipeline:
    """Fresh tables and queues in eu-west-1, with one complete job nobody triggered."""
    aws = LocalAws.connect(moto_endpoint, PIPELINE_REGION)
    pipeline = Pipeline(aws, fresh_resources(aws))
    pipeline.add_job("job-r", total_segments=2)
    pipeline.complete("job-r", [0, 1])
    return pipeline


def _environment_without_a_region(pipeline: Pipeline, endpoint: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("AWS_REGION", "AWS_DEFAULT_REGION")}
    env.update(environment(pipeline.resources, endpoint, PIPELINE_REGION))
    del env["AWS_REGION"], env["AWS_DEFAULT_REGION"]
    # No profile may supply a region (or credentials) behind the test's back.
    env["AWS_CONFIG_FILE"] = env["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    return env


def test_botocore_reads_aws_default_region_and_ignores_aws_region(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What the docstrings of clients.py and settings.py state, on the botocore in use."""
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.setenv("AWS_REGION", PIPELINE_REGION)
    assert boto3.session.Session().region_name is None
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.setenv("AWS_DEFAULT_REGION", PIPELINE_REGION)
    assert boto3.session.Session().region_name == PIPELINE_REGION


@pytest.mark.parametrize("variable", ["AWS_REGION", "AWS_DEFAULT_REGION"])
def test_doctor_and_reconcile_work_with_either_region_variable_alone(
    far_pipeline: Pipeline, moto_endpoint: str, variable: str
) -> None:
    """GIVEN only AWS_REGION, or only AWS_DEFAULT_REGION, naming the pipeline's region
    WHEN `doctor` and `reconcile` run as a user runs them THEN both read the job there."""
    env = {**_environment_without_a_region(far_pipeline, moto_endpoint), variable: PIPELINE_REGION}

    def run(*arguments: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(CLI), *arguments],
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )

    doctor = run("doctor", "job-r", "--json")
    # A complete job nobody locked: would_trigger (exit 0), or stuck (1) once its last
    # completion is old; 2 would be an error such as "You must specify a region".
    assert doctor.returncode in (0, 1), doctor.stderr
    assert json.loads(doctor.stdout)["verdict"] in ("would_trigger", "stuck")
    reconcile = run("reconcile", "--json")
    assert reconcile.returncode in (0, 1), reconcile.stderr
    assert [job["job_id"] for job in json.loads(reconcile.stdout)["jobs"]] == ["job-r"]


def test_aws_region_wins_over_aws_default_region_as_in_the_aws_cli(
    far_pipeline: Pipeline,
    moto_endpoint: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """GIVEN AWS_REGION naming the pipeline's region and AWS_DEFAULT_REGION another
    WHEN `doctor --repair` runs THEN it works in AWS_REGION's, as `aws` would."""
    for key, value in _environment_without_a_region(far_pipeline, moto_endpoint).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_REGION", PIPELINE_REGION)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-southeast-2")

    status = cli.main(["doctor", "job-r", "--repair", "--json"])

    assert status == 0, capsys.readouterr().err
    assert far_pipeline.bodies() == [{"job_id": "job-r"}]


def test_poll_runs_the_handler_in_the_region_it_polls(
    far_pipeline: Pipeline,
    moto_endpoint: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """GIVEN neither region variable WHEN `poll --region eu-west-1` follows the streams
    THEN the handler it invokes reads and writes eu-west-1 too, and the job is sent."""
    for key, value in _environment_without_a_region(far_pipeline, moto_endpoint).items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION")

    # Finite retries: a handler failing on every batch must end the poll, not hang it.
    status = cli.main(
        [
            *("poll", "--region", PIPELINE_REGION, "--max-retries", "1"),
            *("--until-idle", "0.3", "--poll-interval", "0.02"),
        ]
    )

    assert status == 0, capsys.readouterr().err
    assert far_pipeline.bodies() == [{"job_id": "job-r"}]
