#!/usr/bin/env bash
# Build the Lambda deployment zip and its manifest, reproducibly, with no Docker and no
# AWS:
#   - stereo-spot-shared from the built wheel, the same artifact the workers install:
#     the monorepo's packages/shared-types/dist/ when this checkout is its
#     packages/reassembly-trigger, else the embedded shared-types/dist/ (built if
#     absent); SHARED_TYPES_WHEEL names another (scripts/shared_types.sh decides);
#   - the other run-time dependencies for the TARGET runtime, not this machine:
#     manylinux wheels only, exactly the files hashed in requirements/lambda-runtime.txt;
#   - reassembly_trigger/ without local/ (local tooling) and testing/ (test helpers);
#   - bytecode for the target's Python only, compiled by that Python when this machine
#     has it (unchecked-hash .pyc: reproducible, never re-validated), else none, said so;
#   - zipped by scripts/make_zip.py: sorted entries, fixed timestamps and permissions,
#     and a manifest beside the zip (<zip>.manifest.json: runtime, architecture, Python
#     version, bytecode, sha256, size) that the Terraform module checks at plan time.
# boto3/botocore are not bundled: the Lambda runtime provides them (see README).
#
# Variables:
#   RUNTIME  Lambda runtime: one the lock covers (its "# runtimes:" line; python3.12 by
#            default); or "local": this build machine's interpreter and architecture.
#   ARCH     x86_64 (default) | arm64 (ignored with RUNTIME=local).
#   DIST     the output folder (default dist/).
#   OUTPUT   the zip's path (default $DIST/deploy-<runtime>-<arch>.zip, so each target
#            has its own file and the manifest is <zip>.manifest.json). With the
#            default, the zip and its manifest are also copied to $DIST/deploy.zip
#            (and deploy.zip.manifest.json): the path the monorepo's Terraform reads.
#   BYTECODE auto (default: compile when the target's Python is here, else say so) |
#            yes (refuse to build without it) | no (never compile).
#   TARGET_PYTHON  the target's interpreter, if not python3.X on PATH or under pyenv.
#   SHARED_TYPES_WHEEL  a stereo_spot_shared wheel built elsewhere (e.g. by the monorepo).
#   PYTHON   the interpreter that runs pip (default .venv/bin/python, else python3).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
python="${PYTHON:-python3}"
if [ -x "$root/.venv/bin/python" ] && [ -z "${PYTHON:-}" ]; then python="$root/.venv/bin/python"; fi
runtime="${RUNTIME:-python3.12}"
arch="${ARCH:-x86_64}"
bytecode="${BYTECODE:-auto}"
lock=requirements/lambda-runtime.txt
# pip warns about every unreachable mirror location (coloured when stderr is a terminal).
quiet() { "$@" 2> >(grep -v "WARNING: Location .* is ignored" >&2); }

if [ "$runtime" = "local" ]; then
  runtime="$("$python" -c 'import sys; print(f"python{sys.version_info[0]}.{sys.version_info[1]}")')"
  arch="$("$python" -c 'import platform; print(platform.machine())')"
fi
# The lock holds hashes for these runtimes only: any other would fail deep inside pip
# with a "hashes do not match" message, so refuse it here, naming what is covered.
covered="$(sed -n 's/^# runtimes: //p' "$lock")"
case " $covered " in
  *" $runtime "*) python_version="${runtime#python}" ;;
  *)
    echo "RUNTIME must be one the lock covers ($covered) or local, not '$runtime';" \
      "to add one, extend PYTHON_VERSIONS in scripts/lock_lambda_runtime.py and run it" >&2
    exit 2
    ;;
esac
case "$arch" in
  x86_64 | amd64) arch=x86_64; machine=x86_64 ;;
  arm64 | aarch64) arch=arm64; machine=aarch64 ;;
  *) echo "ARCH must be x86_64 or arm64, not '$arch'" >&2; exit 2 ;;
esac
case "$bytecode" in
  auto | yes | no) ;;
  *) echo "BYTECODE must be auto, yes or no, not '$bytecode'" >&2; exit 2 ;;
