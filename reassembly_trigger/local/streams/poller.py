"""A DynamoDB Streams poller that behaves like Lambda's event source mapping (ESM).

It reads a stream through the real Streams API (DescribeStream, GetShardIterator,
GetRecords), so it works against a moto server, LocalStack, DynamoDB Local or AWS,
and invokes a handler in this process with the event Lambda would deliver. What it
does with the handler's answer is what Lambda does:

- shards are read in order; a child shard only once its parent is finished;
- records are batched up to `batch_size` (and a 6 MB payload), waiting up to the
  batching window for a full batch;
- the answer is read as Lambda reads it (`batch_response`): success checkpoints the
  batch, a partial failure checkpoints before the lowest failed record and retries from it;
- a function error (an exception, or running past the function timeout) retries the
  batch, split in two first when bisect is on (a split costs no retry);
- after `maximum_retry_attempts` retries, or once records are older than
  `maximum_record_age_seconds`, the batch's metadata goes to the on-failure queue
  (Lambda's document, with `DDBStreamBatchInfo`) and the shard moves on.

One poller follows one stream, one shard after another (Lambda runs shards in
parallel; order within a shard, which is all Lambda guarantees, is the same).
"""

from __future__ import annotations

import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from reassembly_trigger.batch import BatchResult
from reassembly_trigger.local.invocations.contexts import (
    DEFAULT_FUNCTION_NAME,
    DEFAULT_TIMEOUT_SECONDS,
    LocalLambdaContext,
)
from reassembly_trigger.local.streams.batch_response import (
    BatchVerdict,
    InvocationOutcome,
    read_batch_response,
)
from reassembly_trigger.local.streams.shapes import (
    dumps,
    lambda_event,
    lambda_record,
    on_failure_record,
    sequence_number,
    stream_account,
    stream_region,
)
from reassembly_trigger.outcome import JobOutcome
from reassembly_trigger.timing import LAMBDA_MAX_TIMEOUT_SECONDS, Clock, SystemClock

if TYPE_CHECKING:
    from mypy_boto3_dynamodbstreams import DynamoDBStreamsClient
    from mypy_boto3_sqs import SQSClient

#: A Lambda handler: `handler(event, context)`; it may answer with a `BatchResult`.
Handler = Callable[[dict[str, Any], Any], Any]

#: GetRecords' maximum page.
GET_RECORDS_LIMIT = 1000
#: Lambda's payload limit for a synchronous invocation.
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
#: The longest uninterrupted sleep, so that `stop()` takes effect promptly.
_PAUSE_SLICE_SECONDS = 0.25

#: Lambda's limits for a DynamoDB Streams event source mapping (and a function's timeout).
BATCH_SIZE_LIMITS = (1, 10_000)
BATCHING_WINDOW_LIMITS = (0, 300)
RETRY_ATTEMPTS_LIMITS = (-1, 10_000)  # -1: until the record expires
RECORD_AGE_LIMITS = (60, 604_800)  # or -1: no limit
FUNCTION_TIMEOUT_LIMIT = LAMBDA_MAX_TIMEOUT_SECONDS


class StartingPosition(StrEnum):
    """Where a new mapping starts reading (ESM `StartingPosition`)."""

    TRIM_HORIZON = "TRIM_HORIZON"
    LATEST = "LATEST"


class FailureCondition(StrEnum):
    """Why a batch was discarded (`requestContext.condition` of the on-failure record)."""

    RETRY_ATTEMPTS_EXHAUSTED = "RetryAttemptsExhausted"
    RECORD_AGE_EXCEEDED = "RecordAgeExceeded"


