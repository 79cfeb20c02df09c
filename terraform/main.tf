# reassembly-trigger: the stream function, its aliases, log group, on-failure queue and
# stream mappings. The reconciler is in reconciler.tf, IAM in iam.tf, alarms in
# alarms.tf, the dashboard in dashboard.tf, plan-time checks in checks.tf.
#
# Two gates, both known at plan time whatever the pipeline passes in:
# - local.deployed (the zip exists): nothing that runs code is planned without it;
# - var.stream_trigger_enabled: false deploys the reconciler alone, for workers that
#   call reassembly_trigger.trigger_job after each write (trigger on write): no stream
#   function, role, log group, alias, mapping, on-failure queue or alarm on them.
# A stream ARN's null-ness is never a gate on its own: an ARN of a table created in
# the same apply is unknown at plan time, and Terraform cannot count on an unknown.
# Conditionals (`a ? (b ? 1 : 0) : 0`) short-circuit where `a && b` would not.

locals {
  # The build names its output by target, so the default follows runtime/architecture.
  deployment_zip_path = coalesce(
    var.deployment_zip_path,
    "${path.module}/../dist/deploy-${var.runtime}-${var.architecture}.zip",
  )
  deployment_manifest_path = coalesce(var.deployment_manifest_path, "${local.deployment_zip_path}.manifest.json")

  # A fresh checkout has no zip yet: then nothing that runs the code is planned (count
  # = 0), the plan still succeeds, and checks.tf warns. Build, apply again.
  deployed = fileexists(local.deployment_zip_path)
  # What the build says it built, read at plan time; null when absent or unreadable.
  manifest = try(jsondecode(file(local.deployment_manifest_path)), null)
  built = {
    runtime      = try(local.manifest.runtime, "unknown")
    architecture = try(local.manifest.architecture, "unknown")
    sha256       = try(local.manifest.sha256, "unknown")
  }
  zip_sha256      = local.deployed ? filesha256(local.deployment_zip_path) : ""
  rebuild_hint    = "RUNTIME=${var.runtime} ARCH=${var.architecture} bash scripts/build_deploy_zip.sh"
  reconciler_name = "${var.function_name}-reconciler"

  stream_trigger = var.stream_trigger_enabled
  # The stream function's code, only where both gates are open.
  stream_deployed = local.deployed ? local.stream_trigger : false
  # Who sends a job's message first; the reconciler sends what it missed.
  fast_path = local.stream_trigger ? "the stream path" : "the workers' trigger_job calls"

  # Both functions read the same environment (the core's settings).
  environment = {
    JOBS_TABLE_NAME                 = var.jobs_table_name
    SEGMENT_COMPLETIONS_TABLE_NAME  = var.segment_completions_table_name
    REASSEMBLY_TRIGGERED_TABLE_NAME = var.reassembly_triggered_table_name
    REASSEMBLY_QUEUE_URL            = var.reassembly_queue_url
    LOCK_LEASE_SECONDS              = tostring(var.lock_lease_seconds)
    EVALUATION_CONCURRENCY          = tostring(var.evaluation_concurrency)
    METRICS_NAMESPACE               = var.metrics_namespace
    LEASE_WAIT_SECONDS              = tostring(var.lease_wait_seconds)
    JOBS_STATUS_INDEX_NAME          = var.jobs_status_index_name
    RECONCILE_MIN_AGE_SECONDS       = tostring(var.reconcile_min_age_seconds)
    UNCLAIMED_AFTER_SECONDS         = tostring(var.unclaimed_after_seconds)
  }

  # Each mapping invokes an alias of its own, so IteratorAge (dimensions FunctionName
  # and Resource = function:alias) is measured, and alarmed on, per stream. Without the
  # stream trigger there is none (and jobs_stream_arn is refused: iam.tf).
  mapping_aliases = local.stream_trigger ? merge(
    { segment_completions = "live" },
    var.jobs_stream_arn == null ? {} : { jobs = "live-jobs" },
  ) : {}

  # Stream filters match the record's `dynamodb` key. A REMOVE record (TTL expiry,
  # clean-up) carries no NewImage, so requiring NewImage.job_id drops it without
  # relying on eventName, which AWS's pages disagree on whether filters may match.
  segment_completion_filter = { dynamodb = { NewImage = { job_id = { S = [{ exists = true }] } } } }
  # The Jobs stream matters only when chunking completes (it closes the race where the
  # last segment finished before total_segments was known).
  chunking_complete_filter = { dynamodb = { NewImage = { status = { S = ["chunking_complete"] } } } }
}

resource "aws_cloudwatch_log_group" "trigger" {
  count = local.stream_trigger ? 1 : 0

  name              = "/aws/lambda/${var.function_name}"
  retention_in_days = var.log_retention_days
  tags              = var.tags
}

