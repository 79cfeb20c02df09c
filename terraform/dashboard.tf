# One page for an operator: what the trigger did (EMF metrics), whether the streams keep
# up (iterator age per mapping), what the reconciler caught, and the alarms' states.
# Without the stream trigger, only the reconciler's graphs and alarms (the workers'
# trigger_job metrics carry their own FunctionName, not the module's).

locals {
  # The per-reason metrics (the core's closed sets of reasons; docs/operations.md).
  skip_reason_metrics = [
    "SkippedJobNotFound", "SkippedJobInvalid", "SkippedNotChunkingComplete",
    "SkippedTotalSegmentsMissing", "SkippedIncomplete", "SkippedAlreadyTriggered",
    "SkippedReassemblyStarted", "SkippedDeferred",
  ]
  fail_reason_metrics = ["FailedAwsError", "FailedLockLost", "FailedDeadline", "FailedUnexpectedError"]

  emf_stream = [
    for metric in ["Records", "JobsEnqueued", "JobsSkipped", "JobsFailed", "MalformedRecords"] :
    [var.metrics_namespace, metric, "FunctionName", var.function_name, { stat = "Sum" }]
  ]
  emf_skips = [
    for metric in local.skip_reason_metrics :
    [var.metrics_namespace, metric, "FunctionName", var.function_name, { stat = "Sum" }]
  ]
  emf_failures = [
    for metric in local.fail_reason_metrics :
    [var.metrics_namespace, metric, "FunctionName", var.function_name, { stat = "Sum" }]
  ]
  emf_duration = [
    for stat in ["p50", "p99", "Maximum"] :
    [var.metrics_namespace, "InvocationDuration", "FunctionName", var.function_name, { stat = stat, label = "InvocationDuration ${stat}" }]
  ]
  iterator_age = [
    for mapping, alias in local.mapping_aliases :
    ["AWS/Lambda", "IteratorAge", "FunctionName", var.function_name, "Resource", "${var.function_name}:${alias}", { stat = "Maximum", label = mapping }]
  ]
  # (flatten() would flatten the metric arrays themselves: setproduct keeps them whole.)
  lambda_health = [
    for pair in setproduct(values(local.function_names), ["Errors", "Throttles"]) :
    ["AWS/Lambda", pair[1], "FunctionName", pair[0], { stat = "Sum", label = "${pair[0]} ${pair[1]}" }]
  ]
  on_failure = [
    ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", one(aws_sqs_queue.on_failure[*].name), { stat = "Maximum" }],
  ]
  emf_reconciler = concat(
    [
      for metric in ["JobsExamined", "JobsEnqueued", "WaitingForSegments", "Truncated"] :
      [var.metrics_namespace, metric, "FunctionName", local.reconciler_name, { stat = "Sum" }]
    ],
    [[var.metrics_namespace, "Unclaimed", "FunctionName", local.reconciler_name, { stat = "Maximum" }]],
  )
  emf_reconcile_duration = [
    [var.metrics_namespace, "ReconcileDuration", "FunctionName", local.reconciler_name, { stat = "Maximum" }],
  ]

  # Names (and so ARNs) are known at plan time, so the planned dashboard is complete.
  alarm_names = concat(
    [for alarm in aws_cloudwatch_metric_alarm.iterator_age : alarm.alarm_name],
    aws_cloudwatch_metric_alarm.on_failure_messages[*].alarm_name,
    aws_cloudwatch_metric_alarm.failed_jobs[*].alarm_name,
    aws_cloudwatch_metric_alarm.unexpected_errors[*].alarm_name,
    aws_cloudwatch_metric_alarm.deadline_failures[*].alarm_name,
    [for alarm in aws_cloudwatch_metric_alarm.function_errors : alarm.alarm_name],
    aws_cloudwatch_metric_alarm.function_throttles[*].alarm_name,
    aws_cloudwatch_metric_alarm.reconciler_enqueued[*].alarm_name,
    aws_cloudwatch_metric_alarm.unclaimed[*].alarm_name,
    aws_cloudwatch_metric_alarm.reconciler_truncated[*].alarm_name,
  )
  alarm_arns = [
    for name in local.alarm_names : "arn:${local.partition}:cloudwatch:${local.region}:${local.account_id}:alarm:${name}"
  ]

  # `stream`: the graph is about the stream function, its mappings or its queue.
  all_graphs = [
    { stream = true, title = "Stream: records and jobs by outcome", metrics = local.emf_stream },
    { stream = true, title = "Stream: skips by reason", metrics = local.emf_skips },
    { stream = true, title = "Stream: failures by reason", metrics = local.emf_failures },
    { stream = true, title = "Stream: invocation duration (ms)", metrics = local.emf_duration },
    { stream = true, title = "Iterator age per stream mapping (ms)", metrics = local.iterator_age },
    { stream = true, title = "On-failure queue: given-up batches", metrics = local.on_failure },
    { stream = false, title = "Functions: errors and throttles", metrics = local.lambda_health },
    { stream = false, title = "Reconciler: jobs examined, enqueued (missed by ${local.fast_path}), unclaimed", metrics = local.emf_reconciler },
    { stream = false, title = "Reconciler: run duration (ms)", metrics = local.emf_reconcile_duration },
  ]
  graphs = [for graph in local.all_graphs : graph if local.stream_trigger || !graph.stream]

  dashboard_widgets = concat(
    length(local.alarm_arns) == 0 ? [] : [{
      type       = "alarm"
      x          = 0
      y          = 0
      width      = 24
      height     = 3
      properties = { title = "Alarms", alarms = local.alarm_arns }
    }],
    [
      for index, graph in local.graphs : {
        type   = "metric"
        x      = (index % 2) * 12
        y      = 3 + floor(index / 2) * 6
        width  = 12
        height = 6
        properties = {
          title   = graph.title
          region  = local.region
          view    = "timeSeries"
          stacked = false
          period  = var.alarm_period_seconds
          metrics = graph.metrics
        }
      }
    ],
  )
}

resource "aws_cloudwatch_dashboard" "trigger" {
  count = local.deployed && var.dashboard_enabled ? 1 : 0

  dashboard_name = var.function_name
  dashboard_body = jsonencode({ widgets = local.dashboard_widgets })
}
