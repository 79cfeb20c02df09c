"""The scheduler: runs the real code's actors one call at a time, in every order.

Each actor (a stream delivery, a `trigger_job` call, a reconciler run) is the
project's own entry point running in a thread of its own. Every call it makes to the
world (`calls.Call`) blocks the thread until the scheduler picks it; only one actor
runs at a time, so a run is a sequence of steps, and the scheduler decides their
order, and the faults: a call carried out normally, carried out with its answer lost
(botocore's retry or a timeout), refused with an AWS error, or the actor crashing
before or after it. The environment's steps interleave with the actors': video
workers write completions, the chunker completes a Job, actors start with a timeout
from a set, the media worker claims a message, the clock jumps to a lease's end.

A state is the world (copied whole) and, for each actor, the answers it received
(`ActorState.history`): the code is deterministic given its answers and the times it
saw, so an actor is restored by re-running its entry point in a new thread, fed its
recorded answers without stopping, up to its pending call. The search is breadth
first with state hashing: every state is expanded once, and the first violation
found is reached by a shortest interleaving.
"""

from __future__ import annotations

import copy
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Literal, cast

from botocore.exceptions import ClientError, ReadTimeoutError

from reassembly_trigger.gateways import RECONCILE_CURSOR_KEY
from reassembly_trigger.lock import LockRecord
from reassembly_trigger.ports import CompletionCount, LoadedJobs
from tests.model import core
from tests.model.calls import Call, Crash
from tests.model.properties import (
    LIVENESS,
    NO_ESCAPE,
    ActorState,
    Answered,
    Pending,
    liveness,
    safety,
)
from tests.model.world import T0, World, describe_lock

#: The reconciler's cursor item (only reconcilers read or write it).
CURSOR = RECONCILE_CURSOR_KEY

ActorKind = Literal["stream", "trigger_job", "reconciler"]


@dataclass(frozen=True, slots=True)
class ActorSpec:
    """One actor the world may start once, with one of `timeouts`."""

    name: str
    kind: ActorKind
    timeouts: tuple[float, ...]
    #: trigger_job: the job its worker completed.
    job_id: str | None = None
    #: stream: the batch's records (job_id, segment_index, record number).
    records: tuple[tuple[str, int, int], ...] = ()

    def ready(self, world: World) -> bool:
        """Whether it may start: a record exists once its completion was written."""
        if self.kind == "stream":
            return all(i in world.completions.get(j, set()) for j, i, _ in self.records)
        if self.kind == "trigger_job":
            assert self.job_id is not None
            job = world.jobs[self.job_id]
            return set(range(job["total_segments"])) <= world.completions[self.job_id]
        return True

    def entry(self, timeout: float, lease_wait_seconds: int) -> core.EntryPoint:
        if self.kind == "stream":
            return lambda port: core.deliver(port, self.records, timeout, lease_wait_seconds)
        if self.kind == "trigger_job":
            job_id = self.job_id
            assert job_id is not None
            return lambda port: core.call_trigger_job(port, job_id, timeout, lease_wait_seconds)
        return lambda port: core.reconcile(port, timeout, lease_wait_seconds)

    def deadline(self, start: float, timeout: float) -> float:
        if self.kind == "trigger_job":
            return start + timeout  # the caller's own deadline
        return start + timeout


@dataclass(frozen=True, slots=True)
class JobSpec:
    """A job of the world at the start."""

    job_id: str
    total: int = 2
    chunked: bool = False
    #: Completions already written (the rest are written by worker steps).
    written: tuple[int, ...] = ()
    #: A lock of the replaced Lambda, written this many seconds before T0.
    legacy_lock_age: float | None = None
    #: A lock whose holder died having sent nothing, taken this long before T0 (its
    #: lease ended at its start + 60 s).
    orphaned_lock_age: float | None = None


@dataclass(frozen=True, slots=True)
class Scenario:
    """A world: its jobs, its actors, its fault budget."""

    name: str
    jobs: tuple[JobSpec, ...]
    actors: tuple[ActorSpec, ...]
    crashes: int = 0
    lost_answers: int = 0
    errors: int = 0
    lease_wait_seconds: int = 5
    #: The scheduled reconciler's timeout, for the runs after the faults stop.
    final_reconciler_timeout: float = 300.0
    #: Scheduled reconciler runs after the faults stop.
    final_reconciler_runs: int = 2
    #: Pairs of actors the world cannot tell apart (symmetry reduction): the same kind,
    #: timeouts and job, records that exist from the start. A state and its mirror
    #: image, the two swapped, are one state.
    symmetric: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        specs = {a.name: a for a in self.actors}
        written = {j.job_id: set(j.written) for j in self.jobs}
        for first, second in self.symmetric:
            a, b = specs[first], specs[second]
            jobs_a = sorted(j for j, _, _ in a.records)
            jobs_b = sorted(j for j, _, _ in b.records)
            if (a.kind, a.timeouts, a.job_id, jobs_a) != (b.kind, b.timeouts, b.job_id, jobs_b):
                raise ValueError(f"{first} and {second} are told apart by what they are")
            if not all(i in written[j] for j, i, _ in a.records + b.records):
                raise ValueError(f"{first} and {second} become ready at different steps")
        names = [a.name for a in self.actors]
        if self.symmetric and any(n != m and m.startswith(n) for n in names for m in names):
            raise ValueError("an actor's name begins another's (symmetry renames by text)")

    def initial_world(self) -> World:
        world = World(
            crashes_left=self.crashes, lost_left=self.lost_answers, errors_left=self.errors
        )
        for job in self.jobs:
            status = "chunking_complete" if job.chunked else "chunking_in_progress"
            world.add_job(job.job_id, job.total, status=status, created_at=T0 - 3600)
            for index in job.written:
                world.write_completion(job.job_id, index)
            if job.legacy_lock_age is not None:
                world.put_legacy_lock(job.job_id, T0 - job.legacy_lock_age)
            if job.orphaned_lock_age is not None:
                taken = T0 - job.orphaned_lock_age
                world.put_orphaned_lock(job.job_id, taken, taken + 60)
        return world


