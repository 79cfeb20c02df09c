"""The whole pipeline around the trigger, played on an embedded AWS: the runner.

`PipelineSimulation.run()` starts a moto server, creates the tables and queues, and
plays a workload (`workload`) through real AWS calls: the chunker, the video workers
(and with trigger on write, their API calls; `actors`) and the media worker; the
stream pollers, like Lambda's event source mappings, invoking the real handler; the
real reconciler on a schedule. The handler's, the API's and the reconciler's AWS calls
can be made to fail at a rate, and each has clients of its own (configured alike), so
the report counts each one's calls by operation. What the evaluations ended in is read
from their outcomes (`outcome_counts`), never from logs. The run ends once the
pipeline has settled (`settling`); `report.JobResult.outcome` says how each job went.
"""

from __future__ import annotations

import random
import secrets
import threading
import time
from collections.abc import Callable, Mapping

import boto3

from reassembly_trigger.clients import AwsClients, aws_clients, session_clients
from reassembly_trigger.gateways import ReconcileCursorStore
from reassembly_trigger.local.aws.calls import CallCounter
from reassembly_trigger.local.aws.faults import FaultInjector, FaultKind, FaultRule
from reassembly_trigger.local.aws.stack import (
    DEFAULT_REGION,
    LocalAws,
    ResourceNames,
    Resources,
    create_resources,
    embedded_moto_server,
    environment,
)
from reassembly_trigger.local.invocations.environment import lambda_environment
from reassembly_trigger.local.invocations.logs import trigger_output
from reassembly_trigger.local.simulation.actors import (
    AfterWrite,
    Chunker,
    VideoWorkers,
    completed_at,
    on_write_call,
)
from reassembly_trigger.local.simulation.media_worker import MediaWorker
from reassembly_trigger.local.simulation.outcome_counts import OutcomeCounts
from reassembly_trigger.local.simulation.reconcile_schedule import (
    ReconcilerLoop,
    ReconcileTally,
    ScheduledReconciler,
)
from reassembly_trigger.local.simulation.report import JobResult, PipelineReport, Progress
from reassembly_trigger.local.simulation.settling import (
    Ending,
    PipelineActors,
    wait_until_settled,
)
from reassembly_trigger.local.simulation.workload import Workload, plan_workload
from reassembly_trigger.local.streams.poller import (
    GiveUp,
    MappingSettings,
    PollerGroup,
    StreamPoller,
)
from reassembly_trigger.machine import FailReason
from reassembly_trigger.reconcile import Reconciler
from reassembly_trigger.runtime import build_trigger
from reassembly_trigger.settings import Settings
from reassembly_trigger.timing import SystemClock

#: Faults injected into the actors' AWS calls, in equal shares of the fault rate.
FAULT_KINDS = (FaultKind.THROTTLE, FaultKind.SERVER_ERROR, FaultKind.LOST_RESPONSE)


