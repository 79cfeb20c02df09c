# ------------------------------------------------------------------ the function

variable "function_name" {
  description = "Name of the stream function (also names its role, log group and on-failure queue, the reconciler \"<name>-reconciler\", the alarms and the dashboard)."
  type        = string
  default     = "stereo-spot-reassembly-trigger"

  validation {
    # Lambda function and IAM role names allow 64 characters; "-reconciler" takes 11.
    condition     = can(regex("^[A-Za-z0-9_-]{1,53}$", var.function_name))
    error_message = "function_name must be 1-53 letters, digits, '-' or '_' (the reconciler's name adds \"-reconciler\" within Lambda's 64)."
  }
}

variable "deployment_zip_path" {
  description = "The zip built by scripts/build_deploy_zip.sh; null means <module>/../dist/deploy-<runtime>-<architecture>.zip, the build's default for that target. Missing: nothing that runs code is planned (see the `deployed` output)."
  type        = string
  default     = null
}

variable "deployment_manifest_path" {
  description = "The build's manifest of that zip; null means <zip>.manifest.json, where the build writes it."
  type        = string
  default     = null
}

variable "runtime" {
  description = "Lambda runtime; the zip's manifest must say the same (checked at plan time)."
  type        = string
  default     = "python3.12"

  validation {
    condition     = contains(["python3.11", "python3.12", "python3.13", "python3.14"], var.runtime)
    error_message = "runtime must be python3.11, python3.12, python3.13 or python3.14 (the runtimes the build's lock covers)."
  }
}

variable "architecture" {
  description = "Lambda architecture; the zip's manifest must say the same (native pydantic-core), checked at plan time."
  type        = string
  default     = "x86_64"

  validation {
    condition     = contains(["x86_64", "arm64"], var.architecture)
    error_message = "architecture must be x86_64 or arm64."
  }
}

variable "timeout_seconds" {
  description = "Stream function timeout: a whole number from 2 (the code's minimum: one job's load, count, lock, send and mark fit, each AWS call bounded by the time left, after the 0.25 s kept to answer Lambda) to 900 (Lambda's limit). Every job of a batch is started while its normal path fits; whatever a deadline cuts short is covered by the lock's lease and retried."
  type        = number
  default     = 60
  nullable    = false

  validation {
    condition     = var.timeout_seconds >= 2 && var.timeout_seconds <= 900 && floor(var.timeout_seconds) == var.timeout_seconds
    error_message = "timeout_seconds must be a whole number from 2 to 900 s: below 2 s one job's bounded AWS calls (load, count, lock, send, mark) cannot fit before the 0.25 s kept to answer Lambda, and 900 s is Lambda's limit."
  }
}

variable "memory_size_mb" {
  description = "Stream function memory. CPU scales with it (1,769 MB = one vCPU); botocore's per-call CPU is what bounds the concurrent evaluation of a batch's jobs, so 1,024 MB is the default (see docs/performance.md)."
  type        = number
  default     = 1024

  validation {
    condition     = var.memory_size_mb >= 128 && var.memory_size_mb <= 10240
    error_message = "memory_size_mb must be 128 to 10240 (Lambda's limits)."
  }
}

variable "live_version" {
  description = "Published version the stream function's aliases (which the mappings invoke) point at; null means the latest. Set it to a previous version to roll back without rebuilding."
  type        = string
  default     = null
}

variable "snap_start" {
  description = "Lambda SnapStart on the stream function's published versions (python3.12 and later). Off by default: it is billed per published version for as long as the version exists, and its benefit is unmeasured here (see terraform/README.md, SnapStart)."
  type        = bool
  default     = false
}

# The variables below that end up in the functions' environment (local.environment) are
# held to the bounds Settings.from_env enforces at start-up: a value it refuses plans
# fine and then fails every invocation, so the plan refuses it instead (and
# tests/build/test_terraform.py derives the bounds from the code, so the two cannot drift).

