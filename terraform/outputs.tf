output "deployed" {
  description = "Whether the zip existed at plan time, so the functions, mappings, schedule and their alarms were planned. false: build, then apply again."
  value       = local.deployed
}

output "deployment_zip" {
  description = "The zip the functions run and what its manifest says it was built for (null fields when absent)."
  value = {
    path         = local.deployment_zip_path
    manifest     = local.deployment_manifest_path
    runtime      = try(local.manifest.runtime, null)
    architecture = try(local.manifest.architecture, null)
    bytecode     = try(local.manifest.bytecode, null)
    sha256       = try(local.manifest.sha256, null)
  }
}

output "stream_trigger_enabled" {
  description = "Whether the stream function and its mappings are part of this deployment (false: trigger on write alone, with the reconciler)."
  value       = local.stream_trigger
}

output "trigger_job_policy_json" {
  description = "IAM policy document (JSON) a worker's role needs to call reassembly_trigger.trigger_job: the stream function's own code statements (BatchGetItem on Jobs, Query on SegmentCompletions, GetItem/PutItem/UpdateItem on ReassemblyTriggered, SendMessage on the reassembly queue, and KMS with kms_key_arns). Attach it with aws_iam_role_policy."
  value       = data.aws_iam_policy_document.trigger_job.json
}

output "function_name" {
  description = "Name of the stream function (null until deployed, or without the stream trigger)."
  value       = one(aws_lambda_function.trigger[*].function_name)
}

output "function_arn" {
  description = "ARN of the stream function, unqualified (null until deployed, or without the stream trigger)."
  value       = one(aws_lambda_function.trigger[*].arn)
}

output "live_alias_arn" {
  description = "ARN of the \"live\" alias the SegmentCompletions mapping invokes (null until deployed, or without the stream trigger)."
  value       = one(aws_lambda_alias.live[*].arn)
}

output "live_version" {
  description = "The published version the mappings run (null until deployed, or without the stream trigger)."
  value       = one(aws_lambda_alias.live[*].function_version)
}

output "role_arn" {
  description = "ARN of the stream function's role (null without the stream trigger)."
  value       = one(aws_iam_role.trigger[*].arn)
}

output "log_group_name" {
  description = "The stream function's log group (null without the stream trigger)."
  value       = one(aws_cloudwatch_log_group.trigger[*].name)
}

output "segment_completions_mapping_id" {
  description = "UUID of the SegmentCompletions stream mapping (null until deployed, or without the stream trigger)."
  value       = one(aws_lambda_event_source_mapping.segment_completions[*].uuid)
}

output "jobs_mapping_id" {
  description = "UUID of the Jobs stream mapping, or null without jobs_stream_arn (or until deployed, or without the stream trigger)."
  value       = one(aws_lambda_event_source_mapping.jobs[*].uuid)
}

output "on_failure_queue_url" {
  description = "Queue receiving the metadata (shard, sequence range) of batches Lambda gave up on (null without the stream trigger)."
  value       = one(aws_sqs_queue.on_failure[*].url)
}

output "on_failure_queue_arn" {
  description = "ARN of the on-failure queue (null without the stream trigger)."
  value       = one(aws_sqs_queue.on_failure[*].arn)
}

output "reconciler_function_name" {
  description = "Name of the reconciler (null until deployed)."
  value       = one(aws_lambda_function.reconciler[*].function_name)
}

output "reconciler_log_group_name" {
  description = "The reconciler's log group."
  value       = aws_cloudwatch_log_group.reconciler.name
}

output "reconcile_schedule_arn" {
  description = "ARN of the EventBridge Scheduler schedule running the reconciler (null until deployed)."
  value       = one(aws_scheduler_schedule.reconcile[*].arn)
}

output "alarm_names" {
  description = "Every alarm the module created."
  value       = local.alarm_names
}

output "dashboard_name" {
  description = "The CloudWatch dashboard (null when disabled or until deployed)."
  value       = one(aws_cloudwatch_dashboard.trigger[*].dashboard_name)
}
