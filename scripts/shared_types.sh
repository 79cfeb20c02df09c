# Sourced by the scripts that need stereo-spot-shared: which shared-types package this
# checkout uses, and its built wheel. Two homes, decided by where the checkout sits:
#   - nested: the pipeline monorepo's packages/reassembly-trigger, i.e. ../../nx.json
#     and ../shared-types/pyproject.toml exist: the monorepo's packages/shared-types,
#     whose wheel its Nx target `shared-types:build` writes to packages/shared-types/dist/
#     (`nx run reassembly-trigger:build` and `:test` run that first); never built here;
#   - standalone (anything else): the embedded copy, shared-types/, built here when
#     its dist/ has no wheel yet (scripts/build_shared_wheel.sh).
# SHARED_TYPES_HOME overrides the choice (a folder holding the package and its dist/).

# The shared-types folder this checkout ($1: its root) uses, as an absolute path.
shared_types_home() {
  local root="$1"
  if [ -n "${SHARED_TYPES_HOME:-}" ]; then
    (cd "$SHARED_TYPES_HOME" && pwd)
  elif [ -f "$root/../../nx.json" ] && [ -f "$root/../shared-types/pyproject.toml" ]; then
    (cd "$root/../shared-types" && pwd)
  else
    echo "$root/shared-types"
  fi
}

# The one stereo_spot_shared wheel of that home ($1: root, $2: python), built first when
# the home is the embedded copy; refuses (exit 1, naming the fix) when there is none or
# several.
shared_types_wheel() {
  local root="$1" python="$2" home built
  home="$(shared_types_home "$root")"
  shopt -s nullglob
  built=("$home"/dist/stereo_spot_shared-*.whl)
  if [ "${#built[@]}" -eq 0 ] && [ "$home" = "$root/shared-types" ]; then
    PYTHON="$python" bash "$root/scripts/build_shared_wheel.sh" >/dev/null
    built=("$home"/dist/stereo_spot_shared-*.whl)
  fi
  shopt -u nullglob
  if [ "${#built[@]}" -eq 0 ]; then
    echo "no stereo_spot_shared wheel in $home/dist/: build it first" \
      "(at the workspace root: npx nx run shared-types:build)" >&2
    return 1
  fi
  if [ "${#built[@]}" -ne 1 ]; then
    echo "expected one stereo_spot_shared wheel in $home/dist/, found: ${built[*]}" \
      "(remove the stale ones and build again)" >&2
    return 1
  fi
  echo "${built[0]}"
}
