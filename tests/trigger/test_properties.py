"""Property: whatever the stream, the tables and AWS do, the handler answers in time with a
valid partial batch response, and never triggers a job that is not ready.

Hypothesis generates a batch (well-formed records, records with any part replaced by any
JSON, any sequence numbers, any JSON at all), the Job items, completions and lock items
of up to three jobs (any DynamoDB attribute type where a value belongs), AWS's latency,
faults and the invocation's time left. Each example runs `lambda_handler` on the real
trigger against the moto server, on simulated time.

Profiles (`HYPOTHESIS_PROFILE`): `ci` (the default, 100 examples) and `thorough` (1,000).
"""

from __future__ import annotations

import functools
import itertools
import json
import os
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import hypothesis
import pytest
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from reassembly_trigger.items import MAX_TOTAL_SEGMENTS
from reassembly_trigger.local.aws.faults import FaultKind, FaultRule
from reassembly_trigger.local.invocations.items import completion_item
from reassembly_trigger.local.invocations.records import StreamRecords, stream_arn
from reassembly_trigger.lock import DECISIVE_LOCK_ATTRIBUTES

from adversary import Adversary, Arena, adversary

_COMMON = {
    "deadline": None,  # each example makes real calls to moto: timing varies with load
    "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    "print_blob": True,
    # Explaining a failure re-runs it a thousand times against moto: minutes, not seconds.
    "phases": [p for p in Phase if p is not Phase.explain],
}
settings.register_profile("ci", max_examples=100, **_COMMON)
settings.register_profile("thorough", max_examples=1000, **_COMMON)
PROFILE = settings.get_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

#: Any JSON value, as Lambda could deliver it.
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)

#: Text DynamoDB stores (no lone surrogates, which no JSON encoder sends).
texts = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=8)

#: DynamoDB numbers as strings: small, 38-digit, fractional, huge, tiny, equal-looking.
numbers = st.one_of(
    st.integers(-2, 6).map(str),
    st.integers(-(10**38) + 1, 10**38 - 1).map(str),
    st.decimals(min_value=-(10**6), max_value=10**6, places=2).map(str),
    st.sampled_from(
        ["1E+125", "-1E+125", "1e6", "0.5", "1.0", "2.0000000000000000000000000000000001", "-0"]
    ),
)

#: Any DynamoDB attribute value.
attribute_values = st.recursive(
    st.one_of(
        texts.map(lambda s: {"S": s}),
        numbers.map(lambda n: {"N": n}),
        st.binary(max_size=4).map(lambda b: {"B": b}),
        st.booleans().map(lambda b: {"BOOL": b}),
        st.just({"NULL": True}),
        st.lists(texts.filter(bool), min_size=1, max_size=3, unique=True).map(lambda v: {"SS": v}),
        st.lists(st.integers(-5, 5), min_size=1, max_size=3, unique=True).map(
            lambda v: {"NS": [str(n) for n in v]}
        ),
        st.lists(st.binary(min_size=1, max_size=3), min_size=1, max_size=2, unique=True).map(
            lambda v: {"BS": v}
        ),
    ),
    lambda inner: (
        st.lists(inner, max_size=2).map(lambda v: {"L": v})
        # Map keys are non-empty: moto drops an empty key when it answers (the item
        # comes back malformed), and DynamoDB refuses empty attribute names.
        | st.dictionaries(texts.filter(bool), inner, max_size=2).map(lambda v: {"M": v})
    ),
    max_leaves=4,
)


@dataclass(frozen=True)
class Ago:
    """A number of seconds relative to the simulated clock when the example runs."""

    offset: int


JOB_STATUSES = ["chunking_complete", "chunking_in_progress", "completed", "failed", ""]

