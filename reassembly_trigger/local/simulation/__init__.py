"""The pipeline around the trigger, simulated: workload, media worker, clock, faults."""
