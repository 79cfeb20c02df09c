"""docs/state-diagram.md is generated from the machine declaration, and kept current."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from reassembly_trigger.local.cli import main
from reassembly_trigger.local.commands.diagram.cli import repository_root
from reassembly_trigger.local.commands.diagram.state_diagram import document, mermaid
from reassembly_trigger.machine import FAIL_REASONS, SKIP_REASONS, STATES, TRANSITIONS

ROOT = Path(__file__).resolve().parents[2]
DIAGRAM = ROOT / "docs" / "state-diagram.md"


def test_the_committed_diagram_is_what_the_machine_generates() -> None:
    """Change machine.py without running `reassembly-trigger diagram` and this fails."""
    assert DIAGRAM.read_text() == document()


def test_the_diagram_draws_every_state_and_transition() -> None:
    """Every declared state and every (source, dest, trigger) edge appears in the mermaid."""
    drawing = mermaid()
    for state in STATES:
        assert f'state "{state.value}" as {state.value}' in drawing
    for spec in TRANSITIONS:
        sources = [spec["source"]] if isinstance(spec["source"], str) else spec["source"]
        for source in sources:
            assert f"{source} --> {spec['dest']}: {spec['trigger']}" in drawing


def test_the_reason_tables_list_every_code() -> None:
    """Each skip and failure reason is documented beside the diagram."""
    text = document()
    for reason in [*SKIP_REASONS, *FAIL_REASONS]:
        assert f"| `{reason.value}` |" in text


def test_diagram_check_command_detects_drift(tmp_path: Path) -> None:
    """`diagram --check` exits 1 on a stale file and 0 after regenerating."""
    target = tmp_path / "state-diagram.md"
    target.write_text("stale\n")
    assert main(["diagram", "--check", "--output", str(target)]) == 1
    assert main(["diagram", "--output", str(target)]) == 0
    assert main(["diagram", "--check", "--output", str(target)]) == 0


def test_diagram_check_finds_the_repositorys_file_from_any_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Run from elsewhere, `diagram --check` checks this repository's docs/state-diagram.md
    (not ./docs) and writes nothing where it runs."""
    monkeypatch.chdir(tmp_path)

    assert main(["diagram", "--check"]) == 0

    assert capsys.readouterr().out == f"{DIAGRAM} is up to date\n"
    assert list(tmp_path.iterdir()) == []


def test_outside_a_checkout_diagram_refuses_without_an_output(tmp_path: Path) -> None:
    """GIVEN the package installed outside its repository (as from a wheel) WHEN `diagram`
    runs without --output THEN it exits 2 with one line and writes nothing; --stdout
    still prints the diagram."""
    site = tmp_path / "site-packages"
    shutil.copytree(
        ROOT / "reassembly_trigger",
        site / "reassembly_trigger",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    run_here = tmp_path / "elsewhere"
    run_here.mkdir()

    def diagram(*args: str) -> subprocess.CompletedProcess[str]:
        code = "import sys; from reassembly_trigger.local.cli import main; sys.exit(main())"
        return subprocess.run(
            [sys.executable, "-c", code, "diagram", *args],
            cwd=run_here,
            env={**os.environ, "PYTHONPATH": str(site)},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    refused, printed = diagram(), diagram("--stdout")

    assert refused.returncode == 2
    assert refused.stderr.startswith("diagram: this package is not running from a checkout")
    assert len(refused.stderr.splitlines()) == 1
    assert list(run_here.iterdir()) == []
    assert printed.returncode == 0
    assert printed.stdout == document()


def test_the_repository_is_found_only_beside_its_pyproject(tmp_path: Path) -> None:
    """The folder above the package is the checkout only if its pyproject is this one's."""
    assert repository_root() == ROOT
    (tmp_path / "reassembly_trigger").mkdir()
    assert repository_root(tmp_path / "reassembly_trigger") is None
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "something-else"\n')
    assert repository_root(tmp_path / "reassembly_trigger") is None


def test_a_stale_file_named_by_output_is_told_the_command_that_rewrites_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`diagram --check --output missing.md` said "run `reassembly-trigger diagram`",
    which writes the checkout's file, not this one: the advice carries the --output."""
    target = tmp_path / "missing.md"
    capsys.readouterr()

    assert main(["diagram", "--check", "--output", str(target)]) == 1

    assert f"run `reassembly-trigger diagram --output {target}`" in capsys.readouterr().err
