"""Every internal of another library the local tooling relies on, in one place, checked.

Where botocore and moto offer no public way to do what the tooling needs, it reaches
their internals, only through here:

- botocore: the standard retry mode's handler, registered on `needs-retry.<service>` as
  `retry-config-<service>` (`faults.instant_retries` spends its backoff on a simulated
  clock); `BaseClient._make_api_call`, the one path of every API call (the benchmark's
  CPU meter).
- moto (held `<6` in pyproject.toml): the methods `moto_tuning` patches in the
  benchmark's server process.

Each `Seam` checks, when used, that the library still has what is relied on (the
attribute, and the parameters the tooling passes or reads by name), and raises
`LibraryChanged` naming the library, its version and the seam otherwise: an upgrade
that moves one fails loudly, never silently patches nothing (tests/test_library_seams.py
checks every one of `SEAMS`).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: A botocore `needs-retry` handler: the seconds to wait before retrying, or None.
RetryHandler = Callable[..., float | None]


class LibraryChanged(RuntimeError):
    """A library no longer has an internal the local tooling relies on."""


def library_version(library: str) -> str:
    """The installed version of `library` (a distribution name)."""
    try:
        return importlib.metadata.version(library)
    except importlib.metadata.PackageNotFoundError:
        return "(not installed)"


@dataclass(frozen=True, slots=True)
class Seam:
    """One internal: `module.attribute` (`Owner.name` or `name`), a callable taking
    `parameters` by name, or a property."""

    library: str
    module: str
    attribute: str
    #: Who relies on it, for the message when it changed.
    used_by: str
    parameters: tuple[str, ...] = ()
    is_property: bool = False

    def changed(self, what: str) -> LibraryChanged:
        """The error saying how the library changed."""
        return LibraryChanged(
            f"{self.library} {library_version(self.library)}: {self.module}.{self.attribute} "
            f"{what}; {self.used_by} relies on it (see reassembly_trigger/local/aws/"
            "library_seams.py)"
        )

    def owner(self) -> Any:
        """The module or class that holds the attribute."""
        try:
            target: Any = importlib.import_module(self.module)
        except ImportError as exc:
            raise self.changed(f"cannot be imported ({exc})") from exc
        for name in self.attribute.split(".")[:-1]:
            target = getattr(target, name, None)
            if target is None:
                raise self.changed(f"is gone ({name} not found)")
        return target

    @property
    def name(self) -> str:
        """The attribute's own name."""
        return self.attribute.rsplit(".", 1)[-1]

    def get(self) -> Any:
        """The attribute, checked (`LibraryChanged` when it is gone or changed shape)."""
        value = inspect.getattr_static(self.owner(), self.name, None)
        if value is None:
            raise self.changed("is gone")
        if self.is_property:
            if not isinstance(value, property):
                raise self.changed("is no longer a property")
            return value
        if not callable(value):
            raise self.changed("is no longer callable")
        # Follows `__wrapped__`: a patch made with functools.wraps keeps the signature.
        accepted = inspect.signature(value).parameters
        missing = [p for p in self.parameters if p not in accepted]
        if missing:
            raise self.changed(f"no longer takes {', '.join(missing)}")
        return value

    def set(self, value: Any) -> None:
        """Replace the attribute (a patch, process-wide)."""
        setattr(self.owner(), self.name, value)


# ------------------------------------------------------------------ botocore

STANDARD_RETRY_HANDLER = Seam(
    "botocore",
    "botocore.retries.standard",
    "register_retry_handler",
    "faults.instant_retries",
    ("client", "max_attempts"),
)
API_CALL = Seam(
    "botocore",
    "botocore.client",
    "BaseClient._make_api_call",
    "the benchmark's botocore CPU meter",
    ("operation_name", "api_params"),
)


def replace_retry_handler(
    client: Any, max_attempts: int, wrap: Callable[[RetryHandler], RetryHandler]
) -> None:
    """Replace a client's standard-mode retry handler by `wrap` of a fresh one.

    botocore registers its handler under the unique id `retry-config-<service>`; a
    fresh standard handler (same decisions: attempts, retry quota) is wrapped and
    registered in its place.
    """
    service = client.meta.service_model.service_id.hyphenize()
    event, unique_id = f"needs-retry.{service}", f"retry-config-{service}"
    if not _registered(client, unique_id):
        raise STANDARD_RETRY_HANDLER.changed(f"registered no {event} handler as {unique_id!r}")
    register = STANDARD_RETRY_HANDLER.get()
    client.meta.events.unregister(event, unique_id=unique_id)
    handler = register(client, max_attempts=max_attempts)
    client.meta.events.unregister(event, unique_id=unique_id)
    client.meta.events.register(event, wrap(handler.needs_retry), unique_id=unique_id)


def _registered(client: Any, unique_id: str) -> bool:
    """Whether a handler is registered under `unique_id` (botocore has no public way)."""
    emitter = getattr(client.meta.events, "_emitter", client.meta.events)
    handlers = getattr(emitter, "_unique_id_handlers", None)
    return isinstance(handlers, dict) and unique_id in handlers


# ------------------------------------------------------------------ moto

_TUNING = "moto_tuning (the benchmark's moto)"
TABLE_QUERY = Seam(
    "moto",
    "moto.dynamodb.models.table",
    "Table.query",
    _TUNING,
    ("hash_key", "index_name"),
)
TABLE_ALL_ITEMS = Seam("moto", "moto.dynamodb.models.table", "Table.all_items", _TUNING)
EXECUTE_RESULT = Seam(
    "moto", "moto.core.responses", "ActionResult.execute_result", _TUNING, ("context",)
)
SEND_MESSAGE = Seam("moto", "moto.sqs.models", "SQSBackend.send_message", _TUNING)
QUEUE_COUNTS = tuple(
    Seam("moto", "moto.sqs.models", f"Queue.{name}", _TUNING, is_property=True)
    for name in (
        "approximate_number_of_messages",
        "approximate_number_of_messages_delayed",
        "approximate_number_of_messages_not_visible",
    )
)
METHOD_NAMES = Seam("moto", "moto.core.responses", "method_names_from_class", _TUNING)
MOTO_MODULES = Seam("moto", "moto.backends", "list_of_moto_modules", _TUNING)

SEAMS: tuple[Seam, ...] = (
    STANDARD_RETRY_HANDLER,
    API_CALL,
    TABLE_QUERY,
    TABLE_ALL_ITEMS,
    EXECUTE_RESULT,
    SEND_MESSAGE,
    *QUEUE_COUNTS,
    METHOD_NAMES,
    MOTO_MODULES,
)
