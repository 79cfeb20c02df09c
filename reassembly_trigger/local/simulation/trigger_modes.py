"""The three ways the simulations run the trigger: the stream Lambda, trigger on write, both.

- `stream`: Lambda's mapping on the SegmentCompletions stream invokes the handler (the
  default, the deployed Lambda);
- `on-write`: the video worker calls `reassembly_trigger.trigger_job` right after its
  completion `PutItem`; nothing reads the SegmentCompletions stream;
- `both`: the two at once (each completion is evaluated twice; the lock keeps it to
  one message).

The Jobs stream's mapping and the reconciler are separate choices in every mode.
"""

from __future__ import annotations

from enum import StrEnum


class TriggerMode(StrEnum):
    """Who evaluates a job when a completion is written."""

    STREAM = "stream"
    ON_WRITE = "on-write"
    BOTH = "both"

    @property
    def streams(self) -> bool:
        """Whether the SegmentCompletions stream drives the handler."""
        return self is not TriggerMode.ON_WRITE

    @property
    def on_write(self) -> bool:
        """Whether the video workers call the API after each completion."""
        return self is not TriggerMode.STREAM
