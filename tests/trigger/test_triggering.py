"""A job is triggered exactly when it may be: complete, chunked, and not yet triggered."""

from __future__ import annotations

import threading

from reassembly_trigger.local.invocations.records import stream_event

from moto_fixtures import Invoker, Pipeline


def test_a_complete_job_is_enqueued_once_with_the_exact_body(
    pipeline: Pipeline, invoke: Invoker
) -> None:
    """GIVEN a chunked job with every segment done WHEN its completions arrive THEN one
    message `{"job_id": ...}` is sent and the lock records it."""
    pipeline.add_job("job-a", total_segments=3)
    pipeline.complete("job-a", range(3))

    response = invoke(stream_event(*pipeline.completion_records("job-a", [2, 0, 1])))

    assert response == {"batchItemFailures": []}
    messages = pipeline.drain_messages()
    assert len(messages) == 1
    assert messages[0]["body"] == {"job_id": "job-a"}
    lock = pipeline.lock("job-a")
    assert lock is not None
    assert int(lock["ttl"]) == int(lock["triggered_at"]) + 90 * 24 * 3600
    assert "enqueued_at" in lock
    assert "message_id" in lock
    assert [t["dest"] for t in invoke.transitions("job-a")] == [
        "loaded",
        "counted",
        "locked",
        "sent",
        "enqueued",
    ]


def test_an_incomplete_job_waits_for_its_last_segment(pipeline: Pipeline, invoke: Invoker) -> None:
    """The job is skipped as incomplete until the last completion's record arrives."""
    pipeline.add_job("job-b", total_segments=4)
    pipeline.complete("job-b", [0, 1, 3])
    invoke(stream_event(*pipeline.completion_records("job-b", [0, 1, 3])))
    assert pipeline.bodies() == []

    pipeline.complete("job-b", [2])
    invoke(stream_event(*pipeline.completion_records("job-b", [2])))
    assert pipeline.bodies() == [{"job_id": "job-b"}]


def test_completions_over_one_megabyte_are_counted_across_query_pages(
    pipeline: Pipeline, invoke: Invoker
) -> None:
    """DynamoDB stops each Query page at 1 MB; every page is followed."""
    total = 300
    pipeline.add_job("job-big", total_segments=total)
    pipeline.complete("job-big", range(total), padding=4000)  # ~1.2 MB of items

    invoke(stream_event(*pipeline.completion_records("job-big", [total - 1])))

    counted = [t for t in invoke.transitions("job-big") if t["dest"] == "counted"]
    assert counted
    assert counted[0]["completions"] == total
    assert counted[0]["pages"] >= 2
    assert pipeline.bodies() == [{"job_id": "job-big"}]


def test_out_of_range_indexes_never_complete_a_job(pipeline: Pipeline, invoke: Invoker) -> None:
    """Stray indexes (>= total_segments) do not count toward completion."""
    pipeline.add_job("job-c", total_segments=3)
    pipeline.complete("job-c", [0, 1, 3, 7])

    invoke(stream_event(*pipeline.completion_records("job-c", [7])))

    final = invoke.final("job-c")
    assert (final["dest"], final["reason"]) == ("skipped", "incomplete")
    assert (final["completions"], final["total_segments"]) == (2, 3)
    assert pipeline.bodies() == []


def test_remove_records_never_trigger(pipeline: Pipeline, invoke: Invoker) -> None:
    """A TTL deletion of a completion evaluates nothing, even for a complete job."""
    pipeline.add_job("job-d", total_segments=1)
    pipeline.complete("job-d", [0])
    record = pipeline.completion_records("job-d", [0])[0]
    record["eventName"] = "REMOVE"
    record["dynamodb"]["OldImage"] = record["dynamodb"].pop("NewImage")

    assert invoke(stream_event(record)) == {"batchItemFailures": []}
    assert invoke.transitions() == []
    assert pipeline.bodies() == []


def test_chunking_completing_after_the_last_segment_triggers_from_the_jobs_stream(
    pipeline: Pipeline, invoke: Invoker
) -> None:
    """All segments land while chunking is still running; the Jobs-stream record of
    chunking completing then triggers the job."""
    pipeline.add_job("job-e", total_segments=None, status="chunking_in_progress")
    pipeline.complete("job-e", range(2))
    invoke(stream_event(*pipeline.completion_records("job-e", range(2))))
    assert invoke.final("job-e")["reason"] == "not_chunking_complete"

    pipeline.add_job("job-e", total_segments=2, status="chunking_complete")
    record = pipeline.job_record(
        "job-e", status="chunking_complete", total_segments=2, old_status="chunking_in_progress"
    )
    assert invoke(stream_event(record)) == {"batchItemFailures": []}
    assert pipeline.bodies() == [{"job_id": "job-e"}]


def test_jobs_stream_records_of_other_status_changes_are_ignored(
    pipeline: Pipeline, invoke: Invoker
) -> None:
    """Only a Jobs record whose new status is chunking_complete names its job."""
    pipeline.add_job("job-f", total_segments=1)
    pipeline.complete("job-f", [0])
    record = pipeline.job_record(
        "job-f", status="chunking_in_progress", total_segments=None, old_status="created"
    )
    invoke(stream_event(record))
    assert invoke.transitions() == []
    assert pipeline.bodies() == []


def test_each_job_is_evaluated_once_per_batch(pipeline: Pipeline, invoke: Invoker) -> None:
    """Many records of one job in a batch make one evaluation, carrying every sequence number."""
    pipeline.add_job("job-g", total_segments=5)
    pipeline.complete("job-g", range(5))
    records = pipeline.completion_records("job-g", range(5))

    invoke(stream_event(*records))

    loads = [t for t in invoke.transitions("job-g") if t["trigger"] == "load"]
    assert len(loads) == 1
    assert loads[0]["sequence_numbers"] == [r["dynamodb"]["SequenceNumber"] for r in records]


def test_redelivering_a_whole_batch_sends_nothing_new(pipeline: Pipeline, invoke: Invoker) -> None:
    """A retried batch is harmless: enqueued jobs end as already_triggered."""
    pipeline.add_job("job-h", total_segments=2)
    pipeline.complete("job-h", range(2))
    event = stream_event(*pipeline.completion_records("job-h", range(2)))

    invoke(event)
    invoke(event)

    assert pipeline.bodies() == [{"job_id": "job-h"}]
    assert invoke.final("job-h")["reason"] == "already_triggered"


def test_concurrent_invocations_for_one_complete_job_send_one_message(
    pipeline: Pipeline, invoke: Invoker
) -> None:
    """Eight invocations race on the same job: the conditional create lets one send."""
    pipeline.add_job("job-i", total_segments=8)
    pipeline.complete("job-i", range(8))
    events = [stream_event(r) for r in pipeline.completion_records("job-i", range(8))]
    start = threading.Barrier(len(events))
    responses: list[object] = []

    def one(event: dict[str, object]) -> None:
        start.wait()
        responses.append(invoke(event))

    threads = [threading.Thread(target=one, args=(e,)) for e in events]
    with invoke.capturing():
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    assert responses == [{"batchItemFailures": []}] * len(events)
    assert pipeline.bodies() == [{"job_id": "job-i"}]
    finals = [t for t in invoke.transitions("job-i") if t["dest"] in ("enqueued", "skipped")]
    assert sorted(t["dest"] for t in finals) == ["enqueued"] + ["skipped"] * 7
