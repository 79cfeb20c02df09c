"""The shared models accept the contract's items and reject what breaks it."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from pydantic import ValidationError

from stereo_spot_shared import Job, JobStatus, ReassemblyPayload, SegmentCompletion, StereoMode


def test_job_accepts_a_deserialised_dynamodb_item() -> None:
    """Numbers arrive from boto3's TypeDeserializer as Decimal and become ints."""
    job = Job.model_validate(
        {
            "job_id": "j-1",
            "mode": "sbs",
            "status": "chunking_complete",
            "created_at": Decimal("1793999000"),
            "total_segments": Decimal("5"),
            "future_attribute": "ignored",
        }
    )
    assert job.status is JobStatus.CHUNKING_COMPLETE
    assert job.mode is StereoMode.SBS
    assert job.total_segments == 5


def test_job_total_segments_is_optional_until_chunking_completes() -> None:
    """A job still chunking has no `total_segments`."""
    job = Job(job_id="j", mode=StereoMode.ANAGLYPH, status=JobStatus.CREATED, created_at=1)
    assert job.total_segments is None


@pytest.mark.parametrize(
    "patch",
    [
        {"status": "exploded"},
        {"mode": "3d"},
        {"total_segments": 0},
        {"total_segments": Decimal("2.5")},
        {"job_id": ""},
    ],
)
def test_job_rejects_items_that_break_the_contract(patch: dict[str, object]) -> None:
    """Unknown statuses or modes, non-positive or fractional segment totals are invalid."""
    item: dict[str, object] = {
        "job_id": "j",
        "mode": "sbs",
        "status": "chunking_complete",
        "created_at": 1,
        "total_segments": 3,
    }
    item.update(patch)
    with pytest.raises(ValidationError):
        Job.model_validate(item)


def test_segment_completion_index_is_zero_based_and_non_negative() -> None:
    """`segment_index >= 0` is part of the contract."""
    SegmentCompletion(job_id="j", segment_index=0, output_s3_uri="s3://b/k", completed_at=1)
    with pytest.raises(ValidationError):
        SegmentCompletion(job_id="j", segment_index=-1, output_s3_uri="s3://b/k", completed_at=1)


def test_reassembly_payload_body_is_exactly_the_job_id() -> None:
    """The queue body is `{"job_id": ...}` and nothing else."""
    body = ReassemblyPayload(job_id="j-9").model_dump_json()
    assert json.loads(body) == {"job_id": "j-9"}
    with pytest.raises(ValidationError):
        ReassemblyPayload.model_validate({"job_id": "j", "extra": 1})
