"""The pipeline's actors around the trigger in `simulate`, each run in threads of its own.

- the chunker creates the Jobs, then marks each `chunking_complete` with its
  `total_segments` when it falls due;
- the video workers write the plan's completions, `workers` at a time;
- with trigger on write, each of them calls the API (`trigger_job`) after its write.

The media worker (`media_worker.MediaWorker.run`) runs in a thread of its own too.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

from reassembly_trigger.api import trigger_job
from reassembly_trigger.batch import ReassemblyTrigger
from reassembly_trigger.local.aws.stack import LocalAws
from reassembly_trigger.local.invocations.items import completion_item, job_item
from reassembly_trigger.local.simulation.outcome_counts import OutcomeCounts
from reassembly_trigger.local.simulation.workload import SegmentWrite, WorkloadJob, WorkloadPlan

#: What an actor does right after its write of a job (trigger on write: call the API).
AfterWrite = Callable[[str], None]


class Chunker:
    """Creates the Jobs, then marks each `chunking_complete` with `total_segments` when due."""

    def __init__(
        self, aws: LocalAws, jobs_table: str, *, after_mark: AfterWrite | None = None
    ) -> None:
        """`after_mark`: what the chunker does right after each mark, in its thread."""
        self._aws = aws
        self._table = jobs_table
        self._after_mark = after_mark
        self._due: list[tuple[float, int, WorkloadJob]] = []
        self._cv = threading.Condition()
        self._stop = False
        self._order = 0
        self.marked = 0
        #: When each job's mark was issued (epoch seconds).
        self.marked_at: dict[str, float] = {}
        self.error: Exception | None = None

    def create_jobs(self, jobs: Iterable[WorkloadJob]) -> None:
        """Write each Job `chunking_in_progress` (before the run starts); those chunked
        before any segment is written are due at once."""
        for job in jobs:
            self._aws.dynamodb.put_item(
                TableName=self._table,
                Item=job_item(
                    job.job_id,
                    status="chunking_in_progress",
                    created_at=int(time.time()),
                    mode="anaglyph",
                ),
            )
            if job.chunk_after == 0:
                self.schedule(job, 0.0)

    def schedule(self, job: WorkloadJob, delay: float) -> None:
        """Complete `job`'s chunking `delay` seconds from now."""
        with self._cv:
            self._order += 1
            heapq.heappush(self._due, (time.monotonic() + delay, self._order, job))
            self._cv.notify()

    def idle(self) -> bool:
        """Nothing scheduled."""
        with self._cv:
            return not self._due

    def stop(self) -> None:
        """Return from `run` (jobs still scheduled are left as they are)."""
        with self._cv:
            self._stop = True
            self._cv.notify()

    def run(self) -> None:
        """Mark jobs as they fall due, until `stop()`."""
        while True:
            with self._cv:
                while not self._stop and (not self._due or self._due[0][0] > time.monotonic()):
                    timeout = self._due[0][0] - time.monotonic() if self._due else None
                    self._cv.wait(timeout)
                if self._stop:
                    return
                _, _, job = self._due[0]
            issued = time.time()
            try:
                self._mark(job)
                with self._cv:
                    heapq.heappop(self._due)
                    self.marked += 1
                    self.marked_at[job.job_id] = issued
                if self._after_mark is not None:
                    self._after_mark(job.job_id)
            except Exception as exc:
                self.error = exc
                return

    def _mark(self, job: WorkloadJob) -> None:
        self._aws.dynamodb.update_item(
            TableName=self._table,
            Key={"job_id": {"S": job.job_id}},
            UpdateExpression="SET #status = :complete, total_segments = :total",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={
                ":complete": {"S": "chunking_complete"},
                ":total": {"N": str(job.total_segments)},
            },
        )


