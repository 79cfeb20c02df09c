"""A configuration the user got wrong (no region, a region that is none, no credentials)
is reported as configuration: one line naming the variable or option, exit 2, before
anything starts, never an AWS error (exit 3) or a traceback. Each command runs as a user
runs it: in a fresh process, with a clean environment (no profile, no credentials, no
region unless the test sets them)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

from reassembly_trigger.local.aws.stack import LOCAL_CREDENTIALS, Resources, environment

from moto_fixtures import REGION, run_cli
from pipeline import Pipeline

EVENT = Path(__file__).parents[1] / "events" / "segment-completions-batch.json"


def clean_environment(tmp_path: Path, **variables: str) -> dict[str, str]:
    """Only what a shell must have, and `variables`: no AWS settings from the machine,
    its profiles or an instance role."""
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
        **variables,
    }


def table_variables(resources: Resources, endpoint: str) -> dict[str, str]:
    """The tables, queue and endpoint `local up` prints, without region or credentials."""
    env = environment(resources, endpoint, REGION)
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        env.pop(name, None)
    return env


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The single line on stderr (no traceback, nothing else)."""
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


OPERATOR_COMMANDS = [
    pytest.param(["doctor", "job-1"], id="doctor"),
    pytest.param(["reconcile"], id="reconcile"),
    pytest.param(["replay", str(EVENT)], id="replay"),
]


@pytest.mark.parametrize("command", OPERATOR_COMMANDS)
def test_no_region_is_a_configuration_error_naming_the_variables(
    command: list[str], resources: Resources, moto_endpoint: str, tmp_path: Path
) -> None:
    """GIVEN only the table variables (no AWS_REGION, AWS_DEFAULT_REGION or profile) WHEN
    an operator command runs THEN it exits 2 naming both variables, not botocore's
    `You must specify a region.` as an AWS error (exit 3)."""
    env = clean_environment(tmp_path, **table_variables(resources, moto_endpoint))
    env.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"})

    result = run_cli(*command, env=env)

    assert result.returncode == 2
    line = one_error_line(result)
    assert "AWS_REGION" in line
    assert "AWS_DEFAULT_REGION" in line


@pytest.mark.parametrize("command", OPERATOR_COMMANDS)
def test_no_credentials_is_a_configuration_error_naming_where_they_are_looked_for(
    command: list[str], resources: Resources, moto_endpoint: str, tmp_path: Path
) -> None:
    """GIVEN the table variables and a region but no credentials anywhere WHEN an
    operator command runs THEN it exits 2 naming where credentials are looked for."""
    env = clean_environment(
        tmp_path, **table_variables(resources, moto_endpoint), AWS_REGION=REGION
    )

    result = run_cli(*command, env=env)

    assert result.returncode == 2
    line = one_error_line(result)
    assert "no AWS credentials" in line
    assert "AWS_ACCESS_KEY_ID" in line
    assert "AWS_PROFILE" in line


def test_poll_without_credentials_refuses_before_invoking_the_handler(
    pipeline: Pipeline, resources: Resources, moto_endpoint: str, tmp_path: Path
) -> None:
    """GIVEN a complete job on the streams and no credentials for the handler's clients
    WHEN `poll --until-idle 1` runs THEN it exits 2 at once, naming the credentials,
    instead of invoking the handler until `Unable to locate credentials` (exit 3)."""
    pipeline.add_job("job-1", total_segments=1)
    pipeline.complete("job-1", [0])
    env = clean_environment(
        tmp_path, **table_variables(resources, moto_endpoint), AWS_REGION=REGION
    )

    result = run_cli("poll", "--until-idle", "1", env=env)

    assert result.returncode == 2
    assert "no AWS credentials" in one_error_line(result)
    assert result.stdout == ""


def test_local_up_refuses_a_region_moto_does_not_serve_before_anything_starts(
    tmp_path: Path,
) -> None:
    """`local up --region nowhere-1` printed ~196 lines of moto tracebacks and exited 3:
    it is refused by the parser, one line naming the option, exit 2, nothing served."""
    result = run_cli("local", "up", "--region", "nowhere-1", env=clean_environment(tmp_path))

    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "argument --region:" in result.stderr.strip().splitlines()[-1]
    assert "nowhere-1" in result.stderr
    assert result.stdout == ""


def test_poll_refuses_a_region_that_is_no_region_name(
    resources: Resources, moto_endpoint: str, tmp_path: Path
) -> None:
    """`poll --region nowhere-1` got an HTML 500 from the local stack (exit 3): refused
    by the parser, exit 2."""
    env = clean_environment(tmp_path, **environment(resources, moto_endpoint, REGION))

    result = run_cli("poll", "--until-idle", "1", "--region", "nowhere-1", env=env)

    assert result.returncode == 2
    assert "argument --region:" in result.stderr.strip().splitlines()[-1]
    assert result.stdout == ""


@pytest.mark.parametrize("command", [["poll", "--until-idle", "1"], ["doctor", "job-1"]])
def test_a_region_variable_that_is_no_region_name_is_named(
    command: list[str], resources: Resources, moto_endpoint: str, tmp_path: Path
) -> None:
    """GIVEN AWS_REGION=nowhere-1 WHEN `poll` or `doctor` runs THEN one line names the
    variable and its value, exit 2."""
    env = clean_environment(tmp_path, **environment(resources, moto_endpoint, REGION))
    env["AWS_REGION"] = "nowhere-1"

    result = run_cli(*command, env=env)

    assert result.returncode == 2
    line = one_error_line(result)
    assert "AWS_REGION" in line
    assert "nowhere-1" in line


def test_the_local_stack_answers_a_region_it_does_not_serve_as_aws_does(
    moto_endpoint: str,
) -> None:
    """GIVEN a client signing for a region moto does not serve WHEN it calls the embedded
    server THEN the answer is AWS's 400 naming the region (one line for the client, no
    traceback in the server's terminal), not moto's KeyError and an HTML 500."""
    client = boto3.session.Session(
        aws_access_key_id=LOCAL_CREDENTIALS["aws_access_key_id"],
        aws_secret_access_key=LOCAL_CREDENTIALS["aws_secret_access_key"],
        region_name="xx-nowhere-9",
    ).client("dynamodb", endpoint_url=moto_endpoint)

    with pytest.raises(ClientError) as raised:
        client.list_tables()

    error = raised.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert error["Error"]["Code"] == "InvalidSignatureException"
    assert "xx-nowhere-9" in error["Error"]["Message"]


@pytest.mark.parametrize(
    "command",
    [["local", "up"], ["simulate", "--jobs", "1", "--no-progress"], ["doctor", "job-1"]],
    ids=["local up", "simulate", "doctor"],
)
def test_a_profile_that_does_not_exist_is_one_line_naming_it(
    command: list[str], resources: Resources, moto_endpoint: str, tmp_path: Path
) -> None:
    """GIVEN AWS_PROFILE naming no profile WHEN a command runs THEN one line says so,
    exit 2 (botocore raises it from wherever it first reads the configuration, an
    option's type included)."""
    env = clean_environment(tmp_path, **environment(resources, moto_endpoint, REGION))
    env["AWS_PROFILE"] = "nope"

    result = run_cli(*command, env=env, timeout=60)

    assert result.returncode == 2
    assert "(nope)" in one_error_line(result)
