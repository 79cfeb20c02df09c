"""Logs off for a block, for tools that read what happened from outcomes, not from logs."""

from __future__ import annotations

import logging
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

import structlog


def _drop(_: Any, __: str, event: MutableMapping[str, Any]) -> Any:
    raise structlog.DropEvent


@contextmanager
def silenced_logs() -> Iterator[None]:
    """No structlog output for the block, whatever was configured; then as before.

    Process-wide (structlog's configuration is), so every thread's logs are off too.
    """
    previous = structlog.get_config() if structlog.is_configured() else None
    structlog.configure(
        processors=[_drop],
        # Below CRITICAL a call is a no-op: a run's thousands of events cost nothing.
        wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL),
        cache_logger_on_first_use=False,
    )
    try:
        yield
    finally:
        if previous is None:
            structlog.reset_defaults()
        else:
            structlog.configure(**previous)
