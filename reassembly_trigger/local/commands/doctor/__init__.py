"""The operators' tools: doctor, the fleet view, explain, the dry run."""
