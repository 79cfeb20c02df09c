"""The cold path as deployed: fresh `python -I -S -B` interpreters that see only what
Lambda gives them (the deployment folder, the standard library, the runtime's boto3),
every variant interleaved round after round; how and why: docs/performance.md.
"""

from __future__ import annotations

import glob
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import reassembly_trigger
from reassembly_trigger.local.aws.stack import (
    DEFAULT_REGION,
    LocalAws,
    ResourceNames,
    create_resources,
    environment,
)
from reassembly_trigger.local.commands.bench.config import BenchConfig
from reassembly_trigger.local.commands.bench.data import completion_records, write_items
from reassembly_trigger.local.commands.bench.harness import Endpoints
from reassembly_trigger.local.commands.bench.results import PROJECT, ColdPath, ColdVariant
from reassembly_trigger.local.invocations.items import completion_item, job_item

#: The Terraform module's default runtime: the cold path runs on its interpreter.
TARGET_RUNTIME = "3.12"
#: What the Lambda runtime provides besides the standard library (with dependencies).
RUNTIME_DISTRIBUTIONS = ("boto3",)
#: The handler every implementation is imported by.
HANDLER_MODULE = "reassembly_trigger.handler"
#: Segments of each cold-path job: a batch of 3 records completes it.
COLD_JOB_SEGMENTS = 3
#: How the deployment build compiles: hashes the runtime never checks (/var/task is fixed).
COMPILE = ("-m", "compileall", "-q", "-j0", "--invalidation-mode", "unchecked-hash")
_MARK = "BENCH-RESULT "
#: `reassembly_trigger/` (the code the zip holds) and the checkout around it.
_CODE = Path(reassembly_trigger.__file__).resolve().parent
_REPOSITORY = _CODE.parent
#: This interpreter's `major.minor`.
_CURRENT = f"{sys.version_info.major}.{sys.version_info.minor}"


@dataclass(frozen=True, slots=True)
class Interpreter:
    """A Python interpreter and its `major.minor` version."""

    path: str
    version: str

    @classmethod
    def of(cls, path: str) -> Interpreter:
        """Ask `path` for its version."""
        out = subprocess.run(  # noqa: S603 - an interpreter we were given
            [path, "-I", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=True,
        )
        return cls(path, out.stdout.strip())


def target_interpreter(config: BenchConfig, notes: list[str]) -> Interpreter:
    """The interpreter of the target runtime when this machine has it, else this one."""
    current = Interpreter(sys.executable, _CURRENT)
    if config.target_python:
        return Interpreter.of(config.target_python)
    if config.deployment == "venv":
        return current
    candidates = [shutil.which(f"python{TARGET_RUNTIME}")]
    candidates += sorted(
        glob.glob(os.path.expanduser(f"~/.pyenv/versions/{TARGET_RUNTIME}.*/bin/python")),
        key=lambda p: [int(x) for x in re.findall(r"\d+", p.split("/versions/")[1])],
    )[::-1]
    for candidate in candidates:
        if not candidate or not os.access(candidate, os.X_OK):
            continue
        try:
            found = Interpreter.of(candidate)
        except (OSError, subprocess.CalledProcessError):
            continue  # e.g. a pyenv shim with no such version selected
        if found.version == TARGET_RUNTIME:
            return found
    notes.append(
        f"no Python {TARGET_RUNTIME} here (the target runtime): the cold path ran on "
        f"Python {current.version}, with a zip built for it"
    )
    return current


# ------------------------------------------------------------------ folders


def _distribution_closure(
    names: tuple[str, ...], skip: set[str]
) -> list[importlib.metadata.Distribution]:
    """Installed distributions `names` and everything they require (extras aside)."""
    found: dict[str, importlib.metadata.Distribution] = {}
    pending = list(names)
    while pending:
        name = re.split(r"[ ;<>=!~\[(]", pending.pop(), maxsplit=1)[0].lower().replace("_", "-")
        if name in found or name in skip:
            continue
        distribution = importlib.metadata.distribution(name)
        found[name] = distribution
        pending += [r for r in distribution.requires or () if "extra ==" not in r]
    return list(found.values())


def _copy_distributions(distributions: list[importlib.metadata.Distribution], dest: Path) -> None:
    for distribution in distributions:
        for file in distribution.files or ():
            source = Path(str(distribution.locate_file(file)))
            if "__pycache__" in file.parts or ".." in file.parts or not source.is_file():
                continue
            target = dest / file
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def runtime_folder(interpreter: Interpreter, dest: Path) -> Path:
    """boto3 and its dependencies, compiled for `interpreter`, as Lambda's runtime has them."""
    _copy_distributions(_distribution_closure(RUNTIME_DISTRIBUTIONS, set()), dest)
    compile_folder(interpreter, dest)
    return dest


def compile_folder(interpreter: Interpreter, folder: Path) -> None:
    """Compile every module of `folder` with `interpreter`, as the deployment build does."""
    command = [interpreter.path, *COMPILE, str(folder)]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)  # noqa: S603 - ours


