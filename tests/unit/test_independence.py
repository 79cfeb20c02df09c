"""The unit tier stands on the core alone: nothing of `reassembly_trigger.local` (the
tooling: moto, the simulations, the kit) is imported by its tests, by the conftest every
tier shares, or by `reassembly_trigger.testing`, and every test file lives in a tier that
pytest runs."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"
MODULES = sorted(p.stem for p in Path(__file__).parent.glob("test_*.py"))
#: The tiers, fastest first, as pyproject's testpaths lists them.
TIERS = ["unit", "model", "trigger", "tooling", "build"]


def test_the_unit_tier_imports_nothing_of_the_local_tooling() -> None:
    """Imported in a fresh interpreter (the shared conftest, `testing` and every unit
    test module), nothing of `reassembly_trigger.local`, nor moto, is loaded."""
    imports = "; ".join(f"import tests.unit.{m}" for m in MODULES)
    probe = (
        "import sys; sys.path.insert(0, 'tests'); import conftest; "
        f"import reassembly_trigger.testing; {imports}; "
        "print(sorted(m for m in sys.modules "
        "if m.startswith(('reassembly_trigger.local', 'moto'))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
    assert {"test_evaluation", "test_records", "test_independence"} <= set(MODULES)


def test_every_test_file_lives_in_a_tier_that_pytest_runs() -> None:
    """No test file at the top of tests/ or in a folder pyproject's testpaths leaves out:
    each would be a test nobody runs, or one run by no tier's rules."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    testpaths = pyproject["tool"]["pytest"]["ini_options"]["testpaths"]
    assert [p for p in testpaths if p.startswith("tests/")] == [f"tests/{t}" for t in TIERS]
    test_files = sorted(TESTS.rglob("test_*.py"))
    assert len(test_files) > 40
    for path in test_files:
        tier = path.relative_to(TESTS).parts[0]
        assert tier in TIERS, f"{path.relative_to(ROOT)} is in no tier ({', '.join(TIERS)})"