# --------------------------------------------------------------------- the threads


class Runner:
    """One actor's thread: the real entry point, stopped at every call."""

    def __init__(
        self,
        explorer: Explorer,
        *,
        name: str,
        number: int,
        entry: core.EntryPoint,
        start: float,
        history: tuple[Answered, ...] = (),
        timeout: float | None = None,
    ) -> None:
        self.name = name
        #: The run this thread is: its timeout and start (two runs of one actor with
        #: the same answers so far are different runs when these differ).
        self.origin = (timeout, start)
        self._explorer = explorer
        self._number = number
        self._entry = entry
        self._replay = history
        self.history = history
        self._index = 0
        self._now = start
        self._go = threading.Semaphore(0)
        self._verdict: tuple[tuple[str, object], float] | None = None
        self.dead = False
        self.pending: Call | None = None
        self.finished = False
        self.summary: core.Summary | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name=f"model-{name}", daemon=True)

    # -- the actor's side

    @property
    def world(self) -> World:
        return self._explorer.world

    def now(self) -> float:
        return self._now

    def request(self, call: Call) -> object:
        if self.dead:
            raise Crash
        if self._index < len(self._replay):
            answered = self._replay[self._index]
            self._index += 1
            self._now = answered.now
            return _deliver(answered.answer)
        self.pending = call
        self._explorer.handoff.release()
        self._go.acquire()
        self.pending = None
        if self.dead:
            raise Crash
        assert self._verdict is not None
        answer, self._now = self._verdict
        self._index += 1
        return _deliver(answer)

    def _main(self) -> None:
        core.enter_actor(self._number)
        try:
            self.summary = self._entry(self)
        except Crash:
            pass
        except BaseException as exc:  # reported as a violation: nothing may escape
            self.error = exc
        finally:
            self.finished = True
            if not self.dead:
                self._explorer.handoff.release()

    # -- the scheduler's side

    def start(self) -> None:
        self._thread.start()
        self._explorer.handoff.acquire()
        if self.pending is not None and self._index < len(self._replay):
            raise AssertionError(f"{self.name} did not replay its history")

    def resume(self, answer: tuple[str, object], now: float, answered: Answered) -> None:
        self._verdict = (answer, now)
        self.history = (*self.history, answered)
        self._go.release()
        self._explorer.handoff.acquire()

    def kill(self) -> None:
        """The actor dies at its pending call (a crash, or the scheduler moving on)."""
        if self.finished:
            return
        self.dead = True
        self._go.release()
        self._thread.join()


def _deliver(answer: tuple[str, object]) -> object:
    kind, value = answer
    if kind == "raise":
        assert callable(value)
        raise value()
    return value


def _fresh(exc: BaseException) -> Callable[[], BaseException]:
    def make() -> BaseException:
        again = copy.copy(exc)
        again.__traceback__ = None
        return again

    return make


def _timeout() -> BaseException:
    return ReadTimeoutError(endpoint_url="https://model.invalid")


def _throttled() -> BaseException:
    error = {"Code": "ThrottlingException", "Message": "Rate exceeded"}
    return ClientError({"Error": error}, "Model")  # type: ignore[typeddict-item]


# --------------------------------------------------------------------- the search


@dataclass(frozen=True, slots=True)
class Choice:
    """One step the scheduler may take: an actor's call (and its fate), or the world's."""

    actor: str
    what: str
    arg: object = None


@dataclass(frozen=True, slots=True)
class Node:
    """A state, and how it was reached (for the trace)."""

    world: World
    actors: Mapping[str, ActorState]
    parent: Node | None = None
    actor: str = ""
    step: str = ""

    def key(self) -> str:
        """The unreduced key: the world, and every actor's state."""
        return self.world.key() + repr(sorted((n, a.key()) for n, a in self.actors.items()))

    def trace(self) -> list[Node]:
        nodes: list[Node] = []
        node: Node | None = self
        while node is not None:
            nodes.append(node)
            node = node.parent
        return nodes[::-1]


