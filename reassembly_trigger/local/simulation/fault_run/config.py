"""What a fault run is made of: its size and shape, and the fault scenarios it plays."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from reassembly_trigger.local.aws.faults import FaultKind
from reassembly_trigger.local.simulation.trigger_modes import TriggerMode
from reassembly_trigger.timing import LAMBDA_MAX_TIMEOUT_SECONDS

DEFAULT_JOBS = 1000
DEFAULT_SEED = 7
#: The Lambda's timeout by default: each invocation's lease (the Terraform module's).
FUNCTION_TIMEOUT_SECONDS = 60.0
#: Every AWS operation the Lambda makes; each gets throttled and 5xx at least once.
TRIGGER_OPERATIONS = ("BatchGetItem", "Query", "PutItem", "GetItem", "UpdateItem", "SendMessage")
#: Scheduled reconcile runs after the pipeline's last write before the run gives up
#: on the reconciler finding nothing more to do (the invariant then fails).
MAX_FINAL_RECONCILES = 12


class FaultScenario(StrEnum):
    """What the run does to the pipeline; each occurs at least once in a run."""

    # Throttling and 5xx on every operation: botocore retries DynamoDB's; SendMessage has
    # one attempt (as deployed), so there the job fails and its record is retried.
    THROTTLE = "throttle"
    SERVER_ERROR = "server_error"
    CONNECT_TIMEOUT = "connect_timeout"  # the request never reached AWS
    LOST_RESPONSE = "lost_response"  # AWS did it, the answer was lost (any operation)
    OUTAGE = "outage"  # one operation of one job fails 3 times running (past the retries)
    LOST_SEND_RESPONSE = "lost_send_response"  # a successful SendMessage's answer lost
    SEND_FAILS = "send_fails"  # one job's SendMessage fails 3 times running (release path)
    MARK_FAILS = "mark_fails"  # the enqueue mark fails after a successful send
    CRASH_AFTER_LOCK = "crash_after_lock"  # killed between the lock and the send
    CRASH_AFTER_SEND = "crash_after_send"  # killed between the send and the mark
    CHUNKING_AFTER_LAST_SEGMENT = "chunking_after_last_segment"
    DUPLICATE_COMPLETION = "duplicate_completion"  # a segment written twice
    RIVAL_SEES_MARK = "rival_sees_mark"  # a concurrent evaluation waits; the holder marks
    RIVAL_SEES_RELEASE = "rival_sees_release"  # ...; the holder fails and lets go
    RIVAL_OUTLASTED = "rival_outlasted"  # ...; the holder outlasts its wait: it defers
    TWO_TAKERS = "two_takers"  # two stream evaluations take over one expired lock
    RECONCILER_MEETS_HOLDER = "reconciler_meets_holder"  # a reconcile run defers to it
    RECONCILER_TAKES_OVER_TOO = "reconciler_takes_over_too"  # beside a stream retry
    REDELIVERY_WHOLE_BATCH = "redelivery_whole_batch"  # after an invocation crashed
    REDELIVERY_FROM_FAILED = "redelivery_from_failed"  # after a partial batch failure
    DUPLICATE_DELIVERY = "duplicate_delivery"  # a successful batch delivered again
    # What only the reconciler recovers from:
    DISCARDED_BATCH = "discarded_batch"  # the mapping gives up on a batch: never retried
    # Chunked after the last segment in a shard with no Jobs-stream mapping: no record
    # ever names the complete job.
    UNMAPPED_JOBS_STREAM = "unmapped_jobs_stream"
    HOLDER_DIES_FAR_LEASE = "holder_dies_far_lease"  # leased up to 900 s, dies after the lock


#: The injector's kinds of the per-call faults (each scenario is named as its kind).
CALL_FAULTS = (
    FaultKind.THROTTLE,
    FaultKind.SERVER_ERROR,
    FaultKind.CONNECT_TIMEOUT,
    FaultKind.LOST_RESPONSE,
)


@dataclass(frozen=True, slots=True)
class FaultRunConfig:
    """The size and shape of a run."""

    jobs: int = DEFAULT_JOBS
    seed: int = DEFAULT_SEED
    inject_faults: bool = True
    #: The timeout of each stream invocation and `trigger_job` call (each one's lease).
    function_timeout_seconds: float = FUNCTION_TIMEOUT_SECONDS
    #: Lanes of the SegmentCompletions mapping (Lambda's parallelization factor).
    parallelization: int = 2
    batch_size: int = 100
    #: Jobs whose events are interleaved at any moment.
    in_flight: int = 24
    #: Pipeline writes between two delivery rounds.
    writes_per_round: int = 40
    #: Chance, per round, that a lane delivers (the rest of the time it batches).
    delivery_chance: float = 0.5
    #: Jobs per shard (own tables and queue), shards run at once, and moto server
    #: processes they share (moto's CPU per request is the bottleneck).
    shard_size: int = 125
    threads: int = 4
    servers: int = 2
    #: Per-call chances of the transient faults (botocore retries them on DynamoDB).
    throttle_rate: float = 0.02
    server_error_rate: float = 0.015
    connect_timeout_rate: float = 0.004
    lost_response_rate: float = 0.006
    #: Share of jobs that get each targeted fault.
    targeted_rate: float = 0.008
    race_rate: float = 0.004
    duplicate_delivery_rate: float = 0.03
    #: Share of batches the mapping gives up on before delivering them, as once every
    #: retry failed (a poison record, an outage longer than the retry budget), and
    #: share of failed batches whose retry budget runs out: never delivered again.
    discard_rate: float = 0.02
    give_up_rate: float = 0.1
    #: One shard in this many has no Jobs-stream mapping (0: every shard has one).
    unmapped_jobs_stream_every: int = 4
    #: The leases of the holders that die with a far lease are drawn from this range.
    far_lease_seconds: tuple[float, float] = (300.0, float(LAMBDA_MAX_TIMEOUT_SECONDS))
    #: The reconciler: whether it runs, its schedule, its function timeout, and the age
    #: under which it leaves jobs to the stream path (the deployed defaults).
    reconciler: bool = True
    reconcile_every_seconds: float = 300.0
    reconcile_timeout_seconds: float = 300.0
    reconcile_min_age_seconds: int = 300
    #: Who evaluates a job when a completion is written: the SegmentCompletions
    #: mapping, the worker through the API, or both.
    mode: TriggerMode = TriggerMode.STREAM

    def expected_faults(self) -> list[FaultScenario]:
        """The fault scenarios this configuration plays (each must occur in a full run)."""
        if not self.inject_faults:
            return []
        skipped: set[FaultScenario] = set()
        if not self.reconciler:
            # The races whose rival is a reconcile run.
            skipped |= {
                FaultScenario.RECONCILER_MEETS_HOLDER,
                FaultScenario.RECONCILER_TAKES_OVER_TOO,
            }
        # On write, only the Jobs stream has a mapping: its few batches may all go through.
        if (self.discard_rate <= 0 and self.give_up_rate <= 0) or not self.mode.streams:
            skipped.add(FaultScenario.DISCARDED_BATCH)
        if self.unmapped_jobs_stream_every <= 0:
            skipped.add(FaultScenario.UNMAPPED_JOBS_STREAM)
        return [fault for fault in FaultScenario if fault not in skipped]