_job_fields = {
    "status": st.one_of(
        st.just({"S": "chunking_complete"}),
        st.just({"S": "chunking_complete"}),
        st.just({"S": "chunking_complete"}),
        st.sampled_from(JOB_STATUSES).map(lambda s: {"S": s}),
        attribute_values,
    ),
    "total_segments": st.one_of(
        st.integers(1, 4).map(lambda n: {"N": str(n)}),
        st.integers(1, 4).map(lambda n: {"N": str(n)}),
        st.integers(1, 4).map(lambda n: {"N": str(n)}),
        attribute_values,
    ),
}
_other_job_fields = {
    "mode": st.one_of(st.just({"S": "sbs"}), attribute_values),
    "created_at": st.one_of(st.just({"N": "1793999000"}), attribute_values),
    "unknown": attribute_values,
}
#: A Job as the pipeline writes it, ready once its segments are recorded.
ready_job_items = st.fixed_dictionaries(
    {
        "status": st.just({"S": "chunking_complete"}),
        "total_segments": st.integers(1, 4).map(lambda n: {"N": str(n)}),
    },
    optional=_other_job_fields,
)
#: Job items: mostly with both deciding fields (of any value), some without either.
job_items = st.one_of(
    st.fixed_dictionaries(_job_fields, optional=_other_job_fields),
    st.fixed_dictionaries(_job_fields, optional=_other_job_fields),
    st.fixed_dictionaries({}, optional=_job_fields | _other_job_fields),
)

lock_values = st.one_of(
    st.sampled_from([-(10**6), -2000, -1000, -10, 0, 1, 600, 10**6, 365 * 86400]).map(Ago),
    st.integers(-(10**7), 10**7).map(Ago),
    attribute_values,
)
lock_items = st.fixed_dictionaries(
    {},
    optional=dict.fromkeys((*DECISIVE_LOCK_ATTRIBUTES, "message_id", "resends"), lock_values),
)

indexes = st.one_of(
    st.integers(-1, 5).map(str),
    st.sampled_from(["0.5", "1.0", "2.5", "-0", "1E+1", "3.0000000000000000000000000001"]),
)


@dataclass(frozen=True)
class JobSpec:
    """One job's rows: its Job item (None: none), completions and lock (None: none)."""

    name: str
    item: dict[str, Any] | None
    completions: list[str]
    lock: dict[str, Any] | None
    #: Also record every index in [0, total_segments) (when that is a small number), so
    #: that many examples reach the lock and the send.
    fill: bool
    #: Well-formed completion records of this job in the batch (beside any others).
    records: int


job_names = st.one_of(
    st.sampled_from(["a", "b", "c"]),
    st.text(alphabet=st.characters(exclude_categories=("Cs",)), min_size=1, max_size=12),
)
job_specs = st.builds(
    JobSpec,
    name=job_names,
    item=st.one_of(ready_job_items, ready_job_items, job_items, job_items, st.none()),
    completions=st.lists(indexes, max_size=5),
    lock=st.none() | st.none() | lock_items,
    fill=st.sampled_from([True, True, True, False]),
    records=st.sampled_from([1, 1, 1, 2, 3, 0]),
)

sequence_numbers = st.one_of(
    st.integers(10**20, 10**40 - 1).map(str),
    st.integers(10**20, 10**40 - 1).map(str),
    st.sampled_from(["abc", "-5", "1" * 41, "", "12.5", "٣٤٥", "0"]),
    json_values,
)


@dataclass(frozen=True)
class RecordSpec:
    """A stream record to build once the example's job ids are known."""

    kind: str  # completion | jobs
    job: int | str  # an index into the example's jobs, or a job id of its own
    index: Any
    status: Any
    event_name: Any
    arn: str
    sequence_number: Any
    #: Replace the value at this path of the built record (by keys) with any JSON.
    mutation: tuple[tuple[str, ...], Any] | None


record_paths = st.sampled_from(
    [
        ("eventSourceARN",),
        ("eventName",),
        ("dynamodb",),
        ("dynamodb", "Keys"),
        ("dynamodb", "Keys", "job_id"),
        ("dynamodb", "Keys", "segment_index"),
        ("dynamodb", "NewImage"),
        ("dynamodb", "NewImage", "status"),
        ("dynamodb", "SequenceNumber"),
    ]
)

