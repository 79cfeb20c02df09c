"""The stream poller reads DynamoDB Streams and treats the handler as Lambda's event
source mapping does: Lambda's event shape, shard order, checkpoints, retries from the
lowest failed record, bisection, retry and age limits, the on-failure destination.

The handlers here are test doubles on purpose: the poller is the unit under test.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from reassembly_trigger.local.aws.stack import LocalAws, Resources
from reassembly_trigger.local.cli import main
from reassembly_trigger.local.invocations.items import completion_item
from reassembly_trigger.local.invocations.records import StreamRecords
from reassembly_trigger.local.simulation.clock import SimulatedClock
from reassembly_trigger.local.streams.poller import (
    MappingSettings,
    PollerCrashed,
    PollerGroup,
    StartingPosition,
    StreamPoller,
)

from moto_fixtures import REGION, Pipeline

Response = dict[str, Any] | None


@dataclass
class RecordingHandler:
    """Records every event; `answer(event, call_number)` decides the response or raises."""

    answer: Callable[[dict[str, Any], int], Response] = lambda event, call: None
    events: list[dict[str, Any]] = field(default_factory=list)
    contexts: list[Any] = field(default_factory=list)

    def __call__(self, event: dict[str, Any], context: Any) -> Response:
        self.events.append(event)
        self.contexts.append(context)
        return self.answer(event, len(self.events))

    def batches(self) -> list[list[int]]:
        """Each invocation's segment indexes."""
        return [[segment(r) for r in event["Records"]] for event in self.events]


def segment(record: dict[str, Any]) -> int:
    return int(record["dynamodb"]["Keys"]["segment_index"]["N"])


def sequence(record: dict[str, Any]) -> str:
    return str(record["dynamodb"]["SequenceNumber"])


@pytest.fixture
def aws(moto_endpoint: str) -> LocalAws:
    return LocalAws.connect(moto_endpoint, REGION)


@pytest.fixture
def make_poller(aws: LocalAws, resources: Resources) -> Callable[..., StreamPoller]:
    """A poller on this test's SegmentCompletions stream, quick to go idle."""

    def make(handler: Any = None, **settings: Any) -> StreamPoller:
        options: dict[str, Any] = {
            "poll_interval_seconds": 0.02,
            "retry_backoff_seconds": 0.0,
            "on_failure_queue_url": resources.on_failure_queue_url,
        }
        options.update(settings)
        clock = options.pop("clock", None)
        observer = options.pop("observer", None)
        assert resources.segment_completions_stream_arn
        return StreamPoller(
            aws.streams,
            resources.segment_completions_stream_arn,
            handler,
            MappingSettings(**options),
            sqs=aws.sqs,
            clock=clock,
            observer=observer,
        )

    return make


def drain_on_failure(aws: LocalAws, resources: Resources) -> list[dict[str, Any]]:
    documents = []
    while True:
        messages = aws.sqs.receive_message(
            QueueUrl=resources.on_failure_queue_url, MaxNumberOfMessages=10
        ).get("Messages", [])
        if not messages:
            return documents
        for message in messages:
            documents.append(json.loads(message["Body"]))
            aws.sqs.delete_message(
                QueueUrl=resources.on_failure_queue_url, ReceiptHandle=message["ReceiptHandle"]
            )


def poisoned(index: int) -> Callable[[dict[str, Any], int], Response]:
    """An answer that raises whenever the batch holds segment `index`."""

    def answer(event: dict[str, Any], call: int) -> Response:
        if index in [segment(r) for r in event["Records"]]:
            raise RuntimeError(f"poison record {index}")
        return {"batchItemFailures": []}

    return answer


# ------------------------------------------------------------------ event shape and order


