"""What every command shares: exit codes, errors as one line, option types, wording.

Imports nothing beyond the standard library, so the CLI starts (and `--help` works)
without the optional extras.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import math
import os
import re
import shlex
import sys
from collections.abc import Callable, Iterable, Mapping
from enum import Enum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

#: Exit codes, documented in the README ("The command line").
EXIT_OK = 0
#: A negative answer: a verdict needing action, a failed run, a check that did not hold.
EXIT_FAILED = 1
#: The command cannot run as asked: a bad option, environment variable, file or extra.
EXIT_USAGE = 2
#: AWS (or the endpoint standing in for it) refused or did not answer.
EXIT_AWS = 3
#: A bug of this tool: rerun with --debug and report the traceback.
EXIT_INTERNAL = 4
#: Stopped by Ctrl-C (128 + SIGINT, as shells report it).
EXIT_INTERRUPTED = 130


#: The distribution the command comes from (pyproject's `name`).
DISTRIBUTION = "stereo-spot-reassembly-trigger"

#: pyproject's optional extras and the top-level modules each one brings. A command
#: declares the extra it always needs with `parser.set_defaults(extra="local")`, or
#: calls `require_extra` when only some of its output needs one.
EXTRAS: dict[str, tuple[str, ...]] = {
    "ops": ("rich",),  # the operator's commands: tables and colours
    "local": ("rich", "moto"),  # the embedded AWS: simulate, local up, bench
}


class CommandError(Exception):
    """A failure the user can act on: one line on stderr and an exit code."""

    exit_code = EXIT_USAGE


class UsageError(CommandError):
    """A bad option, environment variable or file (exit 2)."""


class AwsError(CommandError):
    """AWS (or the local endpoint) refused a call or did not answer (exit 3)."""

    exit_code = EXIT_AWS


def one_line(text: object) -> str:
    """`text` on a single line (botocore and OS errors sometimes span several)."""
    return " ".join(str(text).split())


def aws_error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore `ClientError` ('' for anything else)."""
    response = getattr(exc, "response", None)
    return str(response.get("Error", {}).get("Code", "")) if isinstance(response, Mapping) else ""


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def missing_extra(extra: str | None) -> str | None:
    """One line naming what `extra` lacks here and how to install it; None when
    everything it brings is importable."""
    if extra is None:
        return None
    missing = [module for module in EXTRAS[extra] if not _installed(module)]
    return needs_extra(extra, missing) if missing else None


def needs_extra(extra: str, missing: Iterable[str]) -> str:
    """One line: `extra` is needed, which modules are missing, and the exact command that
    installs it into the environment this command runs in."""
    install = f"{shlex.quote(sys.executable)} -m pip install '{DISTRIBUTION}[{extra}]'"
    return f"needs the '{extra}' extra ({', '.join(missing)} not installed): {install}"


def require_extra(extra: str) -> None:
    """Raise `UsageError` (with the install command) unless `extra` is installed."""
    problem = missing_extra(extra)
    if problem is not None:
        raise UsageError(problem)


def extra_providing(module: str) -> str | None:
    """The smallest extra that installs `module` (None: no extra does)."""
    root = module.partition(".")[0]
    providers = [extra for extra, modules in EXTRAS.items() if root in modules]
    return min(providers, key=lambda extra: len(EXTRAS[extra])) if providers else None


def plural(count: int, singular: str, plural_form: str | None = None) -> str:
    """`1 record`, `2 records`, `1 retry`, `3 retries`."""
    if count == 1:
        return f"{count} {singular}"
    if plural_form is None:
        if singular.endswith("y") and singular[-2:-1] not in "aeiou":
            plural_form = singular[:-1] + "ies"
        elif singular.endswith(("s", "x", "ch", "sh")):
            plural_form = singular + "es"
        else:
            plural_form = singular + "s"
    return f"{count} {plural_form}"


def plain(value: Any) -> str:
    """A value as a person reads it: enums by their value, mappings as `key value, ...`,
    never a Python repr."""
    if isinstance(value, Enum):
        return plain(value.value)
    if isinstance(value, Mapping):
        if not value:
            return "none"
        return ", ".join(f"{plain(key)} {plain(item)}" for key, item in value.items())
    if isinstance(value, list | tuple | set | frozenset):
        return ", ".join(plain(item) for item in value) or "none"
    return str(value)


def details(event: Mapping[str, Any], skip: Iterable[str] = ()) -> str:
    """A log event's fields as `key=value` pairs, plain values, for one human line."""
    left_out = set(skip)
    return " ".join(f"{key}={plain(value)}" for key, value in event.items() if key not in left_out)


