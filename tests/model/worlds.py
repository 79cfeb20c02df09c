"""The worlds the tests explore."""

from __future__ import annotations

from tests.model.scheduler import ActorSpec, JobSpec, Scenario

JOB = "job-1"
#: A ready job: chunked, both segments recorded.
READY = JobSpec(JOB, total=2, chunked=True, written=(0, 1))


def stream(name: str, *timeouts: float, segment: int = 0, number: int = 1) -> ActorSpec:
    return ActorSpec(name, "stream", tuple(timeouts), records=((JOB, segment, number),))


def small_world(
    *,
    stream_timeouts: tuple[float, ...] = (60.0,),
    trigger_job_timeouts: tuple[float, ...] = (1000.0,),
    reconciler_timeouts: tuple[float, ...] = (300.0,),
    crashes: int = 1,
    lost_answers: int = 1,
    final_reconciler_timeout: float = 300.0,
    name: str = "small world",
) -> Scenario:
    """Issue 21's small world: one job of two segments, two stream deliveries (one per
    segment), one reconciler run, one `trigger_job` call, the media worker, at most
    `crashes` crashes and `lost_answers` lost answers; every actor's timeout drawn from
    its set when it starts."""
    return Scenario(
        name=name,
        jobs=(READY,),
        actors=(
            stream("stream-1", *stream_timeouts, segment=0, number=1),
            stream("stream-2", *stream_timeouts, segment=1, number=2),
            ActorSpec("trigger_job", "trigger_job", trigger_job_timeouts, job_id=JOB),
            ActorSpec("reconciler", "reconciler", reconciler_timeouts),
        ),
        crashes=crashes,
        lost_answers=lost_answers,
        lease_wait_seconds=1,
        final_reconciler_timeout=final_reconciler_timeout,
        symmetric=(("stream-1", "stream-2"),),
    )


# ------------------------------------------------------------- the seeded bugs' worlds

LEASE_WORLD = Scenario("one delivery", jobs=(READY,), actors=(stream("stream-1", 60.0),))
TAKE_OVER_WORLD = Scenario(
    "two deliveries, a lock orphaned 10 minutes ago",
    jobs=(JobSpec(JOB, total=2, chunked=True, written=(0, 1), orphaned_lock_age=600.0),),
    actors=(stream("stream-1", 60.0), stream("stream-2", 60.0, segment=1, number=2)),
    symmetric=(("stream-1", "stream-2"),),
)
MARK_WORLD = Scenario(
    "one delivery, one crash",
    jobs=(READY,),
    actors=(stream("stream-1", 60.0),),
    crashes=1,
)
HELD_WORLD = Scenario(
    "two deliveries, one crash",
    jobs=(READY,),
    actors=(stream("stream-1", 60.0), stream("stream-2", 60.0, segment=1, number=2)),
    crashes=1,
    symmetric=(("stream-1", "stream-2"),),
)
#: The replaced Lambda's timeout (30 s) everywhere, the reconciler's too.
SHORT_TIMEOUT_WORLD = Scenario(
    "30 s timeouts: one delivery, one trigger_job call, the reconciler",
    jobs=(READY,),
    actors=(
        stream("stream-1", 30.0),
        ActorSpec("trigger_job", "trigger_job", (30.0,), job_id=JOB),
    ),
    final_reconciler_timeout=30.0,
)
