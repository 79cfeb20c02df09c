"""Counting the AWS calls a set of boto3 clients makes, by operation.

The simulations give each actor (the stream handler, the API in the workers, the
reconciler) clients of its own and count on them, so each one's cost is its own.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any


class CallCounter:
    """Counts the calls made on the clients it is attached to, by operation.

    One count per call of a client method (botocore's `before-call`): botocore's own
    retries of a call are not counted again.
    """

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()

    def attach(self, client: Any) -> None:
        """Count this client's calls from now on."""
        service = client.meta.service_model.service_id.hyphenize()
        client.meta.events.register(f"before-call.{service}", self._count)

    def _count(self, model: Any, **_: Any) -> None:
        with self._lock:
            self.calls[str(model.name)] += 1

    def snapshot(self) -> Counter[str]:
        """The counts so far (a copy)."""
        with self._lock:
            return Counter(self.calls)
