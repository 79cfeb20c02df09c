"""Pydantic v2 models for the stereo-spot tables and the reassembly queue body."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class StereoMode(StrEnum):
    """How the stereo output is rendered."""

    ANAGLYPH = "anaglyph"
    SBS = "sbs"


class JobStatus(StrEnum):
    """Lifecycle of a Job item; `total_segments` is set with `chunking_complete`."""

    CREATED = "created"
    CHUNKING_IN_PROGRESS = "chunking_in_progress"
    CHUNKING_COMPLETE = "chunking_complete"
    COMPLETED = "completed"
    FAILED = "failed"


class _TableItem(BaseModel):
    # Tables gain attributes over time; readers must not break on them.
    model_config = ConfigDict(extra="ignore", frozen=True)


class Job(_TableItem):
    """An item of the Jobs table (key `job_id`)."""

    job_id: str = Field(min_length=1)
    mode: StereoMode
    status: JobStatus
    created_at: int
    total_segments: int | None = Field(default=None, ge=1)
    completed_at: int | None = None


class SegmentCompletion(_TableItem):
    """An item of the SegmentCompletions table (key `job_id` + `segment_index`)."""

    job_id: str = Field(min_length=1)
    segment_index: int = Field(ge=0)
    output_s3_uri: str = Field(min_length=1)
    completed_at: int
    total_segments: int | None = Field(default=None, ge=1)


class ReassemblyPayload(BaseModel):
    """The body of a reassembly queue message: `{"job_id": "..."}` and nothing else."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    job_id: str = Field(min_length=1)
