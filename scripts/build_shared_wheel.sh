#!/usr/bin/env bash
# Build the stereo-spot-shared wheel into shared-types/dist/.
#
# Every consumer (tests, CI, the deployment zip) installs this wheel file, never the
# source tree and never an index. SOURCE_DATE_EPOCH makes the wheel reproducible, so
# the deployment zip built from it is too.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3}"
if [ -x "$root/.venv/bin/python" ] && [ -z "${PYTHON:-}" ]; then python="$root/.venv/bin/python"; fi
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-1700000000}"
rm -rf "$root/shared-types/dist" "$root/shared-types/build"
"$python" -m pip wheel --quiet --no-deps --wheel-dir "$root/shared-types/dist" "$root/shared-types" \
  2> >(grep -v "^WARNING: Location" >&2)
ls "$root"/shared-types/dist/stereo_spot_shared-*.whl
