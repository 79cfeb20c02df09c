"""What init leaves behind is safe to snapshot and restore (Lambda SnapStart).

A SnapStart function is initialised once, snapshotted, and every new sandbox resumes
from that snapshot: whatever init created is shared by all of them. These tests pin
down that init creates nothing per process (no trigger, clients, pool or clock), and
that the one shared state init cannot avoid, the `random` module's, is reseeded on
each restore through Lambda's own hook registry.
"""

from __future__ import annotations

import inspect
import json
import random
import subprocess
import sys
import types

import pytest

from reassembly_trigger import runtime


def test_a_restore_gives_each_sandbox_its_own_random_state(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The after-restore hook is registered with Lambda's registry, and two sandboxes
    restored from one snapshot draw different retry jitter once it has run."""
    registered: list[object] = []
    registry = types.ModuleType("snapshot_restore_py")
    registry.register_after_restore = lambda hook, *a, **k: registered.append(hook)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", registry)

    assert runtime.register_snapstart_hooks() is True
    assert registered == [runtime.reseed_after_restore]

    # The jitter every backoff of the deployed trigger draws from (build_trigger's default).
    jitter = inspect.signature(runtime.build_trigger).parameters["uniform"].default
    saved = random.getstate()
    try:
        random.seed(20261115)
        snapshot = random.getstate()
        draws, unhooked = [], []
        for _sandbox in range(2):
            random.setstate(snapshot)
            unhooked.append([jitter(0, 1) for _ in range(4)])
            random.setstate(snapshot)
            runtime.reseed_after_restore()
            draws.append([jitter(0, 1) for _ in range(4)])
    finally:
        random.setstate(saved)
    # The jitter is the snapshot's generator (without the hook both sandboxes draw alike)
    # and the hook gives each its own.
    assert unhooked[0] == unhooked[1]
    assert draws[0] != draws[1]


def test_outside_lambda_there_is_no_hook_registry_and_nothing_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without Lambda's `snapshot_restore_py` (tests, workers, the CLI) nothing is registered."""
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", None)

    assert runtime.register_snapstart_hooks() is False


@pytest.mark.parametrize(
    "entry_point", ["reassembly_trigger.handler", "reassembly_trigger.reconcile"]
)
def test_importing_an_entry_point_creates_nothing_per_process(entry_point: str) -> None:
    """Init (the import a snapshot captures) builds no trigger and no client (so no
    pool and no connection): all of it is created on the first invocation, after any
    restore."""
    probe = f"""
import json
import {entry_point}
from reassembly_trigger import clients, runtime
print(json.dumps({{
    "trigger": runtime.PROCESS_TRIGGER.built,
    "clients": len(clients._cache),
}}))
"""
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == {
        "trigger": False,
        "clients": 0,
    }
