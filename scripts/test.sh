#!/usr/bin/env bash
# The whole check, from a fresh clone: set up .venv (shared wheel + project), then
# lint, type-check, verify the generated diagram, and run every test.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/bootstrap.sh
echo "== ruff"
.venv/bin/ruff check reassembly_trigger tests shared-types scripts
.venv/bin/ruff format --check reassembly_trigger tests shared-types scripts
echo "== mypy --strict"
.venv/bin/mypy reassembly_trigger
echo "== state diagram"
.venv/bin/reassembly-trigger diagram --check
echo "== pytest"
.venv/bin/pytest "$@"