esac
dist="${DIST:-$root/dist}"
output="${OUTPUT:-$dist/deploy-$runtime-$arch.zip}"
# The monorepo's Terraform plans no function (count = 0: an undeploy) when its path,
# dist/deploy.zip, is missing: the default build writes that copy too.
stable=""
if [ -z "${OUTPUT:-}" ]; then stable="$dist/deploy.zip"; fi
# Keep in step with scripts/lock_lambda_runtime.py: python3.11 runs on Amazon Linux 2
# (glibc 2.26, so manylinux2014 only); python3.12+ on Amazon Linux 2023 (glibc 2.34).
platforms=(--platform "manylinux2014_$machine")
if [ "${python_version#3.}" -ge 12 ]; then
  platforms+=(--platform "manylinux_2_28_$machine" --platform "manylinux_2_34_$machine")
fi

# The target's own CPython, the only one whose bytecode the runtime will load: the
# magic number changes with every minor version. pyenv shims exist for versions that
# are not selected (and then fail), so each candidate is run and asked.
target_python() {
  local candidate
  local pyenv_root="${PYENV_ROOT:-$HOME/.pyenv}"
  for candidate in "${TARGET_PYTHON:-}" "python$python_version" \
    $(ls -d "$pyenv_root/versions/$python_version".*/bin/"python$python_version" 2>/dev/null | sort -rV); do
    [ -n "$candidate" ] || continue
    if [ "$("$candidate" -c 'import sys; print(sys.implementation.name, "%d.%d" % sys.version_info[:2])' 2>/dev/null)" = "cpython $python_version" ]; then
      echo "$candidate"
      return 0
    fi
  done
  return 1
}
compiler=""
if [ "$bytecode" != no ]; then
  if ! compiler="$(target_python)"; then
    if [ "$bytecode" = yes ]; then
      echo "BYTECODE=yes but no CPython $python_version here (set TARGET_PYTHON)" >&2
      exit 2
    fi
    compiler=""
    echo "note: no CPython $python_version on this machine, so the zip has no bytecode:" \
      "Lambda compiles every module on each cold start (slower: see the README, Deployment)." \
      "Install python$python_version or set TARGET_PYTHON to include it." >&2
  fi
fi

wheel="${SHARED_TYPES_WHEEL:-}"
if [ -z "$wheel" ]; then
  # shellcheck source=scripts/shared_types.sh
  source "$root/scripts/shared_types.sh"
  wheel="$(shared_types_wheel "$root" "$python")"
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
  "${platforms[@]}" --requirement "$lock"

# pip records where the shared wheel came from (an absolute path): not part of the
# package, and different on every checkout.
rm -f "$staging"/*.dist-info/direct_url.json
sed -i '/\.dist-info\/direct_url\.json,/d' "$staging"/*.dist-info/RECORD

# The Lambda's own code: its modules, never local/ (CLI, local stack, simulation) nor
# testing/ (in-memory stores for the users' tests).
find reassembly_trigger -path reassembly_trigger/local -prune -o \
  -path reassembly_trigger/testing -prune -o \
  -type f \( -name '*.py' -o -name 'py.typed' \) -print |
  while read -r file; do
    mkdir -p "$staging/$(dirname "$file")"
    cp "$file" "$staging/$file"
  done

tag=none
if [ -n "$compiler" ]; then
  # unchecked-hash: the .pyc records the source's hash, not its mtime, and the runtime
  # never re-reads the source to check it (the zip is immutable). -s/-p record the
  # path Lambda unpacks to (/var/task), never this machine's staging folder.
  PYTHONHASHSEED=0 "$compiler" -m compileall -q -j 0 --invalidation-mode unchecked-hash \
    -s "$staging" -p /var/task "$staging" >&2
  tag="$("$compiler" -c 'import sys; print(sys.implementation.cache_tag)')"
fi

"$python" scripts/make_zip.py "$staging" "$output" \
  --runtime "$runtime" --architecture "$arch" --bytecode "$tag"
if [ -n "$stable" ]; then
  cp "$output" "$stable"
  # The same manifest, naming the copy (its "zip" field), so it stays true of it.
  "$python" - "$output.manifest.json" "$stable.manifest.json" <<'PY'
import json, sys
manifest = json.load(open(sys.argv[1]))
manifest["zip"] = "deploy.zip"
open(sys.argv[2], "w").write(json.dumps(manifest, indent=2) + "\n")
PY
  echo "copied to $stable (with $(basename "$stable").manifest.json)" >&2
fi