@dataclass(slots=True)
class Violation:
    """A property broken, with the interleaving that breaks it."""

    prop: str
    why: str
    node: Node
    #: For liveness: what the runs after the faults did.
    epilogue: list[str] = field(default_factory=list)

    @property
    def length(self) -> int:
        return len(self.node.trace()) - 1

    def render(self) -> str:
        return render_trace(self)


@dataclass(slots=True)
class Report:
    """What one search explored and found."""

    scenario: str
    states: int = 0
    transitions: int = 0
    terminal: int = 0
    interleavings: int = 0
    violations: dict[str, Violation] = field(default_factory=dict)
    #: Steps not taken because a sleep set showed them taken in another order.
    slept: int = 0
    #: The worlds of the end states (up to the scenario's symmetry), to compare a
    #: reduced search with an unreduced one.
    ends: set[str] = field(default_factory=set)
    #: The search stopped at its `max_levels`: deeper interleavings were not explored.
    bounded: bool = False

    def first(self, prop: str) -> Violation | None:
        return self.violations.get(prop)

    def summary(self) -> str:
        found = ", ".join(f"{p} ({v.length} steps)" for p, v in self.violations.items())
        return (
            f"{self.scenario}: {self.states} distinct states, {self.transitions} transitions, "
            f"{self.interleavings} complete interleavings ({self.terminal} end states); "
            f"violations: {found or 'none'}"
        )


