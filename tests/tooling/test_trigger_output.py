"""`invocations.logs.trigger_output`: silent inside the block, the configuration restored after."""

from __future__ import annotations

import pytest
import structlog

from reassembly_trigger.local.invocations.logs import trigger_output
from reassembly_trigger.logs import configure_logging


def test_nothing_is_logged_inside_the_block_and_logging_resumes_after(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Every level is silent in the block; afterwards the configuration found before logs again."""
    configure_logging("json", "stdout", force=True)
    log = structlog.get_logger("reassembly_trigger")

    with trigger_output():
        for method in (log.info, log.warning, log.error, log.critical):
            method("inside")
    log.info("after")

    out = capsys.readouterr().out
    assert "inside" not in out
    assert '"event": "after"' in out