record_specs = st.builds(
    RecordSpec,
    kind=st.sampled_from(["completion", "completion", "jobs"]),
    job=st.integers(0, 2) | st.text(max_size=6),
    index=st.integers(0, 4).map(lambda n: {"N": str(n)}) | attribute_values,
    status=st.just({"S": "chunking_complete"}) | attribute_values | json_values,
    event_name=st.sampled_from(["INSERT", "MODIFY", "REMOVE"]) | json_values,
    arn=st.sampled_from(["own", "own", "other-table", "none", "list", "garbage"]),
    sequence_number=sequence_numbers,
    mutation=st.none() | st.none() | st.tuples(record_paths, json_values),
)


@dataclass(frozen=True)
class Case:
    """One example: the tables, the batch, AWS's behaviour and the time left."""

    jobs: list[JobSpec]
    records: list[RecordSpec | Any]  # a spec, or any JSON in its place
    event_shape: str  # batch | records-not-a-list | not-a-map
    latency: float
    faults: list[tuple[str, FaultKind, float]]
    remaining: float
    concurrency: int


fault_menu = st.tuples(
    st.sampled_from(["BatchGetItem", "Query", "PutItem", "UpdateItem", "GetItem", "SendMessage"]),
    st.sampled_from(
        [
            FaultKind.THROTTLE,
            FaultKind.SERVER_ERROR,
            FaultKind.CONNECT_TIMEOUT,
            FaultKind.LOST_RESPONSE,
            FaultKind.UNPROCESSED_KEYS,
            FaultKind.EMPTY_RESPONSE,
            FaultKind.GARBLED_RESPONSE,
        ]
    ),
    st.sampled_from([0.2, 0.5, 1.0]),
).filter(
    # Keys held back only make sense for BatchGetItem; an empty answer to a write would
    # be AWS lying that it wrote, which no property can survive: only for the send.
    lambda f: (
        (f[1] is not FaultKind.UNPROCESSED_KEYS or f[0] == "BatchGetItem")
        and (f[1] is not FaultKind.EMPTY_RESPONSE or f[0] == "SendMessage")
    )
)

cases = st.builds(
    Case,
    jobs=st.lists(job_specs, min_size=1, max_size=3, unique_by=lambda j: j.name),
    records=st.lists(st.one_of(record_specs, record_specs, json_values), max_size=6),
    event_shape=st.sampled_from(["batch"] * 8 + ["records-not-a-list", "not-a-map"]),
    # Per attempt, within what the clients' timeouts allow (DynamoDB 5 s, SQS 6 s).
    latency=st.sampled_from([0.0] * 6 + [0.5, 2.0, 4.5]),
    faults=st.lists(fault_menu, max_size=2),
    # Hypothesis draws the first values most often: the usual cases first.
    remaining=st.sampled_from([60.0, 900.0, 60.0, 900.0, 30.0, 19.0, 5.0, 0.0]),
    concurrency=st.sampled_from([1, 4]),
)


# ------------------------------------------------------------------ building an example

_examples = itertools.count()


def _resolve(value: Any, now: int) -> Any:
    return {"N": str(now + value.offset)} if isinstance(value, Ago) else value


@functools.cache
def _stream(table: str) -> StreamRecords:
    """One table's records for every example (their sequence numbers never repeat)."""
    return StreamRecords(table, first_sequence_number=10**24)


def _arn(kind: str, table: str) -> Any:
    stream = stream_arn(table)
    return {
        "own": stream,
        "other-table": stream_arn("other"),
        "none": None,
        "list": [stream],
        "garbage": "arn:nonsense",
    }[kind]