def int_in(low: int, high: int, *, what: str = "a whole number") -> Callable[[str], int]:
    """An argparse type: an integer in [low, high]."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be {low}..{high}, got {value}")
        return value

    return parse


def seconds(
    *, low: float = 0.0, high: float | None = None, allow_low: bool = False
) -> Callable[[str], float]:
    """An argparse type: seconds above `low` (or equal to it with `allow_low`), at most `high`."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
        too_low = value < low if allow_low else value <= low
        if too_low or not math.isfinite(value):
            bound = f"at least {low:g}" if allow_low else f"more than {low:g}"
            raise argparse.ArgumentTypeError(f"must be {bound} seconds, got {text}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"must be at most {high:g} seconds, got {text}")
        return value

    return parse


def add_endpoint_option(parser: argparse.ArgumentParser | Any) -> None:
    """`--endpoint-url`, the same option with the same words in every command."""
    parser.add_argument(
        "--endpoint-url",
        default=None,
        metavar="URL",
        help="AWS endpoint URL for every call, e.g. the one `local up` prints "
        "(default: $AWS_ENDPOINT_URL if set, else AWS itself)",
    )


def report_console(piped_width: int) -> Console:
    """A rich console on stdout; piped output is `piped_width` columns wide, not 80:
    reports get pasted into tickets."""
    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else piped_width)


def print_trimmed(console: Console, *renderables: Any) -> None:
    """Print without the blanks rich pads table titles and grid cells with."""
    with console.capture() as captured:
        console.print(*renderables)
    console.file.write("".join(line.rstrip() + "\n" for line in captured.get().splitlines()))


def use_endpoint(endpoint_url: str | None) -> str | None:
    """Point the Lambda's own clients (which read the environment) at `endpoint_url`;
    return the endpoint in effect."""
    if endpoint_url:
        os.environ["AWS_ENDPOINT_URL"] = endpoint_url
        # Stream calls carry an ARN that newer botocore routes to account-ID hosts,
        # which local stacks do not serve.
        os.environ.setdefault("AWS_ACCOUNT_ID_ENDPOINT_MODE", "disabled")
    return os.environ.get("AWS_ENDPOINT_URL") or None


# ------------------------------------------------------------------ AWS configuration

#: What an AWS region name looks like: a partition's prefix, words, a number
#: (`us-east-1`, `us-gov-west-1`, `cn-north-1`, `eusc-de-east-1`).
_REGION_NAME = re.compile(r"[a-z]{2,4}(-[a-z]+)+-[0-9]{1,2}")

#: Where botocore looks for credentials, in its order, for the one line that says none
#: were found.
CREDENTIAL_SOURCES = (
    "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE (~/.aws/credentials, "
    "~/.aws/config: $AWS_SHARED_CREDENTIALS_FILE, $AWS_CONFIG_FILE; SSO, web identity, "
    "credential_process), or a container or instance role"
)


def is_region_name(text: str) -> bool:
    """Whether `text` has the shape of an AWS region name."""
    return _REGION_NAME.fullmatch(text) is not None


def region_name(text: str) -> str:
    """An argparse type: an AWS region name (`us-east-1`)."""
    if not is_region_name(text):
        raise argparse.ArgumentTypeError(f"not an AWS region name such as us-east-1: {text!r}")
    return text


def no_region_message() -> str:
    """One line: no region is configured, and where one is read from."""
    return (
        "no AWS region: set AWS_REGION or AWS_DEFAULT_REGION (e.g. us-east-1), or `region` "
        "in the profile's config (~/.aws/config, $AWS_CONFIG_FILE)"
    )


def no_credentials_message() -> str:
    """One line: no credentials were found, and where they are looked for."""
    return f"no AWS credentials found: set {CREDENTIAL_SOURCES}"


def check_aws_configuration(*, region: bool = True, credentials: bool = True) -> str | None:
    """Refuse, before any call, what botocore would only report mid-run as an AWS error:
    no region, a region that is no region name, no credentials, a broken profile.

    The region is the one the Lambda's clients use (`AWS_REGION`, else botocore's:
    `AWS_DEFAULT_REGION`, else the profile's); returns it (None when not checked).
    Raises `UsageError` naming the variable or where credentials are looked for.
    """
    import botocore.exceptions
    import botocore.session

    session = botocore.session.Session()
    found: str | None = None
    try:
        if region:
            from_aws_region = os.environ.get("AWS_REGION", "").strip()
            found = from_aws_region or session.get_config_variable("region")
            if not found:
                raise UsageError(no_region_message())
            if not is_region_name(found):
                source = "$AWS_REGION" if from_aws_region else "$AWS_DEFAULT_REGION or the profile"
                raise UsageError(
                    f"AWS region {found!r} ({source}) is not a region name such as us-east-1"
                )
        if credentials and session.get_credentials() is None:
            raise UsageError(no_credentials_message())
    except botocore.exceptions.BotoCoreError as exc:  # a missing profile, a bad config file
        raise UsageError(f"AWS configuration: {one_line(exc)}") from exc
    return found


def quiet_transitions() -> None:
    """Log warnings and errors on stderr, but not the machine's transitions: a command that
    reports the transitions from the outcomes would otherwise print a failed one twice
    (once as an `[error] transition` line)."""
    import structlog

    from reassembly_trigger.logs import configure_logging

    configure_logging("console", "stderr", force=True, level=logging.WARNING)

    def drop_transitions(_logger: Any, _method: str, event: Any) -> Any:
        if isinstance(event, dict) and event.get("event") == "transition":
            raise structlog.DropEvent
        return event

    processors = list(structlog.get_config()["processors"])
    structlog.configure(processors=[drop_transitions, *processors])
