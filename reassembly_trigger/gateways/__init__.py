"""AWS access: every boto3 call the Lambda and the reconciler make, and nothing else.

I/O only, as Powertools keeps `persistence/dynamodb.py` apart from what a record means:
what an item means is `items` (the one decoder) and `lock` (the lock and its lease);
what the machine needs from here is `ports`. The decision code never sees a boto3
response: items come back decoded, conditional failures as the domain errors of
`errors`. Any other AWS error (`botocore.exceptions.ClientError`, `BotoCoreError`)
propagates unchanged; the evaluation reports it back to Lambda.
"""

from reassembly_trigger.gateways.cursor import RECONCILE_CURSOR_KEY, ReconcileCursorStore
from reassembly_trigger.gateways.dynamodb import (
    BATCH_GET_LIMIT,
    UNPROCESSED_KEYS_ROUNDS,
    JobStore,
    ReassemblyLock,
    SegmentCompletions,
    is_conditional_check_failure,
)
from reassembly_trigger.gateways.sqs import ReassemblyQueue, fifo_message_ids, reassembly_body

__all__ = [
    "BATCH_GET_LIMIT",
    "RECONCILE_CURSOR_KEY",
    "UNPROCESSED_KEYS_ROUNDS",
    "JobStore",
    "ReassemblyLock",
    "ReassemblyQueue",
    "ReconcileCursorStore",
    "SegmentCompletions",
    "fifo_message_ids",
    "is_conditional_check_failure",
    "reassembly_body",
]
