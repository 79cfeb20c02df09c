#!/usr/bin/env bash
# Set up .venv for development and tests, saying what it does at each step:
#   1. check Python 3.11+;
#   2. create .venv (or reuse it);
#   3. install the locked development environment, requirements/dev.txt, hash-checked
#      (the slow step on a new .venv: about 1-3 minutes; seconds once installed);
#   4. install the stereo-spot-shared wheel file, never an index's: standalone, built
#      from the embedded shared-types/ with the locked build backend; as the monorepo's
#      packages/reassembly-trigger, the wheel its shared-types:build wrote
#      (scripts/shared_types.sh decides);
#   5. install this project editable, without dependencies (the lock has them all).
# Idempotent; needs only Python 3.11+ and the package registries. Every pin comes from
# the lock, so nothing newer arrives on its own: `bash scripts/lock_dev.sh --upgrade`
# moves the pins.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
python="${PYTHON:-python3}"
started=$SECONDS
say() { echo "bootstrap: $*"; }
# pip's configured extra indexes and find-links may point at folders absent here.
quiet() { "$@" 2> >(grep -v "^WARNING: Location" >&2); }

say "1/5 checking for Python 3.11+ ($python)"
"$python" - <<'PY'
import sys
if sys.version_info < (3, 11):
    sys.exit(f"reassembly-trigger needs Python 3.11+, found {sys.version.split()[0]}")
PY

if [ -x .venv/bin/python ]; then
  say "2/5 reusing .venv"
else
  say "2/5 creating .venv"
  "$python" -m venv .venv
fi

say "3/5 installing the locked development environment from requirements/dev.txt," \
  "hash-checked (about 1-3 minutes on a new .venv, seconds once installed)"
quiet .venv/bin/python -m pip install --quiet --require-hashes -r requirements/dev.txt

# shellcheck source=scripts/shared_types.sh
source scripts/shared_types.sh
say "4/5 installing the stereo-spot-shared wheel of $(shared_types_home "$root")" \
  "(built from the embedded shared-types/ first, standalone; the monorepo's own when nested)"
if [ "$(shared_types_home "$root")" = "$root/shared-types" ]; then
  # No build isolation: the wheel is built with the locked hatchling, not the newest.
  wheel="$(PIP_NO_BUILD_ISOLATION=0 PYTHON=.venv/bin/python bash scripts/build_shared_wheel.sh)"
else
  wheel="$(shared_types_wheel "$root" .venv/bin/python)"
fi
# The wheel is named as a file, so pip takes stereo-spot-shared from it and never
# looks for that name on an index; --force-reinstall keeps it in step with the source.
quiet .venv/bin/python -m pip install --quiet --force-reinstall --no-deps "$wheel"

say "5/5 installing this project editable (its dependencies come from the lock)"
quiet .venv/bin/python -m pip install --quiet --no-deps --no-build-isolation -e .
quiet .venv/bin/python -m pip check >/dev/null || {
  .venv/bin/python -m pip check >&2
  say "the environment is inconsistent: regenerate the lock (bash scripts/lock_dev.sh)" >&2
  exit 1
}

echo "ready: $root/.venv in $((SECONDS - started)) s (stereo-spot-shared from $(basename "$wheel"))"
