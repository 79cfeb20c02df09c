# Least privilege: exactly the calls the code makes (reassembly_trigger/gateways.py) and
# the calls Lambda makes on the function's behalf (stream reads, on-failure sends, logs),
# each on its own resource. The only "*" resource is dynamodb:ListStreams, which AWS
# does not scope to a resource (it lists the account's streams), and which Lambda's
# stream poller calls.

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

resource "aws_iam_role" "trigger" {
  name               = var.function_name
  assume_role_policy = data.aws_iam_policy_document.assume_role.json
  tags               = var.tags
}

locals {
  stream_arns = compact([var.segment_completions_stream_arn, var.jobs_stream_arn])
}

data "aws_iam_policy_document" "trigger" {
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
    resources = [aws_sqs_queue.on_failure.arn]
  }

  # The log group is created here, so the function only writes streams and events to it.
  statement {
    sid       = "WriteOwnLogs"
    effect    = "Allow"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.trigger.arn}:*"]
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

resource "aws_iam_role_policy" "trigger" {
  name   = "${var.function_name}-least-privilege"
  role   = aws_iam_role.trigger.id
  policy = data.aws_iam_policy_document.trigger.json
}
