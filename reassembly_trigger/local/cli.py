"""`reassembly-trigger`: the command line of the local and operator tooling.

Each command's module (`commands/NAME.py`, or `commands/NAME/cli.py` for a command with
logic of its own) exposes `register(subparsers)`, which sets `run` (and `extra`, the
optional extra the command needs) as parser defaults; this module
assembles them and turns every failure into one line on stderr and a documented exit
code (README, "Exit codes"). It imports neither rich nor moto: the commands an operator
runs against AWS work without the `local` extra, and a command whose extra is missing
says how to install it.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import traceback
from collections.abc import MutableMapping, Sequence
from typing import Any

from reassembly_trigger.local.commands.common import (
    DISTRIBUTION,
    EXIT_AWS,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    CommandError,
    UsageError,
    extra_providing,
    missing_extra,
    needs_extra,
    no_credentials_message,
    no_region_message,
    one_line,
)

#: Command modules, in the order `--help` lists them.
COMMAND_MODULES = (
    "reassembly_trigger.local.commands.simulate",
    "reassembly_trigger.local.commands.local_up",
    "reassembly_trigger.local.commands.poll",
    "reassembly_trigger.local.commands.replay",
    "reassembly_trigger.local.commands.doctor.cli",
    "reassembly_trigger.local.commands.reconcile.cli",
    "reassembly_trigger.local.commands.explain.cli",
    "reassembly_trigger.local.commands.bench.cli",
    "reassembly_trigger.local.commands.diagram.cli",
)


class _HelpFormatter(argparse.HelpFormatter):
    """Shows every option's default, unless its help already speaks of it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        # Identity, not equality: a default of 0 is shown, False (a flag) is not.
        unset = default is None or default is False or default is argparse.SUPPRESS
        if not action.option_strings or "default" in text or unset or default == []:
            return text
        return f"{text} (default: %(default)s)"


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose help shows defaults (subcommands inherit it)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)


def version() -> str:
    """The installed version of this package."""
    from importlib import metadata

    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    """The full parser, with every command registered."""
    parser = _Parser(
        prog="reassembly-trigger",
        description="Local and operator tooling for the reassembly-trigger Lambda. "
        "Exit codes: 0 ok, 1 a negative answer (verdict, failed run or check), 2 usage or "
        "configuration error, 3 AWS error, 4 internal error, 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback of any error (for bug reports)"
    )
    subparsers = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_Parser
    )
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def classify(exc: Exception) -> tuple[str, int]:
    """One line and the exit code for an error that reached the command line."""
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        NoCredentialsError,
        NoRegionError,
        PartialCredentialsError,
        ProfileNotFound,
    )

    from reassembly_trigger.settings import SettingsError

    if isinstance(exc, CommandError):
        return one_line(exc), exc.exit_code
    if isinstance(exc, SettingsError):
        hint = "set them as for the Lambda; locally, export what `local up` prints"
        return f"{one_line(exc)} ({hint})", EXIT_USAGE
    if isinstance(exc, NoRegionError):
        return no_region_message(), EXIT_USAGE
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return f"{no_credentials_message()} ({one_line(exc)})", EXIT_USAGE
    if isinstance(exc, ProfileNotFound):
        return f"AWS configuration: {one_line(exc)}", EXIT_USAGE
    if isinstance(exc, ClientError | BotoCoreError):
        # botocore's own sentence names the operation and the code, or the endpoint
        # that did not answer.
        return one_line(exc), EXIT_AWS
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        extra = extra_providing(exc.name)
        if extra is not None:
            return needs_extra(extra, [exc.name]), EXIT_USAGE
    if isinstance(exc, OSError) and exc.strerror:
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror}", EXIT_USAGE
    return (
        f"unexpected error: {type(exc).__name__}: {one_line(exc)} "
        "(rerun with --debug for the traceback, and report it)",
        EXIT_INTERNAL,
    )


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
    """Run one command; its return value is the exit status (see `classify` for errors)."""
    align_region(os.environ)
    args = build_parser().parse_args(argv)
    try:
        problem = missing_extra(getattr(args, "extra", None))
        if problem is not None:
            raise UsageError(problem)
        status: int = args.run(args)
    except KeyboardInterrupt:
        return _fail(args, "interrupted", EXIT_INTERRUPTED)
    except Exception as exc:
        return _fail(args, *classify(exc))
    return status


def _fail(args: argparse.Namespace, message: str, status: int) -> int:
    """Report an error: the traceback with --debug, a JSON document on stdout with
    --json (for scripts), and always one line on stderr."""
    if args.debug:
        traceback.print_exc()
    sub = getattr(args, "local_command", None)
    name = f"{args.command} {sub}" if sub else str(args.command)
    if getattr(args, "json", False):
        document = {"command": name, "error": message, "exit_status": status}
        if getattr(args, "job_id", None):
            document["job_id"] = args.job_id
        print(json.dumps(document))
    print(f"{name}: {message}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
