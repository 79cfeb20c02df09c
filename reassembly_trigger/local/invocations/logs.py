"""The trigger's output for a block: its structlog events and its EMF metric lines.

Local tools that read what happened from outcomes silence it (`trigger_output()`);
`poll` routes it as the operator asks; the benchmark keeps its real cost and discards
the text. Afterwards logging and metrics are as they were. Process-wide, as structlog's
configuration is: every thread's output follows it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any, TextIO

import structlog

from reassembly_trigger.metrics import configure_metrics


def _drop(_: Any, __: str, event: MutableMapping[str, Any]) -> Any:
    raise structlog.DropEvent


def _silence(_: TextIO) -> None:
    structlog.configure(
        processors=[_drop],
        # Below CRITICAL a call is a no-op: a run's thousands of events cost nothing.
        wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL),
        cache_logger_on_first_use=False,
    )


@contextmanager
def trigger_output(
    route: Callable[[TextIO], None] = _silence, *, metrics: bool = False
) -> Iterator[None]:
    """For the block: the trigger's logs as `route` configures them (it is given a sink
    that discards what it is sent; by default nothing is logged at all), and its EMF
    lines discarded unless `metrics`; then structlog's configuration as it was."""
    previous = structlog.get_config() if structlog.is_configured() else None
    with open(os.devnull, "w", encoding="utf-8") as sink:
        route(sink)
        if not metrics:
            configure_metrics(sink)
        try:
            yield
        finally:
            if not metrics:
                configure_metrics(None)
            if previous is None:
                structlog.reset_defaults()
            else:
                structlog.configure(**previous)
