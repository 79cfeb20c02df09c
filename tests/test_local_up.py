"""`local up` serves the embedded AWS in the foreground and prints what to export."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from reassembly_trigger.local.stack import LocalAws


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
