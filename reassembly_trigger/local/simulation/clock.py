"""A simulated clock: time that moves only when someone sleeps or advances it.

Implements `reassembly_trigger.evaluation.Clock`, so the real evaluation can wait
out a lease, back off or poll a lock without any real waiting: a simulation of
hours of leases runs in the time its AWS calls take.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

#: Where simulated time starts (epoch seconds, 2026-11-15): any fixed value keeps
#: runs reproducible.
DEFAULT_START = 1_794_700_000.0


class SimulatedClock:
    """`now()` and `sleep()` over simulated epoch seconds; safe to share between threads.

    `sleep(s)` returns at once and moves the shared time forward by `s`: with several
    threads the time is the sum of everyone's sleeps, so it only ever moves forward,
    and a waiter always sees the time pass it waits for.
    """

    def __init__(self, start: float = DEFAULT_START) -> None:
        self._now = start
        self._lock = threading.Lock()
        self._at_sleep: list[tuple[int | None, Callable[[], None]]] = []
        #: Total simulated seconds slept (for reports).
        self.slept = 0.0

    def now(self) -> float:
        """The simulated epoch seconds."""
        with self._lock:
            return self._now

    def sleep(self, seconds: float) -> None:
        """Advance the simulated time by `seconds` (never backwards) and return at once."""
        with self._lock:
            step = max(0.0, seconds)
            self._now += step
            self.slept += step
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

    def advance(self, seconds: float) -> float:
        """Move time forward by `seconds` (a test or simulation passing time); the new time."""
        with self._lock:
            self._now += max(0.0, seconds)
            return self._now

    def set(self, when: float) -> None:
        """Jump to `when` if it lies ahead; time never goes back."""
        with self._lock:
            self._now = max(self._now, when)
