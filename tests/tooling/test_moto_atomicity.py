"""The local moto server applies each DynamoDB write whole, condition included, as
DynamoDB does: of many conditional writes to one item at once, exactly one succeeds."""

from __future__ import annotations

import sys
import threading
import uuid

from botocore.exceptions import ClientError

from reassembly_trigger.local.aws.stack import LocalAws, Resources

RIVALS = 8
ROUNDS = 40


def test_concurrent_conditional_updates_of_one_item_have_exactly_one_winner(
    moto_endpoint: str, resources: Resources
) -> None:
    """Eight writers race to claim each of 40 locks with a conditional update, as a
    re-send's claim does: every lock has one winner. (moto's threaded server let a check
    interleave with another request's write: a re-send test saw two winners.)"""
    aws = LocalAws.connect(moto_endpoint, pool_size=RIVALS)
    table = resources.names.reassembly_triggered_table
    wins: dict[str, int] = {}
    refusals: list[str] = []
    tally = threading.Lock()

    def rival(job_id: str, start: threading.Barrier) -> None:
        start.wait()
        try:
            aws.dynamodb.update_item(
                TableName=table,
                Key={"job_id": {"S": job_id}},
                UpdateExpression="SET resends = :one, holder = :me",
                ConditionExpression="attribute_not_exists(resends)",
                ExpressionAttributeValues={":one": {"N": "1"}, ":me": {"S": uuid.uuid4().hex}},
            )
        except ClientError as exc:
            refusals.append(exc.response["Error"]["Code"])
            return
        with tally:
            wins[job_id] = wins.get(job_id, 0) + 1

    def race(job_id: str) -> None:
        aws.dynamodb.put_item(TableName=table, Item={"job_id": {"S": job_id}})
        start = threading.Barrier(RIVALS)
        threads = [threading.Thread(target=rival, args=(job_id, start)) for _ in range(RIVALS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)

    # The server runs in this process: switching threads every microsecond opens any
    # window between a check and its write.
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for n in range(ROUNDS):
            race(f"job-race-{n}")
    finally:
        sys.setswitchinterval(switch)

    assert wins == {f"job-race-{n}": 1 for n in range(ROUNDS)}
    assert set(refusals) == {"ConditionalCheckFailedException"}
