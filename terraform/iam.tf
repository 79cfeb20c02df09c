# Least privilege: each function gets exactly the calls its code makes
# (reassembly_trigger/gateways.py) and the calls Lambda makes on its behalf (stream
# reads, on-failure sends, logs), each on its own resource; the schedule may invoke
# only the reconciler's alias. The only "*" resource is dynamodb:ListStreams, which AWS
# does not scope to a resource (it lists the account's streams), and which Lambda's
# stream poller calls. The code's own calls are one document (trigger_job), shared by
# the stream function and offered to workers that trigger on write (an output).

locals {
  stream_arns = compact([var.segment_completions_stream_arn, var.jobs_stream_arn])
  # The pipeline's region and account, from the Jobs table's ARN (no API call needed).
  partition  = split(":", var.jobs_table_arn)[1]
  region     = split(":", var.jobs_table_arn)[3]
  account_id = split(":", var.jobs_table_arn)[4]
}

data "aws_iam_policy_document" "assume_role" {
  statement {
    sid     = "LambdaAssumesTheRole"
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

# ------------------------------------------------------------------ the code's calls

# What reassembly_trigger.trigger_job (and the stream handler, which runs the same
# machine) calls, whoever runs it: the stream function's role includes it, and a
# worker's role attaches it for trigger on write (output trigger_job_policy_json).
data "aws_iam_policy_document" "trigger_job" {
  # JobStore.load_jobs reads the jobs of a batch with BatchGetItem (never GetItem).
  statement {
    sid       = "ReadJobs"
    effect    = "Allow"
    actions   = ["dynamodb:BatchGetItem"]
    resources = [var.jobs_table_arn]
  }

  # SegmentCompletions.count_completions: a strongly consistent Query with Select=COUNT.
  statement {
    sid       = "CountSegmentCompletions"
    effect    = "Allow"
    actions   = ["dynamodb:Query"]
    resources = [var.segment_completions_table_arn]
  }

  # ReassemblyLock: conditional create, read, lease take-over/enqueued/release updates.
  statement {
    sid       = "HoldTheReassemblyLock"
    effect    = "Allow"
    actions   = ["dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:UpdateItem"]
    resources = [var.reassembly_triggered_table_arn]
  }

  # ReassemblyQueue.send.
  statement {
    sid       = "StartReassembly"
    effect    = "Allow"
    actions   = ["sqs:SendMessage"]
    resources = [var.reassembly_queue_arn]
  }

  # Only when tables or queues are encrypted with customer-managed keys.
  dynamic "statement" {
    for_each = length(var.kms_key_arns) > 0 ? [var.kms_key_arns] : []
    content {
      sid       = "UseCustomerManagedKeys"
      effect    = "Allow"
      actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources = statement.value
    }
  }
}

# ------------------------------------------------------------------ the stream function

resource "aws_iam_role" "trigger" {
  count = local.stream_trigger ? 1 : 0

  name               = var.function_name
  assume_role_policy = data.aws_iam_policy_document.assume_role.json
  tags               = var.tags

  lifecycle {
    # The mode's inputs, checked before anything of the stream function is created.
    precondition {
      condition     = var.segment_completions_stream_arn != null
      error_message = "segment_completions_stream_arn is required with stream_trigger_enabled = true (the stream function's mapping); set stream_trigger_enabled = false for trigger on write alone."
    }
  }
}

data "aws_iam_policy_document" "trigger" {
  count = local.stream_trigger ? 1 : 0

  # The code's own calls, exactly as a worker gets them.
  source_policy_documents = [data.aws_iam_policy_document.trigger_job.json]

  # Lambda's stream poller reads the streams with the function's role.
  statement {
    sid       = "ReadTheStreams"
    effect    = "Allow"
    actions   = ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"]
    resources = local.stream_arns
  }

  # ListStreams supports no resource-level permission: "*" is the only resource AWS accepts.
  statement {
    sid       = "ListStreams"
    effect    = "Allow"
    actions   = ["dynamodb:ListStreams"]
    resources = ["*"]
  }

  # Lambda sends the metadata of a batch it gave up on with the function's role.
  statement {
    sid       = "ReportGivenUpBatches"
    effect    = "Allow"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.on_failure[0].arn]
  }

  # The log group is created here, so the function only writes streams and events to it.
  statement {
    sid       = "WriteOwnLogs"
    effect    = "Allow"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.trigger[0].arn}:*"]
  }
}

