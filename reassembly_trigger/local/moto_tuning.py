"""Take moto's own overheads out of the benchmark's way (benchmark server process only).

moto (5.x) answers a table Query by sorting *every* item of the table and then keeping
those of the queried partition, on every page. With the benchmark's 1,000 to 5,000
completions, one 20-item Query costs moto ~5-20 ms of CPU, serialised by the server's
GIL: the benchmark would measure moto, not the handler. DynamoDB reads one partition.

`query_reads_one_partition()` keeps moto's own Query code (key conditions, ordering,
1 MB pages, `LastEvaluatedKey`) and only narrows the item list it starts from to the
queried partition, which is exactly the subset moto would have kept.

`modules_listed_once()` and `handler_methods_listed_once()`: on every request moto
lists its own package directory (~60 `stat` calls) to route it, and the methods of
the response class (`inspect.getmembers`) to dispatch it; neither ever changes, so
both are listed once.

Both are applied by `tune_moto()` in the benchmark's server process only
(`latency_proxy --tune-moto`), never in the test suite's moto. Neither changes an
answer; the benchmark reports how busy moto still was ("moto busy").
"""

from __future__ import annotations

import threading
from typing import Any

_scope = threading.local()
_applied = False
_lock = threading.Lock()
#: Position of `index_name` among `Table.query`'s positional parameters (after self).
_INDEX_NAME_POSITION = 7


def tune_moto() -> None:
    """Apply every tuning below (idempotent)."""
    query_reads_one_partition()
    modules_listed_once()
    handler_methods_listed_once()


def handler_methods_listed_once() -> None:
    """Cache the method names of moto's response classes (listed on every request)."""
    import functools

    from moto.core import responses

    with _lock:
        # Imported by moto's responses module from moto.core.utils (not re-exported).
        original = responses.method_names_from_class  # type: ignore[attr-defined]
        if hasattr(original, "cache_info"):
            return
        responses.method_names_from_class = functools.cache(original)  # type: ignore[attr-defined]


def modules_listed_once() -> None:
    """Cache moto's listing of its own service packages (read on every request)."""
    from moto import backends

    with _lock:
        original = backends.list_of_moto_modules
        if getattr(original, "listed_once", False):
            return
        listing = tuple(original())

        def cached() -> tuple[str, ...]:
            return listing

        cached.listed_once = True  # type: ignore[attr-defined]
        backends.list_of_moto_modules = cached


def query_reads_one_partition() -> None:
    """Patch moto's `Table.query` to start from the queried partition (idempotent)."""
    global _applied  # noqa: PLW0603 - a process-wide patch, applied once
    with _lock:
        if _applied:
            return
        from moto.dynamodb.models.table import Table

        original_query = Table.query
        original_all_items = Table.all_items

        def query(self: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
            index_name = (
                args[_INDEX_NAME_POSITION - 1]
                if len(args) >= _INDEX_NAME_POSITION
                else kwargs.get("index_name")
            )
            if index_name or hash_key is None:
                return original_query(self, hash_key, *args, **kwargs)
            # Thread-local: the server answers concurrent requests on many threads.
            _scope.partition = (self, hash_key)
            try:
                return original_query(self, hash_key, *args, **kwargs)
            finally:
                _scope.partition = None

        def all_items(self: Any) -> Any:
            scope = getattr(_scope, "partition", None)
            if scope is None or scope[0] is not self or not self.range_key_attr:
                return original_all_items(self)
            partition = self.items.get(scope[1])
            if not partition:
                return []
            # The order moto's full sort gives within one partition.
            return sorted(partition.values(), key=lambda item: item.range_key)

        Table.query = query  # type: ignore[method-assign]
        Table.all_items = all_items  # type: ignore[method-assign]
        _applied = True