def _build_record(spec: RecordSpec, job_ids: list[str], adv: Adversary) -> Any:
    names = adv.pipeline.names
    job_id = job_ids[spec.job % len(job_ids)] if isinstance(spec.job, int) else spec.job
    table = names.segment_completions_table if spec.kind == "completion" else names.jobs_table
    keys = {"job_id": {"S": job_id}}
    if spec.kind == "completion":
        keys["segment_index"] = spec.index
    # Any JSON for the event name, and for the values kept out of `StreamRecords`' record (a
    # status may be bytes, which `StreamRecords`' size cannot measure).
    record: dict[str, Any] = _stream(table).record(spec.event_name, keys=keys)
    record["dynamodb"]["SequenceNumber"] = spec.sequence_number
    if spec.kind != "completion":
        record["dynamodb"]["NewImage"] = {**keys, "status": spec.status}
    arn = _arn(spec.arn, table)
    if arn is None:
        del record["eventSourceARN"]
    else:
        record["eventSourceARN"] = arn
    if spec.mutation is not None:
        path, value = spec.mutation
        target: Any = record
        for key in path[:-1]:
            target = target.get(key) if isinstance(target, dict) else None
        if isinstance(target, dict):
            target[path[-1]] = value
    return record


def _well_formed(job_id: str, adv: Adversary) -> dict[str, Any]:
    table = adv.pipeline.names.segment_completions_table
    return _stream(table).insert(completion_item(job_id, 0))


def _event(case: Case, job_ids: list[str], adv: Adversary) -> Any:
    records = [
        _well_formed(job_id, adv)
        for spec, job_id in zip(case.jobs, job_ids, strict=True)
        for _ in range(spec.records)
    ]
    records[len(records) // 2 : len(records) // 2] = [
        _build_record(r, job_ids, adv) if isinstance(r, RecordSpec) else r for r in case.records
    ]
    if case.event_shape == "records-not-a-list":
        return {"Records": dict(enumerate(records))}
    if case.event_shape == "not-a-map":
        return records
    return {"Records": records}


def _put(adv: Adversary, table: str, item: dict[str, Any]) -> bool:
    """Write an item; False when DynamoDB refuses it (such an item cannot exist: e.g. a
    Job whose `status` is not a non-empty string, the key of the status index)."""
    try:
        adv.pipeline.aws.dynamodb.put_item(TableName=table, Item=item)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ValidationException":
            raise
        return False
    return True


def _write_rows(case: Case, job_ids: list[str], adv: Adversary) -> dict[str, bool]:
    """Write every job's rows; whether each job is ready (the property's oracle)."""
    names = adv.pipeline.names
    now = int(adv.clock.now())
    ready: dict[str, bool] = {}
    for spec, job_id in zip(case.jobs, job_ids, strict=True):
        key = {"job_id": {"S": job_id}}
        item = spec.item
        if item is not None and not _put(adv, names.jobs_table, {**item, **key}):
            item = None
        whole: set[Decimal] = set()
        for index in {Decimal(i): i for i in [*spec.completions, *_filled(spec)]}.values():
            row = {**key, "segment_index": {"N": index}, "completed_at": {"N": "1"}}
            _put(adv, names.segment_completions_table, row)
            if Decimal(index) == Decimal(index).to_integral_value():
                whole.add(Decimal(index))
        if spec.lock is not None:
            lock = {name: _resolve(value, now) for name, value in spec.lock.items()}
            _put(adv, names.reassembly_triggered_table, {**lock, **key})
        ready[job_id] = _is_ready(item, whole)
    return ready


def _filled(spec: JobSpec) -> list[str]:
    total = (spec.item or {}).get("total_segments")
    if not spec.fill or not isinstance(total, dict) or not str(total.get("N", "")).isdigit():
        return []
    return [str(i) for i in range(min(int(total["N"]), 8))]


