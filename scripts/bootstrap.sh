#!/usr/bin/env bash
# Create .venv, build the shared wheel, install it and this project with its
# development extras. Idempotent; needs only Python 3.11+ and the package registries.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
python="${PYTHON:-python3}"
"$python" - <<'PY'
import sys
if sys.version_info < (3, 11):
    sys.exit(f"reassembly-trigger needs Python 3.11+, found {sys.version.split()[0]}")
PY
[ -x .venv/bin/python ] || "$python" -m venv .venv
quiet() { "$@" 2> >(grep -v "^WARNING: Location" >&2); }
quiet .venv/bin/python -m pip install --quiet --upgrade pip
wheel="$(PYTHON=.venv/bin/python bash scripts/build_shared_wheel.sh)"
# The wheel is named as a file, so pip takes stereo-spot-shared from it and never
# looks for that name on an index; --force-reinstall keeps it in step with the source.
quiet .venv/bin/python -m pip install --quiet --force-reinstall --no-deps "$wheel"
quiet .venv/bin/python -m pip install --quiet "$wheel" -e ".[dev]"
echo "ready: $root/.venv (stereo-spot-shared from $(basename "$wheel"))"
