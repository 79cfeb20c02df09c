"""`local up` serves the embedded AWS in the foreground and prints what to export; what
it cannot do, it refuses at once in one line."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reassembly_trigger.local.aws.stack import LocalAws, ResourceNames, Resources, environment
from reassembly_trigger.local.cli import main
from reassembly_trigger.local.commands.local_up import ON_FAILURE_QUEUE_VARIABLE

from moto_fixtures import REGION, run_cli


def _default_sigint() -> None:
    # A background shell starts children with SIGINT ignored; Ctrl-C must reach this one.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_local_up_prints_the_exports_serves_them_and_stops_on_ctrl_c() -> None:
    """GIVEN `local up` running WHEN another process uses what it printed THEN the tables
    (with streams) and the queue are there; Ctrl-C stops it cleanly with status 0."""
    process = subprocess.Popen(
        [sys.executable, "-m", "reassembly_trigger.local.cli", "local", "up", "--prefix", "up"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        preexec_fn=_default_sigint,  # noqa: PLW1509 - no threads in the child yet
    )
    try:
        assert process.stdout is not None
        exports: dict[str, str] = {}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            assert line, f"local up ended early: {process.communicate()[1]}"
            if line.startswith("export "):
                name, _, value = line.removeprefix("export ").strip().partition("=")
                exports[name] = value
            if line.startswith("# streams:"):
                break
        assert exports["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")
        assert exports["JOBS_TABLE_NAME"] == "up-jobs"
        aws = LocalAws.connect(exports["AWS_ENDPOINT_URL"], exports["AWS_REGION"])
        for table in (exports["JOBS_TABLE_NAME"], exports["SEGMENT_COMPLETIONS_TABLE_NAME"]):
            described = aws.dynamodb.describe_table(TableName=table)["Table"]
            assert described["StreamSpecification"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
        aws.dynamodb.describe_table(TableName=exports["REASSEMBLY_TRIGGERED_TABLE_NAME"])
        aws.sqs.send_message(QueueUrl=exports["REASSEMBLY_QUEUE_URL"], MessageBody="{}")
        aws.sqs.get_queue_attributes(QueueUrl=exports["ON_FAILURE_QUEUE_URL"])

        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)

        assert process.returncode == 0
        assert "moto server stopped" in err
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def error_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    """stderr's lines, after checking there is no traceback in it."""
    assert "Traceback" not in result.stderr
    return result.stderr.strip().splitlines()


def test_a_port_in_use_is_one_line_and_exit_2_at_once() -> None:
    """GIVEN a port another program listens on WHEN `local up --port` names it THEN it
    exits 2 at once with one line naming the port, and prints no exports."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        result = run_cli("local", "up", "--port", str(port))

    assert result.returncode == 2
    assert error_lines(result) == [
        f"local up: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]
    assert result.stdout == ""


@pytest.mark.parametrize("port", ["-1", "65536", "99999", "http"])
def test_a_port_outside_0_to_65535_is_refused_by_the_parser(port: str) -> None:
    """`--port -1` used to hang with a thread traceback, and 99999 served on 34463."""
    result = run_cli("local", "up", f"--port={port}")

    assert result.returncode == 2
    assert "argument --port:" in error_lines(result)[-1]
    assert result.stdout == ""


def test_an_env_file_in_a_missing_folder_is_refused_before_anything_starts(
    tmp_path: Path,
) -> None:
    """The folder of `--env-file` is checked first: one line naming it, no exports."""
    target = tmp_path / "nonexistent" / "dir" / "x.env"

    result = run_cli("local", "up", "--env-file", str(target))

    assert result.returncode == 2
    assert error_lines(result) == [
        f"local up: --env-file {target}: no such directory {target.parent}"
    ]
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("prefix", "words"),
    [
        ("bad prefix!", "DynamoDB refuses"),
        ("a.b", "SQS refuses"),
        ("p" * 53, "SQS refuses"),
    ],
)
def test_a_prefix_that_makes_a_name_aws_refuses_is_a_usage_error(
    prefix: str, words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Names are checked against DynamoDB's and SQS's rules before anything is created."""
    with pytest.raises(SystemExit) as exit_info:
        main(["local", "up", "--prefix", prefix])

    assert exit_info.value.code == 2
    assert words in capsys.readouterr().err


def test_the_longest_prefix_every_name_accepts_is_accepted() -> None:
    """52 characters: the on-failure queue's name is then exactly SQS's 80."""
    names = ResourceNames.with_prefix("p" * 52, fifo=True)

    assert len(names.on_failure_queue) == 80


def test_the_readmes_sample_exports_the_variables_local_up_prints(
    resources: Resources, moto_endpoint: str
) -> None:
    """The README's `local up` sample lists the variables the command prints, in its
    order (four settings were missing from it)."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    start = readme.index("$ .venv/bin/reassembly-trigger local up --env-file")
    sample = readme[start : readme.index("```", start)]
    shown = [
        line.removeprefix("export ").partition("=")[0]
        for line in sample.splitlines()
        if line.startswith("export ")
    ]
    printed = [*environment(resources, moto_endpoint, REGION), ON_FAILURE_QUEUE_VARIABLE]

    assert shown == printed
