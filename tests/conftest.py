"""What every tier shares: each test starts with no AWS settings of the caller's shell (fake
credentials, no profile, no endpoint), no colour settings, a fresh container (no trigger
or client left by an earlier test), and ends with logging configured as it found it.

Nothing here imports `reassembly_trigger.local`: `pytest tests/unit` loads the core
alone. The moto server and the pipeline around the trigger are in `moto_fixtures.py`,
which the conftest of each tier that needs them (trigger, tooling, build) brings in.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import structlog

from reassembly_trigger.runtime import reset_process
from reassembly_trigger.settings import ENVIRONMENT_VARIABLES

#: The region every test runs in (moto's default), whatever the caller's shell says.
REGION = "us-east-1"
#: Variables that make rich (and other libraries) colour output that is not a terminal;
#: Nx sets FORCE_COLOR. Tests read plain text whatever the caller's terminal.
COLOUR_VARIABLES = ("FORCE_COLOR", "CLICOLOR_FORCE", "NO_COLOR", "TTY_COMPATIBLE", "COLUMNS")


@pytest.fixture(autouse=True)
def _isolated_aws_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No test can reach real AWS (fake credentials; no profile, session, endpoint or any
    other AWS_* variable of the caller's), each starts and ends in a fresh container, and
    no test sees the caller's colour settings."""
    aws = [name for name in os.environ if name.startswith("AWS_")]
    for var in (*aws, *ENVIRONMENT_VARIABLES, *COLOUR_VARIABLES):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("TERM", "dumb")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_ACCOUNT_ID_ENDPOINT_MODE", "disabled")
    reset_process()
    yield
    reset_process()


@pytest.fixture(autouse=True)
def _isolated_logging() -> Iterator[None]:
    """Each test ends with structlog configured as it found it: a command that configures
    logging for its process (`doctor` writes warnings to the stderr pytest captured, at
    WARNING) must not leave later tests logging to a closed stream or dropping events."""
    configured = structlog.is_configured()
    saved = structlog.get_config()
    yield
    if configured:
        structlog.configure(**saved)
    else:
        structlog.reset_defaults()
