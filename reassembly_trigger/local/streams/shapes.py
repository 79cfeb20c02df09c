"""Lambda's view of DynamoDB Streams: the event it delivers and the on-failure record.

`GetRecords` (through boto3) and the event Lambda gives a function differ in small
ways that matter to a handler: Lambda adds `eventSourceARN`, gives
`ApproximateCreationDateTime` as whole epoch seconds, binary attributes as base64
text, `userIdentity` with lower-case keys. Local stacks differ again (moto gives no
ARN, a float time, `eventVersion` "1.0" and always `us-east-1`). `lambda_record`
turns any of them into the record Lambda would deliver.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

#: The event version Lambda delivers for DynamoDB Streams records.
EVENT_VERSION = "1.1"
EVENT_SOURCE = "aws:dynamodb"
#: Lambda's order of a stream record's `dynamodb` fields.
_DYNAMODB_FIELDS = (
    "ApproximateCreationDateTime",
    "Keys",
    "NewImage",
    "OldImage",
    "SequenceNumber",
    "SizeBytes",
    "StreamViewType",
)


def stream_region(stream_arn: str) -> str:
    """The region of a stream ARN (`arn:aws:dynamodb:<region>:...`)."""
    return stream_arn.split(":")[3]


def stream_account(stream_arn: str) -> str:
    """The account of a stream ARN."""
    return stream_arn.split(":")[4]


def _wire_value(value: Any) -> Any:
    """An AttributeValue as JSON carries it: binary (bytes after boto3) as base64 text."""
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, Mapping):
        return {str(k): _wire_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_wire_value(v) for v in value]
    return value


def lambda_record(raw: Mapping[str, Any], stream_arn: str) -> dict[str, Any]:
    """The record Lambda delivers for one `GetRecords` record of `stream_arn`."""
    body = raw["dynamodb"]
    dynamodb = {name: _wire_value(body[name]) for name in _DYNAMODB_FIELDS if name in body}
    created = dynamodb.get("ApproximateCreationDateTime")
    if created is not None:
        # Whole epoch seconds, from a datetime (boto3) or a float (moto's JSON).
        seconds = created.timestamp() if isinstance(created, datetime) else float(created)
        dynamodb["ApproximateCreationDateTime"] = int(seconds)
    if "SizeBytes" in dynamodb:
        dynamodb["SizeBytes"] = int(dynamodb["SizeBytes"])
    record: dict[str, Any] = {
        "eventID": raw["eventID"],
        "eventName": raw["eventName"],
        "eventVersion": EVENT_VERSION,
        "eventSource": EVENT_SOURCE,
        "awsRegion": stream_region(stream_arn),
        "dynamodb": dynamodb,
        "eventSourceARN": stream_arn,
    }
    identity = raw.get("userIdentity")
    if identity:
        # GetRecords says PrincipalId/Type; Lambda's event says principalId/type.
        record["userIdentity"] = {
            "type": identity.get("Type", identity.get("type")),
            "principalId": identity.get("PrincipalId", identity.get("principalId")),
        }
    return record


def lambda_event(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The event of one invocation: `{"Records": [...]}` (records already converted)."""
    return {"Records": [dict(r) for r in records]}


def sequence_number(record: Mapping[str, Any]) -> str:
    """A record's sequence number (decimal text; compare with `int`)."""
    return str(record["dynamodb"]["SequenceNumber"])


def _arrival(record: Mapping[str, Any]) -> str:
    return _iso(int(record["dynamodb"]["ApproximateCreationDateTime"]), "seconds")


def _iso(epoch: float, timespec: str) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec=timespec).replace("+00:00", "Z")


def on_failure_record(
    *,
    records: Sequence[Mapping[str, Any]],
    shard_id: str,
    stream_arn: str,
    function_arn: str,
    condition: str,
    invoke_count: int,
    function_error: str | None,
    request_id: str,
    now: float,
) -> dict[str, Any]:
    """The document Lambda sends to an on-failure destination for a discarded batch.

    Only metadata: where the batch lies in the shard, never the records themselves.
    `condition` is `RetryAttemptsExhausted` or `RecordAgeExceeded`.
    """
    response_context: dict[str, Any] = {"statusCode": 200, "executedVersion": "$LATEST"}
    if function_error:
        response_context["functionError"] = function_error
    return {
        "requestContext": {
            "requestId": request_id,
            "functionArn": function_arn,
            "condition": condition,
            "approximateInvokeCount": invoke_count,
        },
        "responseContext": response_context,
        "version": "1.0",
        "timestamp": _iso(now, "milliseconds"),
        "DDBStreamBatchInfo": {
            "shardId": shard_id,
            "startSequenceNumber": sequence_number(records[0]),
            "endSequenceNumber": sequence_number(records[-1]),
            "approximateArrivalOfFirstRecord": _arrival(records[0]),
            "approximateArrivalOfLastRecord": _arrival(records[-1]),
            "batchSize": len(records),
            "streamArn": stream_arn,
        },
    }


def dumps(document: Mapping[str, Any]) -> str:
    """Compact JSON, as Lambda sends it."""
    return json.dumps(document, separators=(",", ":"))
