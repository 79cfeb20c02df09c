"""Run the benchmark (the same as `reassembly-trigger bench`).

Usage: .venv/bin/python scripts/bench.py [--latency-ms 5] [--json | --markdown] [--scaling]
"""

from __future__ import annotations

import sys

from reassembly_trigger.local.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
