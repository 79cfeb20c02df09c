"""`reassembly-trigger`: the command line of the local tooling.

Each command lives in its own module exposing `register(subparsers)`; this module
only assembles them.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import MutableMapping, Sequence

#: Command modules, in the order `--help` lists them.
COMMAND_MODULES = (
    "reassembly_trigger.local.commands.simulate",
    "reassembly_trigger.local.commands.local_up",
    "reassembly_trigger.local.commands.poll",
    "reassembly_trigger.local.commands.replay",
    "reassembly_trigger.local.commands.doctor",
    "reassembly_trigger.local.commands.reconcile",
    "reassembly_trigger.local.commands.explain",
    "reassembly_trigger.local.commands.bench",
    "reassembly_trigger.local.commands.diagram",
)


def build_parser() -> argparse.ArgumentParser:
    """The full parser, with every command registered."""
    parser = argparse.ArgumentParser(
        prog="reassembly-trigger",
        description="Local tooling for the reassembly-trigger Lambda.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue  # a command not built yet
        module.register(subparsers)
    return parser


def align_region(environ: MutableMapping[str, str]) -> None:
    """Make `AWS_REGION`, when set, the region botocore uses too.

    botocore takes the region from `AWS_DEFAULT_REGION` or the profile's `region`, never
    from `AWS_REGION`; the AWS CLI, which the runbooks use beside these commands, reads
    `AWS_REGION` first. Copying it over lets either variable alone work, and both agree
    with `aws` when both are set.
    """
    region = environ.get("AWS_REGION", "").strip()
    if region:
        environ["AWS_DEFAULT_REGION"] = region


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; its return value is the exit status."""
    align_region(os.environ)
    args = build_parser().parse_args(argv)
    status: int = args.run(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