class Explorer:
    """Explores every interleaving of a scenario (or follows one, step by step).

    `reduce` (the default) explores a reduced graph with the same reachable worlds,
    end states and shortest violations (docs/protocol-model.md, "Why the reductions
    are sound"): a read nothing can change is explored alone (a persistent set); a
    finished actor is one state whatever its deadline, answers or outcome (nothing
    reads them any more); and two actors of `Scenario.symmetric` are interchangeable.
    `reduce=False` explores every interleaving, for `test_reduction.py` to compare.
    """

    def __init__(self, scenario: Scenario, *, reduce: bool = True) -> None:
        self.scenario = scenario
        self.reduce = reduce
        self._swaps = [_swap(scenario, pair) for pair in scenario.symmetric] if reduce else []
        self.specs = {a.name: a for a in scenario.actors}
        self._numbers = {a.name: n + 1 for n, a in enumerate(scenario.actors)}
        self.handoff = threading.Semaphore(0)
        self.world = scenario.initial_world()
        self._runners: dict[str, Runner] = {}
        #: Runners still stopped at the call their actor crashed at in the last step:
        #: the next sibling step of the same state reuses them (no re-run).
        self._spares: dict[str, Runner] = {}
        self._reconcilers = sum(1 for a in scenario.actors if a.kind == "reconciler")

    def root(self) -> Node:
        idle = {a.name: ActorState() for a in self.scenario.actors}
        return Node(self.scenario.initial_world(), idle)

    # -- comparing states

    def key(self, node: Node) -> str:
        """The state's identity for the search: `Node.key`, reduced.

        A finished actor (done or crashed) is keyed by that alone: no step takes its
        answers, and the properties that read it were decided at the step it finished
        (its outcome, its time) or the step it last wrote a lock (its lease against its
        deadline, unchanged while its holder string stays on the item). Under symmetry
        the key is the least of the state's and its mirror images'.
        """
        return self._keyed(node)[0]

    def _keyed(self, node: Node) -> tuple[str, dict[str, str]]:
        """The key, and the renaming of actors that gives it (empty: none)."""
        if not self.reduce:
            return node.key(), {}
        world = node.world.key()
        actors = [(n, repr(_reduced(a))) for n, a in node.actors.items()]
        best: tuple[str, dict[str, str]] = (world + repr(sorted(actors)), {})
        for rename, text in self._swaps:
            mirrored = sorted((rename.get(n, n), text(k)) for n, k in actors)
            key = text(world) + repr(mirrored)
            if key < best[0]:
                best = (key, rename)
        return best

    def world_key(self, world: World) -> str:
        """The world's key, the least of its mirror images' under the scenario's
        symmetry (whether or not this search reduces by it)."""
        return self.mirrored(world.key())

    def mirrored(self, key: str) -> str:
        """The least of a world key's mirror images under the scenario's symmetry."""
        swaps = [_swap(self.scenario, pair) for pair in self.scenario.symmetric]
        return min([key, *(text(key) for _, text in swaps)])

    # -- restoring a state

    def restore(self, node: Node) -> None:
        self.world = node.world.snapshot()
        for name, state in node.actors.items():
            live = self._runners.get(name)
            if state.status != "running":
                if live is not None:
                    live.kill()
                    del self._runners[name]
                continue
            if live is not None and _fits(live, state) and not live.finished:
                continue
            if live is not None:
                live.kill()
            spare = self._spares.pop(name, None)
            if spare is not None and _fits(spare, state):
                self._runners[name] = spare
                continue
            if spare is not None:
                spare.kill()
            assert state.timeout is not None
            assert state.start is not None
            runner = Runner(
                self,
                name=name,
                number=self._numbers[name],
                entry=self.specs[name].entry(state.timeout, self.scenario.lease_wait_seconds),
                start=state.start,
                history=state.history,
                timeout=state.timeout,
            )
            self._runners[name] = runner
            runner.start()

    def close(self) -> None:
        for runner in (*self._runners.values(), *self._spares.values()):
            runner.kill()
        self._runners.clear()
        self._spares.clear()

    # -- what may happen next

    def choices(self, node: Node) -> list[Choice]:
        world, actors = node.world, node.actors
        found: list[Choice] = []
        running = {n: a for n, a in actors.items() if a.status == "running"}
        busy = any(a.pending and a.pending.kind != "sleep" for a in running.values())
        sleepers = [a.pending.wake for a in running.values() if a.pending and a.pending.wake]
        earliest = min((w for w in sleepers if w is not None), default=None)
        for name, actor in sorted(running.items()):
            if not self.reduce:
                break
            if self._local(world, actor.pending) or self._alone(world, name, actors, actor):
                # Persistent set: a read nothing can change any more commutes with every
                # other step, so only this actor's choices are explored here.
                return self._actor_choices(world, name, actor, busy=True, earliest=None)
        for name, actor in sorted(running.items()):
            found += self._actor_choices(world, name, actor, busy=busy, earliest=earliest)
        return found + self._world_choices(world, actors, running)

    def _local(self, world: World, pending: Pending | None) -> bool:
        """Whether `pending` reads what no step of anyone can change any more."""
        if pending is None:
            return False
        chunked = all(j["status"] == "chunking_complete" for j in world.jobs.values())
        if pending.label in ("jobs.load", "jobs.in_flight"):
            return chunked
        if pending.label == "completions.count" and pending.job_id is not None:
            job = world.jobs[pending.job_id]
            return set(range(job["total_segments"])) <= world.completions[pending.job_id]
        if pending.label in ("lock.write_cursor", "lock.read") and pending.job_id == CURSOR:
            return self._reconcilers == 1
        return False

    @staticmethod
    def _alone(
        world: World, name: str, actors: Mapping[str, ActorState], actor: ActorState
    ) -> bool:
        """Whether `actor` reads the locks while nobody else can write them any more."""
        pending = actor.pending
        if pending is None or pending.label not in ("lock.read", "lock.read_many"):
            return False
        others = (a.status for n, a in actors.items() if n != name)
        unclaimed = any(not m.consumed for m in world.queue)
        return not unclaimed and all(status in ("done", "crashed") for status in others)

    def _actor_choices(
        self, world: World, name: str, actor: ActorState, *, busy: bool, earliest: float | None
    ) -> list[Choice]:
        found: list[Choice] = []
        pending = actor.pending
        assert pending is not None
        if pending.kind == "sleep":
            # Time moves only when no call is in flight, sleepers waking in order.
            if not busy and pending.wake == earliest:
                found.append(Choice(name, "step"))
            return found
        found.append(Choice(name, "step"))
        if world.crashes_left:
            found.append(Choice(name, "crash_before"))
            if pending.kind != "read":
                found.append(Choice(name, "crash_after"))
        if world.lost_left:
            found.append(Choice(name, "lost"))
            if pending.kind == "write":
                found.append(Choice(name, "lost_retry"))
        if world.errors_left:
            found.append(Choice(name, "error"))
        return found

    def _world_choices(
        self, world: World, actors: Mapping[str, ActorState], running: Mapping[str, ActorState]
    ) -> list[Choice]:
        found: list[Choice] = []
        for job in self.scenario.jobs:
            job_id = job.job_id
            for index in range(job.total):
                if index not in world.completions[job_id]:
                    found.append(Choice("worker", "write", (job_id, index)))
            if world.jobs[job_id]["status"] != "chunking_complete":
                found.append(Choice("chunker", "chunk", job_id))
        for name, actor in sorted(actors.items()):
            spec = self.specs[name]
            if actor.status == "idle" and spec.ready(world):
                found += [Choice(name, "start", t) for t in spec.timeouts]
        for message in world.queue:
            if not message.consumed:
                found.append(Choice("media-worker", "claim", message.message_id))
        if not running and any(a.status == "idle" for a in actors.values()):
            target = self._next_lease_end(world)
            if target is not None:
                found.append(Choice("clock", "tick", target))
        return found

    @staticmethod
    def _next_lease_end(world: World) -> float | None:
        ends = []
        for item in world.locks.items.values():
            if "enqueued_at" in item or "reassembly_started_at" in item:
                continue
            lease_over = LockRecord.from_raw(item).lease_end(core.MAX_LEASE, world.clock)
            ends.append(lease_over + core.SKEW_SECONDS)
        ahead = [e for e in ends if e > world.clock]
        return float(min(ahead)) if ahead else None

    # -- taking a step

    def apply(self, node: Node, choice: Choice) -> Node:
        """Take `choice` from `node` (restored), giving the next state."""
        world = self.world
        actors = dict(node.actors)
        name = choice.actor
        if name in self.specs and choice.what != "start":
            state, step = self._actor_step(actors[name], name, choice)
            actors[name] = state
            return Node(world, actors, node, name, step)
        step = self._world_step(choice, actors)
        return Node(world, actors, node, name, step)

    def _world_step(self, choice: Choice, actors: dict[str, ActorState]) -> str:
        world = self.world
        if choice.what == "write":
            job_id, index = cast(tuple[str, int], choice.arg)
            world.write_completion(job_id, index)
            return f"writes {job_id} segment {index}"
        if choice.what == "chunk":
            world.complete_chunking(str(choice.arg))
            return f"marks {choice.arg} chunking_complete"
        if choice.what == "claim":
            started = world.claim(str(choice.arg))
            return f"receives {choice.arg}: " + (
                "claims the lock, reassembly starts" if started else "claim refused, deletes it"
            )
        if choice.what == "tick":
            assert isinstance(choice.arg, float)
            world.clock = max(world.clock, choice.arg)
            return f"jumps to t={world.clock - T0:+g} (a lease is over)"
        assert choice.what == "start"
        timeout = float(choice.arg)  # type: ignore[arg-type]
        spec = self.specs[choice.actor]
        start = world.clock
        runner = Runner(
            self,
            name=spec.name,
            number=self._numbers[spec.name],
            entry=spec.entry(timeout, self.scenario.lease_wait_seconds),
            start=start,
            timeout=timeout,
        )
        self._runners[spec.name] = runner
        runner.start()
        state = ActorState(
            status="running",
            timeout=timeout,
            start=start,
            deadline=spec.deadline(start, timeout),
            now=start,
        )
        actors[spec.name] = self._after(state, runner)
        return f"starts ({_start_words(spec, timeout)})" + _end_words(actors[spec.name])

    def _actor_step(  # noqa: PLR0912 (one branch per fate of a call, read together)
        self, state: ActorState, name: str, choice: Choice
    ) -> tuple[ActorState, str]:
        world = self.world
        runner = self._runners[name]
        call = runner.pending
        assert call is not None
        what = choice.what
        sent = set(state.sent)
        hit = what != "step"
        if hit and sent:
            for job_id in sent:  # a fault between this actor's send and its mark
                world.faults_after_send[job_id] = world.faults_after_send.get(job_id, 0) + 1
        if what in ("crash_before", "crash_after"):
            world.crashes_left -= 1
            if what == "crash_after":
                _carry_out(call)
                if call.kind == "send" and call.job_id is not None:
                    world.faults_after_send[call.job_id] = (
                        world.faults_after_send.get(call.job_id, 0) + 1
                    )
            del self._runners[name]
            old = self._spares.pop(name, None)
            if old is not None:
                old.kill()
            self._spares[name] = runner  # still at this call: a sibling may resume it
            where = "after" if what == "crash_after" else "before"
            done = replace(state, status="crashed", pending=None, now=world.clock)
            return done, f"CRASHES {where} {call.label}"
        if call.kind == "sleep":
            assert call.wake is not None
            world.clock = max(world.clock, call.wake)
            answer: tuple[str, object] = ("value", None)
            words = call.label
        elif what == "step":
            answer = _carry_out(call)
            words = f"{call.label} -> {_answer_words(answer)}"
        elif what == "lost":
            world.lost_left -= 1
            _carry_out(call)
            answer = ("raise", _timeout)
            words = f"{call.label}: carried out, ANSWER LOST (timeout)"
            if call.kind == "send" and call.job_id is not None:
                sent.add(call.job_id)
                world.faults_after_send[call.job_id] = (
                    world.faults_after_send.get(call.job_id, 0) + 1
                )
        elif what == "lost_retry":
            world.lost_left -= 1
            _carry_out(call)
            answer = _carry_out(call)
            words = f"{call.label}: carried out, ANSWER LOST, retried -> {_answer_words(answer)}"
        else:
            assert what == "error"
            world.errors_left -= 1
            answer = ("raise", _throttled)
            words = f"{call.label}: NOT carried out, AWS error (throttled)"
        if what == "step" and call.kind == "send" and answer[0] == "value" and call.job_id:
            sent.add(call.job_id)
        if call.label == "lock.mark" and answer[0] == "value" and call.job_id:
            sent.discard(call.job_id)
        answered = Answered(call.label, answer, world.clock, f"{words}@{world.clock}")
        runner.resume(answer, world.clock, answered)
        state = replace(state, history=runner.history, sent=frozenset(sent), now=world.clock)
        state = self._after(state, runner)
        if state.status != "running":
            self._runners.pop(name, None)
        return state, words + _end_words(state)

    @staticmethod
    def _after(state: ActorState, runner: Runner) -> ActorState:
        """The actor's state once its thread stopped again."""
        state = replace(state, history=runner.history)
        if runner.finished:
            if runner.error is not None:
                return replace(state, status="raised", pending=None, summary=repr(runner.error))
            assert runner.summary is not None
            summary = runner.summary
            return replace(
                state, status="done", pending=None, summary=summary.words, final=summary.final
            )
        call = runner.pending
        assert call is not None
        return replace(state, pending=Pending(call.label, call.kind, call.wake, call.job_id))

    # -- the end: faults stop, the reconciler runs

    def epilogue(self, node: Node) -> tuple[World, list[str]]:
        """Past every lease, the scheduled reconciler runs, fault-free, to the end."""
        self.close()
        self.world = node.world.snapshot()
        world = self.world
        world.crashes_left = world.lost_left = world.errors_left = 0
        notes = []
        timeout = self.scenario.final_reconciler_timeout
        spec = ActorSpec("reconciler-final", "reconciler", (timeout,))
        for run in range(self.scenario.final_reconciler_runs):
            target = self._next_lease_end(world)
            if target is not None:
                world.clock = target
            world.clock += 60.0
            summary = self._run_through(spec, run)
            notes.append(
                f"t={world.clock - T0:+g} scheduled reconciler "
                f"(timeout {self.scenario.final_reconciler_timeout:g} s): {summary}"
            )
        return world, notes

    def _run_through(self, spec: ActorSpec, run: int) -> str:
        timeout = spec.timeouts[0]
        entry = spec.entry(timeout, 0)
        runner = Runner(self, name=spec.name, number=90 + run, entry=entry, start=self.world.clock)
        runner.start()
        while not runner.finished:
            call = runner.pending
            assert call is not None
            if call.kind == "sleep":
                assert call.wake is not None
                self.world.clock = max(self.world.clock, call.wake)
                answer: tuple[str, object] = ("value", None)
            else:
                answer = _carry_out(call)
            runner.resume(answer, self.world.clock, Answered(call.label, answer, 0.0, ""))
        if runner.error is not None:
            return f"RAISED {runner.error!r}"
        return runner.summary.words if runner.summary else ""

    # -- the search

    def explore(
        self,
        *,
        stop_at_first: bool = False,
        max_states: int | None = None,
        max_levels: int | None = None,
        progress: Callable[[Report, int], None] | None = None,
    ) -> Report:
        """Breadth first over every interleaving; each state expanded once.

        Reduced (the default), with sleep sets: a step slept at a state is one that
        commutes with the step that led there and was explored from an earlier state
        already, before it (`independent`); the state after it is reached the other
        way round, by a path as short. A state reached again with a smaller sleep set
        is expanded again by the steps it had slept. `progress` is called after each
        level with the report so far and the next level's size. With `max_levels`, the
        search stops after that many levels (every interleaving of that many steps is
        explored; `Report.bounded` says it stopped there, and end-of-run liveness is
        checked only on the runs that ended within it).
        """
        report = Report(self.scenario.name)
        graph = _Graph(self.root(), self.key(self.root()), max_states)
        frontier: list[tuple[int, frozenset[Choice] | None]] = [(0, None)]
        levels = max_levels if max_levels is not None else -1
        try:
            while frontier and levels != 0:
                levels -= 1
                following: list[tuple[int, frozenset[Choice] | None]] = []
                for node_id, only in frontier:
                    node = graph.nodes[node_id]
                    enabled = self.choices(node)
                    if not enabled:
                        if node_id not in graph.terminal:
                            graph.terminal.add(node_id)
                            self._check_end(node, report)
                            if stop_at_first and report.violations:
                                return report
                        continue
                    slept = graph.sleeps[node_id]
                    if only is None and graph.expanded[node_id]:
                        continue
                    todo = [c for c in enabled if (c in only if only else c not in slept)]
                    graph.expanded[node_id] = True
                    report.slept += len(enabled) - len(todo)
                    done: list[Choice] = []
                    for choice in todo:
                        self.restore(node)
                        child = self.apply(node, choice)
                        report.transitions += 1
                        broken = safety(child.world, child.actors)
                        if broken:
                            for prop, why in broken:
                                report.violations.setdefault(prop, Violation(prop, why, child))
                            if stop_at_first:
                                return report
                            # Not slept by its siblings: beyond a violation the search
                            # stops, so the other order must be taken.
                            continue
                        asleep = frozenset(
                            z
                            for z in (*slept, *done)
                            if self.reduce and self.independent(node, z, choice)
                        )
                        done.append(choice)
                        key, rename = self._keyed(child)
                        following += graph.add(node_id, child, key, rename, asleep)
                frontier = following
                if progress is not None:
                    report.states = len(graph.edges)
                    progress(report, len(frontier))
        finally:
            self.close()
        report.bounded = bool(frontier)
        report.states = len(graph.edges)
        report.terminal = len(graph.terminal)
        report.interleavings = _count_paths(graph.edges, graph.terminal)
        return report

    # -- which steps commute

    def independent(self, node: Node, first: Choice, second: Choice) -> bool:
        """Whether two steps enabled at `node` commute: either leaves the other enabled
        and both orders give the same state. Decided by what each step reads and
        writes (conservatively: a step's footprint covers every fate of its call)."""
        reads_a, writes_a = self._footprint(node, first)
        reads_b, writes_b = self._footprint(node, second)
        return not (_meets(writes_a, reads_b | writes_b) or _meets(writes_b, reads_a))

    def _footprint(self, node: Node, choice: Choice) -> tuple[set[str], set[str]]:
        """(reads, writes) of a step, as names of what it touches.

        Every step reads the clock (an actor records the time it resumes; a start
        reads it for its deadline); a sleep or the clock's jump writes it. An actor's
        step writes the actor; a fault writes the fault budget. A call touches what it
        names: `lock:<job>` (`lock:*` for a read of many), `jobs`, `completions`, the
        `queue` (a send: message ids count the queue). The media worker's claim writes
        the job's lock and reads its message; the world's workers write `jobs` and
        `completions` (which decide whether an actor may start).
        """
        reads, writes = {"clock"}, set[str]()
        if choice.actor in self.specs and choice.what != "start":
            writes.add(f"actor:{choice.actor}")
            pending = node.actors[choice.actor].pending
            if pending is None:
                return reads, {"*"}
            if pending.kind == "sleep":
                return reads, writes | {"clock"}
            if choice.what != "step":
                writes.add(f"budget:{_BUDGET[choice.what]}")
            if choice.what not in ("crash_before", "error"):  # else not carried out
                _call_footprint(pending, reads, writes)
            return reads, writes
        if choice.what == "start":
            writes.add(f"actor:{choice.actor}")
            reads |= {"jobs", "completions"}
        elif choice.what == "claim":
            message = next(m for m in node.world.queue if m.message_id == choice.arg)
            writes |= {f"lock:{message.job_id}", f"message:{message.message_id}"}
        elif choice.what == "write":
            writes.add("completions")
        elif choice.what == "chunk":
            writes.add("jobs")
        else:
            writes.add("clock")
        return reads, writes

    def _check_end(self, node: Node, report: Report) -> None:
        report.ends.add(self.world_key(node.world))
        world, notes = self.epilogue(node)
        broken = liveness(world) + safety(world, node.actors)
        for prop, why in broken:
            if prop not in report.violations:
                report.violations[prop] = Violation(prop, why, node, notes)
        self.close()

    def follow(self, steps: list[Choice]) -> Iterator[Node]:
        """Take `steps` from the root, one by one (for hypothesis' rule machines)."""
        node = self.root()
        for choice in steps:
            self.restore(node)
            node = self.apply(node, choice)
            yield node


