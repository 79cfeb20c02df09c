"""reassembly-trigger: the Lambda that starts stereo-spot's reassembly exactly once.

The Lambda is everything in this package except ``reassembly_trigger.local``, which
holds the local tooling (CLI, embedded AWS stack, stream poller, simulation,
benchmark) and is never shipped in the deployment zip.
"""

__version__ = "0.1.0"
