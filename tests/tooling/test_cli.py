"""The command line as a whole: version, help, exit codes, one-line errors, and the
commands that work without the optional extras."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from reassembly_trigger.local import cli
from reassembly_trigger.local.commands.common import EXTRAS, plain, plural
from reassembly_trigger.records import Ignored, Malformed

#: Runs the CLI in a fresh interpreter in which the modules named in argv[1] (comma
#: separated) cannot be imported, as if their extra were not installed.
WITHOUT = """
import importlib.abc, sys

class Missing(importlib.abc.MetaPathFinder):
    def __init__(self, names):
        self.names = names

    def find_spec(self, fullname, path=None, target=None):
        if fullname.partition(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)
        return None

sys.meta_path.insert(0, Missing(set(sys.argv[1].split(","))))
from reassembly_trigger.local.cli import main
status = main(sys.argv[2:])
leaked = sorted({name.partition(".")[0] for name in sys.modules} & set(sys.argv[1].split(",")))
assert not leaked, leaked
sys.exit(status)
"""


def without(modules: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """`reassembly-trigger ARGS` where `modules` are not installed."""
    return subprocess.run(
        [sys.executable, "-c", WITHOUT, modules, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=dict(os.environ),
    )


def all_parsers() -> list[tuple[str, argparse.ArgumentParser]]:
    """Every command's parser (subcommands too), by its prog name."""
    found: list[tuple[str, argparse.ArgumentParser]] = []
    todo = [cli.build_parser()]
    while todo:
        parser = todo.pop()
        found.append((parser.prog, parser))
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                todo.extend(action.choices.values())
    return found


# ------------------------------------------------------------------ conventions


def test_version_prints_the_installed_version(capsys: pytest.CaptureFixture[str]) -> None:
    """`reassembly-trigger --version` names the package's version."""
    from importlib.metadata import version

    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--version"])

    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"reassembly-trigger {version(cli.DISTRIBUTION)}\n"


def test_every_option_that_takes_a_value_shows_its_default_in_help() -> None:
    """No option leaves its default to the reader's guess: each help text states it."""
    missing = []
    for prog, parser in all_parsers():
        formatter = parser._get_formatter()
        for action in parser._actions:
            if not action.option_strings or action.nargs == 0 or action.help is None:
                continue
            text = formatter._expand_help(action)
            if "default" not in text:
                missing.append(f"{prog} {action.option_strings[0]}")
    assert missing == []


def test_endpoint_url_has_one_wording_everywhere() -> None:
    """poll, replay and doctor (and any later command) word `--endpoint-url` alike."""
    helps = {
        prog: action.help
        for prog, parser in all_parsers()
        for action in parser._actions
        if "--endpoint-url" in action.option_strings
    }
    assert {prog.split()[-1] for prog in helps} >= {"poll", "replay", "doctor"}
    assert len(set(helps.values())) == 1


def test_values_read_as_words_never_as_python_reprs() -> None:
    """Enums by their value, mappings as `key value`, counted nouns in the plural."""
    counts = {Ignored.REMOVE: 1, Malformed.NOT_A_RECORD: 2}

    assert plain(counts) == "remove 1, not_a_record 2"
    assert plain({}) == "none"
    assert [plural(1, "record"), plural(2, "record")] == ["1 record", "2 records"]
    assert [plural(1, "retry"), plural(3, "retry")] == ["1 retry", "3 retries"]
    assert plural(2, "batch", "batches") == "2 batches"


# ------------------------------------------------------------------ errors


