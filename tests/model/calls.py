"""What an actor asks of the world, and the one way it can be stopped.

Every call the code under test makes to the outside world (a table, the queue, the
clock's sleep) becomes one `Call`: the actor's thread hands it to the scheduler and
blocks until the scheduler has decided its fate (carried out normally, carried out
with its answer lost, not carried out because the actor crashed...).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from tests.model.world import World

#: read: changes nothing; write: a conditional DynamoDB write (botocore retries it);
#: send: SQS SendMessage (one attempt); sleep: the actor waits for the clock.
Kind = Literal["read", "write", "send", "sleep"]


class Crash(BaseException):
    """The actor's sandbox died here: nothing after this point runs.

    A `BaseException`, as Lambda stopping a sandbox is no error the code can handle;
    once an actor crashed, every further call it attempts (its `finally` blocks'
    release included) raises this again without touching the world.
    """


@dataclass(frozen=True, slots=True)
class Call:
    """One call to the outside world, waiting for the scheduler."""

    label: str
    kind: Kind
    #: Carries the call out on the current world; returns the answer, or raises the
    #: error the service answers (a failed condition is an answer, not a fault).
    effect: Callable[[], object] | None = None
    job_id: str | None = None
    #: For a sleep: the instant it ends.
    wake: float | None = None


class Port(Protocol):
    """An actor's way out: the calls it makes, and the time it sees."""

    name: str

    def request(self, call: Call) -> object:
        """Hand `call` to the scheduler; return its answer or raise its error."""
        ...

    def now(self) -> float:
        """The time this actor sees (it moves only between its calls)."""
        ...

    @property
    def world(self) -> World:
        """The world the calls act on."""
        ...
