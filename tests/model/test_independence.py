"""The model stands on the core alone: nothing of `reassembly_trigger.local` (the
tooling: moto, the simulation, the invocations it builds) is imported by it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MODULES = sorted(p.stem for p in Path(__file__).parent.glob("*.py") if p.stem != "__init__")


def test_no_module_of_the_model_imports_the_local_tooling() -> None:
    """Imported in a fresh interpreter, the model loads no `reassembly_trigger.local`."""
    imports = "; ".join(f"import tests.model.{m}" for m in MODULES)
    probe = (
        f"import sys; {imports}; "
        "print([m for m in sys.modules if m.startswith('reassembly_trigger.local')])"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
    assert "world" in MODULES
