# The reconciler: the same zip, a second entry point, run on a schedule. It looks at
# every job still in flight (the Jobs table's status index) and runs it through the
# same state machine, so a job the stream path missed (a given-up batch, an unmapped
# Jobs stream, an expired stream record), or a worker's trigger_job call missed (the
# worker died, chunking completed after the last segment), still gets its message
# without a person. Every deployment has it, with or without the stream trigger.

resource "aws_cloudwatch_log_group" "reconciler" {
  name              = "/aws/lambda/${local.reconciler_name}"
  retention_in_days = var.log_retention_days
  tags              = var.tags
}

resource "aws_lambda_function" "reconciler" {
  count = local.deployed ? 1 : 0

  function_name = local.reconciler_name
  description   = "Reconciles every job in flight with the trigger's state machine (${local.stream_trigger ? "the stream path's" : "trigger on write's"} safety net)."
  role          = aws_iam_role.reconciler.arn

  filename         = local.deployment_zip_path
  source_code_hash = filebase64sha256(local.deployment_zip_path)
  handler          = "reassembly_trigger.reconcile.lambda_handler"
  runtime          = var.runtime
  architectures    = [var.architecture]
  timeout          = var.reconciler_timeout_seconds
  memory_size      = var.reconciler_memory_size_mb
  # Unreserved by default (null: the provider's -1). Overlapping runs are safe: every
  # write a job depends on is conditional (the lock), and the cursor (the last write
  # wins) only decides where the next run starts. A reservation, even of 1, fails
  # apply on accounts whose concurrency limit leaves less than 100 unreserved (new and
  # sandbox accounts): see var.reconciler_reserved_concurrency.
  reserved_concurrent_executions = var.reconciler_reserved_concurrency
  publish                        = true

  environment {
    variables = local.environment
  }

  logging_config {
    log_format            = "JSON"
    log_group             = aws_cloudwatch_log_group.reconciler.name
    application_log_level = var.application_log_level
    system_log_level      = var.system_log_level
  }

  tags = var.tags

  lifecycle {
    # Checked here, on the function every deployment has (the stream function runs the
    # same zip): a pydantic-core built for another architecture or Python deploys fine
    # and then fails every job with ImportError. Without a manifest only the first
    # check speaks (the others would repeat it).
    precondition {
      condition     = local.manifest != null
      error_message = "No build manifest at ${local.deployment_manifest_path} for ${local.deployment_zip_path}: rebuild with ${local.rebuild_hint} (it writes both)."
    }
    precondition {
      condition     = local.manifest == null || local.built.runtime == var.runtime
      error_message = "The zip was built for runtime ${local.built.runtime} but runtime = ${var.runtime}: rebuild with ${local.rebuild_hint}, or set runtime = \"${local.built.runtime}\"."
    }
    precondition {
      condition     = local.manifest == null || local.built.architecture == var.architecture
      error_message = "The zip was built for architecture ${local.built.architecture} but architecture = ${var.architecture}: rebuild with ${local.rebuild_hint}, or set architecture = \"${local.built.architecture}\"."
    }
    precondition {
      condition     = local.manifest == null || local.built.sha256 == local.zip_sha256
      error_message = "The zip's sha256 is ${local.zip_sha256} but its manifest says ${local.built.sha256}: the zip changed after it was built; rebuild with ${local.rebuild_hint}."
    }
  }

  depends_on = [aws_iam_role_policy.reconciler]
}

resource "aws_lambda_alias" "reconciler_live" {
  count = local.deployed ? 1 : 0

  name             = "live"
  function_name    = aws_lambda_function.reconciler[0].function_name
  function_version = coalesce(var.reconciler_live_version, aws_lambda_function.reconciler[0].version)
}

# The schedule invokes asynchronously. A failed or throttled run is not retried: the
# next scheduled run does the same work, and retries would only overlap it (or, with
# reconciler_reserved_concurrency, queue up behind it).
resource "aws_lambda_function_event_invoke_config" "reconciler" {
  count = local.deployed ? 1 : 0

  function_name                = aws_lambda_function.reconciler[0].function_name
  qualifier                    = aws_lambda_alias.reconciler_live[0].name
  maximum_retry_attempts       = 0
  maximum_event_age_in_seconds = 60
}

# EventBridge Scheduler rather than an EventBridge rule + target + lambda permission:
# it is AWS's service for schedules, `state` turns the schedule off without destroying
# it (reconcile_enabled), its retry policy is explicit (none, as above), and it invokes
# with a role scoped to this one alias instead of a resource policy on the function.
resource "aws_scheduler_schedule" "reconcile" {
  count = local.deployed ? 1 : 0

  name                = "${var.function_name}-reconcile"
  description         = "Runs the reassembly trigger's reconciler."
  schedule_expression = var.reconcile_schedule_expression
  state               = var.reconcile_enabled ? "ENABLED" : "DISABLED"

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = aws_lambda_alias.reconciler_live[0].arn
    role_arn = aws_iam_role.schedule[0].arn
    # The whole fleet; {"job_ids": [...]} is for targeted runs by hand.
    input = jsonencode({})

    retry_policy {
      maximum_retry_attempts       = 0
      maximum_event_age_in_seconds = 60
    }
  }
}