def _project_distributions() -> list[importlib.metadata.Distribution]:
    """The zip's dependencies as installed here: the project's, minus what Lambda provides."""
    runtime = {
        d.metadata["Name"].lower() for d in _distribution_closure(RUNTIME_DISTRIBUTIONS, set())
    }
    project = importlib.metadata.distribution("stereo-spot-reassembly-trigger")
    wanted = tuple(r for r in project.requires or () if "extra ==" not in r)
    return _distribution_closure(wanted, runtime | {"stereo-spot-reassembly-trigger"})


def deployment_folder(
    config: BenchConfig, interpreter: Interpreter, workdir: Path, notes: list[str]
) -> tuple[Path, str]:
    """The zip's contents for the target runtime, unzipped (no bytecode), and how it was made."""
    dest = workdir / "deployment"
    script = _REPOSITORY / "scripts" / "build_deploy_zip.sh"
    if config.deployment == "build" and script.is_file():
        archive = workdir / "deploy.zip"
        env = {**os.environ, "RUNTIME": f"python{interpreter.version}", "OUTPUT": str(archive)}
        built = subprocess.run(  # noqa: S603 - the repository's own build script
            ["bash", str(script)],  # noqa: S607
            env=env,
            capture_output=True,
            text=True,
            check=False,
            cwd=_REPOSITORY,
        )
        if built.returncode == 0:
            with zipfile.ZipFile(archive) as zipped:
                zipped.extractall(dest)
            # The variants add bytecode themselves; a zip that ships it is measured as
            # the "bytecode" variant (compiled the same way), never as the other.
            shipped = _remove_bytecode(dest)
            how = f"scripts/build_deploy_zip.sh for python{interpreter.version}, unzipped"
            return dest, how + (f" ({shipped} .pyc files it ships set aside)" if shipped else "")
        notes.append(
            "the deployment build failed ("
            + (built.stderr.strip().splitlines() or ["no output"])[-1]
            + "); the cold path used this virtualenv's packages"
        )
    if interpreter.version != _CURRENT:
        raise RuntimeError(
            f"cannot assemble a deployment for Python {interpreter.version} from this "
            f"virtualenv (Python {_CURRENT}): build the zip"
        )
    _copy_distributions(_project_distributions(), dest)
    # `reassembly_trigger/` as the zip holds it: no `local/`, no byte caches.
    shutil.copytree(_CODE, dest / _CODE.name, ignore=shutil.ignore_patterns("__pycache__", "local"))
    return dest, "this virtualenv's packages and reassembly_trigger/ (the zip's files, offline)"


def _remove_bytecode(folder: Path) -> int:
    """Delete every .pyc file under `folder`; how many there were."""
    caches = list(folder.rglob("*.pyc"))
    for cache in caches:
        cache.unlink()
    return len(caches)


