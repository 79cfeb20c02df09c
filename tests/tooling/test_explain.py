"""`explain` rebuilds each job's timeline from the handler's JSON logs, however they were
exported."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from reassembly_trigger import handler, logs
from reassembly_trigger.local import cli
from reassembly_trigger.local.commands.explain.story import Explanation, read_events
from reassembly_trigger.local.invocations.contexts import LocalLambdaContext
from reassembly_trigger.local.invocations.records import stream_event

from moto_fixtures import Pipeline


@pytest.fixture
def json_log() -> io.StringIO:
    """The handler's structlog output, as JSON lines in a buffer (conftest's
    `_isolated_logging` restores the configuration after the test)."""
    buffer = io.StringIO()
    logs.configure_logging("json", stream=buffer, force=True)
    return buffer


@pytest.fixture
def lambda_log(
    lambda_env: dict[str, str],
    pipeline: Pipeline,
    json_log: io.StringIO,
    capsys: pytest.CaptureFixture[str],
) -> str:
    """A CloudWatch log stream of three real invocations of the handler.

    `req-one`: job-b is skipped as incomplete (3 of 4), job-a is enqueued;
    `req-two`: job-b's last segment arrives and it is enqueued;
    `req-three`: job-a's batch is delivered again and skipped as already_triggered.
    Around them: Lambda's START/REPORT lines and the EMF metric line of each invocation.
    """
    pipeline.add_job("job-a", total_segments=2)
    pipeline.complete("job-a", range(2))
    pipeline.add_job("job-b", total_segments=4)
    pipeline.complete("job-b", [0, 1, 3])
    job_a_batch = stream_event(*pipeline.completion_records("job-a", range(2)))
    invocations = [
        (
            "req-one",
            stream_event(*pipeline.completion_records("job-b", [0, 1, 3]), *job_a_batch["Records"]),
        ),
        ("req-two", stream_event(*pipeline.completion_records("job-b", [2]))),
        ("req-three", job_a_batch),
    ]
    lines: list[str] = []
    for request_id, event in invocations:
        if request_id == "req-two":
            pipeline.complete("job-b", [2])
        capsys.readouterr()
        lines.append(f"START RequestId: {request_id} Version: $LATEST")
        handler.lambda_handler(event, LocalLambdaContext(aws_request_id=request_id))
        lines.extend(json_log.getvalue().splitlines())
        json_log.seek(0)
        json_log.truncate()
        lines.extend(capsys.readouterr().out.splitlines())  # the EMF line
        lines.append(f"REPORT RequestId: {request_id}\tDuration: 41.20 ms\tBilled Duration: 42 ms")
    return "\n".join(lines) + "\n"


def story_of(text: str, job_id: str) -> list[tuple[str, str, str, str | None]]:
    """(request id, source, dest, reason) of each transition of a job."""
    story = Explanation.of(read_events([text]), job_id).stories[job_id]
    return [(s.aws_request_id, s.source, s.dest, s.reason) for s in story.steps]


def test_a_job_skipped_as_incomplete_then_enqueued_has_both_evaluations(lambda_log: str) -> None:
    """GIVEN the logs of real invocations WHEN explained THEN job-b's timeline holds its
    incomplete skip in req-one, then its enqueueing in req-two, which is its last outcome."""
    explanation = Explanation.of(read_events([lambda_log]), "job-b")

    story = explanation.stories["job-b"]
    assert story.invocations == ["req-one", "req-two"]
    first, second = story.evaluations
    assert [(s.dest, s.reason) for s in first] == [("loaded", None), ("skipped", "incomplete")]
    assert first[-1].event["completions"] == 3
    assert [s.dest for s in second] == ["loaded", "counted", "locked", "sent", "enqueued"]
    assert {s.aws_request_id for s in second} == {"req-two"}
    last = story.last_outcome
    assert last is not None
    assert (last.dest, last.aws_request_id) == ("enqueued", "req-two")
    assert list(explanation.stories) == ["job-b"]


def test_the_summary_counts_skips_by_reason_over_every_job(lambda_log: str) -> None:
    """Across jobs: one incomplete skip (job-b), one already_triggered (job-a's redelivery),
    and two enqueued evaluations."""
    explanation = Explanation.of(read_events([lambda_log]))

    assert explanation.skips_by_reason() == {"incomplete": 1, "already_triggered": 1}
    assert explanation.outcomes()[("enqueued", "")] == 2
    assert set(explanation.stories) == {"job-a", "job-b"}


def test_the_command_prints_the_timeline_and_last_outcome(
    lambda_log: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`explain LOGFILE --job job-b` prints job-b's rows from both invocations, its last
    outcome and the summary; job-a is left out."""
    path = tmp_path / "lambda.log"
    path.write_text(lambda_log)
    capsys.readouterr()

    status = cli.main(["explain", str(path), "--job", "job-b"])

    out = capsys.readouterr().out
    assert status == 0
    assert "loaded -> skipped" in out
    assert "incomplete" in out
    assert "3/4 segments" in out
    assert "req-one" in out
    assert "req-two" in out
    assert "last outcome: enqueued" in out
    assert "skips by reason: incomplete 1" in out
    assert "job-a" not in out


def test_stdin_is_read_when_no_file_is_given(
    lambda_log: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`... | reassembly-trigger explain` reads the logs from stdin."""
    monkeypatch.setattr("sys.stdin", io.StringIO(lambda_log))
    capsys.readouterr()

    assert cli.main(["explain", "--job", "job-a"]) == 0
    out = capsys.readouterr().out
    assert "already_triggered" in out
    assert "job-b" not in out


def test_no_transition_events_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A log without transitions (or without the asked job) says so and exits 1."""
    path = tmp_path / "empty.log"
    path.write_text("START RequestId: r\nnot json {at all\n")

    assert cli.main(["explain", str(path)]) == 1
    assert "no transition events" in capsys.readouterr().err


# ------------------------------------------------------------------ export formats


def _messages(text: str) -> list[str]:
    return text.splitlines()


def cloudwatch_export(text: str) -> str:
    """`aws logs filter-log-events` output: one JSON document with `events[].message`."""
    events = [
        {
            "logStreamName": "2026/11/24/[$LATEST]ab12",
            "timestamp": 1795494000000 + i,
            "message": line,
            "ingestionTime": 1795494000100 + i,
            "eventId": str(i),
        }
        for i, line in enumerate(_messages(text))
    ]
    return json.dumps({"events": events, "searchedLogStreams": []}, indent=2)


def logs_tail(text: str) -> str:
    """`aws logs tail`: each line prefixed by its time and log stream."""
    return "\n".join(
        f"2026-11-24T10:00:00.{i:06d}+00:00 2026/11/24/[$LATEST]ab12 {line}"
        for i, line in enumerate(_messages(text))
    )


def lambda_json_format(text: str) -> str:
    """Lambda's JSON log format: the message as a string inside Lambda's own object."""
    return "\n".join(
        json.dumps(
            {
                "timestamp": "2026-11-24T10:00:00Z",
                "level": "INFO",
                "message": line,
                "logger": "root",
                "requestId": "req-wrapper",
            }
        )
        for line in _messages(text)
    )


def logs_insights(text: str) -> str:
    """Logs Insights query results: rows of `{field, value}` cells."""
    rows = [
        [
            {"field": "@timestamp", "value": "2026-11-24 10:00:00.000"},
            {"field": "@message", "value": line},
        ]
        for line in _messages(text)
    ]
    return json.dumps(rows)


def pretty_printed(text: str) -> str:
    """`aws logs tail --format json`-style: JSON messages pretty-printed over many lines."""
    out = []
    for line in _messages(text):
        try:
            out.append("2026-11-24T10:00:00 stream " + json.dumps(json.loads(line), indent=2))
        except json.JSONDecodeError:
            out.append(line)
    return "\n".join(out)


@pytest.mark.parametrize(
    "export",
    [cloudwatch_export, logs_tail, lambda_json_format, logs_insights, pretty_printed],
    ids=lambda f: f.__name__,
)
def test_every_export_format_gives_the_same_timeline(
    lambda_log: str, export: Callable[[str], str]
) -> None:
    """The same log, exported any of these ways, yields the same transitions in order."""
    assert story_of(export(lambda_log), "job-b") == story_of(lambda_log, "job-b")
    assert story_of(export(lambda_log), "job-a") == story_of(lambda_log, "job-a")


def test_an_envelope_lends_its_request_id_to_events_without_one() -> None:
    """A transition logged without aws_request_id takes the envelope's `requestId`."""
    inner = {
        "event": "transition",
        "job_id": "j",
        "source": "loaded",
        "dest": "skipped",
        "trigger": "skip",
        "reason": "incomplete",
    }
    line = json.dumps({"requestId": "req-env", "message": json.dumps(inner)})

    (event,) = read_events([f"noise\n{line}\n"])

    assert event["aws_request_id"] == "req-env"


def test_overlapping_files_do_not_double_the_timeline(lambda_log: str) -> None:
    """The same events read twice (overlapping exports) count once."""
    twice = Explanation.of(read_events([lambda_log, lambda_log]))
    once = Explanation.of(read_events([lambda_log]))

    assert twice.outcomes() == once.outcomes()


# ------------------------------------------------------------------ concurrent evaluations


def _racing_log() -> str:
    """Two invocations evaluating job-2 at once, as `poll` logs them when both streams'
    batches name it: req-seg takes the lock and sends, req-jobs finds the lock held,
    waits, and skips as already_triggered. Their lines interleave in time."""
    lock = {"holder": "req-seg/017ebf189cfd", "lease_expires_at": 1795495396}
    steps = [
        ("req-seg", "received", "loaded", "load", {"status": "chunking_complete"}),
        ("req-jobs", "received", "loaded", "load", {"status": "chunking_complete"}),
        ("req-seg", "loaded", "counted", "count", {"completions": 2, "total_segments": 2}),
        ("req-jobs", "loaded", "counted", "count", {"completions": 2, "total_segments": 2}),
        ("req-seg", "counted", "locked", "acquire", {"lease_expires_at": 1795495396}),
        ("req-jobs", "counted", "contended", "contend", {"lock": lock}),
        ("req-jobs", "contended", "waiting", "wait", {"lock": lock}),
        ("req-seg", "locked", "sent", "send", {"message_id": "m-1"}),
        ("req-seg", "sent", "enqueued", "mark", {"message_id": "m-1"}),
        ("req-jobs", "waiting", "contended", "recheck", {"waited_seconds": 0.11}),
        ("req-jobs", "contended", "skipped", "skip", {"reason": "already_triggered"}),
    ]
    lines = []
    for n, (request_id, source, dest, trigger, facts) in enumerate(steps):
        event = {
            "job_id": "job-2",
            "aws_request_id": request_id,
            "source": source,
            "dest": dest,
            "trigger": trigger,
            **facts,
            "event": "transition",
            "level": "info",
            "timestamp": f"2026-11-24T04:42:15.{100 + 10 * n:06d}Z",
        }
        lines.append(json.dumps(event))
    return "\n".join(lines) + "\n"


def test_concurrent_invocations_of_one_job_are_separate_evaluations() -> None:
    """GIVEN two invocations of job-2 whose transitions interleave WHEN explained THEN
    there are two evaluations, one per request id, each from `received` to its own end:
    the lock holder's to `enqueued`, the contender's to `skipped` (already_triggered)."""
    story = Explanation.of(read_events([_racing_log()])).stories["job-2"]

    paths = [
        ({s.aws_request_id for s in run}, [s.source for s in run][:1] + [s.dest for s in run])
        for run in story.evaluations
    ]
    assert paths == [
        ({"req-seg"}, ["received", "loaded", "counted", "locked", "sent", "enqueued"]),
        (
            {"req-jobs"},
            ["received", "loaded", "counted", "contended", "waiting", "contended", "skipped"],
        ),
    ]


def test_concurrent_evaluations_are_shown_apart_in_the_json_and_the_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`explain --json` lists each evaluation on its own, starting at `received`; the
    table numbers them and prints each one's rows together."""
    path = tmp_path / "race.log"
    path.write_text(_racing_log())
    capsys.readouterr()

    assert cli.main(["explain", "--json", str(path)]) == 0
    evaluations = json.loads(capsys.readouterr().out)["jobs"]["job-2"]["evaluations"]
    assert [[s["aws_request_id"] for s in run] for run in evaluations] == [
        ["req-seg"] * 5,
        ["req-jobs"] * 6,
    ]
    assert [run[0]["source"] for run in evaluations] == ["received", "received"]

    assert cli.main(["explain", str(path)]) == 0
    out = capsys.readouterr().out
    cells = [[c.strip() for c in line.split("│")] for line in out.splitlines() if "->" in line]
    assert [(row[1], row[3]) for row in cells] == [("1", "req-seg")] * 5 + [("2", "req-jobs")] * 6
    assert "job-2: 2 evaluations in 2 invocations" in out


def test_an_invocation_that_evaluates_a_job_twice_shows_two_evaluations() -> None:
    """One request id (e.g. an asynchronous retry of the reconciler) with two complete
    paths gives two evaluations, split where the second one is `received`."""
    text = "\n".join(
        json.dumps(
            {
                "event": "transition",
                "job_id": "j",
                "aws_request_id": "req-r",
                "source": source,
                "dest": dest,
                "trigger": trigger,
                "timestamp": 1795494000.0 + n,
            }
        )
        for n, (source, dest, trigger) in enumerate(
            [
                ("received", "loaded", "load"),
                ("loaded", "failed", "fail"),
                ("received", "loaded", "load"),
                ("loaded", "skipped", "skip"),
            ]
        )
    )

    story = Explanation.of(read_events([text])).stories["j"]

    assert [[s.dest for s in run] for run in story.evaluations] == [
        ["loaded", "failed"],
        ["loaded", "skipped"],
    ]


class _Terminal(io.StringIO):
    """stdin as a terminal: nothing piped in."""

    def isatty(self) -> bool:
        return True


def test_no_file_and_a_terminal_for_stdin_is_refused_rather_than_waited_on(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`explain` typed alone in a terminal would wait silently for stdin: it says what it
    needs in one line and exits 2 instead, without reading the terminal."""
    terminal = _Terminal("")
    monkeypatch.setattr("sys.stdin", terminal)
    monkeypatch.setattr(terminal, "read", lambda *a: pytest.fail("read the terminal"))
    capsys.readouterr()

    assert cli.main(["explain"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "stdin is a terminal" in err
    assert "LOGFILE" in err


def test_an_explicit_dash_in_a_terminal_says_that_it_reads_stdin(
    lambda_log: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`explain -` asked for stdin on purpose: it is read, after saying so on stderr."""
    monkeypatch.setattr("sys.stdin", _Terminal(lambda_log))
    capsys.readouterr()

    assert cli.main(["explain", "-", "--job", "job-a"]) == 0
    assert "reading the logs from stdin" in capsys.readouterr().err