def test_records_reach_the_handler_in_shard_order_with_lambdas_event_shape(
    pipeline: Pipeline, resources: Resources, aws: LocalAws, make_poller: Any
) -> None:
    """GIVEN inserts, a modification and a deletion WHEN the poller delivers them THEN
    they arrive in sequence-number order, shaped exactly as Lambda's event."""
    table = resources.names.segment_completions_table
    pipeline.complete("job-a", [2, 0, 1])
    aws.dynamodb.put_item(
        TableName=table,
        Item={
            "job_id": {"S": "job-a"},
            "segment_index": {"N": "0"},
            "output_s3_uri": {"S": "s3://out/rerun.mp4"},
            "completed_at": {"N": "1794000001"},
        },
    )
    aws.dynamodb.delete_item(
        TableName=table, Key={"job_id": {"S": "job-a"}, "segment_index": {"N": "1"}}
    )
    handler = RecordingHandler()

    make_poller(handler).poll_until_idle(quiet_seconds=0.2)

    records = [r for event in handler.events for r in event["Records"]]
    assert [(r["eventName"], segment(r)) for r in records] == [
        ("INSERT", 2),
        ("INSERT", 0),
        ("INSERT", 1),
        ("MODIFY", 0),
        ("REMOVE", 1),
    ]
    sequence_numbers = [int(sequence(r)) for r in records]
    assert sequence_numbers == sorted(sequence_numbers)
    assert len(set(sequence_numbers)) == 5
    for record in records:
        assert list(record) == [
            "eventID",
            "eventName",
            "eventVersion",
            "eventSource",
            "awsRegion",
            "dynamodb",
            "eventSourceARN",
        ]
        assert record["eventVersion"] == "1.1"
        assert record["eventSource"] == "aws:dynamodb"
        assert record["awsRegion"] == REGION
        assert record["eventSourceARN"] == resources.segment_completions_stream_arn
        body = record["dynamodb"]
        created = body["ApproximateCreationDateTime"]
        assert type(created) is int
        assert abs(created - time.time()) < 120
        assert type(body["SizeBytes"]) is int
        assert body["StreamViewType"] == "NEW_AND_OLD_IMAGES"
        assert body["Keys"] == {
            "job_id": {"S": "job-a"},
            "segment_index": {"N": str(segment(record))},
        }
    insert, modify, remove = records[1], records[3], records[4]
    written = completion_item("job-a", 0)["output_s3_uri"]
    assert insert["dynamodb"]["NewImage"]["output_s3_uri"] == written
    assert "OldImage" not in insert["dynamodb"]
    assert modify["dynamodb"]["OldImage"]["output_s3_uri"] == written
    assert modify["dynamodb"]["NewImage"]["output_s3_uri"] == {"S": "s3://out/rerun.mp4"}
    assert "NewImage" not in remove["dynamodb"]
    assert remove["dynamodb"]["OldImage"]["segment_index"] == {"N": "1"}
    # Exactly what a JSON event from Lambda would decode to: no datetimes, no bytes.
    assert json.loads(json.dumps(handler.events)) == handler.events


def test_batches_hold_at_most_batch_size_records(pipeline: Pipeline, make_poller: Any) -> None:
    """Seven records with a batch size of three make invocations of 3, 3 and 1."""
    pipeline.complete("job-b", range(7))
    handler = RecordingHandler()

    make_poller(handler, batch_size=3).poll_until_idle(quiet_seconds=0.2)

    assert handler.batches() == [[0, 1, 2], [3, 4, 5], [6]]


def test_the_context_reports_the_time_left_before_the_function_timeout(
    pipeline: Pipeline, make_poller: Any
) -> None:
    """The handler's context counts down from the function timeout, on the mapping's
    clock (simulated here: the machine's speed cannot change what it reads)."""
    pipeline.complete("job-c", [0])
    clock = SimulatedClock()
    at_invocation: list[int] = []

    def answer(event: dict[str, Any], call: int) -> Response:
        at_invocation.append(handler.contexts[-1].get_remaining_time_in_millis())
        clock.advance(12)  # the function works for 12 s
        at_invocation.append(handler.contexts[-1].get_remaining_time_in_millis())
        return None

    handler = RecordingHandler(answer)

    make_poller(handler, function_timeout_seconds=30, clock=clock).poll_until_idle(
        quiet_seconds=0.2
    )

    assert len(at_invocation) == 2
    assert 29_999 <= at_invocation[0] <= 30_000  # float rounding of epoch seconds only
    assert 17_999 <= at_invocation[1] <= 18_000
    clock.set(handler.contexts[0].deadline + 1)
    assert handler.contexts[0].get_remaining_time_in_millis() == 0
    assert handler.contexts[0].aws_request_id


def test_an_answer_after_the_function_timeout_is_a_function_error(
    pipeline: Pipeline, make_poller: Any
) -> None:
    """A function still running at its timeout is stopped by Lambda: whatever it answers
    later never arrives, and the batch is retried."""
    pipeline.complete("job-t", [0])
    clock = SimulatedClock()
    reports: list[Any] = []

    def answer(event: dict[str, Any], call: int) -> Response:
        if call == 1:
            clock.advance(31)  # past the 30 s timeout
        return {"batchItemFailures": []}

    poller = make_poller(
        RecordingHandler(answer), function_timeout_seconds=30, clock=clock, observer=reports.append
    )
    stats = poller.poll_until_idle(quiet_seconds=0.2)

    assert [r.outcome.value for r in reports] == ["error", "ok"]
    assert reports[0].error == "Task timed out after 30.00 seconds"
    assert stats.function_errors == stats.retries == 1


