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
