# The alarms docs/operations.md recommends, as code. Each has a threshold variable;
# alarm_sns_topic_arn (optional) receives both the alarm and its recovery. Alarms on a
# function exist only when the function does (no zip: none planned; without the stream
# trigger: only the reconciler's).
#
# The EMF metrics have the one dimension FunctionName; every metric is written on every
# invocation (zeros included), so missing data means "no invocation", never "failing".

locals {
  alarms_on_functions      = local.deployed && var.alarms_enabled
  alarms_on_stream_trigger = local.stream_deployed && var.alarms_enabled
  alarm_actions            = var.alarm_sns_topic_arn == null ? [] : [var.alarm_sns_topic_arn]
  # CloudWatch refuses an alarm whose period times evaluation periods exceeds one day
  # (periods under an hour) or seven days: refused at plan time instead of at apply.
  alarm_max_evaluation_periods = floor((var.alarm_period_seconds < 3600 ? 86400 : 604800) / var.alarm_period_seconds)
  # The functions this configuration deploys.
  function_names = merge(
    local.stream_trigger ? { trigger = var.function_name } : {},
    { reconciler = local.reconciler_name },
  )
}

# A stream falling behind: throttling, or a retried batch blocking its shard. One alarm
# per mapping, through the mapping's own alias (main.tf).
resource "aws_cloudwatch_metric_alarm" "iterator_age" {
  for_each = local.alarms_on_stream_trigger ? local.mapping_aliases : {}

  alarm_name        = "${var.function_name}-iterator-age-${replace(each.key, "_", "-")}"
  alarm_description = "The ${each.key} stream mapping is falling behind (IteratorAge above ${var.iterator_age_alarm_threshold_ms} ms): throttling, or a batch retried on its shard. See docs/operations.md."
  namespace         = "AWS/Lambda"
  metric_name       = "IteratorAge"
  dimensions = {
    FunctionName = var.function_name
    Resource     = "${var.function_name}:${each.value}"
  }
  statistic           = "Maximum"
  period              = var.alarm_period_seconds
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.iterator_age_alarm_threshold_ms
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags
}

# Lambda gave up on a batch (retries or record age ran out) and sent its metadata here.
resource "aws_cloudwatch_metric_alarm" "on_failure_messages" {
  count = var.alarms_enabled && local.stream_trigger ? 1 : 0

  alarm_name        = "${var.function_name}-batches-given-up"
  alarm_description = "The on-failure queue ${aws_sqs_queue.on_failure[0].name} holds given-up batches: some records were never evaluated (the reconciler covers their jobs; find why). See docs/operations.md, The on-failure queue."
  namespace         = "AWS/SQS"
  metric_name       = "ApproximateNumberOfMessagesVisible"
  dimensions = {
    QueueName = aws_sqs_queue.on_failure[0].name
  }
  statistic           = "Maximum"
  period              = var.alarm_period_seconds
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.on_failure_messages_alarm_threshold
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags
}

# Failures that persist: single failures are retried and usually pass.
resource "aws_cloudwatch_metric_alarm" "failed_jobs" {
  count = local.alarms_on_stream_trigger ? 1 : 0

  alarm_name        = "${var.function_name}-failed-jobs"
  alarm_description = "Jobs keep failing (JobsFailed above ${var.failed_jobs_alarm_threshold} in ${var.failed_jobs_alarm_evaluation_periods} consecutive periods): retries are running out. The Failed<Reason> metrics and the \"Failures\" query say why."
  namespace         = var.metrics_namespace
  metric_name       = "JobsFailed"
  dimensions = {
    FunctionName = var.function_name
  }
  statistic           = "Sum"
  period              = var.alarm_period_seconds
  evaluation_periods  = var.failed_jobs_alarm_evaluation_periods
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.failed_jobs_alarm_threshold
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags

  lifecycle {
    precondition {
      condition     = var.failed_jobs_alarm_evaluation_periods <= local.alarm_max_evaluation_periods
      error_message = "failed_jobs_alarm_evaluation_periods = ${var.failed_jobs_alarm_evaluation_periods} with alarm_period_seconds = ${var.alarm_period_seconds}: CloudWatch allows at most ${local.alarm_max_evaluation_periods} periods (one day in all for periods under an hour, seven days otherwise)."
    }
  }
}