resource "aws_iam_role_policy" "trigger" {
  count = local.stream_trigger ? 1 : 0

  name   = "${var.function_name}-least-privilege"
  role   = aws_iam_role.trigger[0].id
  policy = data.aws_iam_policy_document.trigger[0].json
}

# ------------------------------------------------------------------ the reconciler

resource "aws_iam_role" "reconciler" {
  name               = local.reconciler_name
  assume_role_policy = data.aws_iam_policy_document.assume_role.json
  tags               = var.tags

  lifecycle {
    # On the role every configuration creates: a Jobs mapping needs the stream
    # function, which trigger on write alone does not have.
    precondition {
      # (A conditional, not ||: known at plan time even when the ARN is not.)
      condition     = local.stream_trigger ? true : var.jobs_stream_arn == null
      error_message = "jobs_stream_arn needs the stream function (stream_trigger_enabled = true). For trigger on write alone, leave it null and have the writer of chunking_complete call trigger_job too (or leave those jobs to the reconciler)."
    }
  }
}

data "aws_iam_policy_document" "reconciler" {
  # Targeted runs ({"job_ids": [...]}) read the named jobs with BatchGetItem.
  statement {
    sid       = "ReadJobs"
    effect    = "Allow"
    actions   = ["dynamodb:BatchGetItem"]
    resources = [var.jobs_table_arn]
  }

  # Every job in flight: a Query on the status index only, never the table itself.
  statement {
    sid       = "FindJobsInFlight"
    effect    = "Allow"
    actions   = ["dynamodb:Query"]
    resources = ["${var.jobs_table_arn}/index/${var.jobs_status_index_name}"]
  }

  statement {
    sid       = "CountSegmentCompletions"
    effect    = "Allow"
    actions   = ["dynamodb:Query"]
    resources = [var.segment_completions_table_arn]
  }

  # The locks of a page of jobs at once (BatchGetItem), then the machine's own lock
  # calls; the reconciler's cursor item lives here too (PutItem/GetItem).
  statement {
    sid       = "HoldTheReassemblyLock"
    effect    = "Allow"
    actions   = ["dynamodb:BatchGetItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"]
    resources = [var.reassembly_triggered_table_arn]
  }

  statement {
    sid       = "StartReassembly"
    effect    = "Allow"
    actions   = ["sqs:SendMessage"]
    resources = [var.reassembly_queue_arn]
  }

  statement {
    sid       = "WriteOwnLogs"
    effect    = "Allow"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.reconciler.arn}:*"]
  }

  dynamic "statement" {
    for_each = length(var.kms_key_arns) > 0 ? [var.kms_key_arns] : []
    content {
      sid       = "UseCustomerManagedKeys"
      effect    = "Allow"
      actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources = statement.value
    }
  }
}

resource "aws_iam_role_policy" "reconciler" {
  name   = "${local.reconciler_name}-least-privilege"
  role   = aws_iam_role.reconciler.id
  policy = data.aws_iam_policy_document.reconciler.json
}

# ------------------------------------------------------------------ the schedule

data "aws_iam_policy_document" "schedule_assume_role" {
  statement {
    sid     = "SchedulerAssumesTheRole"
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["scheduler.amazonaws.com"]
    }

    # Only schedules of this account (the confused-deputy guard AWS recommends).
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "schedule" {
  count = local.deployed ? 1 : 0

  name               = "${var.function_name}-schedule"
  assume_role_policy = data.aws_iam_policy_document.schedule_assume_role.json
  tags               = var.tags
}

resource "aws_iam_role_policy" "schedule" {
  count = local.deployed ? 1 : 0

  name = "${var.function_name}-schedule-invoke"
  role = aws_iam_role.schedule[0].id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid      = "InvokeTheReconciler"
      Effect   = "Allow"
      Action   = ["lambda:InvokeFunction"]
      Resource = [aws_lambda_alias.reconciler_live[0].arn]
    }]
  })
}
