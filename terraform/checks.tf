# The seed's "apply before build" path: on a fresh checkout the zip does not exist yet.
# Then the functions, their aliases, the stream mappings, the reconciler's schedule and
# the alarms and dashboard on them are planned with count = 0, the rest (roles, log
# groups, the on-failure queue) is created, the `deployed` output is false, and this
# check prints a warning instead of failing the plan. Build, then apply again.
check "deployment_zip_exists" {
  assert {
    condition     = local.deployed
    error_message = "No deployment zip at ${local.deployment_zip_path}: the functions, stream mappings, reconciler schedule and their alarms are not planned (output deployed = false). Build it with ${local.rebuild_hint}, then apply again."
  }
}
