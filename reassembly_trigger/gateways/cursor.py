"""DynamoDB: the reconciler's cursor, one item in ReassemblyTriggered (I/O only)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from reassembly_trigger.items import string, timestamp
from reassembly_trigger.ports import ReconcileCursor
from reassembly_trigger.timing import LOCK_TTL_SECONDS

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

#: The key of the reconciler's cursor item in ReassemblyTriggered (no job has it).
RECONCILE_CURSOR_KEY = "#reassembly-trigger/reconcile-cursor"


class ReconcileCursorStore:
    """The reconciler's cursor, one item in ReassemblyTriggered under a reserved key."""

    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def read(self) -> ReconcileCursor | None:
        """The saved cursor, if any (a damaged one reads as none)."""
        response = self._client.get_item(
            TableName=self._table,
            Key={"job_id": {"S": RECONCILE_CURSOR_KEY}},
            ConsistentRead=True,
        )
        item = response.get("Item") or {}
        created_at = timestamp(item.get("cursor_created_at"))
        job_id = string(item.get("cursor_job_id"))
        if created_at is None or job_id is None:
            return None
        return ReconcileCursor(created_at, job_id)

    def write(self, cursor: ReconcileCursor | None, now: int) -> None:
        """Save the cursor (None: the last run covered every job, start from the oldest).

        Always a PutItem (an item without a position means "from the oldest"), so the
        reconciler needs no DeleteItem permission.
        """
        item: dict[str, Any] = {
            "job_id": {"S": RECONCILE_CURSOR_KEY},
            "updated_at": {"N": str(now)},
            "ttl": {"N": str(now + LOCK_TTL_SECONDS)},
        }
        if cursor is not None:
            item["cursor_created_at"] = {"N": str(cursor.created_at)}
            item["cursor_job_id"] = {"S": cursor.job_id}
        self._client.put_item(TableName=self._table, Item=item)
