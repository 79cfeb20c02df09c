"""The fault run: proof that no job is stuck and none is reassembled twice.

A seeded, reproducible run of the real handler (`ReassemblyTrigger.handle`) and the real
reconciler (`reconcile.Reconciler`) against a moto server, with faults injected at the
HTTP layer of the Lambda's own clients (`faults.FaultInjector`, on the Lambda's client
configuration from `invocations.triggers`) and the media worker modelled with the contract's
lock (`media_worker.MediaWorker`):

- **the pipeline** (`planning`): jobs of varied sizes and fates, their completions
  written interleaved across jobs, out of order, some twice; chunking completes before
  the last segment for most jobs and after it for some; some jobs never complete and
  must never get a message;
- **Lambda's event source mappings** (`lanes`): the SegmentCompletions stream through
  `parallelization` lanes (one job's records are evaluated by several lanes), the Jobs
  stream through one more, with Lambda's retries, redeliveries and giving up;
- **the reconciler** runs on its schedule (`reconcile_schedule`, on the same faulty
  clients and clock as the handler) until every lease has ended and a run finds
  nothing to do; no `doctor --repair` ever runs;
- **faults at every step** (`config.FaultScenario`, aimed by `targets`, raced by
  `races`): AWS errors and lost answers on every call, invocations killed between the
  lock, the send and the mark, concurrent evaluations of one job, and what only the
  reconciler recovers from (discarded batches, an unmapped Jobs stream, holders dying
  with a far lease);
- **time is simulated** (`clock.SimulatedClock`): leases pass and waits end without
  any real sleeping;
- **trigger on write** (`mode` `on-write`): nothing reads the SegmentCompletions
  stream; right after each completion write, the video worker calls `trigger_job` on
  the same trigger. A worker killed in the call is not retried: the jobs it leaves are
  the reconciler's. `both` runs the two paths.

Everything random comes from the seed: the pipeline from `random.Random(seed)`, the
faults from hashes of the seed and the job's calls, the races from fixed schedules;
evaluations run one at a time (`evaluation_concurrency=1`) so that one seed always
gives the same run. At the end, `invariants` checks what must hold.

Run alone: `python -m reassembly_trigger.local.simulation.fault_run --jobs 10000 --seed 7`
(`--no-reconciler` shows what the stream path alone leaves stuck).

The modules, each owning one thing: `config` (the run's shape and its fault scenarios),
`planning` (the jobs, their writes, interleaved), `targets` (which job gets which
fault), `lanes` (Lambda's mapping delivering batches to the handler), `races` (the
rival evaluations), `run` (one shard wiring them, and the shards of a run), `report`
(the figures), `invariants` (what must hold at the end); `__main__` is the command.
"""
