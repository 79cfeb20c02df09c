"""Items as the pipeline writes them, in DynamoDB JSON: Jobs, completions, locks.

One builder per item, shared by the benchmark, the simulations and the tests, so
every tool writes the contract's shapes (`../shared/contract/`) the same way.
"""

from __future__ import annotations

import uuid
from typing import Any

#: `created_at` of a Job when no one says otherwise (2023-11-14: long enough ago for
#: the reconciler's minimum age).
CREATED_AT = 1_700_000_000

Item = dict[str, Any]


def job_item(
    job_id: str,
    *,
    status: str = "chunking_complete",
    total_segments: int | None = None,
    created_at: int = CREATED_AT,
    mode: str = "sbs",
    **extra: dict[str, Any],
) -> Item:
    """A Jobs item as the chunker writes it; `extra` attributes are stored as given."""
    item: Item = {
        "job_id": {"S": job_id},
        "mode": {"S": mode},
        "status": {"S": status},
        "created_at": {"N": str(created_at)},
    }
    if total_segments is not None:
        item["total_segments"] = {"N": str(total_segments)}
    item.update(extra)
    return item


def completion_item(
    job_id: str, index: int, *, completed_at: int = CREATED_AT + 100, padding: int = 0
) -> Item:
    """A SegmentCompletions item as a video worker writes it."""
    item: Item = {
        "job_id": {"S": job_id},
        "segment_index": {"N": str(index)},
        "output_s3_uri": {"S": f"s3://stereo-spot-output/jobs/{job_id}/segments/{index:05d}.mp4"},
        "completed_at": {"N": str(completed_at)},
    }
    if padding:
        # Stands in for the larger items real workers may write (metadata, checksums).
        item["worker_notes"] = {"S": "x" * padding}
    return item


def finished_lock_item(job_id: str, *, started: bool, at: int = CREATED_AT) -> Item:
    """A ReassemblyTriggered item whose message was sent (and, if `started`, claimed)."""
    item: Item = {
        "job_id": {"S": job_id},
        "triggered_at": {"N": str(at)},
        "ttl": {"N": str(at + 90 * 86400)},
        "holder": {"S": "earlier-invocation"},
        "lease_expires_at": {"N": str(at + 60)},
        "enqueued_at": {"N": str(at + 1)},
        "message_id": {"S": str(uuid.uuid5(uuid.NAMESPACE_URL, job_id))},
    }
    if started:
        item["reassembly_started_at"] = {"N": str(at + 30)}
    return item


def item_keys(item: Item) -> Item:
    """The key attributes of a Jobs or SegmentCompletions item (`job_id`, `segment_index`)."""
    return {name: item[name] for name in ("job_id", "segment_index") if name in item}