@dataclass(frozen=True, slots=True)
class MappingSettings:
    """The ESM settings (their Lambda names in comments) and this poller's pacing."""

    batch_size: int = 100  # BatchSize
    batching_window_seconds: float = 0.0  # MaximumBatchingWindowInSeconds
    bisect_on_error: bool = False  # BisectBatchOnFunctionError
    maximum_retry_attempts: int = -1  # MaximumRetryAttempts (-1: until the record expires)
    maximum_record_age_seconds: int = -1  # MaximumRecordAgeInSeconds (-1: no limit)
    starting_position: StartingPosition = StartingPosition.TRIM_HORIZON  # StartingPosition
    on_failure_queue_url: str | None = None  # DestinationConfig.OnFailure (SQS)
    report_batch_item_failures: bool = True  # FunctionResponseTypes
    function_name: str = DEFAULT_FUNCTION_NAME
    function_timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS  # the function's Timeout
    #: Lambda polls each shard four times a second when it is idle.
    poll_interval_seconds: float = 0.25
    #: Pause before a retry, doubling up to the maximum.
    retry_backoff_seconds: float = 0.2
    retry_backoff_max_seconds: float = 5.0
    #: How often the shard list is read again (new shards appear as old ones close).
    shard_refresh_seconds: float = 10.0

    def __post_init__(self) -> None:
        # What Lambda would refuse (its CreateEventSourceMapping limits), all at once.
        problems = []

        def within(name: str, value: float, limits: tuple[int, int]) -> None:
            if not limits[0] <= value <= limits[1]:
                problems.append(f"{name} must be {limits[0]}..{limits[1]}, not {value:g}")

        within("BatchSize", self.batch_size, BATCH_SIZE_LIMITS)
        within(
            "MaximumBatchingWindowInSeconds", self.batching_window_seconds, BATCHING_WINDOW_LIMITS
        )
        within("MaximumRetryAttempts", self.maximum_retry_attempts, RETRY_ATTEMPTS_LIMITS)
        if self.maximum_record_age_seconds != -1:
            within("MaximumRecordAgeInSeconds", self.maximum_record_age_seconds, RECORD_AGE_LIMITS)
        if not 0 < self.function_timeout_seconds <= FUNCTION_TIMEOUT_LIMIT:
            problems.append(
                f"the function timeout must be more than 0 and at most {FUNCTION_TIMEOUT_LIMIT} "
                f"seconds, not {self.function_timeout_seconds:g}"
            )
        if not self.poll_interval_seconds > 0:
            problems.append(
                f"the poll interval must be positive, not {self.poll_interval_seconds:g}"
            )
        if problems:
            raise ValueError("; ".join(problems))


@dataclass(frozen=True, slots=True)
class InvocationReport:
    """One invocation of the handler."""

    stream_arn: str
    shard_id: str
    request_id: str
    records: int
    first_sequence_number: str
    last_sequence_number: str
    outcome: InvocationOutcome
    #: On a partial failure: the sequence number the retry starts from.
    retry_from: str | None
    error: str | None
    seconds: float
    #: 0 for the first try of these records, then 1, 2, ... for retries.
    attempt: int
    #: What happened to each job of the batch, when the handler says (`handle_event`).
    outcomes: tuple[JobOutcome, ...] = ()


@dataclass(frozen=True, slots=True)
class DiscardReport:
    """A batch given up on; `document` is what went (or would go) to the destination."""

    stream_arn: str
    shard_id: str
    condition: FailureCondition
    records: int
    document: dict[str, Any]
    #: The on-failure queue the document was sent to (None: no destination set).
    sent_to: str | None


@dataclass(frozen=True, slots=True)
class PollerErrorReport:
    """An AWS error of the poller itself (reading the stream, sending to the destination)."""

    stream_arn: str
    error: str


PollerReport = InvocationReport | DiscardReport | PollerErrorReport
#: Receives every report; called from the polling thread.
Observer = Callable[[PollerReport], None]
#: Decides whether the mapping gives up on a new batch at once (a fault model).
GiveUp = Callable[[Sequence[Mapping[str, Any]]], bool]


@dataclass(slots=True)
class PollerStats:
    """Counters over a poller's life."""

    records_read: int = 0
    invocations: int = 0
    records_invoked: int = 0
    succeeded: int = 0
    partial_failures: int = 0
    function_errors: int = 0
    retries: int = 0
    bisections: int = 0
    discarded_batches: int = 0
    discarded_records: int = 0
    errors: int = 0

    def __add__(self, other: PollerStats) -> PollerStats:
        return PollerStats(
            **{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)}
        )


