"""`reassembly-trigger local up`: the embedded AWS in the foreground, for other shells."""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import threading
from contextlib import ExitStack, suppress
from pathlib import Path
from typing import Any

from reassembly_trigger.local.aws.stack import (
    DEFAULT_PREFIX,
    DEFAULT_REGION,
    LocalAws,
    ResourceNames,
    create_resources,
    embedded_moto_server,
    environment,
    served_regions,
)
from reassembly_trigger.local.commands.common import UsageError, int_in

#: Not read by the Lambda: where `reassembly-trigger poll` sends discarded batches.
ON_FAILURE_QUEUE_VARIABLE = "ON_FAILURE_QUEUE_URL"


def register(subparsers: Any) -> None:
    """Add the `local` command and its `up` subcommand."""
    local: argparse.ArgumentParser = subparsers.add_parser(
        "local", help="the embedded AWS stack (local up)", description="The embedded AWS stack."
    )
    actions = local.add_subparsers(dest="local_command", required=True, metavar="ACTION")
    up: argparse.ArgumentParser = actions.add_parser(
        "up",
        help="run a moto server with the pipeline's tables and queues until Ctrl-C",
        description=(
            "Start a moto server on 127.0.0.1, create the three tables (streams "
            "NEW_AND_OLD_IMAGES on SegmentCompletions and Jobs), the reassembly queue, its "
            "dead-letter queue and the poller's on-failure queue, print the variables to "
            "export in other shells, and serve in the foreground until Ctrl-C."
        ),
    )
    up.add_argument(
        "--port",
        type=int_in(0, 65535, what="a port number"),
        default=0,
        help="port on 127.0.0.1, 0-65535 (default: 0, any free port)",
    )
    up.add_argument(
        "--prefix",
        type=_prefix,
        default=DEFAULT_PREFIX,
        help="name prefix of the tables and queues, as the contract's events name them "
        "(letters, digits, '-', '_'; at most 52)",
    )
    up.add_argument(
        "--region",
        type=_region,
        default=DEFAULT_REGION,
        help="region of the tables and queues (one AWS has: moto serves no other)",
    )
    up.add_argument("--fifo", action="store_true", help="make the reassembly queue a FIFO queue")
    up.add_argument(
        "--env-file",
        type=Path,
        metavar="FILE",
        help="also write the export lines to this file, for `source FILE` (default: none)",
    )
    up.set_defaults(run=run, extra="local")


def _prefix(text: str) -> str:
    """An argparse type: a prefix every table and queue name accepts."""
    try:
        for fifo in (False, True):
            ResourceNames.with_prefix(text, fifo=fifo)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _region(text: str) -> str:
    """An argparse type: a region moto serves DynamoDB, its streams and SQS in."""
    if text not in served_regions():
        raise argparse.ArgumentTypeError(
            f"not a region moto serves DynamoDB and SQS in (e.g. {DEFAULT_REGION}, "
            f"eu-west-1): {text!r}"
        )
    return text


def check_writable(path: Path) -> None:
    """`UsageError` unless `path` can be written (its folder exists and takes files)."""
    if path.is_dir():
        raise UsageError(f"--env-file {path}: is a directory")
    if not path.parent.is_dir():
        raise UsageError(f"--env-file {path}: no such directory {path.parent}")
    if not os.access(path if path.exists() else path.parent, os.W_OK):
        raise UsageError(f"--env-file {path}: not writable")


def run(args: argparse.Namespace) -> int:
    """Serve until Ctrl-C (or SIGTERM)."""
    if args.env_file is not None:
        check_writable(args.env_file)  # before anything starts
    stop = threading.Event()
    with ExitStack() as stack:
        try:
            endpoint = stack.enter_context(embedded_moto_server(args.port))
        except OSError as exc:
            message = f"cannot listen on 127.0.0.1:{args.port}: {exc.strerror or exc}"
            raise UsageError(message) from exc
        # Ctrl-C ends the block quietly (this exits first), then the server stops.
        stack.enter_context(suppress(KeyboardInterrupt))
        aws = LocalAws.connect(endpoint, args.region)
        resources = create_resources(aws, ResourceNames.with_prefix(args.prefix, fifo=args.fifo))
        # What a shell needs to run the Lambda, the poller or a worker locally.
        env = environment(resources, endpoint, args.region)
        env[ON_FAILURE_QUEUE_VARIABLE] = resources.on_failure_queue_url
        lines = [f"export {name}={shlex.quote(value)}" for name, value in env.items()]
        print(f"# moto server on {endpoint}; paste these in other shells (Ctrl-C here stops it)")
        print("\n".join(lines))
        print(f"# streams: {resources.segment_completions_stream_arn}")
        print(f"#          {resources.jobs_stream_arn}")
        if args.env_file:
            args.env_file.write_text("\n".join(lines) + "\n")
            print(f"# also written to {args.env_file}: source {shlex.quote(str(args.env_file))}")
        sys.stdout.flush()
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
        while not stop.wait(0.5):
            pass
    print("# moto server stopped", file=sys.stderr)
    return 0
