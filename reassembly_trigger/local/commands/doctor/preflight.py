"""`doctor --preflight`: every call the functions make, tried before any job needs it.

Each call the stream function and the reconciler make (reassembly_trigger/gateways.py),
made once in a form that changes nothing: reads of a key no job has, the lock's
conditional writes on a condition that cannot hold (DynamoDB checks the permission
before the condition: ConditionalCheckFailed means allowed, nothing written), the
Jobs status index queried for one item, and the queue's attributes. SendMessage is
tried only with `send_probe`: it sends `{"job_id": "preflight-..."}`, which the media
worker drops (it finds no lock for that job, contract step 1).

The calls go out with the caller's credentials: run with the function's role
(assumed) and a denial is a permission the role lacks; with other credentials, a
denial is theirs. Either way a table, index or queue that does not exist (or is in
another region) is found, and named with the variable that holds it.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from reassembly_trigger.clients import AwsClients
from reassembly_trigger.deployment_errors import Problem, classify
from reassembly_trigger.settings import Settings

#: DynamoDB's answer to a condition that did not hold: the call itself was allowed.
_ALLOWED_CODES = frozenset({"ConditionalCheckFailedException"})
#: The region of an SQS queue URL (https://sqs.REGION.amazonaws.com/ACCOUNT/NAME).
_QUEUE_REGION = re.compile(r"^https://sqs\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/")


@dataclass(frozen=True, slots=True)
class Check:
    """One call, on one resource, and whether it can succeed."""

    action: str
    resource: str
    used_by: str
    ok: bool | None  # None: not checked
    detail: str

    def as_json(self) -> dict[str, Any]:
        """The check as plain data."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class PreflightReport:
    """Every check, and what is missing."""

    region: str
    checks: list[Check]

    @property
    def missing(self) -> list[Check]:
        """The checks that failed."""
        return [check for check in self.checks if check.ok is False]

    @property
    def exit_status(self) -> int:
        """0 when nothing is missing, 1 otherwise."""
        return 1 if self.missing else 0

    def as_json(self) -> dict[str, Any]:
        """The report as plain data."""
        return {
            "region": self.region,
            "checks": [check.as_json() for check in self.checks],
            "missing": [f"{c.action} on {c.resource}: {c.detail}" for c in self.missing],
        }


def _try(
    settings: Settings,
    action: str,
    resource: str,
    used_by: str,
    call: Callable[[], object],
) -> Check:
    operation = action.split(":", 1)[1]
    try:
        call()
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "Unknown"))
        if code in _ALLOWED_CODES:
            return Check(action, resource, used_by, True, "allowed (condition not met: unchanged)")
        message = str(error.get("Message") or exc)
        seen = classify(code, operation, message, settings)
        if seen is None:
            return Check(action, resource, used_by, False, f"{code}: {message}")
        what = {
            Problem.PERMISSION: f"denied to these credentials ({code}): {message}",
            Problem.MISSING: f"does not exist, or not in this region ({code})",
            Problem.CREDENTIALS: f"credentials refused ({code})",
        }[seen.problem]
        return Check(action, resource, used_by, False, what)
    except BotoCoreError as exc:
        return Check(action, resource, used_by, False, f"{type(exc).__name__}: {exc}")
    return Check(action, resource, used_by, True, "allowed")


def preflight(
    settings: Settings, clients: AwsClients, *, send_probe: bool = False
) -> PreflightReport:
    """Try every call the functions make; report each, and what is missing."""
    dynamodb, sqs = clients.dynamodb, clients.sqs
    region = str(dynamodb.meta.region_name)
    probe = f"preflight-{uuid.uuid4()}"
    key = {"job_id": {"S": probe}}
    jobs = f"table {settings.jobs_table_name} (JOBS_TABLE_NAME)"
    completions = (
        f"table {settings.segment_completions_table_name} (SEGMENT_COMPLETIONS_TABLE_NAME)"
    )
    locks = f"table {settings.reassembly_triggered_table_name} (REASSEMBLY_TRIGGERED_TABLE_NAME)"
    index = f"index {settings.jobs_status_index_name} (JOBS_STATUS_INDEX_NAME) of {jobs}"
    queue = f"queue {settings.reassembly_queue_url} (REASSEMBLY_QUEUE_URL)"
    both, reconciler = "both functions", "the reconciler"
    never = "attribute_exists(job_id) AND attribute_not_exists(job_id)"
    checks: list[Check] = []

    queue_region = _QUEUE_REGION.match(settings.reassembly_queue_url)
    if queue_region and queue_region.group(1) != region:
        checks.append(
            Check(
                "region",
                queue,
                both,
                False,
                f"the queue is in {queue_region.group(1)}, the functions' clients in {region}",
            )
        )

    def check(action: str, resource: str, used_by: str, call: Callable[[], object]) -> None:
        checks.append(_try(settings, action, resource, used_by, call))

    check(
        "dynamodb:BatchGetItem",
        jobs,
        both,
        lambda: dynamodb.batch_get_item(
            RequestItems={settings.jobs_table_name: {"Keys": [key], "ConsistentRead": True}}
        ),
    )
    check(
        "dynamodb:Query",
        completions,
        both,
        lambda: dynamodb.query(
            TableName=settings.segment_completions_table_name,
            KeyConditionExpression="job_id = :job",
            ExpressionAttributeValues={":job": {"S": probe}},
            Select="COUNT",
            ConsistentRead=True,
        ),
    )
    check(
        "dynamodb:Query",
        index,
        reconciler,
        lambda: dynamodb.query(
            TableName=settings.jobs_table_name,
            IndexName=settings.jobs_status_index_name,
            KeyConditionExpression="#status = :status",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={":status": {"S": "chunking_complete"}},
            Limit=1,
        ),
    )
    check(
        "dynamodb:GetItem",
        locks,
        both,
        lambda: dynamodb.get_item(
            TableName=settings.reassembly_triggered_table_name, Key=key, ConsistentRead=True
        ),
    )
    check(
        "dynamodb:BatchGetItem",
        locks,
        reconciler,
        lambda: dynamodb.batch_get_item(
            RequestItems={settings.reassembly_triggered_table_name: {"Keys": [key]}}
        ),
    )
    check(
        "dynamodb:PutItem",
        locks,
        both,
        lambda: dynamodb.put_item(
            TableName=settings.reassembly_triggered_table_name,
            Item=key,
            ConditionExpression=never,
        ),
    )
    check(
        "dynamodb:UpdateItem",
        locks,
        both,
        lambda: dynamodb.update_item(
            TableName=settings.reassembly_triggered_table_name,
            Key=key,
            UpdateExpression="SET preflight = :one",
            ConditionExpression=never,
            ExpressionAttributeValues={":one": {"N": "1"}},
        ),
    )
    check(
        "sqs:GetQueueAttributes",
        queue,
        "(the queue exists)",
        lambda: sqs.get_queue_attributes(
            QueueUrl=settings.reassembly_queue_url, AttributeNames=["QueueArn"]
        ),
    )
    if send_probe:
        check(
            "sqs:SendMessage",
            queue,
            both,
            lambda: sqs.send_message(
                QueueUrl=settings.reassembly_queue_url, MessageBody=f'{{"job_id": "{probe}"}}'
            ),
        )
    else:
        checks.append(
            Check(
                "sqs:SendMessage",
                queue,
                both,
                None,
                "not checked: --send-probe sends a message the media worker drops",
            )
        )
    return PreflightReport(region, checks)
