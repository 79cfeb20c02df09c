output "function_name" {
  description = "Name of the Lambda function."
  value       = aws_lambda_function.trigger.function_name
}

output "function_arn" {
  description = "ARN of the Lambda function (unqualified)."
  value       = aws_lambda_function.trigger.arn
}

output "live_alias_arn" {
  description = "ARN of the \"live\" alias the stream mappings invoke."
  value       = aws_lambda_alias.live.arn
}

output "live_version" {
  description = "The published version the mappings run."
  value       = aws_lambda_alias.live.function_version
}

output "role_arn" {
  description = "ARN of the function's role."
  value       = aws_iam_role.trigger.arn
}

output "log_group_name" {
  description = "The function's log group."
  value       = aws_cloudwatch_log_group.trigger.name
}

output "segment_completions_mapping_id" {
  description = "UUID of the SegmentCompletions stream mapping."
  value       = aws_lambda_event_source_mapping.segment_completions.uuid
}

output "jobs_mapping_id" {
  description = "UUID of the Jobs stream mapping, or null without jobs_stream_arn."
  value       = one(aws_lambda_event_source_mapping.jobs[*].uuid)
}

output "on_failure_queue_url" {
  description = "Queue receiving the metadata (shard, sequence range) of batches Lambda gave up on."
  value       = aws_sqs_queue.on_failure.url
}

output "on_failure_queue_arn" {
  description = "ARN of the on-failure queue."
  value       = aws_sqs_queue.on_failure.arn
}
