# These resources gained `count` (no zip: none planned). State written before that
# holds them without an index; these blocks move them to [0] instead of replacing them.
moved {
  from = aws_lambda_function.trigger
  to   = aws_lambda_function.trigger[0]
}

moved {
  from = aws_lambda_alias.live
  to   = aws_lambda_alias.live[0]
}

moved {
  from = aws_lambda_event_source_mapping.segment_completions
  to   = aws_lambda_event_source_mapping.segment_completions[0]
}

# These gained `count` with stream_trigger_enabled (false: trigger on write alone, no
# stream function): state written before keeps them at [0] instead of replacing them
# (a replaced on-failure queue would lose its messages, a replaced role its sessions).
moved {
  from = aws_iam_role.trigger
  to   = aws_iam_role.trigger[0]
}

moved {
  from = aws_iam_role_policy.trigger
  to   = aws_iam_role_policy.trigger[0]
}

moved {
  from = aws_cloudwatch_log_group.trigger
  to   = aws_cloudwatch_log_group.trigger[0]
}

moved {
  from = aws_sqs_queue.on_failure
  to   = aws_sqs_queue.on_failure[0]
}