resource "aws_lambda_function" "trigger" {
  count = local.stream_deployed ? 1 : 0

  function_name = var.function_name
  description   = "Starts stereo-spot's reassembly exactly when every segment of a job is done."
  role          = aws_iam_role.trigger[0].arn

  filename         = local.deployment_zip_path
  source_code_hash = filebase64sha256(local.deployment_zip_path)
  handler          = "reassembly_trigger.handler.lambda_handler"
  runtime          = var.runtime
  architectures    = [var.architecture]
  timeout          = var.timeout_seconds
  memory_size      = var.memory_size_mb
  # Every code change becomes a numbered version, so the aliases can go back to one
  # (and SnapStart, when on, snapshots each version).
  publish = true

  environment {
    variables = local.environment
  }

  logging_config {
    log_format            = "JSON"
    log_group             = aws_cloudwatch_log_group.trigger[0].name
    application_log_level = var.application_log_level
    system_log_level      = var.system_log_level
  }

  dynamic "snap_start" {
    for_each = var.snap_start ? [1] : []
    content {
      apply_on = "PublishedVersions"
    }
  }

  tags = var.tags

  lifecycle {
    # The zip's manifest is checked on aws_lambda_function.reconciler, the function
    # every deployment has, which runs the same zip.
    precondition {
      condition     = !var.snap_start || contains(["python3.12", "python3.13", "python3.14"], var.runtime)
      error_message = "snap_start needs python3.12 or later (Lambda's SnapStart for Python), not ${var.runtime}."
    }
  }

  # The role must be able to write logs before the first invocation.
  depends_on = [aws_iam_role_policy.trigger]
}

# The mappings invoke these aliases, never $LATEST: rolling back is pointing them at an
# earlier published version (var.live_version). One alias per mapping ("live" for
# SegmentCompletions, "live-jobs" for Jobs), both on the same version.
resource "aws_lambda_alias" "live" {
  count = local.stream_deployed ? 1 : 0

  name             = local.mapping_aliases.segment_completions
  function_name    = aws_lambda_function.trigger[0].function_name
  function_version = coalesce(var.live_version, aws_lambda_function.trigger[0].version)
}

resource "aws_lambda_alias" "live_jobs" {
  count = local.stream_deployed ? (var.jobs_stream_arn == null ? 0 : 1) : 0

  name             = "live-jobs"
  function_name    = aws_lambda_function.trigger[0].function_name
  function_version = coalesce(var.live_version, aws_lambda_function.trigger[0].version)
}

# Lambda's on-failure destination for stream sources receives only a batch's metadata
# (shard, sequence number range, reason), never the records. The reconciler finds the
# jobs of such a batch by itself; the queue tells an operator that it had to. Only the
# mappings use it, so trigger on write alone has none.
resource "aws_sqs_queue" "on_failure" {
  count = local.stream_trigger ? 1 : 0

  name                      = "${var.function_name}-failures"
  message_retention_seconds = var.on_failure_message_retention_seconds
  sqs_managed_sse_enabled   = true
  tags                      = var.tags
}

resource "aws_lambda_event_source_mapping" "segment_completions" {
  count = local.stream_deployed ? 1 : 0

  event_source_arn  = var.segment_completions_stream_arn
  function_name     = aws_lambda_alias.live[0].arn
  starting_position = "LATEST"

  batch_size                         = var.batch_size
  maximum_batching_window_in_seconds = var.maximum_batching_window_in_seconds
  parallelization_factor             = var.parallelization_factor

  # The function reports the lowest sequence number of each failed job; Lambda retries
  # from there, halving the batch on a crash, a finite number of times and record age.
  function_response_types        = ["ReportBatchItemFailures"]
  bisect_batch_on_function_error = true
  maximum_retry_attempts         = var.maximum_retry_attempts
  maximum_record_age_in_seconds  = var.maximum_record_age_in_seconds

  destination_config {
    on_failure {
      destination_arn = aws_sqs_queue.on_failure[0].arn
    }
  }

  filter_criteria {
    filter {
      pattern = jsonencode(local.segment_completion_filter)
    }
  }

  depends_on = [aws_iam_role_policy.trigger]
}

resource "aws_lambda_event_source_mapping" "jobs" {
  count = local.stream_deployed ? (var.jobs_stream_arn == null ? 0 : 1) : 0

  event_source_arn  = var.jobs_stream_arn
  function_name     = aws_lambda_alias.live_jobs[0].arn
  starting_position = "LATEST"

  batch_size                         = var.batch_size
  maximum_batching_window_in_seconds = var.maximum_batching_window_in_seconds
  parallelization_factor             = var.parallelization_factor

  function_response_types        = ["ReportBatchItemFailures"]
  bisect_batch_on_function_error = true
  maximum_retry_attempts         = var.maximum_retry_attempts
  maximum_record_age_in_seconds  = var.maximum_record_age_in_seconds

  destination_config {
    on_failure {
      destination_arn = aws_sqs_queue.on_failure[0].arn
    }
  }

  filter_criteria {
    filter {
      pattern = jsonencode(local.chunking_complete_filter)
    }
  }

  depends_on = [aws_iam_role_policy.trigger]
}