@dataclass(slots=True)
class _Shard:
    shard_id: str
    parent_id: str | None
    first_position: StartingPosition | None  # None: nothing to read (LATEST on a closed shard)
    iterator: str | None = None
    #: GetRecords gave no next iterator: the shard is closed and read to its end.
    exhausted: bool = False
    #: The last sequence number read, and the last one done with (processed or discarded).
    last_read: str | None = None
    checkpoint: str | None = None
    buffer: list[dict[str, Any]] = field(default_factory=list)
    buffered_since: float | None = None

    @property
    def finished(self) -> bool:
        return (self.exhausted or self.first_position is None) and not self.buffer


@dataclass(slots=True)
class _Batch:
    records: list[dict[str, Any]]
    retries: int = 0
    invokes: int = 0
    function_error: str | None = None


class _Stopped(Exception):
    """`stop()` was called while a batch was being retried."""


class StreamPoller:
    """Follows one stream like one event source mapping, invoking `handler` in-process."""

    def __init__(
        self,
        streams: DynamoDBStreamsClient,
        stream_arn: str,
        handler: Handler | None = None,
        settings: MappingSettings | None = None,
        *,
        sqs: SQSClient | None = None,
        clock: Clock | None = None,
        observer: Observer | None = None,
        stop: threading.Event | None = None,
        give_up: GiveUp | None = None,
    ) -> None:
        """`give_up`, a fault model for simulations, is asked about each new batch: True
        discards it uninvoked, as if its retries had run out."""
        self.stream_arn = stream_arn
        self.settings = settings or MappingSettings()
        if self.settings.on_failure_queue_url and sqs is None:
            raise ValueError("an on-failure queue needs an SQS client")
        self._streams = streams
        self._sqs = sqs
        if handler is None:
            # `handle_event` answers with the jobs' outcomes as well as Lambda's response.
            from reassembly_trigger.handler import handle_event

            handler = handle_event
        self._handler: Handler = handler
        self._clock = clock or SystemClock()
        self._report: Observer = observer or (lambda report: None)
        self._stop = stop or threading.Event()
        self._give_up = give_up
        self._shards: dict[str, _Shard] = {}
        self._listed_at: float | None = None
        self._relist = True
        self._quiet_since: float | None = None
        #: When `run` last completed a pass without an AWS error, and that error if the
        #: latest pass had one (`failing_for` bounds `poll --until-idle`).
        self._healthy_at: float | None = None
        self.last_error: str | None = None
        #: What stopped `run` other than `stop()` (a bug, an observer that failed): the
        #: group raises it to whoever waits, so no one waits for a dead poller.
        self.crashed: Exception | None = None
        self.stats = PollerStats()
        self.region = stream_region(stream_arn)
        self.function_arn = self._context().invoked_function_arn

    # ------------------------------------------------------------------ running

    def run_once(self) -> int:
        """One pass: list shards when due, read each active shard once, deliver every
        ready batch. Returns the number of records read plus records delivered."""
        listed_at = self._listed_at
        refresh = self.settings.shard_refresh_seconds
        if self._relist or listed_at is None or self._clock.now() - listed_at >= refresh:
            self._list_shards()
        activity = 0
        for shard in self._active_shards():
            activity += self._step(shard)
            if shard.finished:
                self._relist = True  # its children may be waiting
        return activity

    def poll_until_idle(
        self, quiet_seconds: float = 0.5, timeout_seconds: float = 60.0
    ) -> PollerStats:
        """`PollerGroup.poll_until_idle` for this stream alone."""
        return PollerGroup([self]).poll_until_idle(quiet_seconds, timeout_seconds)

    def run(self) -> PollerStats:
        """Poll until `stop()`; AWS errors of the poller are reported and retried, never fatal."""
        self._healthy_at = self._clock.now()
        while not self._stop.is_set():
            try:
                activity = self.run_once()
            except _Stopped:
                break
            except (ClientError, BotoCoreError) as exc:
                self.stats.errors += 1
                self.last_error = _describe(exc)
                self._report(PollerErrorReport(self.stream_arn, self.last_error))
                self._pause(max(1.0, self.settings.poll_interval_seconds))
                continue
            except Exception as exc:
                self.crashed = exc
                self.last_error = _describe(exc)
                break
            self._healthy_at = self._clock.now()
            self.last_error = None
            if activity or self.pending():
                self._quiet_since = None
            elif self._quiet_since is None:
                self._quiet_since = self._clock.now()
            if not activity:
                self._pause(self.settings.poll_interval_seconds)
        return self.stats

    def stop(self) -> None:
        """Ask `run`/`poll_until_idle` to return (a retry in progress is abandoned)."""
        self._stop.set()

    def pending(self) -> bool:
        """Whether records were read but not yet delivered (a batching window is open)."""
        return any(shard.buffer for shard in self._shards.values())

    def quiet_for(self) -> float:
        """Seconds since `run` last read or delivered anything (0 while busy)."""
        since = self._quiet_since
        return 0.0 if since is None else max(0.0, self._clock.now() - since)

    def failing_for(self) -> float:
        """Seconds since `run` last completed a pass, while its latest pass failed with
        an AWS error (0 while healthy): how long the stream has been unreadable."""
        since = self._healthy_at
        if self.last_error is None or since is None:
            return 0.0
        return max(0.0, self._clock.now() - since)

    # ------------------------------------------------------------------ shards

    def _list_shards(self) -> None:
        """DescribeStream, every page; new shards join with their starting position."""
        first_listing = self._listed_at is None
        params: dict[str, Any] = {"StreamArn": self.stream_arn}
        while True:
            description = self._streams.describe_stream(**params)["StreamDescription"]
            for raw in description.get("Shards", []):
                if raw["ShardId"] not in self._shards:
                    closed = "EndingSequenceNumber" in raw.get("SequenceNumberRange", {})
                    self._shards[raw["ShardId"]] = _Shard(
                        shard_id=raw["ShardId"],
                        parent_id=raw.get("ParentShardId"),
                        first_position=self._first_position(first_listing, closed),
                    )
            params["ExclusiveStartShardId"] = description.get("LastEvaluatedShardId")
            if not params["ExclusiveStartShardId"]:
                break
        self._listed_at = self._clock.now()
        self._relist = False

    def _first_position(self, first_listing: bool, closed: bool) -> StartingPosition | None:
        if not first_listing:
            # A shard that appeared while we run holds only new records: read it all.
            return StartingPosition.TRIM_HORIZON
        if self.settings.starting_position is StartingPosition.LATEST:
            return None if closed else StartingPosition.LATEST
        return StartingPosition.TRIM_HORIZON

    def _active_shards(self) -> list[_Shard]:
        """Shards to read now: unfinished, whose parent is finished or no longer listed."""
        unfinished = {shard.shard_id for shard in self._shards.values() if not shard.finished}
        return [
            shard
            for shard in self._shards.values()
            if shard.shard_id in unfinished and shard.parent_id not in unfinished
        ]

    # ------------------------------------------------------------------ reading

    def _step(self, shard: _Shard) -> int:
        activity = 0
        if len(shard.buffer) < self.settings.batch_size and not shard.exhausted:
            activity += self._read(shard)
        while self._ready(shard):
            batch = self._take_batch(shard)
            try:
                self._deliver(shard, batch)
            except BaseException:
                # Whatever was not done with goes back, to be delivered again.
                done = int(shard.checkpoint) if shard.checkpoint else -1
                shard.buffer[:0] = [r for r in batch if int(sequence_number(r)) > done]
                raise
            activity += len(batch)
        return activity

    def _iterator(self, shard: _Shard) -> str | None:
        params: dict[str, Any] = {"StreamArn": self.stream_arn, "ShardId": shard.shard_id}
        if shard.last_read is not None:
            params.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=shard.last_read)
        elif shard.first_position is not None:
            params["ShardIteratorType"] = shard.first_position.value
        else:
            return None
        try:
            return self._streams.get_shard_iterator(**params)["ShardIterator"]
        except ClientError as exc:
            if _code(exc) == "ResourceNotFoundException":  # trimmed away
                shard.exhausted = True
                return None
            raise

    def _read(self, shard: _Shard) -> int:
        """One GetRecords call; new records join the shard's buffer."""
        if shard.iterator is None:
            shard.iterator = self._iterator(shard)
            if shard.iterator is None:
                return 0
        try:
            page = self._streams.get_records(ShardIterator=shard.iterator, Limit=GET_RECORDS_LIMIT)
        except ClientError as exc:
            if _code(exc) == "ExpiredIteratorException":
                shard.iterator = None  # a fresh one resumes after the last record read
                return 0
            if _code(exc) == "TrimmedDataAccessException":
                # Records aged out of the stream before we read them: carry on from
                # the oldest record still there, as Lambda does.
                shard.iterator = None
                shard.last_read = None
                shard.first_position = StartingPosition.TRIM_HORIZON
                return 0
            raise
        records = [lambda_record(raw, self.stream_arn) for raw in page.get("Records", [])]
        shard.iterator = page.get("NextShardIterator")
        shard.exhausted = not shard.iterator
        if records:
            self._quiet_since = None  # busy until these are delivered
            if not shard.buffer:
                shard.buffered_since = self._clock.now()
            shard.buffer.extend(records)
            shard.last_read = sequence_number(records[-1])
            self.stats.records_read += len(records)
        return len(records)

    def _ready(self, shard: _Shard) -> bool:
        if not shard.buffer:
            return False
        window = self.settings.batching_window_seconds
        if len(shard.buffer) >= self.settings.batch_size or shard.exhausted or window <= 0:
            return True
        since = shard.buffered_since if shard.buffered_since is not None else self._clock.now()
        return self._clock.now() - since >= window

    def _take_batch(self, shard: _Shard) -> list[dict[str, Any]]:
        size = 2  # {"Records": []}
        count = 0
        for record in shard.buffer[: self.settings.batch_size]:
            size += len(dumps(record)) + 1
            if count and size > MAX_PAYLOAD_BYTES:
                break
            count += 1
        batch = shard.buffer[:count]
        del shard.buffer[:count]
        shard.buffered_since = self._clock.now() if shard.buffer else None
        return batch

    # ------------------------------------------------------------------ Lambda's semantics

    def _deliver(self, shard: _Shard, records: list[dict[str, Any]]) -> None:
        """Invoke until every record is processed or discarded, as the ESM would."""
        if self._give_up is not None and self._give_up(records):
            # Never invoked: as if every retry had failed (a poison record, an outage
            # longer than the retry budget).
            batch = _Batch(records, max(self.settings.maximum_retry_attempts, 0), 0, "Unhandled")
            self._discard(shard, batch, FailureCondition.RETRY_ATTEMPTS_EXHAUSTED)
            return
        todo: deque[_Batch] = deque([_Batch(records)])
        while todo:
            if self._stop.is_set():
                raise _Stopped
            batch = self._drop_expired(shard, todo.popleft())
            if not batch.records:
                continue
            result = self._invoke(shard, batch)
            batch.invokes += 1
            if result.outcome is InvocationOutcome.OK:
                shard.checkpoint = sequence_number(batch.records[-1])
                continue
            if result.outcome is InvocationOutcome.PARTIAL and result.retry_from is not None:
                if result.retry_from > 0:
                    shard.checkpoint = sequence_number(batch.records[result.retry_from - 1])
                retry = _Batch(batch.records[result.retry_from :], batch.retries + 1, batch.invokes)
            elif self.settings.bisect_on_error and len(batch.records) > 1:
                half = len(batch.records) // 2
                # A split costs no retry attempt.
                todo.appendleft(_Batch(batch.records[half:], batch.retries, batch.invokes))
                todo.appendleft(_Batch(batch.records[:half], batch.retries, batch.invokes))
                self.stats.bisections += 1
                continue
            else:
                retry = _Batch(batch.records, batch.retries + 1, batch.invokes, "Unhandled")
            limit = self.settings.maximum_retry_attempts
            if 0 <= limit < retry.retries:
                self._discard(shard, retry, FailureCondition.RETRY_ATTEMPTS_EXHAUSTED)
                continue
            self.stats.retries += 1
            backoff = self.settings.retry_backoff_seconds * 2 ** (retry.retries - 1)
            self._pause(min(backoff, self.settings.retry_backoff_max_seconds))
            todo.appendleft(retry)

    def _drop_expired(self, shard: _Shard, batch: _Batch) -> _Batch:
        """Discard the leading records older than the maximum record age."""
        limit = self.settings.maximum_record_age_seconds
        if limit < 0:
            return batch
        now = self._clock.now()
        ages = (now - r["dynamodb"]["ApproximateCreationDateTime"] for r in batch.records)
        expired = next((i for i, age in enumerate(ages) if age <= limit), len(batch.records))
        if expired:
            old = replace(batch, records=batch.records[:expired])
            self._discard(shard, old, FailureCondition.RECORD_AGE_EXCEEDED)
            batch = _Batch(batch.records[expired:], batch.retries, batch.invokes)
        return batch

    def _invoke(self, shard: _Shard, batch: _Batch) -> BatchVerdict:
        context = self._context()
        started = self._clock.now()
        outcomes: tuple[JobOutcome, ...] = ()
        try:
            response = self._handler(lambda_event(batch.records), context)
        except KeyboardInterrupt:
            raise  # the operator's Ctrl-C stops the poller, not the function
        except BaseException as exc:
            # Anything the function raises, even past `Exception` (an invocation killed
            # mid-call, `SystemExit`), is a function error to Lambda: the batch is retried.
            result = BatchVerdict(InvocationOutcome.ERROR, error=f"{type(exc).__name__}: {exc}")
        else:
            if isinstance(response, BatchResult):
                outcomes = tuple(response.outcomes)
                response = response.response()
            result = read_batch_response(
                response,
                batch.records,
                report_batch_item_failures=self.settings.report_batch_item_failures,
            )
        seconds = self._clock.now() - started
        if seconds > self.settings.function_timeout_seconds:
            # Lambda would have stopped it: whatever it answered never arrives.
            result = BatchVerdict(
                InvocationOutcome.ERROR,
                error=f"Task timed out after {self.settings.function_timeout_seconds:.2f} seconds",
            )
        self.stats.invocations += 1
        self.stats.records_invoked += len(batch.records)
        if result.outcome is InvocationOutcome.OK:
            self.stats.succeeded += 1
        elif result.outcome is InvocationOutcome.PARTIAL:
            self.stats.partial_failures += 1
        else:
            self.stats.function_errors += 1
        self._report(
            InvocationReport(
                stream_arn=self.stream_arn,
                shard_id=shard.shard_id,
                request_id=context.aws_request_id,
                records=len(batch.records),
                first_sequence_number=sequence_number(batch.records[0]),
                last_sequence_number=sequence_number(batch.records[-1]),
                outcome=result.outcome,
                retry_from=(
                    sequence_number(batch.records[result.retry_from])
                    if result.retry_from is not None
                    else None
                ),
                error=result.error,
                seconds=seconds,
                attempt=batch.retries,
                outcomes=outcomes,
            )
        )
        return result

    def _discard(self, shard: _Shard, batch: _Batch, condition: FailureCondition) -> None:
        """Send the batch's metadata to the on-failure queue, then move past it."""
        document = on_failure_record(
            records=batch.records,
            shard_id=shard.shard_id,
            stream_arn=self.stream_arn,
            function_arn=self.function_arn,
            condition=condition.value,
            invoke_count=batch.invokes,
            function_error=batch.function_error,
            request_id=str(uuid.uuid4()),
            now=self._clock.now(),
        )
        queue_url = self.settings.on_failure_queue_url
        if queue_url and self._sqs is not None:
            self._sqs.send_message(QueueUrl=queue_url, MessageBody=dumps(document))
        shard.checkpoint = sequence_number(batch.records[-1])
        self.stats.discarded_batches += 1
        self.stats.discarded_records += len(batch.records)
        self._report(
            DiscardReport(
                stream_arn=self.stream_arn,
                shard_id=shard.shard_id,
                condition=condition,
                records=len(batch.records),
                document=document,
                sent_to=queue_url,
            )
        )

    # ------------------------------------------------------------------ helpers

    def _context(self) -> LocalLambdaContext:
        # The function's time runs on the mapping's clock: a simulated one makes the
        # remaining time, and the timeout, independent of the machine's speed.
        return LocalLambdaContext(
            function_name=self.settings.function_name,
            timeout_seconds=self.settings.function_timeout_seconds,
            region=self.region,
            account_id=stream_account(self.stream_arn),
            now=self._clock.now,
        )

    def _pause(self, seconds: float) -> None:
        while seconds > 0 and not self._stop.is_set():
            step = min(seconds, _PAUSE_SLICE_SECONDS)
            self._clock.sleep(step)
            seconds -= step


