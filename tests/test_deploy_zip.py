"""The deployment zip: reproducible, complete, lean, and built for the target runtime.

Each build runs `scripts/build_deploy_zip.sh` exactly as the README does (it fetches
the pinned manylinux wheels through pip, so it needs the package index or pip's cache);
the builds are made once per session and shared by the checks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from reassembly_trigger.local.stack import Resources, environment

if TYPE_CHECKING:
    from conftest import Pipeline

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
CONTRACT_EVENTS = ROOT / "tests" / "events"  # copies of ../shared/contract/events
REGION = "us-east-1"
MIB = 1024 * 1024
#: ELF e_machine values: what a native library was compiled for.
ELF_MACHINES = {"x86_64": 62, "arm64": 183}
WHEEL_MACHINES = {"x86_64": "x86_64", "arm64": "aarch64"}
#: What the Lambda runtime provides and the zip must not carry: the AWS SDK and its
#: dependencies (six is used by the zip's own dependencies too, so the zip may carry it).
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3")


@dataclass(frozen=True)
class Build:
    """One run of the build script."""

    zip_path: Path
    python_version: str
    arch: str
    report: str

    def names(self) -> list[str]:
        """The zip's entry names."""
        with zipfile.ZipFile(self.zip_path) as archive:
            return archive.namelist()

    def sizes(self) -> tuple[int, int]:
        """(zipped, unzipped) sizes in bytes."""
        with zipfile.ZipFile(self.zip_path) as archive:
            unzipped = sum(info.file_size for info in archive.infolist())
        return self.zip_path.stat().st_size, unzipped

    def sha256(self) -> str:
        """The digest the build reported (and Terraform's source_code_hash derives from)."""
        return next(
            line.split()[-1] for line in self.report.splitlines() if line.startswith("sha256:")
        )


def build(output: Path, **variables: str) -> Build:
    """Run the build script as the README does, with these variables."""
    env = {**os.environ, "OUTPUT": str(output), "PYTHON": sys.executable, **variables}
    result = subprocess.run(
        ["bash", "scripts/build_deploy_zip.sh"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    print(result.stdout)  # path, sizes and sha256, shown with -s or on failure
    target = next(line for line in result.stdout.splitlines() if line.startswith("target:"))
    runtime, arch = target.split()[1:3]
    return Build(output, runtime.removeprefix("python"), arch, result.stdout)


@pytest.fixture(scope="session")
def builds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Build]:
    """The default build, a second identical one, an arm64 build and a local one."""
    where = tmp_path_factory.mktemp("deploy")
    return {
        "default": build(where / "deploy.zip"),
        "again": build(where / "deploy-again.zip"),
        "arm64": build(where / "deploy-arm64.zip", ARCH="arm64"),
        "local": build(where / "deploy-local.zip", RUNTIME="local"),
    }


# ------------------------------------------------------------------ reproducible


def test_two_builds_from_the_same_inputs_are_byte_identical(builds: dict[str, Build]) -> None:
    """Building twice gives the same sha256, so source_code_hash moves only with the code."""
    first, second = builds["default"], builds["again"]
    assert first.zip_path.read_bytes() == second.zip_path.read_bytes()
    assert first.sha256() == second.sha256()


def test_the_default_target_is_python312_on_x86_64(builds: dict[str, Build]) -> None:
    """Without RUNTIME/ARCH the zip is for Lambda's python3.12 on x86_64."""
    assert (builds["default"].python_version, builds["default"].arch) == ("3.12", "x86_64")
    assert (builds["arm64"].python_version, builds["arm64"].arch) == ("3.12", "arm64")


# ------------------------------------------------------------------ contents


def test_the_zip_holds_the_handler_and_the_shared_types_from_the_wheel(
    builds: dict[str, Build],
) -> None:
    """The handler module and stereo_spot_shared (with its wheel's metadata) are inside."""
    names = set(builds["default"].names())
    assert "reassembly_trigger/handler.py" in names
    assert "stereo_spot_shared/__init__.py" in names
    assert "stereo_spot_shared-0.1.0+stereospot.dist-info/METADATA" in names


@pytest.mark.parametrize("build_name", ["default", "arm64"])
def test_the_zip_leaves_out_the_sdk_tests_caches_and_local_tooling(
    builds: dict[str, Build], build_name: str
) -> None:
    """No boto3/botocore (the runtime's), tests, byte caches, moto or reassembly_trigger/local."""
    names = builds[build_name].names()
    top_levels = {name.split("/")[0] for name in names}
    assert not top_levels & {*RUNTIME_PROVIDED, "tests", "moto", "rich"}
    assert not [n for n in names if "__pycache__/" in n or n.endswith((".pyc", ".pyo"))]
    assert not [n for n in names if n.startswith("reassembly_trigger/local/")]
    assert not [n for n in names if "/tests/" in n or n.startswith("test_")]


def test_nothing_in_the_zip_names_the_build_machine(builds: dict[str, Build]) -> None:
    """No entry records where the build ran (pip's direct_url.json is left out)."""
    build_ = builds["default"]
    with zipfile.ZipFile(build_.zip_path) as archive:
        assert not [n for n in archive.namelist() if n.endswith("direct_url.json")]
        records = [n for n in archive.namelist() if n.endswith(".dist-info/RECORD")]
        for record in records:
            assert str(ROOT) not in archive.read(record).decode()


@pytest.mark.parametrize("build_name", ["default", "arm64"])
def test_every_native_module_is_built_for_the_target(
    builds: dict[str, Build], build_name: str
) -> None:
    """Extension modules carry the target's CPython tag, and every ELF file its machine."""
    build_ = builds[build_name]
    tag = (
        f"cpython-{build_.python_version.replace('.', '')}-{WHEEL_MACHINES[build_.arch]}-linux-gnu"
    )
    with zipfile.ZipFile(build_.zip_path) as archive:
        elf = {
            name: archive.read(name)[:20]
            for name in archive.namelist()
            if archive.read(name)[:4] == b"\x7fELF"
        }
    extensions = [name for name in elf if ".cpython-" in name]
    assert extensions, "pydantic_core's extension module should be in the zip"
    assert [name for name in extensions if f".{tag}.so" not in name] == []
    machines = {name: int.from_bytes(header[18:20], "little") for name, header in elf.items()}
    assert {name for name, m in machines.items() if m != ELF_MACHINES[build_.arch]} == set()


@pytest.mark.parametrize("build_name", ["default", "arm64"])
def test_the_zip_fits_well_inside_lambdas_limits(builds: dict[str, Build], build_name: str) -> None:
    """Zipped under 5 MiB and unzipped under 20 MiB (the build prints both)."""
    zipped, unzipped = builds[build_name].sizes()
    report = builds[build_name].report
    assert f"zipped:   {zipped} bytes" in report
    assert f"unzipped: {unzipped} bytes" in report
    assert zipped < 5 * MIB, f"zipped {zipped / MIB:.2f} MiB"
    assert unzipped < 20 * MIB, f"unzipped {unzipped / MIB:.2f} MiB"


def test_entries_carry_fixed_timestamps_and_normalised_permissions(
    builds: dict[str, Build],
) -> None:
    """Every entry is a regular file stamped 1980-01-01 (or SOURCE_DATE_EPOCH), 0644/0755."""
    with zipfile.ZipFile(builds["default"].zip_path) as archive:
        infos = archive.infolist()
    assert [i.filename for i in infos] == sorted(i.filename for i in infos)
    assert {i.external_attr >> 16 for i in infos} <= {0o100644, 0o100755}
    if "SOURCE_DATE_EPOCH" not in os.environ:
        assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}


