"""structlog configuration: JSON lines on stdout in Lambda, readable lines for people."""

from __future__ import annotations

import logging
import os
import sys
from typing import Literal, TextIO, cast

import structlog

Renderer = Literal["json", "console"]


class _CurrentStream:
    """`sys.stdout` or `sys.stderr` as they are at each write, not at configuration time
    (a CLI's or a test's streams may be replaced after logging was configured)."""

    def __init__(self, name: Literal["stdout", "stderr"]) -> None:
        self._name = name

    def write(self, text: str) -> int:
        stream: TextIO = getattr(sys, self._name)
        return stream.write(text)

    def flush(self) -> None:
        stream: TextIO = getattr(sys, self._name)
        stream.flush()


def _level() -> int:
    # Lambda's advanced logging controls set AWS_LAMBDA_LOG_LEVEL.
    name = os.environ.get("AWS_LAMBDA_LOG_LEVEL") or os.environ.get("LOG_LEVEL") or "INFO"
    level = logging.getLevelName(name.upper())
    return level if isinstance(level, int) else logging.INFO


def configure_logging(
    renderer: Renderer = "json",
    stream: TextIO | Literal["stdout", "stderr"] | None = None,
    *,
    force: bool = False,
    level: int | None = None,
) -> None:
    """Route structlog events to `stream`, one JSON object per line or for humans.

    `stream` is a file, or `"stdout"` / `"stderr"` (None: stdout), resolved at each write.

    Leaves an existing configuration alone unless `force` is set, so the Lambda's first
    invocation does not undo what a test (`capture_logs`) or the CLI configured. `level`
    overrides the environment's (`AWS_LAMBDA_LOG_LEVEL`, `LOG_LEVEL`, else INFO).
    """
    if structlog.is_configured() and not force:
        return
    target: TextIO = (
        cast(TextIO, _CurrentStream(stream or "stdout"))
        if stream is None or isinstance(stream, str)
        else stream
    )
    final: structlog.typing.Processor
    if renderer == "json":
        final = structlog.processors.JSONRenderer(sort_keys=False)
    else:
        final = structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            final,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_level() if level is None else level),
        logger_factory=structlog.PrintLoggerFactory(target),
        # Loggers are bound per invocation, so caching buys nothing and would hide
        # them from structlog.testing.capture_logs().
        cache_logger_on_first_use=False,
    )
