"""reassembly-trigger: starts stereo-spot's reassembly exactly once, when every segment is done.

Three entry points run the one state machine (`machine.py`) on the same gateways:

- `reassembly_trigger.handler.lambda_handler`: the DynamoDB Streams Lambda (fast path);
- `reassembly_trigger.reconcile.lambda_handler`: the scheduled reconciler (safety net);
- `reassembly_trigger.trigger_job(job_id)`: trigger on write, for workers (`api.py`).

Everything except ``reassembly_trigger.local`` ships in the deployment zip; ``local``
holds the tooling (CLI, embedded AWS stack, stream poller, simulation, benchmark).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from reassembly_trigger.api import trigger_job, trigger_jobs
    from reassembly_trigger.outcome import JobOutcome

__all__ = ["JobOutcome", "__version__", "trigger_job", "trigger_jobs"]


def __getattr__(name: str) -> Any:
    # Lazy: importing the handler must not import the API (cold start).
    if name in ("trigger_job", "trigger_jobs"):
        from reassembly_trigger import api

        return getattr(api, name)
    if name == "JobOutcome":
        from reassembly_trigger.outcome import JobOutcome

        return JobOutcome
    raise AttributeError(f"module 'reassembly_trigger' has no attribute {name!r}")