variable "lock_lease_seconds" {
  description = "LOCK_LEASE_SECONDS: lease assumed for a reassembly lock that records none (written by the Lambda this one replaces); at least that Lambda's timeout. A whole number from 1 to 900 (Lambda's maximum timeout: no lease may outlive it)."
  type        = number
  default     = 900
  nullable    = false

  validation {
    condition     = var.lock_lease_seconds >= 1 && var.lock_lease_seconds <= 900 && floor(var.lock_lease_seconds) == var.lock_lease_seconds
    error_message = "lock_lease_seconds must be a whole number from 1 to 900: the functions refuse anything else at start-up (LOCK_LEASE_SECONDS), so every invocation would fail."
  }
}

variable "lease_wait_seconds" {
  description = "LEASE_WAIT_SECONDS: how long the stream path waits for a live lock holder before skipping the job as `deferred` (the reconciler takes it over once the lease is over). A whole number from 0 to 60. The wait never runs past the invocation's deadline (it ends while a lock, send and mark still fit), so a value at or above timeout_seconds is allowed but buys nothing more than waiting out the invocation."
  type        = number
  default     = 5
  nullable    = false

  validation {
    condition     = var.lease_wait_seconds >= 0 && var.lease_wait_seconds <= 60 && floor(var.lease_wait_seconds) == var.lease_wait_seconds
    error_message = "lease_wait_seconds must be a whole number from 0 to 60: the functions refuse anything else at start-up (LEASE_WAIT_SECONDS), so every invocation would fail."
  }
}

variable "evaluation_concurrency" {
  description = "EVALUATION_CONCURRENCY: jobs of one batch (or reconcile run) evaluated at once; a whole number from 1 to 128."
  type        = number
  default     = 16
  nullable    = false

  validation {
    condition     = var.evaluation_concurrency >= 1 && var.evaluation_concurrency <= 128 && floor(var.evaluation_concurrency) == var.evaluation_concurrency
    error_message = "evaluation_concurrency must be a whole number from 1 to 128: the functions refuse anything else at start-up (EVALUATION_CONCURRENCY), so every invocation would fail."
  }
}

variable "metrics_namespace" {
  description = "METRICS_NAMESPACE: CloudWatch namespace of the EMF metrics both functions print (and the alarms and dashboard read)."
  type        = string
  default     = "StereoSpot/ReassemblyTrigger"
  nullable    = false

  validation {
    # The code reads an empty METRICS_NAMESPACE as its default and strips spaces, while
    # the alarms and the dashboard read this value as written: they would watch a
    # namespace nothing writes to. "AWS/" is reserved for AWS's own metrics.
    condition     = trimspace(var.metrics_namespace) != "" && trimspace(var.metrics_namespace) == var.metrics_namespace && !startswith(var.metrics_namespace, "AWS/")
    error_message = "metrics_namespace must be non-empty, without surrounding spaces, and not start with \"AWS/\": the functions would write their metrics elsewhere than the alarms and dashboard read (or CloudWatch would drop them)."
  }
}

variable "application_log_level" {
  description = "Lowest level of the functions' own JSON log lines Lambda keeps (AWS_LAMBDA_LOG_LEVEL). TRACE, DEBUG or INFO: WARN and above would drop the metric lines (see terraform/README.md, Log levels)."
  type        = string
  default     = "INFO"

  validation {
    condition     = contains(["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"], var.application_log_level)
    error_message = "application_log_level must be one of Lambda's levels: TRACE, DEBUG, INFO, WARN, ERROR, FATAL."
  }

  validation {
    # Lambda gives a JSON line without a valid "level" the level INFO, and the EMF
    # metric lines are INFO: a higher threshold drops every metric, so every alarm on
    # them goes blind without a word. Refused rather than silently accepted.
    condition     = contains(["TRACE", "DEBUG", "INFO"], var.application_log_level)
    error_message = "application_log_level WARN, ERROR or FATAL would drop the EMF metric lines (INFO) and blind every alarm on them: use TRACE, DEBUG or INFO."
  }
}

