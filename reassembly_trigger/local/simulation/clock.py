"""A simulated clock: time that moves only when someone sleeps or advances it.

Implements `reassembly_trigger.evaluation.Clock`, so the real evaluation can wait
out a lease, back off or poll a lock without any real waiting: a simulation of
hours of leases runs in the time its AWS calls take.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from reassembly_trigger.testing import START, ManualClock

#: Where simulated time starts (epoch seconds, 2026-11-15): any fixed value keeps
#: runs reproducible.
DEFAULT_START = START


class SimulatedClock(ManualClock):
    """The users' `ManualClock` (time moves only when slept or advanced, safe to share
    between threads), plus actions run at a thread's next sleep: how a test makes
    something happen "while an evaluation waits" at a deterministic point.
    """

    def __init__(self, start: float = DEFAULT_START) -> None:
        super().__init__(start)
        self._at_sleep: list[tuple[int | None, Callable[[], None]]] = []

    def sleep(self, seconds: float) -> None:
        """Advance the simulated time by `seconds` (never backwards) and return at once."""
        super().sleep(seconds)
        with self._lock:
            action = self._take_action(threading.get_ident())
        if action is not None:
            action()  # outside the lock: the action may read the time or sleep

    def at_next_sleep(self, action: Callable[[], None], *, thread: int | None = None) -> None:
        """Run `action` once, right after the next `sleep` (of `thread` only, if given).

        This is how a test makes something happen "while an evaluation waits" (a holder
        marking or releasing its lock) at a deterministic point.
        """
        with self._lock:
            self._at_sleep.append((thread, action))

    def cancel_sleep_actions(self, thread: int) -> None:
        """Forget the actions still waiting for a sleep of `thread` (it is finishing)."""
        with self._lock:
            self._at_sleep = [(t, a) for t, a in self._at_sleep if t != thread]

    def _take_action(self, thread: int) -> Callable[[], None] | None:
        for index, (wanted, action) in enumerate(self._at_sleep):
            if wanted is None or wanted == thread:
                del self._at_sleep[index]
                return action
        return None
