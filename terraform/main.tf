# reassembly-trigger: the Lambda, its log group, the on-failure queue and the stream
# mappings. IAM is in iam.tf.

locals {
  deployment_zip_path = coalesce(var.deployment_zip_path, "${path.module}/../dist/deploy.zip")

  # Stream filters match the record's `dynamodb` key. A REMOVE record (TTL expiry,
  # clean-up) carries no NewImage, so requiring NewImage.job_id drops it without
  # relying on eventName, which AWS's pages disagree on whether filters may match.
  segment_completion_filter = { dynamodb = { NewImage = { job_id = { S = [{ exists = true }] } } } }
  # The Jobs stream matters only when chunking completes (it closes the race where the
  # last segment finished before total_segments was known).
  chunking_complete_filter = { dynamodb = { NewImage = { status = { S = ["chunking_complete"] } } } }
}

resource "aws_cloudwatch_log_group" "trigger" {
  name              = "/aws/lambda/${var.function_name}"
  retention_in_days = var.log_retention_days
  tags              = var.tags
}

resource "aws_lambda_function" "trigger" {
  function_name = var.function_name
  description   = "Starts stereo-spot's reassembly exactly when every segment of a job is done."
  role          = aws_iam_role.trigger.arn

  filename         = local.deployment_zip_path
  source_code_hash = filebase64sha256(local.deployment_zip_path)
  handler          = "reassembly_trigger.handler.lambda_handler"
  runtime          = var.runtime
  architectures    = [var.architecture]
  timeout          = var.timeout_seconds
  memory_size      = var.memory_size_mb
  # Every code change becomes a numbered version, so the alias below can go back to one.
  publish = true

  environment {
    variables = {
      JOBS_TABLE_NAME                 = var.jobs_table_name
      SEGMENT_COMPLETIONS_TABLE_NAME  = var.segment_completions_table_name
      REASSEMBLY_TRIGGERED_TABLE_NAME = var.reassembly_triggered_table_name
      REASSEMBLY_QUEUE_URL            = var.reassembly_queue_url
      LOCK_LEASE_SECONDS              = tostring(var.lock_lease_seconds)
      EVALUATION_CONCURRENCY          = tostring(var.evaluation_concurrency)
      METRICS_NAMESPACE               = var.metrics_namespace
    }
  }

  logging_config {
    log_format            = "JSON"
    log_group             = aws_cloudwatch_log_group.trigger.name
    application_log_level = var.application_log_level
    system_log_level      = "WARN"
  }

  tags = var.tags

  # The role must be able to write logs before the first invocation.
  depends_on = [aws_iam_role_policy.trigger]
}

# The mappings invoke this alias, never $LATEST: rolling back is pointing it at an
# earlier published version (var.live_version).
resource "aws_lambda_alias" "live" {
  name             = "live"
  function_name    = aws_lambda_function.trigger.function_name
  function_version = coalesce(var.live_version, aws_lambda_function.trigger.version)
}

# Lambda's on-failure destination for stream sources receives only a batch's metadata
# (shard, sequence number range, reason), never the records: an operator re-drives the
# jobs named there with `reassembly-trigger doctor JOB_ID --repair`.
resource "aws_sqs_queue" "on_failure" {
  name                      = "${var.function_name}-failures"
  message_retention_seconds = var.on_failure_message_retention_seconds
  sqs_managed_sse_enabled   = true
  tags                      = var.tags
}

resource "aws_lambda_event_source_mapping" "segment_completions" {
  event_source_arn  = var.segment_completions_stream_arn
  function_name     = aws_lambda_alias.live.arn
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
      destination_arn = aws_sqs_queue.on_failure.arn
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
  count = var.jobs_stream_arn == null ? 0 : 1

  event_source_arn  = var.jobs_stream_arn
  function_name     = aws_lambda_alias.live.arn
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
      destination_arn = aws_sqs_queue.on_failure.arn
    }
  }

  filter_criteria {
    filter {
      pattern = jsonencode(local.chunking_complete_filter)
    }
  }

  depends_on = [aws_iam_role_policy.trigger]
}
