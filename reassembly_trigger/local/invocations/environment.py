"""The process environment the Lambda reads, set for a block, in a fresh container."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from reassembly_trigger.runtime import reset_process

#: Variables of the operator's shell that would send a local run elsewhere (a profile,
#: a session, per-service endpoints): removed for the block.
FOREIGN_VARIABLES = (
    "AWS_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_ENDPOINT_URL_DYNAMODB",
    "AWS_ENDPOINT_URL_SQS",
)


def fresh_container() -> None:
    """Forget the entry points' settings, clients and triggers, as a new container would."""
    reset_process()


@contextmanager
def lambda_environment(values: Mapping[str, str]) -> Iterator[None]:
    """`values` in the environment for the block, each side of it a fresh container."""
    names = set(values) | set(FOREIGN_VARIABLES)
    saved = {name: os.environ.get(name) for name in names}
    for name in FOREIGN_VARIABLES:
        os.environ.pop(name, None)
    os.environ.update(values)
    fresh_container()
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        fresh_container()