class VideoWorkers:
    """Threads writing completions in plan order; tells the chunker when a job is due.

    `after_write` is what a worker does right after each completion it wrote (trigger
    on write: call the API), in the worker's thread.
    """

    def __init__(
        self,
        aws: LocalAws,
        table: str,
        plan: WorkloadPlan,
        chunker: Chunker,
        workers: int,
        *,
        after_write: AfterWrite | None = None,
    ) -> None:
        self._aws = aws
        self._table = table
        self._writes = plan.writes
        self._jobs = {job.job_id: job for job in plan.jobs}
        self._chunker = chunker
        self._workers = workers
        self._after_write = after_write
        self._lock = threading.Lock()
        self._next = 0
        self._distinct: dict[str, set[int]] = {job.job_id: set() for job in plan.jobs}
        self._stop = threading.Event()
        self.written = 0
        #: Written completions that were a second write of their segment.
        self.duplicates_written = 0
        #: Per job, when the latest of its segments' first writes was issued (epoch
        #: seconds): once every segment is written, its last completion.
        self.last_completion_at: dict[str, float] = {}
        self.errors: list[Exception] = []

    @property
    def total(self) -> int:
        """Completions to write, duplicates included."""
        return len(self._writes)

    def run(self) -> None:
        """Write every completion, `workers` at a time; return when all are written."""
        with ThreadPoolExecutor(self._workers, thread_name_prefix="video-worker") as pool:
            for _ in range(self._workers):
                pool.submit(self._work)

    def stop(self) -> None:
        """Write nothing more (writes under way finish)."""
        self._stop.set()

    def _work(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                if self._next >= len(self._writes):
                    return
                write = self._writes[self._next]
                self._next += 1
            issued = time.time()
            try:
                self._put(write)
                self._written(write, issued)
                if self._after_write is not None:
                    self._after_write(write.job_id)
            except Exception as exc:
                with self._lock:
                    self.errors.append(exc)

    def _written(self, write: SegmentWrite, issued: float) -> None:
        """Count a completion written; the job's chunking falls due with its
        `chunk_after`-th distinct segment."""
        job = self._jobs[write.job_id]
        with self._lock:
            self.written += 1
            self.duplicates_written += 1 if write.attempt else 0
            seen = self._distinct[write.job_id]
            before = len(seen)
            seen.add(write.segment_index)
            if len(seen) > before:
                latest = self.last_completion_at.get(write.job_id, issued)
                self.last_completion_at[write.job_id] = max(latest, issued)
            due = before < job.chunk_after == len(seen)
        if due:
            self._chunker.schedule(job, job.chunk_delay)

    def _put(self, write: SegmentWrite) -> None:
        item = completion_item(write.job_id, write.segment_index, completed_at=int(time.time()))
        if write.attempt:
            # A re-delivered work message writes the segment again, with a changed item
            # (so the table's stream records the write, as DynamoDB's would).
            item["output_s3_uri"]["S"] += f"?attempt={write.attempt}"
        self._aws.dynamodb.put_item(TableName=self._table, Item=item)


def completed_at(job_id: str, writers: VideoWorkers, chunker: Chunker) -> tuple[float, str] | None:
    """When the write that made the job complete was issued, and which write it was
    (`completion` or `chunking`); None when one of them was never written."""
    last = writers.last_completion_at.get(job_id)
    marked = chunker.marked_at.get(job_id)
    if last is None or marked is None:
        return None
    return (marked, "chunking") if marked > last else (last, "completion")


def on_write_call(
    trigger: ReassemblyTrigger, counts: OutcomeCounts, caller: str, timeout_seconds: float
) -> AfterWrite:
    """The API call `caller` (`workers`, `chunker`) makes right after its write of a job
    (trigger on write), on a trigger of the run's own, with `timeout_seconds`; its
    outcome goes to `counts`."""

    def call(job_id: str) -> None:
        outcome = trigger_job(
            job_id, trigger=trigger, emit_metrics=False, timeout_seconds=timeout_seconds
        )
        counts.add([outcome], caller=caller)

    return call