# ------------------------------------------------------------------ complete


def _runtime_provided_packages(into: Path) -> Path:
    """A directory holding only what Lambda's runtime adds: boto3 and its dependencies."""
    import importlib.util

    into.mkdir()
    for name in (*RUNTIME_PROVIDED, "six"):
        spec = importlib.util.find_spec(name)
        assert spec is not None, name
        origin = Path(str(spec.origin))
        source = origin.parent if origin.name == "__init__.py" else origin
        (into / source.name).symlink_to(source)
    return into


#: Runs in the clean interpreter: imports the handler from the unzipped zip only.
CHILD = textwrap.dedent(
    """
    import json, sys, sysconfig
    task, runtime, event_path = sys.argv[1:4]
    stdlib = {sysconfig.get_paths()[key] for key in ("stdlib", "platstdlib")}
    sys.path[:] = [task, runtime, *[p for p in sys.path if p.startswith(tuple(stdlib))]]

    from reassembly_trigger.handler import lambda_handler

    class Context:
        aws_request_id = "zip-completeness-check"
        def get_remaining_time_in_millis(self):
            return 60_000

    with open(event_path) as handle:
        response = lambda_handler(json.load(handle), Context())
    outside = sorted(
        name for name, module in list(sys.modules.items())
        if getattr(module, "__file__", None)
        and not module.__file__.startswith((task, runtime, *stdlib))
    )
    print(json.dumps({"response": response, "outside": outside, "path": sys.path}))
    """
)


def test_the_unzipped_local_build_handles_a_contract_event_with_only_boto3_beside_it(
    builds: dict[str, Build],
    tmp_path: Path,
    moto_endpoint: str,
    resources: Resources,
    pipeline: Pipeline,
) -> None:
    """The zip is complete: a clean interpreter, importing nothing but the unzipped zip
    and boto3, handles the contract's SegmentCompletions batch and enqueues the job."""
    # GIVEN the local build unpacked into an empty directory, like Lambda's /var/task
    task = tmp_path / "task"
    with zipfile.ZipFile(builds["local"].zip_path) as archive:
        archive.extractall(task)
    runtime = _runtime_provided_packages(tmp_path / "runtime")
    # AND on a moto server, job-a chunked into 3 segments that are all done, and job-b
    # still chunking
    job_a, job_b = "0f1c2d3e-job-a", "7a8b9c0d-job-b"
    pipeline.add_job(job_a, total_segments=3)
    pipeline.add_job(job_b, total_segments=None, status="chunking_in_progress")
    pipeline.complete(job_a, range(3))
    pipeline.complete(job_b, [4])
    # AND the contract's event, as this test's table's stream delivers it
    event = json.loads((CONTRACT_EVENTS / "segment-completions-batch.json").read_text())
    for record in event["Records"]:
        record["eventSourceARN"] = resources.segment_completions_stream_arn
    event_path = tmp_path / "event.json"
    event_path.write_text(json.dumps(event))

    # WHEN a clean interpreter (-I: no environment paths, -S: no site-packages) runs it
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", CHILD, str(task), str(runtime), str(event_path)],
        env=environment(resources, moto_endpoint, REGION),
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )

    # THEN it reports no failure, imported nothing from outside, and job-a is enqueued once
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["response"] == {"batchItemFailures": []}
    assert outcome["outside"] == []
    assert outcome["path"][:2] == [str(task), str(runtime)]
    assert pipeline.bodies() == [{"job_id": job_a}]
    assert pipeline.lock(job_a) is not None
