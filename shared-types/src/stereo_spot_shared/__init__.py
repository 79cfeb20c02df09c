"""Types shared by every stereo-spot pipeline package.

The models describe DynamoDB items after deserialisation (numbers may arrive as
``decimal.Decimal``; whole values are accepted as ``int``) and the reassembly queue's
message body.
"""

from stereo_spot_shared.models import (
    Job,
    JobStatus,
    ReassemblyPayload,
    SegmentCompletion,
    StereoMode,
)

__all__ = ["Job", "JobStatus", "ReassemblyPayload", "SegmentCompletion", "StereoMode"]
