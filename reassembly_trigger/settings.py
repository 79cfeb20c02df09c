"""Configuration, read once from the environment into a typed object."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from reassembly_trigger.errors import SettingsError
from reassembly_trigger.items import is_digits
from reassembly_trigger.timing import LAMBDA_MAX_TIMEOUT_SECONDS

#: A lock written without a lease is treated as leased for Lambda's maximum timeout
#: after `triggered_at`; no setting may lease a lock for longer.
DEFAULT_LOCK_LEASE_SECONDS = LAMBDA_MAX_TIMEOUT_SECONDS
DEFAULT_EVALUATION_CONCURRENCY = 16
MAX_EVALUATION_CONCURRENCY = 128
DEFAULT_METRICS_NAMESPACE = "StereoSpot/ReassemblyTrigger"
DEFAULT_LEASE_WAIT_SECONDS = 5
DEFAULT_JOBS_STATUS_INDEX_NAME = "status-created_at"
DEFAULT_RECONCILE_MIN_AGE_SECONDS = 300
DEFAULT_UNCLAIMED_AFTER_SECONDS = 3600

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
    "LEASE_WAIT_SECONDS",
    "JOBS_STATUS_INDEX_NAME",
    "RECONCILE_MIN_AGE_SECONDS",
    "UNCLAIMED_AFTER_SECONDS",
)

__all__ = ["ENVIRONMENT_VARIABLES", "REQUIRED_VARIABLES", "Settings", "SettingsError"]


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the Lambda and the reconciler read from their environment.

    Endpoints, region and credentials are not here: botocore reads them from the
    standard settings (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_DYNAMODB`,
    `AWS_ENDPOINT_URL_SQS`; the region from `AWS_REGION`, which `clients.aws_clients`
    passes on because botocore ignores it, else `AWS_DEFAULT_REGION` or the profile's
    `region`), so a local stack needs no code change.
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
    #: How long the stream path waits for a holder within its lease before deferring.
    lease_wait_seconds: int = DEFAULT_LEASE_WAIT_SECONDS
    #: The Jobs table's index on (`status`, `created_at`) the reconciler lists jobs with.
    jobs_status_index_name: str = DEFAULT_JOBS_STATUS_INDEX_NAME
    #: The reconciler leaves jobs younger than this to the stream path.
    reconcile_min_age_seconds: int = DEFAULT_RECONCILE_MIN_AGE_SECONDS
    #: A message unclaimed, or a job waiting for segments, longer than this is reported.
    unclaimed_after_seconds: int = DEFAULT_UNCLAIMED_AFTER_SECONDS

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read the settings; raise `SettingsError` naming every missing or bad variable."""
        env = os.environ if environ is None else environ
        text = {var: env.get(var, "").strip() for var in ENVIRONMENT_VARIABLES}
        missing = [var for var in REQUIRED_VARIABLES if not text[var]]
        invalid: list[str] = []

        def integer(var: str, default: int, low: int, high: int) -> int:
            if not text[var]:
                return default
            if is_digits(text[var]) and low <= int(text[var]) <= high:
                return int(text[var])
            invalid.append(f"{var}={text[var]!r} (expected a whole number in [{low}, {high}])")
            return default

        settings = cls(
            jobs_table_name=text["JOBS_TABLE_NAME"],
            segment_completions_table_name=text["SEGMENT_COMPLETIONS_TABLE_NAME"],
            reassembly_triggered_table_name=text["REASSEMBLY_TRIGGERED_TABLE_NAME"],
            reassembly_queue_url=text["REASSEMBLY_QUEUE_URL"],
            lock_lease_seconds=integer(
                "LOCK_LEASE_SECONDS", DEFAULT_LOCK_LEASE_SECONDS, 1, LAMBDA_MAX_TIMEOUT_SECONDS
            ),
            evaluation_concurrency=integer(
                "EVALUATION_CONCURRENCY",
                DEFAULT_EVALUATION_CONCURRENCY,
                1,
                MAX_EVALUATION_CONCURRENCY,
            ),
            metrics_namespace=text["METRICS_NAMESPACE"] or DEFAULT_METRICS_NAMESPACE,
            lease_wait_seconds=integer("LEASE_WAIT_SECONDS", DEFAULT_LEASE_WAIT_SECONDS, 0, 60),
            jobs_status_index_name=text["JOBS_STATUS_INDEX_NAME"] or DEFAULT_JOBS_STATUS_INDEX_NAME,
            reconcile_min_age_seconds=integer(
                "RECONCILE_MIN_AGE_SECONDS", DEFAULT_RECONCILE_MIN_AGE_SECONDS, 0, 7 * 86400
            ),
            unclaimed_after_seconds=integer(
                "UNCLAIMED_AFTER_SECONDS", DEFAULT_UNCLAIMED_AFTER_SECONDS, 1, 30 * 86400
            ),
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
            "LEASE_WAIT_SECONDS": str(self.lease_wait_seconds),
            "JOBS_STATUS_INDEX_NAME": self.jobs_status_index_name,
            "RECONCILE_MIN_AGE_SECONDS": str(self.reconcile_min_age_seconds),
            "UNCLAIMED_AFTER_SECONDS": str(self.unclaimed_after_seconds),
        }