variable "system_log_level" {
  description = "Lowest level of Lambda's own platform lines (START/END/REPORT are INFO) Lambda keeps: DEBUG, INFO or WARN."
  type        = string
  default     = "WARN"

  validation {
    condition     = contains(["DEBUG", "INFO", "WARN"], var.system_log_level)
    error_message = "system_log_level must be DEBUG, INFO or WARN (Lambda's system log levels)."
  }
}

variable "log_retention_days" {
  description = "Retention of both functions' log groups."
  type        = number
  default     = 30
}

variable "kms_key_arns" {
  description = "Customer-managed KMS keys of the tables or queues, if any (the functions then need Decrypt/GenerateDataKey on them)."
  type        = list(string)
  default     = []
}

variable "tags" {
  description = "Tags for every resource the module creates."
  type        = map(string)
  default     = {}
}

# ------------------------------------------------------------------ how jobs are triggered

variable "stream_trigger_enabled" {
  description = "Deploy the stream function: its role, log group, aliases, the SegmentCompletions mapping (and the Jobs mapping with jobs_stream_arn), the on-failure queue, and their alarms and dashboard widgets. false: trigger on write alone: the workers call reassembly_trigger.trigger_job after each write (their role attaches the output trigger_job_policy_json) and the reconciler, deployed either way, is the safety net."
  type        = bool
  default     = true
}

# ------------------------------------------------------------------ the reconciler

variable "reconcile_enabled" {
  description = "Whether the schedule runs the reconciler (the safety net for jobs the stream path missed). false keeps the function for targeted runs and disables only the schedule."
  type        = bool
  default     = true
}

variable "reconcile_schedule_expression" {
  description = "EventBridge Scheduler expression for the reconciler: rate(...) or cron(...)."
  type        = string
  default     = "rate(5 minutes)"

  validation {
    condition     = can(regex("^(rate|cron)\\(.+\\)$", var.reconcile_schedule_expression))
    error_message = "reconcile_schedule_expression must be rate(...) or cron(...)."
  }
}

variable "reconciler_timeout_seconds" {
  description = "Reconciler timeout: a whole number from 2 (the code's minimum, as for timeout_seconds) to 900 (Lambda's limit). A run stops starting work when less than about 1 s is left (one bounded AWS call plus the 0.25 s kept to answer Lambda), saves its cursor and reports `truncated`; the next run goes on from there."
  type        = number
  default     = 300
  nullable    = false

  validation {
    condition     = var.reconciler_timeout_seconds >= 2 && var.reconciler_timeout_seconds <= 900 && floor(var.reconciler_timeout_seconds) == var.reconciler_timeout_seconds
    error_message = "reconciler_timeout_seconds must be a whole number from 2 to 900 s: below 2 s one job's bounded AWS calls (load, count, lock, send, mark) cannot fit before the 0.25 s kept to answer Lambda, and 900 s is Lambda's limit."
  }
}

variable "reconciler_reserved_concurrency" {
  description = "Reserved concurrency of the reconciler; null (the default) reserves none. Overlapping runs are safe (every write a job depends on is conditional; the cursor only decides where the next run starts), so a reservation only saves duplicate reads when a run outlasts the schedule's interval. Set it (1: one run at a time) only on an account whose concurrency limit is above 100: Lambda keeps at least 100 units unreserved (on new and sandbox accounts, whose limit is 10 or 50, the whole limit), and a reservation that breaks that fails `apply` with InvalidParameterValueException (\"... decreases account's UnreservedConcurrentExecution below its minimum value\")."
  type        = number
  default     = null

  validation {
    condition     = var.reconciler_reserved_concurrency == null || try(var.reconciler_reserved_concurrency >= 1 && floor(var.reconciler_reserved_concurrency) == var.reconciler_reserved_concurrency, false)
    error_message = "reconciler_reserved_concurrency must be null (no reservation) or a whole number, 1 or more: 0 would throttle every run (to stop the schedule, set reconcile_enabled = false)."
  }
}

