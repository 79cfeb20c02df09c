#!/usr/bin/env bash
# Static checks (needs .venv from scripts/bootstrap.sh): ruff, ruff format, mypy --strict,
# and the generated state diagram being current.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
echo "== ruff"
.venv/bin/ruff check reassembly_trigger tests shared-types scripts
.venv/bin/ruff format --check reassembly_trigger tests shared-types scripts
echo "== mypy --strict"
.venv/bin/mypy reassembly_trigger
.venv/bin/mypy --strict --explicit-package-bases tests/model
echo "== state diagram"
.venv/bin/reassembly-trigger diagram --check
