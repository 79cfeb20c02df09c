"""The one decoder of DynamoDB items: what an attribute value means, read leniently.

The tables are written by several programs and by people, so any attribute may hold
any type. Nothing here raises on a value: a value of an unexpected type is kept as
read (`Undecodable`, or the raw attribute) and reads as "not a number", "not a
string", so a damaged attribute never breaks the read of the rest of an item. The
same number rules serve stream records, Jobs and locks:

- a *whole number* is a finite, integral DynamoDB number (`1`, `1.0`, `1E+2`; never a
  bool, `1.5`, `NaN` or a string): `total_segments`, segment indexes;
- a *timestamp* read from a lock is a finite number, truncated to whole seconds;
- a *counter* (`takeovers`, `resends`) is a timestamp-like number in `[0, 10**9]`,
  else 0, because it is written back plus one and must stay a number DynamoDB takes.

A Job is decoded where it is read (`decode_job`): a `JobItem` (what the rules decide
by, its `status` and `total_segments`) or an `InvalidJob` naming the field that cannot
mean what it should and the value seen, so the evaluation decides by matching on types.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer

#: A Job item (or any item) as plain Python values; numbers stay `Decimal`.
Item = dict[str, Any]
#: One attribute as DynamoDB JSON (`{"N": "1"}`, `{"S": "x"}`, ...).
AttributeValue = Mapping[str, Any]

#: The largest `takeovers` or `resends` believed; far more than any job will see.
MAX_COUNTER = 10**9
#: The latest epoch second believed in a timestamp (year 2286).
MAX_EPOCH = 9_999_999_999
#: The Job status whose jobs may be reassembled (and which the reconciler lists).
CHUNKING_COMPLETE = "chunking_complete"
#: The largest `total_segments` believed (segments are ~5 minutes: about a year of video).
MAX_TOTAL_SEGMENTS = 100_000

_deserializer = TypeDeserializer()


@dataclass(frozen=True, slots=True)
class Undecodable:
    """An attribute value of a type this reader does not know, kept as read."""

    raw: Any


def deserialize_item(item: Mapping[str, Any]) -> Item:
    """A DynamoDB-JSON item as plain Python values (numbers stay Decimal).

    An attribute that cannot be decoded becomes `Undecodable` instead of failing the item.
    """
    plain: Item = {}
    for key, value in item.items():
        try:
            plain[key] = _deserializer.deserialize(value)
        except (TypeError, ValueError, ArithmeticError, AttributeError, KeyError):
            plain[key] = Undecodable(value)
    return plain


def shown(value: object) -> object:
    """A value read from an item as it is logged: JSON-safe, its type still visible."""
    if isinstance(value, Undecodable):
        return repr(value.raw)
    if isinstance(value, Decimal):
        return str(value)
    if value is None or isinstance(value, str | bool | int):
        return value
    return repr(value)


def is_digits(text: str) -> bool:
    """Plain ASCII decimal digits (`"0"`, `"12"`): a whole number as DynamoDB, Lambda and
    people write it; never `"²"`, `"-1"` or `"1.0"` (Python's `isdigit` alone takes `"²"`)."""
    return text.isascii() and text.isdigit()


def whole_number(value: object) -> int | None:
    """`value` as an int when it is a finite, integral DynamoDB number (never a bool)."""
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        return None
    if isinstance(value, Decimal) and (not value.is_finite() or value != value.to_integral_value()):
        return None
    return int(value)


def timestamp(attribute: AttributeValue | None) -> int | None:
    """A raw `{"N": ...}` attribute as whole seconds (fractions truncated), else None."""
    if not isinstance(attribute, Mapping) or set(attribute) != {"N"}:
        return None
    try:
        value = Decimal(str(attribute["N"]))
    except ArithmeticError:
        return None
    return int(value) if value.is_finite() else None


def counter(attribute: AttributeValue | None) -> int:
    """A raw counter (`takeovers`, `resends`), which is written back plus one.

    A value that cannot be such a count (not a number, negative, or beyond
    `MAX_COUNTER`) counts from 0 again: written back plus one, a huge value such as
    `1E+125` would exceed DynamoDB's 38 significant digits, and the take-over would
    fail on every retry.
    """
    value = timestamp(attribute)
    return value if value is not None and 0 <= value <= MAX_COUNTER else 0


def string(attribute: AttributeValue | None) -> str | None:
    """A raw `{"S": ...}` attribute's text, else None."""
    if not isinstance(attribute, Mapping) or set(attribute) != {"S"}:
        return None
    value = attribute["S"]
    return value if isinstance(value, str) else None


def is_null(attribute: AttributeValue | None) -> bool:
    """A `{"NULL": true}` attribute."""
    return isinstance(attribute, Mapping) and "NULL" in attribute


def is_set(attribute: AttributeValue | None) -> bool:
    """Present with a value: a `NULL` attribute means as little as a missing one."""
    return isinstance(attribute, Mapping) and bool(attribute) and not is_null(attribute)


class AsRead:
    """Builds "this attribute is exactly as read" conditions over one raw item.

    Present: equal to its raw value (any type; a NULL by its type, which is all a NULL
    has). Absent: `attribute_not_exists`. Names and values are numbered placeholders,
    so any attribute name is safe. A conditional write built from these fails exactly
    when something moved since the read, whatever shape the item had.
    """

    def __init__(self, raw: Mapping[str, AttributeValue]) -> None:
        self._raw = raw
        self.names: dict[str, str] = {}
        self.values: dict[str, Any] = {}

    def name_of(self, attribute: str) -> str:
        """The placeholder of `attribute`'s name."""
        for placeholder, name in self.names.items():
            if name == attribute:
                return placeholder
        placeholder = f"#a{len(self.names)}"
        self.names[placeholder] = attribute
        return placeholder

    def unchanged(self, attribute: str) -> str:
        """The condition that `attribute` is as it was read."""
        name = self.name_of(attribute)
        current = self._raw.get(attribute)
        if current is None:
            return f"attribute_not_exists({name})"
        if is_null(current):
            self.values[":null_type"] = {"S": "NULL"}
            return f"attribute_type({name}, :null_type)"
        value = f":v{len(self.values)}"
        self.values[value] = current
        return f"{name} = {value}"


# --------------------------------------------------------------------------- Jobs


@dataclass(frozen=True, slots=True)
class JobItem:
    """A Job as the rules read it: its `status`, and `total_segments` when set."""

    status: str
    #: A whole number in [1, MAX_TOTAL_SEGMENTS]; None when the Job has none yet.
    total_segments: int | None
    #: The item as read (plain values), for the logs and the model check.
    item: Item


@dataclass(frozen=True, slots=True)
class InvalidJob:
    """A Job whose `field` holds a value that cannot mean what it should."""

    field: str
    #: The value as logged (`shown`).
    value: object
    item: Item


def decode_job(item: Item | None) -> JobItem | InvalidJob | None:
    """A Job item (plain values) as the rules read it; None when there is no such Job.

    Only `status` and `total_segments` decide, and `total_segments` only once chunking
    is complete (before, it is not read: a Job still chunking is skipped for that,
    whatever else it holds). The rest of a Job is never read here (the reconciler checks
    it against the shared model, on its schedule).
    """
    if item is None:
        return None
    status = item.get("status")
    if not isinstance(status, str):
        return InvalidJob("status", shown(status), item)
    raw_total = item.get("total_segments")
    if status != CHUNKING_COMPLETE or raw_total is None:
        return JobItem(status, None, item)
    total = whole_number(raw_total)
    if total is None or not 1 <= total <= MAX_TOTAL_SEGMENTS:
        return InvalidJob("total_segments", shown(raw_total), item)
    return JobItem(status, total, item)