class _Graph:
    """The states found so far: their ids, edges, sleep sets and expansion."""

    def __init__(self, root: Node, key: str, max_states: int | None) -> None:
        self.ids: dict[str, int] = {key: 0}
        self.nodes: list[Node] = [root]
        self.edges: list[list[int]] = [[]]
        self.terminal: set[int] = set()
        #: The steps slept at each state (named as in its stored node).
        self.sleeps: list[frozenset[Choice]] = [frozenset()]
        self.expanded: list[bool] = [False]
        #: The renaming that gives each stored node its key.
        self.renames: list[dict[str, str]] = [{}]
        self._max = max_states

    def add(
        self,
        parent: int,
        child: Node,
        key: str,
        rename: dict[str, str],
        asleep: frozenset[Choice],
    ) -> list[tuple[int, frozenset[Choice] | None]]:
        """Record the edge to `child`; what to expand (a new state, or the steps an
        expanded state had slept and now must take)."""
        todo: list[tuple[int, frozenset[Choice] | None]] = []
        child_id = self.ids.get(key)
        if child_id is None:
            child_id = self.ids[key] = len(self.edges)
            self.nodes.append(child)
            self.edges.append([])
            self.sleeps.append(asleep)
            self.expanded.append(False)
            self.renames.append(rename)
            todo.append((child_id, None))
            if self._max is not None and len(self.edges) > self._max:
                raise RuntimeError(f"more than {self._max} states")
        else:
            mine = _renamed(asleep, rename, self.renames[child_id])
            missing = self.sleeps[child_id] - mine
            self.sleeps[child_id] &= mine
            if missing and self.expanded[child_id]:
                todo.append((child_id, missing))
        self.edges[parent].append(child_id)
        return todo


