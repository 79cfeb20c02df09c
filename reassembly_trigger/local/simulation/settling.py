"""When a `simulate` run is over: the pipeline has settled, a fact about its state.

Settled is a state, seen the same twice in a row: nothing left to write, every record
the pipeline wrote to a mapped stream read by the pollers, each poller's last pass
idle, and no message on the queue, visible or in flight (the media worker deletes one
only after handling it, Job update included). With the reconciler, it also takes a
reconcile run that started once the state looked settled and found nothing to do: the
reconciler is asked for one until then (a run that sends changes the state, and the
wait starts over). No quiet spell on the clock decides it, so a slow machine cannot
end a run early.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from reassembly_trigger.local.aws.stack import LocalAws, Resources
from reassembly_trigger.local.simulation.actors import Chunker, VideoWorkers
from reassembly_trigger.local.simulation.media_worker import MediaWorker
from reassembly_trigger.local.simulation.reconcile_schedule import ReconcilerLoop
from reassembly_trigger.local.streams.poller import PollerGroup

#: Pause between two looks at the pipeline's state (pacing only: no decision rests on it).
LOOK_INTERVAL_SECONDS = 0.05

#: How the wait ended: settled, past its timeout, or stopped (Ctrl-C, `stop()`).
Ending = Literal["settled", "timed_out", "interrupted"]


@dataclass(frozen=True, slots=True)
class Look:
    """What one look at the pipeline saw (equal looks: nothing happened in between)."""

    done_writing: bool
    records_expected: int
    records_read: int
    invocations: int
    pollers_idle: bool
    messages_received: int
    queue_empty: bool

    @property
    def settled(self) -> bool:
        """Nothing left to write, read, deliver or consume."""
        return (
            self.done_writing
            and self.records_read >= self.records_expected
            and self.pollers_idle
            and self.queue_empty
        )


@dataclass(frozen=True, slots=True)
class PipelineActors:
    """The actors of one run, looked at together."""

    writer_thread: threading.Thread
    chunker: Chunker
    writers: VideoWorkers
    pollers: PollerGroup
    media: MediaWorker
    aws: LocalAws
    resources: Resources
    #: Job items put before the run started.
    jobs_created: int
    #: Whether the Jobs stream is mapped (read by a poller) at all.
    jobs_stream: bool
    #: Whether the SegmentCompletions stream is mapped (not in `on-write` mode).
    completions_stream: bool

    def look(self) -> Look:
        """The counts that say whether anything is left to happen."""
        done_writing = not self.writer_thread.is_alive() and self.chunker.idle()
        report = self.media.report()
        # Every write makes one stream record: a completion written (duplicates too),
        # and on the Jobs stream (when it is mapped) a Job created, chunking completed,
        # a Job completed by the media worker.
        expected = self.writers.written if self.completions_stream else 0
        if self.jobs_stream:
            expected += self.jobs_created + self.chunker.marked + report.reassemblies
        stats = self.pollers.stats()
        return Look(
            done_writing=done_writing,
            records_expected=expected,
            records_read=stats.records_read,
            invocations=stats.invocations,
            # A poller's quiet time starts when a pass read and delivered nothing.
            pollers_idle=not self.pollers.pollers or self.pollers.quiet_for() > 0,
            messages_received=report.messages_received,
            queue_empty=done_writing and self._queue_empty(),
        )

    def _queue_empty(self) -> bool:
        return self.aws.messages_in(self.resources.reassembly_queue_url) == 0


def wait_until_settled(
    actors: PipelineActors,
    reconciler: ReconcilerLoop | None,
    *,
    timeout_seconds: float,
    stop: threading.Event,
    before_look: Callable[[], None] = lambda: None,
) -> Ending:
    """Look at the pipeline until it settles (see the module), `timeout_seconds` pass
    or `stop` is set; `before_look` runs before each look (a progress display)."""
    deadline = time.monotonic() + timeout_seconds
    previous: Look | None = None
    #: When the state first looked settled, unchanged since (epoch seconds, the
    #: reconciler's clock); None while it does not.
    settled_since: float | None = None
    while not stop.is_set():
        before_look()
        look = actors.look()
        if not look.settled or look != previous:
            settled_since = time.time() if look.settled else None
        elif reconciler is None or (
            settled_since is not None and reconciler.clean_since(settled_since)
        ):
            return "settled"
        else:
            reconciler.ask_for_run()
        previous = look
        if time.monotonic() >= deadline:
            return "timed_out"
        stop.wait(LOOK_INTERVAL_SECONDS)
    return "interrupted"