def test_a_user_error_is_one_line_and_exit_2_and_debug_adds_the_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file that is not an event: one line naming it, exit 2; with --debug, the
    traceback too, and the same exit code."""
    event = tmp_path / "not-an-event.json"
    event.write_text("[]")

    status = cli.main(["replay", str(event), "--json"])
    err = capsys.readouterr().err
    debug_status = cli.main(["--debug", "replay", str(event), "--json"])
    debug_err = capsys.readouterr().err

    assert status == debug_status == 2
    assert err == f'replay: {event} is not a stream event: expected {{"Records": [...]}}\n'
    assert "Traceback (most recent call last)" in debug_err
    assert debug_err.endswith(err)


def test_an_aws_error_is_one_line_and_exit_3(
    lambda_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A table variable naming no table: poll says which, in one line, exit 3."""
    monkeypatch.setenv("SEGMENT_COMPLETIONS_TABLE_NAME", "no-such-table")

    status = cli.main(["poll", "--until-idle", "1"])

    err = capsys.readouterr().err
    assert status == 3
    assert err == (
        "poll: table no-such-table ($SEGMENT_COMPLETIONS_TABLE_NAME) not found in us-east-1 "
        f"at {lambda_env['AWS_ENDPOINT_URL']}\n"
    )


def test_any_aws_refusal_reads_as_botocores_sentence_with_exit_3() -> None:
    """Whatever AWS answers, the line is botocore's: operation, code and message."""
    from botocore.exceptions import ClientError

    refusal = ClientError(
        {"Error": {"Code": "AccessDeniedException", "Message": "not for you"}}, "Query"
    )

    assert cli.classify(refusal) == (
        "An error occurred (AccessDeniedException) when calling the Query operation: not for you",
        3,
    )


def test_a_malformed_stream_arn_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """`poll --stream-arn bad` is refused by the parser, not by a crash later."""
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["poll", "--stream-arn", "bad"])

    assert exit_info.value.code == 2
    assert "argument --stream-arn: expected arn:aws:dynamodb:" in capsys.readouterr().err


def test_an_unexpected_error_is_exit_4_and_asks_for_debug() -> None:
    """A bug of the tool is one line that says how to get the traceback."""
    message, status = cli.classify(ZeroDivisionError("division by zero"))

    assert status == 4
    assert message == (
        "unexpected error: ZeroDivisionError: division by zero "
        "(rerun with --debug for the traceback, and report it)"
    )


# ------------------------------------------------------------------ doctor's errors