# Only a bug ends a job with `unexpected_error`: worth one period, not three.
resource "aws_cloudwatch_metric_alarm" "unexpected_errors" {
  count = local.alarms_on_stream_trigger ? 1 : 0

  alarm_name          = "${var.function_name}-unexpected-errors"
  alarm_description   = "A job failed with unexpected_error (FailedUnexpectedError above ${var.unexpected_errors_alarm_threshold}): a bug. Its records are retried until the on-failure queue."
  namespace           = var.metrics_namespace
  metric_name         = "FailedUnexpectedError"
  dimensions          = { FunctionName = var.function_name }
  statistic           = "Sum"
  period              = var.alarm_period_seconds
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.unexpected_errors_alarm_threshold
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags
}

# Jobs that failed as `deadline`: their normal path (load, count, lock, send, mark) did
# not fit in what was left of the invocation, AWS being slow or the timeout too small
# for the batch. Each is retried (what a cut-short holder left is covered by its
# lease), so one period is noise; several in a row are the silence issue 20 was about
# (every job of every retry failing this way, with only JobsFailed to show for it).
resource "aws_cloudwatch_metric_alarm" "deadline_failures" {
  count = local.alarms_on_stream_trigger ? 1 : 0

  alarm_name          = "${var.function_name}-deadline-failures"
  alarm_description   = "Jobs keep failing as deadline (FailedDeadline above ${var.deadline_failures_alarm_threshold} in ${var.deadline_failures_alarm_evaluation_periods} consecutive periods): their normal path did not fit in the invocation's time left. Look at the AWS call latencies in the log, then raise timeout_seconds (now ${var.timeout_seconds} s) or lower batch_size / evaluation_concurrency."
  namespace           = var.metrics_namespace
  metric_name         = "FailedDeadline"
  dimensions          = { FunctionName = var.function_name }
  statistic           = "Sum"
  period              = var.alarm_period_seconds
  evaluation_periods  = var.deadline_failures_alarm_evaluation_periods
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.deadline_failures_alarm_threshold
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags

  lifecycle {
    precondition {
      condition     = var.deadline_failures_alarm_evaluation_periods <= local.alarm_max_evaluation_periods
      error_message = "deadline_failures_alarm_evaluation_periods = ${var.deadline_failures_alarm_evaluation_periods} with alarm_period_seconds = ${var.alarm_period_seconds}: CloudWatch allows at most ${local.alarm_max_evaluation_periods} periods (one day in all for periods under an hour, seven days otherwise)."
    }
  }
}

# Invocations that crashed or timed out (per-job failures are reported, not raised).
resource "aws_cloudwatch_metric_alarm" "function_errors" {
  for_each = local.alarms_on_functions ? local.function_names : {}

  alarm_name          = "${each.value}-errors"
  alarm_description   = "${each.value}: invocations crashed or timed out (Errors above ${var.function_errors_alarm_threshold})."
  namespace           = "AWS/Lambda"
  metric_name         = "Errors"
  dimensions          = { FunctionName = each.value }
  statistic           = "Sum"
  period              = var.alarm_period_seconds
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.function_errors_alarm_threshold
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags
}

# The stream function has no reserved concurrency: throttles mean the account's limit.
# (The reconciler's are not alarmed: with reconciler_reserved_concurrency set, an
# overlapping run is throttled on purpose; unreserved, overlapping runs are safe.)
resource "aws_cloudwatch_metric_alarm" "function_throttles" {
  count = local.alarms_on_stream_trigger ? 1 : 0

  alarm_name          = "${var.function_name}-throttles"
  alarm_description   = "${var.function_name} was throttled (Throttles above ${var.function_throttles_alarm_threshold}): the streams wait, IteratorAge grows."
  namespace           = "AWS/Lambda"
  metric_name         = "Throttles"
  dimensions          = { FunctionName = var.function_name }
  statistic           = "Sum"
  period              = var.alarm_period_seconds
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.function_throttles_alarm_threshold
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags
}