def test_starting_at_latest_skips_what_the_stream_already_holds(
    pipeline: Pipeline, make_poller: Any
) -> None:
    """With LATEST, only records written after the poller starts are delivered."""
    pipeline.complete("job-d", [0, 1])
    handler = RecordingHandler()
    poller = make_poller(handler, starting_position=StartingPosition.LATEST)
    poller.run_once()

    pipeline.complete("job-d", [2])
    poller.poll_until_idle(quiet_seconds=0.2)

    assert handler.batches() == [[2]]


# ------------------------------------------------------------------ failures and retries


def test_a_partial_batch_failure_is_retried_from_the_lowest_failed_record(
    pipeline: Pipeline, make_poller: Any
) -> None:
    """GIVEN the handler reports records 3 and 2 as failed WHEN the batch is retried THEN
    the retry starts at record 2 and the records before it are never sent again."""
    pipeline.complete("job-e", range(5))

    def answer(event: dict[str, Any], call: int) -> Response:
        if call == 1:
            records = event["Records"]
            return {
                "batchItemFailures": [
                    {"itemIdentifier": sequence(records[3])},
                    {"itemIdentifier": sequence(records[2])},
                ]
            }
        return {"batchItemFailures": []}

    handler = RecordingHandler(answer)
    poller = make_poller(handler)

    poller.poll_until_idle(quiet_seconds=0.2)

    assert handler.batches() == [[0, 1, 2, 3, 4], [2, 3, 4]]
    assert poller.stats.partial_failures == 1
    assert poller.stats.retries == 1


def test_a_function_error_retries_the_whole_batch(pipeline: Pipeline, make_poller: Any) -> None:
    """An exception from the handler retries every record of the batch."""
    pipeline.complete("job-f", range(3))

    def answer(event: dict[str, Any], call: int) -> Response:
        if call == 1:
            raise ConnectionError("transient")
        return None

    handler = RecordingHandler(answer)

    make_poller(handler).poll_until_idle(quiet_seconds=0.2)

    assert handler.batches() == [[0, 1, 2], [0, 1, 2]]


def test_an_invalid_batch_item_failure_fails_the_whole_batch(
    pipeline: Pipeline, make_poller: Any
) -> None:
    """An empty or unknown itemIdentifier counts as a failure of every record."""
    pipeline.complete("job-g", range(3))

    def answer(event: dict[str, Any], call: int) -> Response:
        if call == 1:
            return {"batchItemFailures": [{"itemIdentifier": ""}]}
        if call == 2:
            return {"batchItemFailures": [{"itemIdentifier": "999"}]}
        return {"batchItemFailures": []}

    handler = RecordingHandler(answer)

    make_poller(handler).poll_until_idle(quiet_seconds=0.2)

    assert handler.batches() == [[0, 1, 2], [0, 1, 2], [0, 1, 2]]


def test_bisect_isolates_a_poison_record(
    pipeline: Pipeline, resources: Resources, aws: LocalAws, make_poller: Any
) -> None:
    """GIVEN record 2 always makes the handler fail WHEN bisect is on THEN the batch is
    split until record 2 stands alone, every other record is processed, and only
    record 2's metadata goes to the on-failure queue."""
    pipeline.complete("job-h", range(5))
    handler = RecordingHandler(poisoned(2))
    poller = make_poller(handler, bisect_on_error=True, maximum_retry_attempts=0)

    poller.poll_until_idle(quiet_seconds=0.2)

    assert handler.batches() == [[0, 1, 2, 3, 4], [0, 1], [2, 3, 4], [2], [3, 4]]
    documents = drain_on_failure(aws, resources)
    assert len(documents) == 1
    info = documents[0]["DDBStreamBatchInfo"]
    poison = next(r for r in handler.events[0]["Records"] if segment(r) == 2)
    assert info["batchSize"] == 1
    assert info["startSequenceNumber"] == info["endSequenceNumber"] == sequence(poison)
    assert poller.stats.bisections == 2


