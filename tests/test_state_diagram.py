"""docs/state-diagram.md is generated from the machine declaration, and kept current."""

from __future__ import annotations

from pathlib import Path

from reassembly_trigger.local.cli import main
from reassembly_trigger.local.diagram import document, mermaid
from reassembly_trigger.machine import FAIL_REASONS, SKIP_REASONS, STATES, TRANSITIONS

DIAGRAM = Path(__file__).resolve().parents[1] / "docs" / "state-diagram.md"


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