def _call_footprint(pending: Pending, reads: set[str], writes: set[str]) -> None:
    """What a call carried out touches (see `Explorer._footprint`)."""
    label, job_id = pending.label, pending.job_id
    if label.startswith("lock."):
        target = f"lock:{job_id}" if job_id is not None else "lock:*"
        (reads if pending.kind == "read" else writes).add(target)
    elif label.startswith("jobs."):
        reads.add("jobs")
    elif label == "completions.count":
        reads.add("completions")
    elif pending.kind == "send":
        writes.add("queue")
    else:  # a call this model does not know: touches everything
        writes.add("*")


_BUDGET = {
    "crash_before": "crash",
    "crash_after": "crash",
    "lost": "lost",
    "lost_retry": "lost",
    "error": "error",
}


def _meets(writes: set[str], touched: set[str]) -> bool:
    """Whether a step writing `writes` conflicts with one touching `touched`."""
    if "*" in writes or "*" in touched:
        return bool(writes)
    if writes & touched:
        return True
    locks = any(w.startswith("lock:") for w in writes)
    return (locks and "lock:*" in touched) or (
        "lock:*" in writes and any(t.startswith("lock:") for t in touched)
    )


def _renamed(
    choices: frozenset[Choice], mine: dict[str, str], theirs: dict[str, str]
) -> frozenset[Choice]:
    """Choices named as in a state keyed with renaming `mine`, named as in the stored
    state keyed with `theirs` (each renaming swaps pairs: its own inverse)."""
    if mine == theirs:
        return choices
    return frozenset(
        replace(c, actor=theirs.get(mine.get(c.actor, c.actor), mine.get(c.actor, c.actor)))
        for c in choices
    )