def _is_ready(item: dict[str, Any] | None, whole_indexes: set[Decimal]) -> bool:
    """Chunking complete, a real positive `total_segments`, every segment recorded."""
    item = item or {}
    if item.get("status") != {"S": "chunking_complete"}:
        return False
    total = item.get("total_segments")
    if not isinstance(total, dict) or set(total) != {"N"}:
        return False
    value = Decimal(total["N"])
    if value != value.to_integral_value() or not 1 <= value <= MAX_TOTAL_SEGMENTS:
        return False
    return all(Decimal(i) in whole_indexes for i in range(int(value)))


def _is_finished(lock: dict[str, Any] | None) -> bool:
    """A lock marked as enqueued or claimed (present and not NULL)."""
    return lock is not None and any(
        name in lock and lock[name] != {"NULL": True}
        for name in ("enqueued_at", "reassembly_started_at")
    )


def _batch_sequence_numbers(event: Any) -> set[str]:
    records = event.get("Records") if isinstance(event, dict) else None
    found: set[str] = set()
    for record in records if isinstance(records, list) else []:
        dynamodb = record.get("dynamodb") if isinstance(record, dict) else None
        value = dynamodb.get("SequenceNumber") if isinstance(dynamodb, dict) else None
        if isinstance(value, str):
            found.add(value)
    return found


# ------------------------------------------------------------------ the property


@settings(PROFILE)
@given(case=cases)
def test_the_handler_answers_in_time_validly_and_never_triggers_a_job_that_is_not_ready(
    case: Case, monkeypatch: pytest.MonkeyPatch, arena: Arena
) -> None:
    """FOR ANY batch, tables, latency, faults and time left: `lambda_handler` returns a
    partial batch response naming only sequence numbers of the batch, before the deadline,
    having sent at most one message per job, and only for a job that is chunking_complete
    with every one of its `total_segments` recorded and no finished lock."""
    prefix = f"p{next(_examples)}-"
    job_ids = [prefix + spec.name for spec in case.jobs]
    with adversary(
        monkeypatch,
        arena,
        concurrency=case.concurrency,
        call_limit=2000,
        wipe_first=False,
    ) as adv:
        adv.messages()  # a failed example may have left some: not this one's
        ready = _write_rows(case, job_ids, adv)
        finished = {
            job_id: _is_finished(spec.lock) for spec, job_id in zip(case.jobs, job_ids, strict=True)
        }
        if case.latency:
            adv.slow_calls(case.latency)
        for operation, kind, probability in case.faults:
            adv.faults.add(FaultRule(operation, kind, probability=probability))
        batch = _event(case, job_ids, adv)

        response = adv.invoke(batch, remaining=case.remaining)

        assert adv.returned_at <= adv.deadline
        assert isinstance(response, dict)
        assert set(response) == {"batchItemFailures"}
        failures = response["batchItemFailures"]
        assert isinstance(failures, list)
        identifiers = [failure["itemIdentifier"] for failure in failures]
        assert all(set(failure) == {"itemIdentifier"} for failure in failures)
        assert set(identifiers) <= _batch_sequence_numbers(batch)
        assert len(identifiers) == len(set(identifiers))

        before = len(adv.pipeline.received)
        sent = adv.messages()[before:]
        for job_id in sent:
            assert job_id in ready, f"a message for a job not in this example: {job_id!r}"
            assert ready[job_id], f"{job_id!r} was triggered but is not ready"
            assert not finished[job_id], f"{job_id!r} was triggered again"
            assert sent.count(job_id) == 1

        outcomes = {t["job_id"]: t for t in adv.transitions()}
        for final in outcomes.values():
            hypothesis.event(f"ended {final['dest']}:{final.get('reason', '')}")
        hypothesis.event(f"messages: {min(len(sent), 2)}")
        hypothesis.event(f"ready jobs: {sum(ready.values())}")
        garbling = {FaultKind.EMPTY_RESPONSE, FaultKind.GARBLED_RESPONSE}
        if not any(kind in garbling for _, kind, _ in case.faults):
            assert not adv.events("evaluation_error")
        for entry in adv.logs:
            json.dumps(entry, default=str)  # every event renders, as Lambda's JSON lines