class PollerCrashed(RuntimeError):
    """A threaded poller stopped on an error that was neither AWS's nor `stop()`."""

    def __init__(self, stream_arn: str, error: Exception) -> None:
        super().__init__(f"the poller of {stream_arn} stopped: {_describe(error)}")


class PollerGroup:
    """Several streams, one poller each, like one ESM per stream."""

    def __init__(self, pollers: Iterable[StreamPoller]) -> None:
        self.pollers = list(pollers)
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Run each poller in its own thread until `stop()`."""
        for poller in self.pollers:
            thread = threading.Thread(
                target=poller.run, name=f"poll-{poller.stream_arn.split('/')[1]}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout_seconds: float = 30.0) -> None:
        """Stop every poller and wait for its thread."""
        for poller in self.pollers:
            poller.stop()
        for thread in self._threads:
            thread.join(timeout_seconds)
        self._threads.clear()

    def poll_until_idle(
        self, quiet_seconds: float = 0.5, timeout_seconds: float = 60.0
    ) -> PollerStats:
        """Poll every stream, in this thread, until all were quiet for `quiet_seconds` (or
        one is stopped); raise `TimeoutError` if that takes longer than `timeout_seconds`."""
        if not self.pollers:
            return PollerStats()
        first = self.pollers[0]
        interval = min(p.settings.poll_interval_seconds for p in self.pollers)
        deadline = first._clock.now() + timeout_seconds
        quiet_since: float | None = None
        while not any(p._stop.is_set() for p in self.pollers):
            try:
                activity = sum(poller.run_once() for poller in self.pollers)
            except _Stopped:
                break
            now = first._clock.now()
            if activity or any(p.pending() for p in self.pollers):
                quiet_since = None
            elif quiet_since is None:
                quiet_since = now
            elif now - quiet_since >= quiet_seconds:
                break
            if now >= deadline:
                busy = " ".join(p.stream_arn for p in self.pollers)
                raise TimeoutError(f"{busy} still busy after {timeout_seconds}s")
            if not activity:
                first._pause(interval)
        return self.stats()

    def quiet_for(self) -> float:
        """Seconds every threaded poller has been quiet (0 if any is busy); raises what
        stopped a poller that crashed, so a wait for quiet never waits for ever."""
        for poller in self.pollers:
            if poller.crashed is not None:
                raise PollerCrashed(poller.stream_arn, poller.crashed) from poller.crashed
        return min((p.quiet_for() for p in self.pollers), default=0.0)

    def stats(self) -> PollerStats:
        """The counters of every poller, summed."""
        return sum((poller.stats for poller in self.pollers), PollerStats())


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _describe(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        return f"{_code(exc)}: {exc.response.get('Error', {}).get('Message', '')}"
    return f"{type(exc).__name__}: {exc}"
