"""Local tooling: the CLI, an embedded AWS stack, the stream poller, the simulation,
doctor and the benchmark. None of it is shipped in the Lambda's deployment zip."""
