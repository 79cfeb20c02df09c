"""The latency figures of `simulate`: nearest-rank percentiles over a run's jobs."""

from __future__ import annotations

import pytest

from reassembly_trigger.local.simulation.latency import LatencySummary, percentile


def test_percentiles_are_nearest_rank() -> None:
    """Of 20 values, p50 is the 10th and p95 the 19th (no interpolation)."""
    values = [float(n) for n in range(1, 21)]

    assert percentile(values, 0.5) == 10.0
    assert percentile(values, 0.95) == 19.0
    assert percentile(values, 1.0) == 20.0


def test_a_summary_is_in_milliseconds_and_none_without_jobs() -> None:
    """One job: every figure is its latency; no job: no summary."""
    summary = LatencySummary.of([0.0123])

    assert summary is not None
    assert summary.as_json() == {"jobs": 1, "p50_ms": 12.3, "p95_ms": 12.3, "max_ms": 12.3}
    assert LatencySummary.of([]) is None
    with pytest.raises(ValueError, match="no values"):
        percentile([], 0.5)
