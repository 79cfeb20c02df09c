"""Configuration comes from the environment once, with an error naming every problem."""

from __future__ import annotations

import pytest

from reassembly_trigger.settings import (
    DEFAULT_EVALUATION_CONCURRENCY,
    DEFAULT_LOCK_LEASE_SECONDS,
    REQUIRED_VARIABLES,
    Settings,
    SettingsError,
)

COMPLETE = {
    "JOBS_TABLE_NAME": "jobs",
    "SEGMENT_COMPLETIONS_TABLE_NAME": "completions",
    "REASSEMBLY_TRIGGERED_TABLE_NAME": "triggered",
    "REASSEMBLY_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/1/reassembly",
}


def test_a_complete_environment_gives_typed_settings_with_defaults() -> None:
    """The four required variables suffice; the rest have documented defaults."""
    settings = Settings.from_env(COMPLETE)
    assert settings.jobs_table_name == "jobs"
    assert settings.reassembly_queue_url.endswith("/reassembly")
    assert settings.lock_lease_seconds == DEFAULT_LOCK_LEASE_SECONDS == 900
    assert settings.evaluation_concurrency == DEFAULT_EVALUATION_CONCURRENCY
    assert settings.lease_wait_seconds == 5
    assert settings.jobs_status_index_name == "status-created_at"
    assert (settings.reconcile_min_age_seconds, settings.unclaimed_after_seconds) == (300, 3600)


def test_one_error_names_every_missing_variable() -> None:
    """Nothing set: the error lists all four, not just the first."""
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({})
    assert raised.value.missing == list(REQUIRED_VARIABLES)
    for var in REQUIRED_VARIABLES:
        assert var in str(raised.value)


def test_blank_values_count_as_missing_and_bad_numbers_are_named() -> None:
    """A blank table name is missing; a non-positive concurrency is invalid; both reported."""
    env = {**COMPLETE, "JOBS_TABLE_NAME": "  ", "EVALUATION_CONCURRENCY": "0"}
    with pytest.raises(SettingsError) as raised:
        Settings.from_env(env)
    assert raised.value.missing == ["JOBS_TABLE_NAME"]
    assert raised.value.invalid == [
        "EVALUATION_CONCURRENCY='0' (expected a whole number in [1, 128])"
    ]


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("LOCK_LEASE_SECONDS", "901"),
        ("LOCK_LEASE_SECONDS", "0"),
        ("LEASE_WAIT_SECONDS", "-1"),
        ("LEASE_WAIT_SECONDS", "61"),
        ("RECONCILE_MIN_AGE_SECONDS", "ten"),
        ("UNCLAIMED_AFTER_SECONDS", "0"),
        ("EVALUATION_CONCURRENCY", "129"),
    ],
)
def test_values_outside_their_bounds_are_refused_by_name(variable: str, value: str) -> None:
    """No lease beyond Lambda's 900 s maximum, no negative wait, no zero thresholds."""
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({**COMPLETE, variable: value})
    assert [entry.split("=")[0] for entry in raised.value.invalid] == [variable]


def test_optional_settings_are_read_and_round_trip() -> None:
    """Lease, concurrency and namespace come from their variables; as_environment inverts."""
    env = {
        **COMPLETE,
        "LOCK_LEASE_SECONDS": "300",
        "EVALUATION_CONCURRENCY": "1",
        "METRICS_NAMESPACE": "Custom",
        "LEASE_WAIT_SECONDS": "0",
        "JOBS_STATUS_INDEX_NAME": "by-status",
        "RECONCILE_MIN_AGE_SECONDS": "0",
        "UNCLAIMED_AFTER_SECONDS": "60",
    }
    settings = Settings.from_env(env)
    assert (settings.lock_lease_seconds, settings.evaluation_concurrency) == (300, 1)
    assert (settings.lease_wait_seconds, settings.jobs_status_index_name) == (0, "by-status")
    assert (settings.reconcile_min_age_seconds, settings.unclaimed_after_seconds) == (0, 60)
    assert Settings.from_env(settings.as_environment()) == settings


def test_the_handler_fails_loudly_when_misconfigured(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Lambda without its variables raises at the first invocation (Lambda retries the
    batch), instead of silently skipping every job."""
    from reassembly_trigger.handler import lambda_handler
    from reassembly_trigger.testing import LambdaContext

    with pytest.raises(SettingsError, match="JOBS_TABLE_NAME"):
        lambda_handler({"Records": []}, LambdaContext())