variable "reconciler_memory_size_mb" {
  description = "Reconciler memory (CPU scales with it, as for the stream function)."
  type        = number
  default     = 1024

  validation {
    condition     = var.reconciler_memory_size_mb >= 128 && var.reconciler_memory_size_mb <= 10240
    error_message = "reconciler_memory_size_mb must be 128 to 10240 (Lambda's limits)."
  }
}

variable "reconciler_live_version" {
  description = "Published reconciler version its `live` alias (which the schedule invokes) points at; null means the latest."
  type        = string
  default     = null
}

variable "jobs_status_index_name" {
  description = "JOBS_STATUS_INDEX_NAME: the Jobs table's GSI on status (hash `status`, range `created_at`) the reconciler queries."
  type        = string
  default     = "status-created_at"
  nullable    = false

  validation {
    # The code reads an empty name as its default and strips spaces, while the
    # reconciler's role is granted Query on index/<this value> as written: it would be
    # denied the index it queries.
    condition     = trimspace(var.jobs_status_index_name) != "" && trimspace(var.jobs_status_index_name) == var.jobs_status_index_name
    error_message = "jobs_status_index_name must be non-empty and without surrounding spaces: the reconciler would query another index than its role may read."
  }
}

variable "reconcile_min_age_seconds" {
  description = "RECONCILE_MIN_AGE_SECONDS: the reconciler skips jobs younger than this (the stream path handles them). A whole number from 0 to 604800 (7 days)."
  type        = number
  default     = 300
  nullable    = false

  validation {
    condition     = var.reconcile_min_age_seconds >= 0 && var.reconcile_min_age_seconds <= 604800 && floor(var.reconcile_min_age_seconds) == var.reconcile_min_age_seconds
    error_message = "reconcile_min_age_seconds must be a whole number from 0 to 604800: the functions refuse anything else at start-up (RECONCILE_MIN_AGE_SECONDS), so every invocation would fail."
  }
}

variable "unclaimed_after_seconds" {
  description = "UNCLAIMED_AFTER_SECONDS: a message not claimed by the media worker for this long is reported as Unclaimed (and alarms). A whole number from 1 to 2592000 (30 days)."
  type        = number
  default     = 3600
  nullable    = false

  validation {
    condition     = var.unclaimed_after_seconds >= 1 && var.unclaimed_after_seconds <= 2592000 && floor(var.unclaimed_after_seconds) == var.unclaimed_after_seconds
    error_message = "unclaimed_after_seconds must be a whole number from 1 to 2592000: the functions refuse anything else at start-up (UNCLAIMED_AFTER_SECONDS), so every invocation would fail."
  }
}

# ------------------------------------------------------------------ the pipeline's resources

variable "jobs_table_name" {
  description = "Name of the Jobs table (JOBS_TABLE_NAME)."
  type        = string
  nullable    = false

  validation {
    condition     = trimspace(var.jobs_table_name) != ""
    error_message = "jobs_table_name must not be empty (nor only spaces): the functions refuse an empty JOBS_TABLE_NAME at start-up, so every invocation would fail."
  }
}

variable "jobs_table_arn" {
  description = "ARN of the Jobs table (its region and account also place the dashboard and scope the schedule's role)."
  type        = string

  validation {
    condition     = can(regex("^arn:[^:]+:dynamodb:[^:]+:[0-9]{12}:table/.+$", var.jobs_table_arn))
    error_message = "jobs_table_arn must be a DynamoDB table ARN (arn:aws:dynamodb:REGION:ACCOUNT:table/NAME)."
  }
}

variable "jobs_stream_arn" {
  description = "ARN of the Jobs table's stream (NEW_AND_OLD_IMAGES); null means no Jobs mapping. Needs stream_trigger_enabled. Whether it is null decides the mapping at plan time: an ARN unknown until apply (the table created in the same apply) fails the plan once the zip exists (see terraform/README.md)."
  type        = string
  default     = null
}

