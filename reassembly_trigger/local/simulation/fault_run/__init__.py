"""The fault run: proof that no job is stuck and none is reassembled twice.

A seeded, reproducible run of the real handler (`ReassemblyTrigger.handle`) and the real
reconciler (`reconcile.Reconciler`) against a moto server, with faults injected at the
HTTP layer of the Lambda's own clients (`faults.FaultInjector`) and the media worker
modelled with the contract's lock (`media_worker.MediaWorker`):

- **the pipeline**: jobs of varied sizes; their completions are written interleaved
  across jobs, out of order, some twice (a video worker retrying); chunking completes
  before the last segment for most jobs and after it for some (only the Jobs stream
  then names the job); some jobs never get their last segment or never finish
  chunking, and must never get a message;
- **Lambda's event source mappings**: the SegmentCompletions stream through
  `parallelization` lanes (Lambda keeps order per item only, so one job's records are
  evaluated by several lanes), the Jobs stream through one more. A batch whose
  invocation crashed is retried whole; a partial failure is retried from the lowest
  failed sequence number (Lambda's reading of the answer is `batch_response`, shared
  with the poller); now and then a batch that succeeded is delivered again;
- **the reconciler** runs on its schedule (every `reconcile_every_seconds` of simulated
  time, as EventBridge would, with the same faulty clients and clock as the handler),
  and the schedule goes on after the pipeline's last write until every lease has ended
  and a run finds nothing to do; no `doctor --repair` ever runs;
- **faults at every step**: throttling, 5xx, connect timeouts and lost responses on
  every AWS call the Lambda makes, on the Lambda's own client configuration
  (`kit.triggers`: botocore retries DynamoDB's, instantly in simulated time; a
  SendMessage has one attempt, so its fault fails the job and Lambda retries it),
  outages that outlast the retries, an invocation killed after the lock and before the
  send or after the send and before the mark (at its timeout or earlier), a lost
  answer to a successful send, and concurrent evaluations of one job raced on a fixed
  schedule (a rival that sees the holder mark, release or outlast it; two takers of
  one expired lock; a reconcile run meeting a live holder, or taking over beside a
  stream retry);
- **what only the reconciler recovers from**: batches the mapping gives up on (its
  retries ran out: the records are never delivered again), shards whose Jobs stream
  has no mapping (a job chunked after its last segment is then named by no record),
  and holders that die with a far lease (up to 900 s: a longer function, an earlier
  reconcile run), which the stream path defers to after `LEASE_WAIT_SECONDS`;
- **time is simulated** (`clock.SimulatedClock`): leases pass and waits end without
  any real sleeping;
- **trigger on write** (`mode` `on-write`): nothing reads the SegmentCompletions
  stream; right after each completion write, the video worker calls the API,
  `trigger_job`, on the same trigger (clients, faults and clock). A worker killed in
  the call is not retried (its completion is written; nobody redelivers it): the
  jobs it leaves, and those whose last call failed, are the reconciler's. The Jobs
  stream's mapping is kept as in `stream` mode (absent in some shards). `both` runs
  the two paths.

Everything random comes from the seed: the pipeline from `random.Random(seed)`, the
faults from hashes of the seed and the job's calls, the races from fixed schedules;
evaluations run one at a time (`evaluation_concurrency=1`) so that one seed always
gives the same run.

At the end the invariants are checked: every job that is complete and
`chunking_complete` got at least one message and was reassembled exactly once, and its
lock records the message (no job left without it, with no `doctor --repair`); no job
that is not complete got a message; the reconciler never waited on a live lease and
its last run found nothing to do; without faults, exactly one message per job and no
job left to the reconciler.

Run alone: `python -m reassembly_trigger.local.simulation.fault_run --jobs 10000 --seed 7`
(`--no-reconciler` shows what the stream path alone leaves stuck).

The modules, each owning one thing: `config` (the run's shape and its fault scenarios),
`planning` (the jobs, their writes, interleaved), `targets` (which job gets which
fault), `lanes` (Lambda's mapping delivering batches to the handler), `races` (the
rival evaluations), `run` (one shard wiring them, and the shards of a run), `report`
(the figures), `invariants` (what must hold at the end); `__main__` is the command.
"""