def _reduced(actor: ActorState) -> tuple[object, ...]:
    return ("finished",) if actor.status in ("done", "crashed") else actor.key()


def _swap(scenario: Scenario, pair: tuple[str, str]) -> tuple[dict[str, str], Callable[[str], str]]:
    """The renaming that swaps two symmetric actors: their names, and in text (keys,
    lock items, answers) their names and holder strings (an actor's holder ids begin
    with its name and, in hex, its number: `core.enter_actor`)."""
    first, second = pair
    numbers = {a.name: n + 1 for n, a in enumerate(scenario.actors)}
    holder = {name: f"{name}/{numbers[name]:04x}" for name in pair}
    words = {
        holder[first]: holder[second],
        holder[second]: holder[first],
        first: second,
        second: first,
    }
    pattern = re.compile("|".join(re.escape(w) for w in words))

    def text(value: str) -> str:
        return pattern.sub(lambda match: words[match.group(0)], value)

    return {first: second, second: first}, text


def _fits(runner: Runner, state: ActorState) -> bool:
    """Whether a live runner is this actor state's run, at its pending call: the same
    timeout and start (an empty history alone says nothing), the same answers."""
    a, b = runner.history, state.history
    return runner.origin == (state.timeout, state.start) and (
        len(a) == len(b) and (not a or a[-1] is b[-1])
    )