variable "segment_completions_table_name" {
  description = "Name of the SegmentCompletions table (SEGMENT_COMPLETIONS_TABLE_NAME)."
  type        = string
  nullable    = false

  validation {
    condition     = trimspace(var.segment_completions_table_name) != ""
    error_message = "segment_completions_table_name must not be empty (nor only spaces): the functions refuse an empty SEGMENT_COMPLETIONS_TABLE_NAME at start-up, so every invocation would fail."
  }
}

variable "segment_completions_table_arn" {
  description = "ARN of the SegmentCompletions table."
  type        = string
}

variable "segment_completions_stream_arn" {
  description = "ARN of the SegmentCompletions table's stream (NEW_AND_OLD_IMAGES); required with stream_trigger_enabled (the default), unused without."
  type        = string
  default     = null
}

variable "reassembly_triggered_table_name" {
  description = "Name of the ReassemblyTriggered table (REASSEMBLY_TRIGGERED_TABLE_NAME)."
  type        = string
  nullable    = false

  validation {
    condition     = trimspace(var.reassembly_triggered_table_name) != ""
    error_message = "reassembly_triggered_table_name must not be empty (nor only spaces): the functions refuse an empty REASSEMBLY_TRIGGERED_TABLE_NAME at start-up, so every invocation would fail."
  }
}

variable "reassembly_triggered_table_arn" {
  description = "ARN of the ReassemblyTriggered table."
  type        = string
}

variable "reassembly_queue_url" {
  description = "URL of the reassembly queue (REASSEMBLY_QUEUE_URL)."
  type        = string
  nullable    = false

  validation {
    condition     = trimspace(var.reassembly_queue_url) != ""
    error_message = "reassembly_queue_url must not be empty (nor only spaces): the functions refuse an empty REASSEMBLY_QUEUE_URL at start-up, so every invocation would fail."
  }
}

variable "reassembly_queue_arn" {
  description = "ARN of the reassembly queue."
  type        = string
}

# ------------------------------------------------------------------ the stream mappings

variable "batch_size" {
  description = "Most records per invocation (Lambda: 1 to 10,000 for DynamoDB streams)."
  type        = number
  default     = 100

  validation {
    condition     = var.batch_size >= 1 && var.batch_size <= 10000 && floor(var.batch_size) == var.batch_size
    error_message = "batch_size must be a whole number from 1 to 10000 (Lambda's limits for DynamoDB streams)."
  }
}

variable "maximum_batching_window_in_seconds" {
  description = "How long Lambda gathers records before invoking (0 = at once; at most 300)."
  type        = number
  default     = 1

  validation {
    condition = (
      var.maximum_batching_window_in_seconds >= 0 && var.maximum_batching_window_in_seconds <= 300
      && floor(var.maximum_batching_window_in_seconds) == var.maximum_batching_window_in_seconds
    )
    error_message = "maximum_batching_window_in_seconds must be a whole number from 0 to 300 (Lambda's limits)."
  }
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

  validation {
    condition     = var.on_failure_message_retention_seconds >= 60 && var.on_failure_message_retention_seconds <= 1209600
    error_message = "on_failure_message_retention_seconds must be 60 to 1209600 (SQS's limits)."
  }
}

# ------------------------------------------------------------------ alarms and dashboard

variable "alarms_enabled" {
  description = "Create the CloudWatch alarms (alarms.tf)."
  type        = bool
  default     = true
}

variable "alarm_sns_topic_arn" {
  description = "SNS topic notified when an alarm fires and clears; null: the alarms only change state."
  type        = string
  default     = null
}

variable "alarm_period_seconds" {
  description = "Period of every alarm's statistic."
  type        = number
  default     = 300

  validation {
    condition     = contains([60, 300, 900, 3600], var.alarm_period_seconds)
    error_message = "alarm_period_seconds must be 60, 300, 900 or 3600."
  }
}

