#!/usr/bin/env bash
# Regenerate requirements/dev.txt: the development and test environment, every package
# pinned with the sha256 of each of its files, for Python 3.11+ on any platform.
#
# Inputs: pyproject.toml (the project's dependencies and its `dev` extra, which holds
# `local` and `ops`), requirements/dev.in (the build and lock tools), and the Lambda
# zip's pins (requirements/lambda-runtime.in) as constraints, so the venv runs the same
# transitions, structlog and pydantic as the zip. stereo-spot-shared is resolved from
# the built wheel and left out of the lock: it is installed from that wheel only.
#
#   bash scripts/lock_dev.sh                        keep the pins that still fit the inputs
#   bash scripts/lock_dev.sh --upgrade              every pin to its newest release
#   bash scripts/lock_dev.sh --upgrade-package moto one package (and what it needs)
#
# Then `bash scripts/bootstrap.sh` installs the new lock. Needs .venv (uv is locked too).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
if [ ! -x .venv/bin/uv ]; then
  echo "lock_dev: no .venv/bin/uv: run bash scripts/bootstrap.sh first" >&2
  exit 2
fi
if ! ls shared-types/dist/stereo_spot_shared-*.whl >/dev/null 2>&1; then
  PYTHON=.venv/bin/python bash scripts/build_shared_wheel.sh >/dev/null
fi
.venv/bin/uv pip compile pyproject.toml requirements/dev.in \
  --extra dev \
  --constraint requirements/lambda-runtime.in \
  --find-links shared-types/dist \
  --no-emit-package stereo-spot-shared \
  --generate-hashes \
  --universal \
  --python-version 3.11 \
  --custom-compile-command "bash scripts/lock_dev.sh" \
  --quiet \
  --output-file requirements/dev.txt \
  "$@"
echo "wrote requirements/dev.txt ($(grep -c '==' requirements/dev.txt) pins); install it with bash scripts/bootstrap.sh"