# Every job the reconciler enqueues is one the stream path (or trigger_job) missed.
resource "aws_cloudwatch_metric_alarm" "reconciler_enqueued" {
  count = local.alarms_on_functions ? 1 : 0

  alarm_name          = "${local.reconciler_name}-enqueued"
  alarm_description   = "The reconciler enqueued jobs ${local.fast_path} missed (JobsEnqueued above ${var.reconciler_enqueued_alarm_threshold}): they are sent now; find why ${local.fast_path} missed them (${local.stream_trigger ? "on-failure queue, Jobs-stream mapping, errors" : "workers that died or failed after their write, chunking completed after the last segment"})."
  namespace           = var.metrics_namespace
  metric_name         = "JobsEnqueued"
  dimensions          = { FunctionName = local.reconciler_name }
  statistic           = "Sum"
  period              = var.alarm_period_seconds
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.reconciler_enqueued_alarm_threshold
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags
}

# Runs that stopped for time before reaching every job (the metric is 1 or 0 per run,
# so the statistic is Maximum). The cursor makes the next run go on from there, so one
# truncated run is normal for a large fleet; truncated for several periods in a row, the
# fleet does not fit in the runs (and a run that examines nothing says only this).
# With a schedule slower than alarm_period_seconds some periods have no run (not
# breaching): keep the period at or above the schedule's interval.
resource "aws_cloudwatch_metric_alarm" "reconciler_truncated" {
  count = local.alarms_on_functions ? 1 : 0

  alarm_name          = "${local.reconciler_name}-truncated"
  alarm_description   = "Reconciler runs keep stopping for time before reaching every job (Truncated above ${var.reconciler_truncated_alarm_threshold} in ${var.reconciler_truncated_alarm_evaluation_periods} consecutive periods): the fleet does not fit. Compare JobsExamined with the jobs in flight, then raise reconciler_timeout_seconds (now ${var.reconciler_timeout_seconds} s, at most 900) or run the schedule more often; meanwhile the cursor moves, so no job is starved."
  namespace           = var.metrics_namespace
  metric_name         = "Truncated"
  dimensions          = { FunctionName = local.reconciler_name }
  statistic           = "Maximum"
  period              = var.alarm_period_seconds
  evaluation_periods  = var.reconciler_truncated_alarm_evaluation_periods
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.reconciler_truncated_alarm_threshold
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags

  lifecycle {
    precondition {
      condition     = var.reconciler_truncated_alarm_evaluation_periods <= local.alarm_max_evaluation_periods
      error_message = "reconciler_truncated_alarm_evaluation_periods = ${var.reconciler_truncated_alarm_evaluation_periods} with alarm_period_seconds = ${var.alarm_period_seconds}: CloudWatch allows at most ${local.alarm_max_evaluation_periods} periods (one day in all for periods under an hour, seven days otherwise)."
    }
  }
}

# Sent, never claimed: the only case that still needs a person (re-send on purpose).
# Each run reports the same jobs again, so the statistic is Maximum, not Sum.
resource "aws_cloudwatch_metric_alarm" "unclaimed" {
  count = local.alarms_on_functions ? 1 : 0

  alarm_name          = "${local.reconciler_name}-unclaimed"
  alarm_description   = "Jobs whose reassembly message was sent more than ${var.unclaimed_after_seconds} s ago and never claimed (Unclaimed above ${var.unclaimed_alarm_threshold}): check the reassembly queue and its DLQ, then `reassembly-trigger doctor JOB_ID --repair --resend`."
  namespace           = var.metrics_namespace
  metric_name         = "Unclaimed"
  dimensions          = { FunctionName = local.reconciler_name }
  statistic           = "Maximum"
  period              = var.alarm_period_seconds
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.unclaimed_alarm_threshold
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags
}
