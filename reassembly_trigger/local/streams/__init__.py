"""Lambda's side of DynamoDB Streams, emulated: record shapes, batch responses, the poller."""
