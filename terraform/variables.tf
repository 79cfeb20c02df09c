# ------------------------------------------------------------------ the function

variable "function_name" {
  description = "Name of the Lambda function (also names its role, log group and on-failure queue)."
  type        = string
  default     = "stereo-spot-reassembly-trigger"
}

variable "deployment_zip_path" {
  description = "The zip built by scripts/build_deploy_zip.sh; null means <module>/../dist/deploy.zip."
  type        = string
  default     = null
}

variable "runtime" {
  description = "Lambda runtime; must match the RUNTIME the zip was built for."
  type        = string
  default     = "python3.12"

  validation {
    condition     = contains(["python3.11", "python3.12", "python3.13"], var.runtime)
    error_message = "runtime must be python3.11, python3.12 or python3.13 (the runtimes the zip can be built for)."
  }
}

variable "architecture" {
  description = "Lambda architecture; must match the ARCH the zip was built for (native pydantic-core)."
  type        = string
  default     = "x86_64"

  validation {
    condition     = contains(["x86_64", "arm64"], var.architecture)
    error_message = "architecture must be x86_64 or arm64."
  }
}

variable "timeout_seconds" {
  description = "Function timeout. Keep it at or below lock_lease_seconds."
  type        = number
  default     = 60
}

variable "memory_size_mb" {
  description = "Function memory. CPU scales with it (1,769 MB = one vCPU); botocore's per-call CPU is what bounds the concurrent evaluation of a batch's jobs, so 1,024 MB is the default (see docs/performance.md)."
  type        = number
  default     = 1024
}

variable "live_version" {
  description = "Published version the \"live\" alias (which the mappings invoke) points at; null means the latest. Set it to a previous version to roll back without rebuilding."
  type        = string
  default     = null
}

variable "lock_lease_seconds" {
  description = "LOCK_LEASE_SECONDS: lease assumed for a reassembly lock that records none; at least the timeout."
  type        = number
  default     = 900
}

variable "evaluation_concurrency" {
  description = "EVALUATION_CONCURRENCY: jobs of one batch evaluated at once."
  type        = number
  default     = 16
}

variable "metrics_namespace" {
  description = "METRICS_NAMESPACE: CloudWatch namespace of the EMF metrics the function prints."
  type        = string
  default     = "StereoSpot/ReassemblyTrigger"
}

variable "application_log_level" {
  description = "Lowest level of the function's own JSON log lines (Lambda passes it as AWS_LAMBDA_LOG_LEVEL)."
  type        = string
  default     = "INFO"
}

variable "log_retention_days" {
  description = "Retention of the function's log group."
  type        = number
  default     = 30
}

variable "kms_key_arns" {
  description = "Customer-managed KMS keys of the tables or queues, if any (the function then needs Decrypt/GenerateDataKey on them)."
  type        = list(string)
  default     = []
}

variable "tags" {
  description = "Tags for every resource the module creates."
  type        = map(string)
  default     = {}
}

# ------------------------------------------------------------------ the pipeline's resources

variable "jobs_table_name" {
  description = "Name of the Jobs table (JOBS_TABLE_NAME)."
  type        = string
}

variable "jobs_table_arn" {
  description = "ARN of the Jobs table."
  type        = string
}

variable "jobs_stream_arn" {
  description = "ARN of the Jobs table's stream (NEW_AND_OLD_IMAGES); null means no Jobs mapping."
  type        = string
  default     = null
}

variable "segment_completions_table_name" {
  description = "Name of the SegmentCompletions table (SEGMENT_COMPLETIONS_TABLE_NAME)."
  type        = string
}

variable "segment_completions_table_arn" {
  description = "ARN of the SegmentCompletions table."
  type        = string
}

variable "segment_completions_stream_arn" {
  description = "ARN of the SegmentCompletions table's stream (NEW_AND_OLD_IMAGES)."
  type        = string
}

variable "reassembly_triggered_table_name" {
  description = "Name of the ReassemblyTriggered table (REASSEMBLY_TRIGGERED_TABLE_NAME)."
  type        = string
}

variable "reassembly_triggered_table_arn" {
  description = "ARN of the ReassemblyTriggered table."
  type        = string
}

variable "reassembly_queue_url" {
  description = "URL of the reassembly queue (REASSEMBLY_QUEUE_URL)."
  type        = string
}

variable "reassembly_queue_arn" {
  description = "ARN of the reassembly queue."
  type        = string
}

# ------------------------------------------------------------------ the stream mappings

variable "batch_size" {
  description = "Most records per invocation."
  type        = number
  default     = 100
}

variable "maximum_batching_window_in_seconds" {
  description = "How long Lambda gathers records before invoking (0 = at once)."
  type        = number
  default     = 1
}

variable "parallelization_factor" {
  description = "Concurrent batches per shard (1-10); records of one key stay in order."
  type        = number
  default     = 1

  validation {
    condition     = var.parallelization_factor >= 1 && var.parallelization_factor <= 10
    error_message = "parallelization_factor must be between 1 and 10."
  }
}

variable "maximum_retry_attempts" {
  description = "Retries of a failing batch before its metadata goes to the on-failure queue. Finite."
  type        = number
  default     = 10

  validation {
    condition     = var.maximum_retry_attempts >= 0 && var.maximum_retry_attempts <= 10000
    error_message = "maximum_retry_attempts must be finite: 0 to 10000 (-1, infinite, would block the shard)."
  }
}

variable "maximum_record_age_in_seconds" {
  description = "Oldest record Lambda still sends to the function. Finite."
  type        = number
  default     = 21600

  validation {
    condition     = var.maximum_record_age_in_seconds >= 60 && var.maximum_record_age_in_seconds <= 604800
    error_message = "maximum_record_age_in_seconds must be finite: 60 to 604800 (-1, infinite, is refused)."
  }
}

variable "on_failure_message_retention_seconds" {
  description = "How long the on-failure queue keeps batch metadata for an operator (max 14 days)."
  type        = number
  default     = 1209600
}
