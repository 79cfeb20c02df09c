"""`reassembly-trigger diagram`: write (or check) docs/state-diagram.md."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from reassembly_trigger.local.diagram import document

DEFAULT_PATH = Path("docs/state-diagram.md")


def register(subparsers: Any) -> None:
    """Add the `diagram` command."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "diagram",
        help="generate docs/state-diagram.md from the machine declaration",
        description="Draw the per-job state machine (mermaid) and its reason tables.",
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_PATH, help="file to write")
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if the file differs from the machine"
    )
    parser.add_argument("--stdout", action="store_true", help="print instead of writing")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Write, print or check the diagram."""
    text = document()
    if args.stdout:
        sys.stdout.write(text)
        return 0
    if args.check:
        current = args.output.read_text() if args.output.exists() else ""
        if current != text:
            print(
                f"{args.output} is out of date: run `reassembly-trigger diagram`", file=sys.stderr
            )
            return 1
        print(f"{args.output} is up to date")
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(f"wrote {args.output}")
    return 0