def _carry_out(call: Call) -> tuple[str, object]:
    assert call.effect is not None
    try:
        return ("value", call.effect())
    except Exception as exc:  # the service's answer (a failed condition): delivered as is
        return ("raise", _fresh(exc))


def _count_paths(edges: list[list[int]], terminal: set[int]) -> int:
    """Complete interleavings: paths from the root to an end state (the graph is acyclic)."""
    counts: dict[int, int] = {}
    order: list[int] = []
    seen: set[int] = set()
    stack: list[tuple[int, bool]] = [(0, False)]
    while stack:
        node, done = stack.pop()
        if done:
            order.append(node)
            continue
        if node in seen:
            continue
        seen.add(node)
        stack.append((node, True))
        stack += [(c, False) for c in edges[node] if c not in seen]
    for node in order:  # children before parents
        counts[node] = (1 if node in terminal else 0) + sum(counts.get(c, 0) for c in edges[node])
    return counts.get(0, 0)


# --------------------------------------------------------------------- the trace


def _start_words(spec: ActorSpec, timeout: float) -> str:
    if spec.kind == "stream":
        records = ", ".join(f"{j} segment {i}" for j, i, _ in spec.records)
        return f"stream batch [{records}], timeout {timeout:g} s"
    if spec.kind == "trigger_job":
        return f"trigger_job({spec.job_id}, timeout_seconds={timeout:g})"
    return f"reconciler run, timeout {timeout:g} s"


def _end_words(state: ActorState) -> str:
    if state.status == "done":
        return f"; returns: {state.summary}"
    if state.status == "raised":
        return f"; RAISES {state.summary}"
    return ""


def _answer_words(answer: tuple[str, object]) -> str:
    kind, value = answer
    if kind == "raise":
        assert callable(value)
        exc = value()
        if isinstance(exc, ClientError):
            return str(exc.response.get("Error", {}).get("Code"))
        return type(exc).__name__
    if isinstance(value, LoadedJobs):
        return ", ".join(
            f"{j}: {i.item['status'] if i else 'none'}" for j, i in sorted(value.items.items())
        )
    if isinstance(value, CompletionCount):
        return f"{value.count} completions"
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "[" + ", ".join(getattr(j, "job_id", str(j)) for j in value) + "]"
    if isinstance(value, dict):
        if "Item" in value:
            return describe_lock(value["Item"])
        if "Responses" in value:
            items = next(iter(value["Responses"].values()))
            return "[" + ", ".join(describe_lock(i) for i in items) + "]"
        return "ok"
    if isinstance(value, Decimal | int | float):
        return str(value)
    return "ok"


def render_trace(violation: Violation) -> str:
    nodes = violation.node.trace()
    lines = [
        f"VIOLATION of {violation.prop}: {violation.why}",
        f"shortest interleaving: {len(nodes) - 1} steps",
        f"{'#':>3}  {'actor':<14} step",
        f"{'':>3}  {'':<14} -> state",
    ]
    lines.append(f"{0:>3}  {'(start)':<14} -> {nodes[0].world.describe()}")
    for number, node in enumerate(nodes[1:], 1):
        lines.append(f"{number:>3}  {node.actor:<14} {node.step}")
        lines.append(f"{'':>3}  {'':<14} -> {node.world.describe()}")
    if violation.epilogue:
        lines.append("then the faults stop:")
        lines += [f"       {note}" for note in violation.epilogue]
    if violation.prop == LIVENESS:
        lines.append(f"       {violation.why}")
    if violation.prop == NO_ESCAPE:
        lines.append("       (an exception escaped an entry point)")
    return "\n".join(lines)