@pytest.mark.usefixtures("lambda_env")
def test_doctor_names_the_table_that_does_not_exist(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """One wrong table variable: doctor says which table (and variable), exit 3."""
    monkeypatch.setenv("SEGMENT_COMPLETIONS_TABLE_NAME", "no-such-table")

    status = cli.main(["doctor", "job-1"])

    err = capsys.readouterr().err
    assert status == 3
    assert err.startswith(
        "doctor: table no-such-table ($SEGMENT_COMPLETIONS_TABLE_NAME) not found in us-east-1"
    )
    assert len(err.splitlines()) == 1


@pytest.mark.usefixtures("lambda_env")
def test_doctor_json_prints_an_error_as_a_json_object(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """With --json, the error is also one JSON document on stdout, with the exit status."""
    monkeypatch.setenv("JOBS_TABLE_NAME", "no-such-jobs")

    status = cli.main(["doctor", "job-1", "--json"])

    out = capsys.readouterr().out
    document: dict[str, Any] = json.loads(out)
    assert status == 3
    assert document["command"] == "doctor"
    assert document["exit_status"] == 3
    assert document["job_id"] == "job-1"
    assert "table no-such-jobs ($JOBS_TABLE_NAME) not found" in document["error"]


def test_doctor_takes_the_endpoint_from_endpoint_url(
    lambda_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`--endpoint-url` sends doctor's calls there, as it does poll's and replay's."""
    monkeypatch.delenv("AWS_ENDPOINT_URL")

    status = cli.main(
        ["doctor", "job-1", "--json", "--endpoint-url", lambda_env["AWS_ENDPOINT_URL"]]
    )

    assert status == 1  # the moto server answered: no such job
    assert json.loads(capsys.readouterr().out)["verdict"] == "not_found"


# ------------------------------------------------------------------ extras


def test_without_any_extra_the_cli_starts_and_draws_the_diagram() -> None:
    """`pip install` without extras: --help, --version and diagram work."""
    modules = ",".join(sorted({m for ms in EXTRAS.values() for m in ms}))

    help_text = without(modules, "--help")
    version = without(modules, "--version")
    drawn = without(modules, "diagram", "--stdout")

    assert help_text.returncode == version.returncode == drawn.returncode == 0
    assert "simulate" in help_text.stdout
    assert "stateDiagram-v2" in drawn.stdout


def test_building_the_command_line_imports_no_extra_by_itself() -> None:
    """Listing the commands does not load moto (slow to import): only a command that
    needs the embedded AWS does. (rich may load with structlog, which uses it when it is
    installed; `test_without_any_extra_...` shows nothing of ours needs it to start.)"""
    code = (
        "import sys; from reassembly_trigger.local.cli import build_parser; build_parser(); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'moto'))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )

    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("command", "extra"),
    [
        (["simulate"], "local"),
        (["local", "up"], "local"),
        (["bench", "--quick"], "local"),
        (["doctor", "job-1"], "ops"),
        (["reconcile"], "ops"),
        (["explain", "-"], "ops"),
        (["replay", "-"], "ops"),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else value,
)
def test_a_command_whose_extra_is_missing_says_how_to_install_it(
    command: list[str], extra: str
) -> None:
    """One line naming the extra and the exact pip command, exit 2, no traceback."""
    result = without("rich,moto", *command, stdin="")

    assert result.returncode == 2, result.stderr
    name = " ".join(command[:2]) if command[0] == "local" else command[0]
    assert result.stderr.splitlines() == [
        f"{name}: needs the '{extra}' extra ({', '.join(EXTRAS[extra])} not installed): "
        f"{sys.executable} -m pip install '{cli.DISTRIBUTION}[{extra}]'"
    ]


def test_the_operators_commands_run_without_moto(
    lambda_env: dict[str, str], tmp_path: Path
) -> None:
    """An operator installs the `ops` extra, not moto: doctor and explain work, against
    this test's moto server standing in for AWS; poll and explain --json need no extra."""
    log = tmp_path / "lambda.log"
    transition = {
        "event": "transition",
        "job_id": "job-1",
        "source": "received",
        "dest": "skipped",
        "trigger": "skip",
        "reason": "job_not_found",
        "aws_request_id": "req-1",
        "timestamp": "2026-11-27T10:00:00Z",
    }
    log.write_text(json.dumps(transition) + "\n")

    gone = (
        f"arn:aws:dynamodb:us-east-1:123456789012:table/{log.stem}/stream/2026-01-01T00:00:00.000"
    )

    doctor = without("moto", "doctor", "job-1")
    polled = without("rich,moto", "poll", "--until-idle", "0.5", "--stream-arn", gone)
    explained = without("moto", "explain", str(log))
    as_json = without("rich,moto", "explain", str(log), "--json")

    assert doctor.returncode == 1, doctor.stderr  # not_found needs action
    assert "NOT_FOUND" in doctor.stdout
    assert explained.returncode == 0, explained.stderr
    assert "last outcome: skipped (job_not_found)" in explained.stdout
    assert polled.returncode == 3, polled.stderr  # it ran, and found no such stream
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout)["skips_by_reason"] == {"job_not_found": 1}


def test_the_readmes_command_table_lists_every_command() -> None:
    """The README's table under "The command line" has a row for each command the CLI
    registers (`reconcile` was missing), and none it does not have."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme.split("### The command line", 1)[1].split("\n### ", 1)[0]
    table = [line for line in section.splitlines() if line.startswith("| `")]
    in_readme = {line.split("`")[1].split()[0] for line in table}
    subparsers = next(
        action
        for action in cli.build_parser()._actions
        if isinstance(action, argparse._SubParsersAction)
    )

    assert in_readme == set(subparsers.choices)