variable "iterator_age_alarm_threshold_ms" {
  description = "Alarm when a stream mapping's IteratorAge (Maximum) exceeds this: the stream is falling behind."
  type        = number
  default     = 300000
}

variable "on_failure_messages_alarm_threshold" {
  description = "Alarm when the on-failure queue holds more visible messages than this (0: any given-up batch)."
  type        = number
  default     = 0
}

variable "failed_jobs_alarm_threshold" {
  description = "Alarm when JobsFailed (Sum per period) exceeds this in failed_jobs_alarm_evaluation_periods consecutive periods."
  type        = number
  default     = 0
}

variable "failed_jobs_alarm_evaluation_periods" {
  description = "Consecutive periods of failed jobs before the alarm fires (single failures are retried and usually pass)."
  type        = number
  default     = 3

  validation {
    condition     = var.failed_jobs_alarm_evaluation_periods >= 1 && floor(var.failed_jobs_alarm_evaluation_periods) == var.failed_jobs_alarm_evaluation_periods
    error_message = "failed_jobs_alarm_evaluation_periods must be a whole number, 1 or more."
  }
}

variable "unexpected_errors_alarm_threshold" {
  description = "Alarm when FailedUnexpectedError (a bug) exceeds this in one period."
  type        = number
  default     = 0
}

variable "deadline_failures_alarm_threshold" {
  description = "Alarm when FailedDeadline (jobs whose normal path did not fit in the invocation's time left) exceeds this in deadline_failures_alarm_evaluation_periods consecutive periods."
  type        = number
  default     = 0
}

variable "deadline_failures_alarm_evaluation_periods" {
  description = "Consecutive periods of deadline failures before the alarm fires (one slow period is retried and usually passes)."
  type        = number
  default     = 3

  validation {
    condition     = var.deadline_failures_alarm_evaluation_periods >= 1 && floor(var.deadline_failures_alarm_evaluation_periods) == var.deadline_failures_alarm_evaluation_periods
    error_message = "deadline_failures_alarm_evaluation_periods must be a whole number, 1 or more."
  }
}

variable "function_errors_alarm_threshold" {
  description = "Alarm when a function's Errors (crashes, timeouts) exceed this in one period."
  type        = number
  default     = 0
}

variable "function_throttles_alarm_threshold" {
  description = "Alarm when the stream function's Throttles exceed this in one period."
  type        = number
  default     = 0
}

variable "reconciler_enqueued_alarm_threshold" {
  description = "Alarm when a reconcile run enqueues more jobs than this (each is a job the stream path missed)."
  type        = number
  default     = 0
}

variable "unclaimed_alarm_threshold" {
  description = "Alarm when the reconciler reports more Unclaimed jobs than this (sent, never claimed by the media worker)."
  type        = number
  default     = 0
}

variable "reconciler_truncated_alarm_threshold" {
  description = "Alarm when the reconciler's Truncated (1 for a run that stopped for time before reaching every job) exceeds this (Maximum per period) in reconciler_truncated_alarm_evaluation_periods consecutive periods."
  type        = number
  default     = 0
}

variable "reconciler_truncated_alarm_evaluation_periods" {
  description = "Consecutive periods with a truncated reconciler run before the alarm fires (the cursor carries one truncated run over to the next)."
  type        = number
  default     = 3

  validation {
    condition     = var.reconciler_truncated_alarm_evaluation_periods >= 1 && floor(var.reconciler_truncated_alarm_evaluation_periods) == var.reconciler_truncated_alarm_evaluation_periods
    error_message = "reconciler_truncated_alarm_evaluation_periods must be a whole number, 1 or more."
  }
}

variable "dashboard_enabled" {
  description = "Create a CloudWatch dashboard with the metrics, iterator age and alarms."
  type        = bool
  default     = true
}