class PipelineSimulation:
    """One run of a workload on a fresh embedded AWS."""

    def __init__(
        self,
        workload: Workload,
        *,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> None:
        self.workload = workload
        self.plan = plan_workload(workload)
        self._on_progress = on_progress
        self._stop = threading.Event()

    def stop(self) -> None:
        """End the run at its next look at the pipeline, as Ctrl-C does: the report
        says how far it got (thread-safe; callable from `on_progress`)."""
        self._stop.set()

    def run(self) -> PipelineReport:
        """Play the workload; report what happened to every job. Ctrl-C while the
        pipeline runs ends the run the same way as `stop()`."""
        started = time.monotonic()
        with embedded_moto_server() as endpoint:
            aws = LocalAws.connect(endpoint, DEFAULT_REGION, pool_size=self.workload.workers + 4)
            # A fresh prefix: moto servers of one process share their state.
            names = ResourceNames.with_prefix(f"sim-{secrets.token_hex(3)}")
            resources = create_resources(aws, names)
            env = environment(resources, endpoint, DEFAULT_REGION)
            # Every job of a local run is seconds old: the reconciler looks at all of them.
            env["RECONCILE_MIN_AGE_SECONDS"] = "0"
            with lambda_environment(env), trigger_output():
                return self._play(aws, resources, started)

    def _play(self, aws: LocalAws, resources: Resources, started: float) -> PipelineReport:
        workload, plan, names = self.workload, self.plan, resources.names
        injector = (
            fault_injector(workload.fault_rate, workload.seed) if workload.fault_rate else None
        )
        clients = self._actor_clients()
        counters = _instrument(clients, injector)
        settings = Settings.from_env()
        evaluations = OutcomeCounts()
        api = (
            build_trigger(settings, clients=clients["api"], renderer=None)
            if workload.mode.on_write
            else None
        )

        def calls_api(caller: str) -> AfterWrite | None:
            if api is None:
                return None
            return on_write_call(api, evaluations, caller, workload.function_timeout_seconds)

        chunker = Chunker(
            aws,
            names.jobs_table,
            after_mark=calls_api("chunker") if workload.chunker_calls_api else None,
        )
        chunker.create_jobs(plan.jobs)
        writers = VideoWorkers(
            aws,
            names.segment_completions_table,
            plan,
            chunker,
            workload.workers,
            after_write=calls_api("workers"),
        )
        media = MediaWorker(aws, resources, SystemClock())
        pollers = self._pollers(aws, resources, evaluations)
        reconciler = self._reconciler(settings, clients.get("reconciler"))
        threads = [
            threading.Thread(target=chunker.run, name="chunker", daemon=True),
            threading.Thread(target=media.run, name="media-worker", daemon=True),
            threading.Thread(target=writers.run, name="video-workers", daemon=True),
        ]
        if reconciler is not None:
            threads.append(threading.Thread(target=reconciler.run, name="reconciler", daemon=True))
        actors = PipelineActors(
            threads[2],
            chunker,
            writers,
            pollers,
            media,
            aws,
            resources,
            jobs_created=len(plan.jobs),
            jobs_stream=workload.jobs_stream_mapped,
            completions_stream=workload.mode.streams,
        )
        pollers.start()
        for thread in threads:
            thread.start()
        ending: Ending = "interrupted"
        try:
            ending = wait_until_settled(
                actors,
                reconciler,
                timeout_seconds=workload.timeout_seconds,
                stop=self._stop,
                before_look=lambda: self._report_progress(actors),
            )
        except KeyboardInterrupt:
            pass  # reported like stop(): the partial report says how far it got
        finally:
            writers.stop()
            pollers.stop()
            chunker.stop()
            media.stop()
            if reconciler is not None:
                reconciler.stop()
            for thread in threads:
                thread.join(10)
        reconciled = reconciler.scheduled.tally if reconciler is not None else None
        return PipelineReport(
            workload=workload,
            jobs=[
                JobResult.of(
                    job,
                    media.tally(job.job_id),
                    evaluations.job(job.job_id),
                    settled=ending == "settled",
                    reconciler_sends=reconciled.enqueued[job.job_id] if reconciled else 0,
                    completed_at=completed_at(job.job_id, writers, chunker),
                )
                for job in plan.jobs
            ],
            poller=pollers.stats(),
            messages=media.report().messages_received,
            completions_written=writers.written,
            faults_injected=sum(injector.injected.values()) if injector else 0,
            seconds=time.monotonic() - started,
            skips_by_reason=evaluations.skips_by_reason(),
            failures_by_reason=evaluations.failures_by_reason(),
            timed_out=ending == "timed_out",
            errors=_errors(
                actors, evaluations, reconciled, faults_injected=workload.fault_rate > 0
            ),
            interrupted=ending == "interrupted",
            completions_planned=writers.total,
            duplicates_written=writers.duplicates_written,
            reconciler=reconciled,
            aws_calls={actor: counter.snapshot() for actor, counter in counters.items()},
            api_outcomes=evaluations.api_calls,
        )

    def _actor_clients(self) -> dict[str, AwsClients]:
        """The clients of each actor of this run's mode, by actor.

        The handler's are the container's (what the handler uses); the API's and the
        reconciler's are their own, configured the same way from the same environment,
        so that each actor's calls are counted apart.
        """
        workload = self.workload
        pool = Settings.from_env().evaluation_concurrency
        clients: dict[str, AwsClients] = {}
        if workload.mode.streams:
            clients["handler"] = aws_clients(pool)
        if workload.mode.on_write:
            # One connection per video worker: each calls from its own thread.
            clients["api"] = session_clients(boto3.session.Session(), max(pool, workload.workers))
        if workload.reconciler:
            clients["reconciler"] = session_clients(boto3.session.Session(), pool)
        return clients

    def _pollers(
        self, aws: LocalAws, resources: Resources, evaluations: OutcomeCounts
    ) -> PollerGroup:
        # A production-like mapping: bisect, bounded retries, an on-failure queue.
        # It polls faster than Lambda's four times a second to keep runs short.
        settings = MappingSettings(
            batch_size=100,
            bisect_on_error=True,
            maximum_retry_attempts=10,
            on_failure_queue_url=resources.on_failure_queue_url,
            poll_interval_seconds=0.05,
            retry_backoff_seconds=0.1,
            retry_backoff_max_seconds=1.0,
            function_timeout_seconds=self.workload.function_timeout_seconds,
        )
        arns = [resources.segment_completions_stream_arn] if self.workload.mode.streams else []
        if self.workload.jobs_stream_mapped:
            arns.append(resources.jobs_stream_arn)
        give_up = _giving_up(self.workload.discard_rate, self.workload.seed)
        return PollerGroup(
            StreamPoller(
                aws.streams,
                arn,
                settings=settings,
                sqs=aws.sqs,
                observer=evaluations.observe,
                give_up=give_up,
            )
            for arn in arns
            if arn
        )

    def _reconciler(self, settings: Settings, clients: AwsClients | None) -> ReconcilerLoop | None:
        """The real reconciler on its schedule, on clients of its own (faults and all),
        or None with the reconciler off."""
        if not self.workload.reconciler or clients is None:
            return None
        trigger = build_trigger(settings, clients=clients, renderer=None)
        cursor = ReconcileCursorStore(clients.dynamodb, settings.reassembly_triggered_table_name)
        scheduled = ScheduledReconciler(
            Reconciler(trigger, cursor),
            SystemClock(),
            every_seconds=self.workload.reconcile_every_seconds,
            timeout_seconds=self.workload.function_timeout_seconds,
        )
        return ReconcilerLoop(scheduled)

    def _report_progress(self, actors: PipelineActors) -> None:
        if self._on_progress is None:
            return
        stats = actors.pollers.stats()
        self._on_progress(
            Progress(
                written=actors.writers.written,
                to_write=actors.writers.total,
                reassembled=len(actors.media.reassemblies),
                invocations=stats.invocations,
                records=stats.records_read,
            )
        )


def fault_injector(rate: float, seed: int) -> FaultInjector:
    """Throttles, server errors and lost responses, together at `rate` of the calls."""
    injector = FaultInjector(random.Random(seed))
    share = rate / len(FAULT_KINDS)
    taken = 0.0
    for kind in FAULT_KINDS:
        # Rules are tried in turn: each one's probability applies to the calls the
        # earlier ones let through.
        injector.add(FaultRule("*", kind, probability=share / (1.0 - taken)))
        taken += share
    return injector


def _instrument(
    clients: Mapping[str, AwsClients], injector: FaultInjector | None
) -> dict[str, CallCounter]:
    """Count each actor's calls on its clients, and attach the faults (if any) to all."""
    counters = {actor: CallCounter() for actor in clients}
    for actor, pair in clients.items():
        for client in (pair.dynamodb, pair.sqs):
            counters[actor].attach(client)
            if injector is not None:
                injector.attach(client)
    return counters


def _errors(
    actors: PipelineActors,
    evaluations: OutcomeCounts,
    reconciled: ReconcileTally | None,
    *,
    faults_injected: bool,
) -> list[str]:
    """What went wrong in the actors themselves (not in the pipeline they model).

    A reconcile run that an injected fault stopped is what the deployed reconciler
    does too (its invocation fails, the next run carries on): an error only without
    faults.
    """
    errors = [f"video worker: {exc!r}" for exc in actors.writers.errors[:5]]
    if actors.chunker.error is not None:
        errors.append(f"chunker: {actors.chunker.error!r}")
    if actors.media.error is not None:
        errors.append(f"media worker: {actors.media.error!r}")
    unexpected = evaluations.unexpected_errors
    if reconciled is not None:
        unexpected += reconciled.outcomes[f"failed:{FailReason.UNEXPECTED_ERROR.value}"]
    if unexpected:
        errors.append(f"trigger: {unexpected} unexpected evaluation errors")
    if reconciled is not None and reconciled.errors and not faults_injected:
        errors.append(
            f"reconciler runs failed: {len(reconciled.errors)}, e.g. {reconciled.errors[0]}"
        )
    return errors


def _giving_up(rate: float, seed: int) -> GiveUp | None:
    """The mappings' giving up on `rate` of the batches (seeded; shared by the pollers'
    threads), or None."""
    if rate <= 0:
        return None
    rng = random.Random(f"discard/{seed}")
    lock = threading.Lock()

    def give_up(_records: object) -> bool:
        with lock:
            return rng.random() < rate

    return give_up
