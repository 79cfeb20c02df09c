#!/usr/bin/env bash
# Build the Lambda deployment zip (default dist/deploy.zip), reproducibly, with no
# Docker and no AWS:
#   - stereo-spot-shared from the built wheel (shared-types/dist/, built if absent, or
#     SHARED_TYPES_WHEEL), the same artifact the workers install;
#   - the other run-time dependencies for the TARGET runtime, not this machine:
#     manylinux wheels only, exactly the files hashed in requirements/lambda-runtime.txt;
#   - reassembly_trigger/ without local/ (local tooling) and without byte caches;
#   - zipped by scripts/make_zip.py: sorted entries, fixed timestamps and permissions.
# boto3/botocore are not bundled: the Lambda runtime provides them (see README).
#
# Variables:
#   RUNTIME  Lambda runtime, python3.11 | python3.12 (default) | python3.13; or "local":
#            this build machine's interpreter and architecture (to run the zip here).
#   ARCH     x86_64 (default) | arm64 (ignored with RUNTIME=local).
#   OUTPUT   where to write the zip (default dist/deploy.zip).
#   SHARED_TYPES_WHEEL  a stereo_spot_shared wheel built elsewhere (e.g. by the monorepo).
#   PYTHON   the interpreter that runs pip (default .venv/bin/python, else python3).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
python="${PYTHON:-python3}"
if [ -x "$root/.venv/bin/python" ] && [ -z "${PYTHON:-}" ]; then python="$root/.venv/bin/python"; fi
runtime="${RUNTIME:-python3.12}"
arch="${ARCH:-x86_64}"
output="${OUTPUT:-$root/dist/deploy.zip}"
# pip warns about every unreachable mirror location (coloured when stderr is a terminal).
quiet() { "$@" 2> >(grep -v "WARNING: Location .* is ignored" >&2); }

if [ "$runtime" = "local" ]; then
  runtime="$("$python" -c 'import sys; print(f"python{sys.version_info[0]}.{sys.version_info[1]}")')"
  arch="$("$python" -c 'import platform; print(platform.machine())')"
fi
case "$runtime" in
  python3.1[1-9]) python_version="${runtime#python}" ;;
  *) echo "RUNTIME must be python3.11 or later (or local), not '$runtime'" >&2; exit 2 ;;
esac
case "$arch" in
  x86_64 | amd64) arch=x86_64; machine=x86_64 ;;
  arm64 | aarch64) arch=arm64; machine=aarch64 ;;
  *) echo "ARCH must be x86_64 or arm64, not '$arch'" >&2; exit 2 ;;
esac
# Keep in step with scripts/lock_lambda_runtime.py: python3.11 runs on Amazon Linux 2
# (glibc 2.26, so manylinux2014 only); python3.12+ on Amazon Linux 2023 (glibc 2.34).
platforms=(--platform "manylinux2014_$machine")
if [ "${python_version#3.}" -ge 12 ]; then
  platforms+=(--platform "manylinux_2_28_$machine" --platform "manylinux_2_34_$machine")
fi

wheel="${SHARED_TYPES_WHEEL:-}"
if [ -z "$wheel" ]; then
  shopt -s nullglob
  built=(shared-types/dist/stereo_spot_shared-*.whl)
  shopt -u nullglob
  if [ "${#built[@]}" -eq 0 ]; then
    PYTHON="$python" bash scripts/build_shared_wheel.sh >/dev/null
    built=(shared-types/dist/stereo_spot_shared-*.whl)
  fi
  if [ "${#built[@]}" -ne 1 ]; then
    echo "expected one wheel in shared-types/dist/, found: ${built[*]}" >&2
    exit 1
  fi
  wheel="${built[0]}"
fi
[ -f "$wheel" ] || { echo "no such wheel: $wheel" >&2; exit 1; }

staging="$(mktemp -d)"
trap 'rm -rf "$staging"' EXIT

# The shared types: the built wheel itself, never an index (its version cannot be on one).
pip_install=("$python" -m pip install --quiet --root-user-action=ignore --no-compile)
quiet "${pip_install[@]}" --no-deps --target "$staging" "$wheel"
# Everything else, for the target: --no-deps because the lock lists every project, and
# --require-hashes because the lock names the exact files, whatever index serves them.
quiet "${pip_install[@]}" --no-deps --target "$staging" \
  --require-hashes --only-binary=:all: --implementation cp --python-version "$python_version" \
  "${platforms[@]}" --requirement requirements/lambda-runtime.txt

# pip records where the shared wheel came from (an absolute path): not part of the
# package, and different on every checkout.
rm -f "$staging"/*.dist-info/direct_url.json
sed -i '/\.dist-info\/direct_url\.json,/d' "$staging"/*.dist-info/RECORD

# The Lambda's own code: its modules, never local/ (CLI, local stack, simulation).
find reassembly_trigger -path reassembly_trigger/local -prune -o \
  -type f \( -name '*.py' -o -name 'py.typed' \) -print |
  while read -r file; do
    mkdir -p "$staging/$(dirname "$file")"
    cp "$file" "$staging/$file"
  done

"$python" scripts/make_zip.py "$staging" "$output" "$runtime $arch"
