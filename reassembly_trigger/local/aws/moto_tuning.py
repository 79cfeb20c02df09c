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

All are applied by `tune_moto()` in the benchmark's server process only
(`latency_proxy --tune-moto`), never in the test suite's moto. None changes an
answer (`test_tuned_moto_answers_like_stock_moto`); the benchmark reports how busy
moto still was ("moto busy").
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

    from moto.core.responses import ActionResult

    with _lock:
        original = ActionResult.execute_result
        if getattr(original, "tuned", False):
            return

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
        ActionResult.execute_result = execute_result  # type: ignore[method-assign]


def sends_skip_queue_counts() -> None:
    """Within SendMessage, the queue's approximate message counts read as 0."""
    from moto.sqs.models import Queue, SQSBackend

    with _lock:
        original_send = SQSBackend.send_message
        if getattr(original_send, "tuned", False):
            return

        def send_message(self: Any, *args: Any, **kwargs: Any) -> Any:
            _scope.sending = True
            try:
                return original_send(self, *args, **kwargs)
            finally:
                _scope.sending = False

        def uncounted(prop: Any) -> property:
            def read(queue: Any) -> Any:
                return 0 if getattr(_scope, "sending", False) else prop.fget(queue)

            return property(read)

        for name in (
            "approximate_number_of_messages",
            "approximate_number_of_messages_delayed",
            "approximate_number_of_messages_not_visible",
        ):
            setattr(Queue, name, uncounted(getattr(Queue, name)))
        send_message.tuned = True  # type: ignore[attr-defined]
        SQSBackend.send_message = send_message  # type: ignore[method-assign]


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
