#!/usr/bin/env bash
# The whole check, from a fresh clone: set up .venv (shared wheel + project), then
# lint, type-check, verify the generated diagram, and run every test.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/bootstrap.sh
bash scripts/lint.sh
echo "== pytest"
.venv/bin/pytest "$@"
