"""One DynamoDB table in memory, answering the client calls the lock gateway makes.

The model runs the project's own `ReassemblyLock` and `ReconcileCursorStore` on this
table, so the conditions it checks are the ones the real gateway writes: every
`ConditionExpression` and `UpdateExpression` is parsed and evaluated here, with
DynamoDB's semantics (an item is checked and written atomically; a failed condition
writes nothing and raises `ConditionalCheckFailedException`, with the old item when
`ReturnValuesOnConditionCheckFailure` asks for it). Only the grammar the gateway uses
is understood (`attribute_exists`, `attribute_not_exists`, `attribute_type`, `=`,
joined by `AND`; `SET a = :v, ...` and `REMOVE a, ...`); anything else raises, so a
new expression in the gateway cannot be silently misread.

Items are DynamoDB JSON (`{"S": ...}`, `{"N": ...}`), as the table keeps them.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

Attr = dict[str, Any]
Item = dict[str, Attr]

_FUNCTION = re.compile(r"^(attribute_exists|attribute_not_exists)\((#?\w+)\)$")
_TYPE = re.compile(r"^attribute_type\((#?\w+),\s*(:\w+)\)$")
_EQUALS = re.compile(r"^(#?\w+)\s*=\s*(:\w+)$")
_TYPE_NAMES = {"S", "N", "B", "BOOL", "NULL", "M", "L", "SS", "NS", "BS"}


class ExpressionNotModelled(NotImplementedError):
    """The gateway used an expression this model does not evaluate."""


def conditional_check_failed(operation: str, old: Item | None) -> ClientError:
    """The error DynamoDB answers a failed condition with."""
    response: dict[str, Any] = {
        "Error": {"Code": "ConditionalCheckFailedException", "Message": "condition failed"}
    }
    if old is not None:
        response["Item"] = copy.deepcopy(old)
    return ClientError(response, operation)  # type: ignore[arg-type]


class Expression:
    """Placeholders resolved against one call's names and values."""

    def __init__(self, names: Mapping[str, str] | None, values: Mapping[str, Attr] | None):
        self._names = dict(names or {})
        self._values = dict(values or {})

    def name(self, token: str) -> str:
        if token.startswith("#"):
            return self._names[token]
        return token

    def value(self, token: str) -> Attr:
        return self._values[token]

    def holds(self, condition: str | None, item: Item | None) -> bool:
        """Whether `condition` holds on `item` (None: no such item)."""
        if not condition:
            return True
        current = item or {}
        return all(self._clause(c.strip(), current) for c in condition.split(" AND "))

    def _clause(self, clause: str, item: Item) -> bool:
        if match := _FUNCTION.match(clause):
            exists = self.name(match[2]) in item
            return exists if match[1] == "attribute_exists" else not exists
        if match := _TYPE.match(clause):
            wanted = self.value(match[2])
            type_name = wanted.get("S")
            if type_name not in _TYPE_NAMES:
                raise ExpressionNotModelled(clause)
            present = item.get(self.name(match[1]))
            return present is not None and type_name in present
        if match := _EQUALS.match(clause):
            return item.get(self.name(match[1])) == self.value(match[2])
        raise ExpressionNotModelled(clause)

    def apply(self, update: str, item: Item) -> None:
        """Apply `SET ... REMOVE ...` to `item` in place."""
        sections = re.split(r"\b(SET|REMOVE)\b", update)
        if sections[0].strip():
            raise ExpressionNotModelled(update)
        for keyword, body in zip(sections[1::2], sections[2::2], strict=True):
            for part in (p.strip() for p in body.split(",")):
                if keyword == "SET":
                    match = _EQUALS.match(part)
                    if match is None:
                        raise ExpressionNotModelled(part)
                    item[self.name(match[1])] = copy.deepcopy(self.value(match[2]))
                else:
                    if not re.fullmatch(r"#?\w+", part):
                        raise ExpressionNotModelled(part)
                    item.pop(self.name(part), None)


class Table:
    """One table keyed by `job_id` (a string), with conditional writes."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.items: dict[str, Item] = {}

    @staticmethod
    def _key(key: Mapping[str, Attr]) -> str:
        if set(key) != {"job_id"} or set(key["job_id"]) != {"S"}:
            raise ExpressionNotModelled(f"key {key!r}")
        return str(key["job_id"]["S"])

    def _check_table(self, table_name: str) -> None:
        if table_name != self.name:
            raise ExpressionNotModelled(f"table {table_name!r}")

    def put_item(
        self,
        *,
        TableName: str,  # noqa: N803 (boto3's parameter names)
        Item: Item,  # noqa: N803
        ConditionExpression: str | None = None,  # noqa: N803
        ExpressionAttributeNames: Mapping[str, str] | None = None,  # noqa: N803
        ExpressionAttributeValues: Mapping[str, Attr] | None = None,  # noqa: N803
        ReturnValuesOnConditionCheckFailure: str = "NONE",  # noqa: N803
    ) -> dict[str, Any]:
        self._check_table(TableName)
        key = self._key({"job_id": Item["job_id"]})
        old = self.items.get(key)
        expression = Expression(ExpressionAttributeNames, ExpressionAttributeValues)
        if not expression.holds(ConditionExpression, old):
            wanted = ReturnValuesOnConditionCheckFailure == "ALL_OLD"
            raise conditional_check_failed("PutItem", old if wanted else None)
        self.items[key] = copy.deepcopy(Item)
        return {}

    def get_item(
        self,
        *,
        TableName: str,  # noqa: N803
        Key: Mapping[str, Attr],  # noqa: N803
        ConsistentRead: bool = False,  # noqa: N803
    ) -> dict[str, Any]:
        self._check_table(TableName)
        found = self.items.get(self._key(Key))
        return {"Item": copy.deepcopy(found)} if found is not None else {}

    def update_item(
        self,
        *,
        TableName: str,  # noqa: N803
        Key: Mapping[str, Attr],  # noqa: N803
        UpdateExpression: str,  # noqa: N803
        ConditionExpression: str | None = None,  # noqa: N803
        ExpressionAttributeNames: Mapping[str, str] | None = None,  # noqa: N803
        ExpressionAttributeValues: Mapping[str, Attr] | None = None,  # noqa: N803
    ) -> dict[str, Any]:
        self._check_table(TableName)
        key = self._key(Key)
        old = self.items.get(key)
        expression = Expression(ExpressionAttributeNames, ExpressionAttributeValues)
        if not expression.holds(ConditionExpression, old):
            raise conditional_check_failed("UpdateItem", None)
        # An update of a missing item creates it (DynamoDB's upsert).
        item = copy.deepcopy(old) if old is not None else {"job_id": {"S": key}}
        expression.apply(UpdateExpression, item)
        self.items[key] = item
        return {}

    def batch_get_item(self, *, RequestItems: Mapping[str, Any]) -> dict[str, Any]:  # noqa: N803
        (table_name,) = RequestItems
        self._check_table(table_name)
        keys = RequestItems[table_name]["Keys"]
        found = [copy.deepcopy(self.items[k]) for k in map(self._key, keys) if k in self.items]
        return {"Responses": {table_name: found}, "UnprocessedKeys": {}}
