"""`poll` refuses what Lambda would refuse, and `--until-idle` always ends."""

from __future__ import annotations

import socket

import pytest

from reassembly_trigger.local.cli import main
from reassembly_trigger.local.invocations.environment import lambda_environment
from reassembly_trigger.local.streams.poller import MappingSettings

from moto_fixtures import REGION, run_cli


@pytest.mark.parametrize(
    "option",
    [
        ["--batch-size", "0"],
        ["--batch-size", "-5"],
        ["--batch-size", "20000"],
        ["--batching-window", "301"],
        ["--batching-window", "-1"],
        ["--max-retries", "-7"],
        ["--max-retries", "10001"],
        ["--max-record-age", "30"],
        ["--max-record-age", "604801"],
        ["--function-timeout", "0"],
        ["--function-timeout", "901"],
        ["--until-idle", "-1"],
        ["--until-idle", "0"],
        ["--duration", "nan"],
        ["--poll-interval", "0"],
    ],
    ids=" ".join,
)
def test_options_outside_lambdas_limits_are_usage_errors(
    option: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Every mapping option is held to Lambda's own limits: exit 2, naming the option."""
    with pytest.raises(SystemExit) as exit_info:
        main(["poll", *option])

    assert exit_info.value.code == 2
    assert f"argument {option[0]}" in capsys.readouterr().err


def test_the_mapping_settings_refuse_what_lambda_refuses() -> None:
    """The library holds the same limits as the command line."""
    with pytest.raises(ValueError, match=r"BatchSize must be 1\.\.10000, not 0"):
        MappingSettings(batch_size=0)
    with pytest.raises(ValueError, match="MaximumRetryAttempts"):
        MappingSettings(maximum_retry_attempts=-7)
    assert MappingSettings(maximum_record_age_seconds=-1, maximum_retry_attempts=-1)


def test_the_help_gives_each_mapping_default_as_a_number(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`poll --help` says 100, 0, -1 and 30 (the replaced Lambda's timeout), not only
    "Lambda's defaults"."""
    with pytest.raises(SystemExit):
        main(["poll", "--help"])

    text = " ".join(capsys.readouterr().out.split())
    assert "BatchSize, 1..10,000 (default: 100)" in text
    assert "MaximumBatchingWindowInSeconds, 0..300 (default: 0.0)" in text
    assert "(-1: until the record expires) (default: -1)" in text
    assert "(default: 30.0)" in text


@pytest.mark.usefixtures("lambda_env")
def test_until_idle_gives_up_on_a_stream_it_cannot_read(moto_endpoint: str) -> None:
    """GIVEN a stream ARN that names no stream WHEN `poll --until-idle 1` THEN it exits 3
    after about a second with one line naming the stream and AWS's error, instead of
    retrying for ever."""
    arn = f"arn:aws:dynamodb:{REGION}:123456789012:table/gone/stream/2026-01-01T00:00:00.000"

    result = run_cli("poll", "--until-idle", "1", "--stream-arn", arn, timeout=60)

    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"poll: cannot read {arn}: ResourceNotFoundException")
    assert "--until-idle 1" in last


@pytest.mark.slow
def test_until_idle_ends_against_an_endpoint_that_never_answers() -> None:
    """GIVEN an endpoint that accepts connections and never answers WHEN `poll
    --until-idle 1` THEN every call times out (connect 2 s, read 5 s, 3 attempts) and the
    command exits 3 naming the endpoint, well within a minute."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # connections complete in the kernel; nobody ever reads them
        endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}"
        values = {
            "JOBS_TABLE_NAME": "j",
            "SEGMENT_COMPLETIONS_TABLE_NAME": "sc",
            "REASSEMBLY_TRIGGERED_TABLE_NAME": "rt",
            "REASSEMBLY_QUEUE_URL": f"{endpoint}/123456789012/q",
        }
        with lambda_environment(values):
            result = run_cli("poll", "--until-idle", "1", "--endpoint-url", endpoint, timeout=60)

    assert result.returncode == 3, result.stderr
    assert result.stderr.strip().splitlines() == [
        f'poll: Read timeout on endpoint URL: "{endpoint}/"'
    ]