def test_after_the_retry_limit_the_batch_metadata_goes_to_the_on_failure_queue(
    pipeline: Pipeline, resources: Resources, aws: LocalAws, make_poller: Any
) -> None:
    """GIVEN a handler that always fails on record 1 and two retries allowed WHEN the
    third try fails THEN Lambda's on-failure document describes the batch, and the
    shard moves on to later records."""
    pipeline.complete("job-i", range(3))
    handler = RecordingHandler(poisoned(1))
    poller = make_poller(handler, maximum_retry_attempts=2)

    poller.poll_until_idle(quiet_seconds=0.2)

    assert handler.batches() == [[0, 1, 2]] * 3
    [document] = drain_on_failure(aws, resources)
    records = handler.events[0]["Records"]
    shard_id = aws.streams.describe_stream(StreamArn=resources.segment_completions_stream_arn)[
        "StreamDescription"
    ]["Shards"][0]["ShardId"]
    assert document["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert document["requestContext"]["approximateInvokeCount"] == 3
    assert document["requestContext"]["functionArn"].startswith("arn:aws:lambda:us-east-1:")
    assert document["responseContext"] == {
        "statusCode": 200,
        "executedVersion": "$LATEST",
        "functionError": "Unhandled",
    }
    assert document["version"] == "1.0"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", document["timestamp"])
    info = document["DDBStreamBatchInfo"]
    assert info["shardId"] == shard_id
    assert info["streamArn"] == resources.segment_completions_stream_arn
    assert info["startSequenceNumber"] == sequence(records[0])
    assert info["endSequenceNumber"] == sequence(records[-1])
    assert info["batchSize"] == 3
    for key in ("approximateArrivalOfFirstRecord", "approximateArrivalOfLastRecord"):
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", info[key])

    pipeline.complete("job-i", [3])
    poller.poll_until_idle(quiet_seconds=0.2)

    assert handler.batches()[3:] == [[3]]
    assert drain_on_failure(aws, resources) == []


def test_an_exhausted_partial_failure_reports_only_the_failing_records(
    pipeline: Pipeline, resources: Resources, aws: LocalAws, make_poller: Any
) -> None:
    """When a partial failure runs out of retries, the on-failure document covers the
    records from the failed one on; those before it were checkpointed."""
    pipeline.complete("job-j", range(4))
    failing: dict[str, str] = {}

    def answer(event: dict[str, Any], call: int) -> Response:
        failing.setdefault("seq", sequence(event["Records"][1]))
        return {"batchItemFailures": [{"itemIdentifier": failing["seq"]}]}

    handler = RecordingHandler(answer)

    make_poller(handler, maximum_retry_attempts=1).poll_until_idle(quiet_seconds=0.2)

    assert handler.batches() == [[0, 1, 2, 3], [1, 2, 3]]
    [document] = drain_on_failure(aws, resources)
    info = document["DDBStreamBatchInfo"]
    assert info["batchSize"] == 3
    assert info["startSequenceNumber"] == failing["seq"]
    assert "functionError" not in document["responseContext"]


def test_records_older_than_the_maximum_age_are_discarded_without_an_invocation(
    pipeline: Pipeline, resources: Resources, aws: LocalAws, make_poller: Any
) -> None:
    """Records past the maximum record age never reach the handler; their metadata goes
    to the on-failure queue with the condition RecordAgeExceeded."""
    pipeline.complete("job-k", range(2))
    an_hour_later = SimulatedClock(start=time.time() + 3600)
    handler = RecordingHandler()

    make_poller(handler, maximum_record_age_seconds=60, clock=an_hour_later).poll_until_idle(
        quiet_seconds=0.2
    )

    assert handler.events == []
    [document] = drain_on_failure(aws, resources)
    assert document["requestContext"]["condition"] == "RecordAgeExceeded"
    assert document["requestContext"]["approximateInvokeCount"] == 0
    assert document["DDBStreamBatchInfo"]["batchSize"] == 2


# ------------------------------------------------------------------ shards


class FakeStreams:
    """DynamoDB Streams with a closed parent shard and its child, which moto cannot
    play (its one shard never closes): two DescribeStream pages, the child listed first."""

    def __init__(self, arn: str) -> None:
        self.arn = arn
        self.records = StreamRecords("t", region=REGION)
        self.shards = {
            "shard-child": [self._record("20"), self._record("21")],
            "shard-parent": [self._record("10"), self._record("11")],
        }
        self.describe_calls = 0

    def _record(self, seq: str) -> dict[str, Any]:
        return self.records.record(
            "INSERT", keys={"job_id": {"S": "j"}, "segment_index": {"N": seq}}, sequence_number=seq
        )

    def describe_stream(self, **params: Any) -> dict[str, Any]:
        self.describe_calls += 1
        if "ExclusiveStartShardId" not in params:
            shards = [
                {
                    "ShardId": "shard-child",
                    "ParentShardId": "shard-parent",
                    "SequenceNumberRange": {"StartingSequenceNumber": "20"},
                }
            ]
            return {"StreamDescription": {"Shards": shards, "LastEvaluatedShardId": "shard-child"}}
        shards = [
            {
                "ShardId": "shard-parent",
                "SequenceNumberRange": {
                    "StartingSequenceNumber": "10",
                    "EndingSequenceNumber": "11",
                },
            }
        ]
        return {"StreamDescription": {"Shards": shards}}

    def get_shard_iterator(self, **params: Any) -> dict[str, Any]:
        assert params["ShardIteratorType"] == "TRIM_HORIZON"
        return {"ShardIterator": f"{params['ShardId']}|0"}

    def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:  # noqa: N803
        shard_id, position = ShardIterator.split("|")
        records = self.shards[shard_id][int(position) : int(position) + 1]
        following = int(position) + len(records)
        closed = shard_id == "shard-parent"
        if closed and following >= len(self.shards[shard_id]):
            return {"Records": records}  # read to its end: no next iterator
        return {"Records": records, "NextShardIterator": f"{shard_id}|{following}"}


def test_a_child_shard_is_read_only_after_its_closed_parent() -> None:
    """Shards listed over several DescribeStream pages are read parent first; the
    closed parent ends when GetRecords gives no next iterator."""
    arn = f"arn:aws:dynamodb:{REGION}:123456789012:table/t/stream/2026-11-01T00:00:00.000"
    streams = FakeStreams(arn)
    handler = RecordingHandler()
    poller = StreamPoller(
        streams,  # type: ignore[arg-type]
        arn,
        handler,
        MappingSettings(poll_interval_seconds=0.01, batch_size=1),
    )

    poller.poll_until_idle(quiet_seconds=0.1)

    assert [sequence(e["Records"][0]) for e in handler.events] == ["10", "11", "20", "21"]
    assert streams.describe_calls >= 4  # both pages, listed again once the parent ended


# ------------------------------------------------------------------ the real handler


def test_by_default_the_real_handler_triggers_from_both_streams(
    pipeline: Pipeline,
    resources: Resources,
    aws: LocalAws,
    lambda_env: dict[str, str],
) -> None:
    """GIVEN every segment lands while chunking still runs WHEN chunking completes THEN
    the real handler, fed by the Jobs stream, sends the one reassembly message."""
    pipeline.add_job("job-z", total_segments=None, status="chunking_in_progress")
    pipeline.complete("job-z", range(3))
    settings = MappingSettings(poll_interval_seconds=0.02)
    assert resources.segment_completions_stream_arn
    assert resources.jobs_stream_arn
    group = PollerGroup(
        StreamPoller(aws.streams, arn, settings=settings)
        for arn in (resources.segment_completions_stream_arn, resources.jobs_stream_arn)
    )
    group.poll_until_idle(quiet_seconds=0.2)
    assert pipeline.bodies() == []

    pipeline.add_job("job-z", total_segments=3, status="chunking_complete")
    stats = group.poll_until_idle(quiet_seconds=0.2)

    assert pipeline.bodies() == [{"job_id": "job-z"}]
    assert stats.records_read == 5  # 3 completions, the Job's insert and its update
    assert stats.function_errors == stats.partial_failures == 0


def test_the_poll_command_follows_both_streams_until_idle(
    pipeline: Pipeline, lambda_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """`poll --until-idle` reads the tables' streams from the Lambda's environment, invokes
    the real handler, prints each invocation and transition, and exits once quiet."""
    pipeline.add_job("job-p", total_segments=2)
    pipeline.complete("job-p", [1, 0])

    status = main(["poll", "--until-idle", "0.3", "--poll-interval", "0.02"])

    out = capsys.readouterr().out
    assert status == 0
    assert "invoked with 2 records" in out  # the completions
    assert "invoked with 1 record " in out  # the Job's insert
    assert "job-p: sent -> enqueued (mark)" in out
    assert pipeline.bodies() == [{"job_id": "job-p"}]


def test_a_threaded_poller_that_crashes_is_reported_to_whoever_waits_for_quiet(
    pipeline: Pipeline, make_poller: Any
) -> None:
    """An error that is not AWS's (here the observer's: `poll | head` closing the pipe)
    stops the poller's thread; waiting for quiet raises it instead of waiting for ever."""
    pipeline.complete("job-a", [0])

    def observer(report: Any) -> None:
        raise BrokenPipeError("stdout closed")

    poller = make_poller(RecordingHandler(), observer=observer)
    group = PollerGroup([poller])
    group.start()

    def wait_for_quiet() -> None:
        for _ in range(500):  # at most ~10 s; it crashes on the first invocation
            group.quiet_for()
            time.sleep(0.02)

    try:
        with pytest.raises(PollerCrashed, match="BrokenPipeError: stdout closed"):
            wait_for_quiet()
    finally:
        group.stop()
    assert poller.stats.invocations == 1
