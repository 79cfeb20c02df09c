"""`reassembly-trigger diagram`: write (or check) docs/state-diagram.md."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

from reassembly_trigger.local.commands.common import DISTRIBUTION, EXIT_FAILED, UsageError

#: Where the diagram lives, relative to the repository's root.
DIAGRAM = Path("docs") / "state-diagram.md"
#: The project's name in its pyproject.toml, which marks the repository's root.
_PROJECT_LINE = f'name = "{DISTRIBUTION}"'


def repository_root(package_dir: Path | None = None) -> Path | None:
    """The checkout this package runs from (None when it is installed elsewhere, e.g.
    from a wheel): the folder above `reassembly_trigger/` holding this project's
    pyproject.toml."""
    if package_dir is None:
        import reassembly_trigger

        package_dir = Path(reassembly_trigger.__file__).resolve().parent
    root = package_dir.parent
    pyproject = root / "pyproject.toml"
    if not pyproject.is_file() or _PROJECT_LINE not in pyproject.read_text(errors="replace"):
        return None
    return root


def default_output() -> Path | None:
    """docs/state-diagram.md of the repository, wherever the command is run from."""
    root = repository_root()
    return None if root is None else root / DIAGRAM


def register(subparsers: Any) -> None:
    """Add the `diagram` command."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "diagram",
        help="generate docs/state-diagram.md from the machine declaration",
        description="Draw the per-job state machine (mermaid) and its reason tables into "
        "the repository's docs/state-diagram.md, whatever the current directory. Outside "
        "a checkout (the package installed from a wheel), give --output or --stdout.",
    )
    found = default_output()
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        metavar="FILE",
        help=f"file to write or check (default: {found or 'none outside a checkout'})",
    )
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if the file differs from the machine"
    )
    parser.add_argument("--stdout", action="store_true", help="print instead of writing")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Write, print or check the diagram."""
    from reassembly_trigger.local.commands.diagram.state_diagram import document

    text = document()
    if args.stdout:
        sys.stdout.write(text)
        return 0
    output: Path | None = args.output or default_output()
    if output is None:
        raise UsageError(
            "this package is not running from a checkout of its repository, so there is no "
            "docs/state-diagram.md to write or check: give --output FILE or --stdout"
        )
    if args.check:
        current = output.read_text() if output.exists() else ""
        if current != text:
            # The command that rewrites this very file (not the checkout's default).
            fix = "reassembly-trigger diagram"
            if args.output is not None:
                fix += f" --output {shlex.quote(str(args.output))}"
            print(f"{output} is out of date: run `{fix}`", file=sys.stderr)
            return EXIT_FAILED
        print(f"{output} is up to date")
        return 0
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text)
    print(f"wrote {output}")
    return 0
