"""Configuration, read once from the environment into a typed object."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

#: Lambda's maximum timeout: a lock written without a lease is treated as leased
#: for this long after `triggered_at`.
DEFAULT_LOCK_LEASE_SECONDS = 900
DEFAULT_EVALUATION_CONCURRENCY = 16
DEFAULT_METRICS_NAMESPACE = "StereoSpot/ReassemblyTrigger"

#: The variables without which the Lambda cannot run.
REQUIRED_VARIABLES = (
    "JOBS_TABLE_NAME",
    "SEGMENT_COMPLETIONS_TABLE_NAME",
    "REASSEMBLY_TRIGGERED_TABLE_NAME",
    "REASSEMBLY_QUEUE_URL",
)
#: Every environment variable the Lambda reads (the Terraform module sets them all).
ENVIRONMENT_VARIABLES = (
    *REQUIRED_VARIABLES,
    "LOCK_LEASE_SECONDS",
    "EVALUATION_CONCURRENCY",
    "METRICS_NAMESPACE",
)


class SettingsError(ValueError):
    """The environment lacks required variables or holds invalid values."""

    def __init__(self, missing: list[str], invalid: list[str]) -> None:
        self.missing = missing
        self.invalid = invalid
        parts = []
        if missing:
            parts.append("missing environment variables: " + ", ".join(missing))
        if invalid:
            parts.append("invalid environment variables: " + "; ".join(invalid))
        super().__init__("; ".join(parts))


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the Lambda reads from its environment.

    Endpoints, region and credentials are not here: boto3 reads them from the
    standard AWS SDK settings (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_DYNAMODB`,
    `AWS_ENDPOINT_URL_SQS`, `AWS_REGION`, ...), so a local stack needs no code change.
    """

    jobs_table_name: str
    segment_completions_table_name: str
    reassembly_triggered_table_name: str
    reassembly_queue_url: str
    #: Lease assumed for a lock that records none (written by the earlier Lambda).
    lock_lease_seconds: int = DEFAULT_LOCK_LEASE_SECONDS
    #: Jobs of one batch evaluated at once; 1 evaluates them one after another.
    evaluation_concurrency: int = DEFAULT_EVALUATION_CONCURRENCY
    metrics_namespace: str = DEFAULT_METRICS_NAMESPACE

    @property
    def queue_is_fifo(self) -> bool:
        """Whether the reassembly queue is a FIFO queue (its URL ends in `.fifo`)."""
        return self.reassembly_queue_url.endswith(".fifo")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read the settings; raise `SettingsError` naming every missing or bad variable."""
        env = os.environ if environ is None else environ
        text = {var: env.get(var, "").strip() for var in ENVIRONMENT_VARIABLES}
        missing = [var for var in REQUIRED_VARIABLES if not text[var]]
        invalid: list[str] = []

        def positive_int(var: str, default: int) -> int:
            if not text[var]:
                return default
            if text[var].isdigit() and int(text[var]) >= 1:
                return int(text[var])
            invalid.append(f"{var}={text[var]!r} (expected a positive integer)")
            return default

        settings = cls(
            jobs_table_name=text["JOBS_TABLE_NAME"],
            segment_completions_table_name=text["SEGMENT_COMPLETIONS_TABLE_NAME"],
            reassembly_triggered_table_name=text["REASSEMBLY_TRIGGERED_TABLE_NAME"],
            reassembly_queue_url=text["REASSEMBLY_QUEUE_URL"],
            lock_lease_seconds=positive_int("LOCK_LEASE_SECONDS", DEFAULT_LOCK_LEASE_SECONDS),
            evaluation_concurrency=positive_int(
                "EVALUATION_CONCURRENCY", DEFAULT_EVALUATION_CONCURRENCY
            ),
            metrics_namespace=text["METRICS_NAMESPACE"] or DEFAULT_METRICS_NAMESPACE,
        )
        if missing or invalid:
            raise SettingsError(missing, invalid)
        return settings

    def as_environment(self) -> dict[str, str]:
        """The environment variables that reproduce these settings."""
        return {
            "JOBS_TABLE_NAME": self.jobs_table_name,
            "SEGMENT_COMPLETIONS_TABLE_NAME": self.segment_completions_table_name,
            "REASSEMBLY_TRIGGERED_TABLE_NAME": self.reassembly_triggered_table_name,
            "REASSEMBLY_QUEUE_URL": self.reassembly_queue_url,
            "LOCK_LEASE_SECONDS": str(self.lock_lease_seconds),
            "EVALUATION_CONCURRENCY": str(self.evaluation_concurrency),
            "METRICS_NAMESPACE": self.metrics_namespace,
        }