def overlay(deployment: Path, code: Path, dest: Path) -> Path:
    """The deployment's dependencies with another implementation's code in place of ours."""
    shutil.copytree(deployment, dest, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.rmtree(dest / "reassembly_trigger", ignore_errors=True)
    shutil.copytree(code, dest, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


# ------------------------------------------------------------------ the child processes


_CHILD = f"""
import sys, time
deployment, runtime, mode = sys.argv[1], sys.argv[2], sys.argv[3]
# As in Lambda: the function's folder first, then the standard library, then the
# runtime's boto3.
sys.path[:] = [deployment, *[p for p in sys.path if p], runtime]
import json
spec = json.loads(sys.stdin.read())
out = {{}}
# Wall time, and CPU time (process_time: what the machine's load cannot stretch).
clock = lambda: (time.perf_counter(), time.process_time())
def spent(name, since, until):
    out[name] = until[0] - since[0]
    out[name + "_cpu"] = until[1] - since[1]
if mode == "baseline":
    started = clock()
    import boto3
    imported = clock()
    session = boto3.session.Session()
    session.client("dynamodb")
    session.client("sqs")
    spent("import", started, imported)
    spent("first", imported, clock())
else:
    import importlib
    started = clock()
    module = importlib.import_module({HANDLER_MODULE!r})
    imported = clock()
    spent("import", started, imported)
    sent = []
    if "botocore.client" in sys.modules:
        # When the message is on the queue: what the user waits for.
        from botocore.client import BaseClient
        original = BaseClient._make_api_call
        def timed(client, operation, params):
            answer = original(client, operation, params)
            if operation == "SendMessage":
                sent.append(time.perf_counter())
            return answer
        BaseClient._make_api_call = timed
    class Context:
        function_name = "bench-cold-path"
        def __init__(self, request_id):
            self.aws_request_id = request_id
        def get_remaining_time_in_millis(self):
            return 60000
    ready = clock()
    response = module.lambda_handler(spec["first"], Context("cold-first"))
    first = clock()
    spent("first", ready, first)
    if sent:
        out["to_message"] = out["import"] + sent[0] - ready[0]
    module.lambda_handler(spec["warm"], Context("cold-warm"))
    spent("warm", first, clock())
    out["response"] = response
# Peak resident memory of this process image (ru_maxrss would include the parent's,
# which a fork-then-exec child inherits on Linux).
with open("/proc/self/status") as status:
    for line in status:
        if line.startswith("VmHWM:"):
            out["rss_mb"] = int(line.split()[1]) / 1024
print({_MARK!r} + json.dumps(out))
"""


@dataclass(frozen=True, slots=True)
class _Variant:
    label: str
    folder: Path
    bytecode: bool
    #: The boto3 baseline (import boto3, create the clients), not a handler.
    baseline: bool = False


def _run_child(
    interpreter: Interpreter,
    variant: _Variant,
    runtime: Path,
    env: dict[str, str],
    spec: dict[str, Any],
) -> dict[str, Any]:
    mode = "baseline" if variant.baseline else "handler"
    done = subprocess.run(  # noqa: S603 - our own code, in an interpreter we chose
        [interpreter.path, "-I", "-S", "-B", "-c", _CHILD, str(variant.folder), str(runtime), mode],
        input=json.dumps(spec),
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    for line in reversed(done.stdout.splitlines()):
        if line.startswith(_MARK):
            result: dict[str, Any] = json.loads(line[len(_MARK) :])
            return result
    raise RuntimeError(
        f"cold path ({variant.label}): no timings from the child process:\n"
        f"{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    )


def measure_cold_path(
    config: BenchConfig, endpoints: Endpoints, aws: LocalAws, progress: Callable[[str], object]
) -> tuple[ColdPath, list[str]]:
    """Every variant, `config.cold_start_runs` rounds, interleaved; and notes on how."""
    notes = [
        "SnapStart cannot be measured here: a restore is Lambda's own (Firecracker "
        "snapshots); what init creates is kept safe to snapshot instead"
    ]
    if not any(label == "seed" for label, _ in config.compare):
        notes.append("the seed's implementation was not given (--compare seed=DIR): not measured")
    interpreter = target_interpreter(config, notes)
    with tempfile.TemporaryDirectory(prefix="reassembly-bench-cold-") as folder:
        workdir = Path(folder)
        progress(f"cold path: building the deployment folder for Python {interpreter.version}")
        deployment, how = deployment_folder(config, interpreter, workdir, notes)
        runtime = runtime_folder(interpreter, workdir / "runtime")
        compiled = workdir / "deployment-bytecode"
        shutil.copytree(deployment, compiled)
        compile_folder(interpreter, compiled)
        variants = [
            _Variant("boto3 baseline", deployment, False, baseline=True),
            _Variant(PROJECT, deployment, False),
            _Variant(PROJECT, compiled, True),
        ]
        for n, (label, code) in enumerate(config.compare):
            plain = overlay(deployment, Path(code), workdir / f"compare-{n}")
            bytecode = overlay(deployment, Path(code), workdir / f"compare-{n}-bytecode")
            compile_folder(interpreter, bytecode)
            variants += [_Variant(label, plain, False), _Variant(label, bytecode, True)]
        measured, checks = _rounds(
            config,
            variants,
            interpreter=interpreter,
            runtime=runtime,
            endpoints=endpoints,
            aws=aws,
            progress=progress,
        )
    python = f"{interpreter.version} ({interpreter.path})"
    return ColdPath(python, how, measured, checks), notes


def _rounds(
    config: BenchConfig,
    variants: list[_Variant],
    *,
    interpreter: Interpreter,
    runtime: Path,
    endpoints: Endpoints,
    aws: LocalAws,
    progress: Callable[[str], object],
) -> tuple[tuple[ColdVariant, ...], dict[str, Any]]:
    """Run every variant once per round (the first only warms the file cache): each child
    reaches moto through the proxy (`endpoints`, counted); data goes to `aws` directly."""
    names = ResourceNames.with_prefix(f"bench-cold-{os.getpid()}-{id(variants):x}")
    resources = create_resources(aws, names)
    records = completion_records(names.segment_completions_table)
    env = {**os.environ, **environment(resources, endpoints.proxy_url, DEFAULT_REGION)}
    samples: list[list[dict[str, Any]]] = [[] for _ in variants]
    jobs: list[str] = []
    failures: list[str] = []
    runs = config.cold_start_runs
    progress(f"cold path: {len(variants)} variants x {runs} interleaved fresh processes")
    for round_ in range(runs + 1):
        for index, variant in enumerate(variants):
            spec: dict[str, Any] = {}
            for phase in () if variant.baseline else ("first", "warm"):
                job = f"cold-{round_}-{index}-{phase}"
                jobs.append(job)
                job_row = job_item(job, total_segments=COLD_JOB_SEGMENTS)
                write_items(aws.dynamodb, names.jobs_table, [job_row])
                items = [completion_item(job, i) for i in range(COLD_JOB_SEGMENTS)]
                write_items(aws.dynamodb, names.segment_completions_table, items)
                spec[phase] = records.event(items)
            endpoints.control.reset()
            sample = _run_child(interpreter, variant, runtime, env, spec)
            calls = endpoints.control.stats().total
            response = sample.pop("response", None)
            if variant.label == PROJECT and response != {"batchItemFailures": []}:
                failures.append(f"{variant.label}: {response}")
            if round_:
                if not variant.baseline:
                    sample["calls_per_invocation"] = calls / 2
                samples[index].append(sample)
    messages = _messages(aws, resources.reassembly_queue_url)
    wrong = sum(1 for job in jobs if messages[job] != 1)
    checks = {
        "jobs": len(jobs),
        "messages": sum(messages.values()),
        "jobs_not_sent_exactly_once": wrong,
        "failed_responses": failures,
        "correct": not wrong and not failures,
    }
    cold = (
        ColdVariant(v.label, v.bytecode, tuple(s), v.baseline)
        for v, s in zip(variants, samples, strict=True)
    )
    return tuple(cold), checks


def _messages(aws: LocalAws, url: str) -> Counter[str]:
    """Job ids of every message on the queue (received and deleted, ten at a time)."""
    bodies: Counter[str] = Counter()
    while True:
        got = aws.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not got:
            return bodies
        bodies.update(json.loads(message["Body"])["job_id"] for message in got)
        aws.sqs.delete_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(got)
            ],
        )
