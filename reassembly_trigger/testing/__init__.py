"""Test helpers for code that uses the trigger: the pipeline's tables and queue in memory.

For a worker that calls `trigger_job`, or anyone wiring the trigger into their own
service, as `structlog.testing` is for code that logs: no AWS, no moto, no waiting.
`InMemoryAws` holds the three tables and the queue with DynamoDB's and SQS's semantics
(a conditional create that fails on an existing lock, a take-over that fails when any
decisive attribute moved since it was read, a mark and a release conditioned on the
holder; items kept as DynamoDB JSON, as the tables keep them) on a `ManualClock`, so
leases and backoffs pass without any real waiting:

    from reassembly_trigger import trigger_job
    from reassembly_trigger.testing import InMemoryAws

    aws = InMemoryAws()
    aws.ready("job-1", total=3)          # chunked into 3 segments, all recorded
    outcome = trigger_job("job-1", trigger=aws.trigger(), emit_metrics=False)
    assert outcome.state.value == "enqueued"
    assert aws.queue.bodies == ["job-1"]

Nothing here is shipped in the Lambda's zip, and nothing here imports the local tooling
(`reassembly_trigger.local`, moto): the core and its own dependencies suffice.
"""

from reassembly_trigger.testing.inputs import (
    CREATED_AT,
    START,
    LambdaContext,
    ManualClock,
    attribute,
    item,
    job_item,
    stream_event,
    stream_record,
)
from reassembly_trigger.testing.stores import (
    InMemoryAws,
    InMemoryCompletions,
    InMemoryJobs,
    InMemoryLock,
    InMemoryQueue,
    NetworkedStore,
    SimulatedNetwork,
    in_memory_settings,
)

__all__ = [
    "CREATED_AT",
    "START",
    "InMemoryAws",
    "InMemoryCompletions",
    "InMemoryJobs",
    "InMemoryLock",
    "InMemoryQueue",
    "LambdaContext",
    "ManualClock",
    "NetworkedStore",
    "SimulatedNetwork",
    "attribute",
    "in_memory_settings",
    "item",
    "job_item",
    "stream_event",
    "stream_record",
]
