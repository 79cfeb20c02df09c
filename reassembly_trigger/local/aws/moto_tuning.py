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

`dynamodb_results_as_json()`: moto (5.2) writes every DynamoDB answer through a
generic, model-driven serializer that cost ~10 ms of server CPU for a 20-item Query
and ~60 ms for a 50-item BatchGetItem, several times the handler's own CPU per call.
For the item operations the benchmark uses, the answer is already DynamoDB JSON: it
is written with `json.dumps`, keeping exactly the members of the operation's output
shape (so botocore parses the same response).

`sends_skip_queue_counts()`: moto's SendMessage reads the queue's attributes, which
counts every message in the queue (twice) to fill `ApproximateNumberOfMessages*`: a
send into a queue of 1,000 messages cost ~50 ms. A send does not use those counts;
within a send they read as 0.

moto's internals are reached through `library_seams` only, which fails loudly, naming
moto's version, when one of them changes. All are applied by `tune_moto()` in the
benchmark's server process only
(`latency_proxy --tune-moto`), never in the test suite's moto. None changes an
answer (`test_tuned_moto_answers_like_stock_moto`); the benchmark reports how busy
moto still was ("moto busy").
"""

from __future__ import annotations

import functools
import inspect
import threading
from typing import Any

from reassembly_trigger.local.aws import library_seams as seams

_scope = threading.local()
_lock = threading.Lock()


def tune_moto() -> None:
    """Apply every tuning below (idempotent)."""
    query_reads_one_partition()
    modules_listed_once()
    handler_methods_listed_once()
    dynamodb_results_as_json()
    sends_skip_queue_counts()


#: DynamoDB operations whose results are plain DynamoDB JSON (no timestamps, no blobs
#: outside attribute values), written by `dynamodb_results_as_json`.
JSON_RESULT_OPERATIONS = frozenset(
    {
        "BatchGetItem",
        "BatchWriteItem",
        "DeleteItem",
        "GetItem",
        "PutItem",
        "Query",
        "Scan",
        "UpdateItem",
    }
)


def _shaped(value: Any, shape: Any) -> Any:
    """`value` reduced to the members `shape` declares (what moto's serializer keeps)."""
    kind = shape.type_name
    if value is None:
        return None
    if kind == "structure":
        members = shape.members
        return {
            key: _shaped(item, members[key])
            for key, item in value.items()
            if key in members and item is not None
        }
    if kind == "list":
        return [_shaped(item, shape.member) for item in value]
    if kind == "map":
        return {key: _shaped(item, shape.value) for key, item in value.items()}
    if kind == "blob" and isinstance(value, bytes):
        import base64

        return base64.b64encode(value).decode("ascii")
    return value


def dynamodb_results_as_json() -> None:
    """Write the item operations' results with `json.dumps` (moto's serializer is slow)."""
    import json

    with _lock:
        original = seams.EXECUTE_RESULT.get()
        if getattr(original, "tuned", False):
            return

        @functools.wraps(original)
        def execute_result(self: Any, context: Any) -> Any:
            operation = context.operation_model
            result = self.result
            if (
                context.service_model.service_name != "dynamodb"
                or operation.name not in JSON_RESULT_OPERATIONS
                or not isinstance(result, dict)
                or operation.output_shape is None
            ):
                return original(self, context)
            body = json.dumps(_shaped(result, operation.output_shape))
            return 200, {"Content-Type": "application/x-amz-json-1.0"}, body

        execute_result.tuned = True  # type: ignore[attr-defined]
        seams.EXECUTE_RESULT.set(execute_result)


def sends_skip_queue_counts() -> None:
    """Within SendMessage, the queue's approximate message counts read as 0."""
    with _lock:
        original_send = seams.SEND_MESSAGE.get()
        if getattr(original_send, "tuned", False):
            return

        @functools.wraps(original_send)
        def send_message(self: Any, *args: Any, **kwargs: Any) -> Any:
            _scope.sending = True
            try:
                return original_send(self, *args, **kwargs)
            finally:
                _scope.sending = False

        def uncounted(prop: property) -> property:
            def read(queue: Any) -> Any:
                return 0 if getattr(_scope, "sending", False) else prop.__get__(queue)

            return property(read)

        for seam in seams.QUEUE_COUNTS:
            seam.set(uncounted(seam.get()))
        send_message.tuned = True  # type: ignore[attr-defined]
        seams.SEND_MESSAGE.set(send_message)


def handler_methods_listed_once() -> None:
    """Cache the method names of moto's response classes (listed on every request)."""
    with _lock:
        original = seams.METHOD_NAMES.get()
        if hasattr(original, "cache_info"):
            return
        seams.METHOD_NAMES.set(functools.cache(original))


def modules_listed_once() -> None:
    """Cache moto's listing of its own service packages (read on every request)."""
    with _lock:
        original = seams.MOTO_MODULES.get()
        if getattr(original, "listed_once", False):
            return
        listing = tuple(original())

        def cached() -> tuple[str, ...]:
            return listing

        cached.listed_once = True  # type: ignore[attr-defined]
        seams.MOTO_MODULES.set(cached)


def query_reads_one_partition() -> None:
    """Patch moto's `Table.query` to start from the queried partition (idempotent)."""
    with _lock:
        original_query = seams.TABLE_QUERY.get()
        if getattr(original_query, "tuned", False):
            return
        original_all_items = seams.TABLE_ALL_ITEMS.get()
        signature = inspect.signature(original_query)

        @functools.wraps(original_query)
        def query(self: Any, *args: Any, **kwargs: Any) -> Any:
            # By name, wherever moto puts them among its parameters.
            arguments = signature.bind(self, *args, **kwargs).arguments
            hash_key = arguments.get("hash_key")
            if arguments.get("index_name") or hash_key is None:
                return original_query(self, *args, **kwargs)
            # Thread-local: the server answers concurrent requests on many threads.
            _scope.partition = (self, hash_key)
            try:
                return original_query(self, *args, **kwargs)
            finally:
                _scope.partition = None

        @functools.wraps(original_all_items)
        def all_items(self: Any) -> Any:
            scope = getattr(_scope, "partition", None)
            if scope is None or scope[0] is not self or not self.range_key_attr:
                return original_all_items(self)
            partition = self.items.get(scope[1])
            if not partition:
                return []
            # The order moto's full sort gives within one partition.
            return sorted(partition.values(), key=lambda item: item.range_key)

        query.tuned = True  # type: ignore[attr-defined]
        seams.TABLE_QUERY.set(query)
        seams.TABLE_ALL_ITEMS.set(all_items)
