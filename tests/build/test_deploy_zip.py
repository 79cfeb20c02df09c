"""The deployment zip: reproducible, complete, lean, built for the target runtime, named
by that target, and described by a manifest the Terraform module checks.

Each build runs `scripts/build_deploy_zip.sh` exactly as the README does (it fetches
the pinned manylinux wheels through pip, so it needs the package index or pip's cache);
the builds are made once per session and shared by the checks.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pytest

from reassembly_trigger.local.aws.stack import Resources, environment

from moto_fixtures import CONTRACT_EVENTS, REGION, Pipeline

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
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
    notes: str

    def manifest(self) -> dict[str, object]:
        """The manifest the build wrote beside the zip."""
        data: dict[str, object] = json.loads(
            self.zip_path.with_name(self.zip_path.name + ".manifest.json").read_text()
        )
        return data

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


def run_build(**variables: str) -> subprocess.CompletedProcess[str]:
    """Run the build script as the README does, with these variables."""
    env = {**os.environ, "PYTHON": sys.executable, **variables}
    for name in ("RUNTIME", "ARCH", "OUTPUT", "DIST", "BYTECODE", "TARGET_PYTHON"):
        if name not in variables:
            env.pop(name, None)  # the caller's environment must not choose the target
    return subprocess.run(
        ["bash", "scripts/build_deploy_zip.sh"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )


def build(**variables: str) -> Build:
    """Build with these variables; the zip is wherever the build reports it wrote it."""
    result = run_build(**variables)
    assert result.returncode == 0, result.stderr
    print(result.stdout)  # path, sizes and sha256, shown with -s or on failure
    report = dict(line.split(":", 1) for line in result.stdout.splitlines() if ":" in line)
    runtime, arch = report["target"].split()
    zip_path = Path(report["path"].strip())
    return Build(zip_path, runtime.removeprefix("python"), arch, result.stdout, result.stderr)


@pytest.fixture(scope="session")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One output folder shared by the default x86_64, arm64 and python3.14 builds."""
    return tmp_path_factory.mktemp("dist")


@pytest.fixture(scope="session")
def builds(tmp_path_factory: pytest.TempPathFactory, dist: Path) -> dict[str, Build]:
    """The default build, a second identical one, arm64, python3.14, one without
    bytecode and a local one."""
    return {
        "default": build(DIST=str(dist)),
        "again": build(DIST=str(tmp_path_factory.mktemp("again"))),
        "arm64": build(DIST=str(dist), ARCH="arm64"),
        "python3.14": build(DIST=str(dist), RUNTIME="python3.14"),
        "no-bytecode": build(
            OUTPUT=str(tmp_path_factory.mktemp("plain") / "plain.zip"), BYTECODE="no"
        ),
        "local": build(OUTPUT=str(tmp_path_factory.mktemp("local") / "local.zip"), RUNTIME="local"),
    }


# ------------------------------------------------------------------ reproducible


def test_two_builds_from_the_same_inputs_are_byte_identical(builds: dict[str, Build]) -> None:
    """Building twice (bytecode included) gives the same sha256 and the same manifest, so
    source_code_hash moves only with the code."""
    first, second = builds["default"], builds["again"]
    assert first.zip_path.read_bytes() == second.zip_path.read_bytes()
    assert first.sha256() == second.sha256()
    assert first.manifest() == second.manifest()


def test_the_default_target_is_python312_on_x86_64(builds: dict[str, Build]) -> None:
    """Without RUNTIME/ARCH the zip is for Lambda's python3.12 on x86_64."""
    assert (builds["default"].python_version, builds["default"].arch) == ("3.12", "x86_64")
    assert (builds["arm64"].python_version, builds["arm64"].arch) == ("3.12", "arm64")


def test_each_target_has_its_own_zip_and_manifest(builds: dict[str, Build], dist: Path) -> None:
    """x86_64, arm64 and python3.14 builds into one folder leave three zips named by
    target, each with its manifest: an arm64 build never overwrites the x86_64 zip."""
    targets = ["python3.12-x86_64", "python3.12-arm64", "python3.14-x86_64"]
    expected = {f"deploy-{t}.zip" for t in targets} | {
        f"deploy-{t}.zip.manifest.json" for t in targets
    }
    # ... and dist/deploy.zip, the last default-output build's copy (the path the
    # monorepo's Terraform reads), with the same manifest naming the copy.
    expected |= {"deploy.zip", "deploy.zip.manifest.json"}
    assert {path.name for path in dist.iterdir()} == expected
    zips = [builds[name].zip_path for name in ("default", "arm64", "python3.14")]
    assert [path.name for path in zips] == [f"deploy-{t}.zip" for t in targets]
    assert len({builds[name].sha256() for name in ("default", "arm64", "python3.14")}) == 3
    copy = (dist / "deploy.zip").read_bytes()
    (source,) = [path for path in zips if path.read_bytes() == copy]
    copied = json.loads((dist / "deploy.zip.manifest.json").read_text())
    assert copied == {
        **json.loads(Path(f"{source}.manifest.json").read_text()),
        "zip": "deploy.zip",
    }


@pytest.mark.parametrize("build_name", ["default", "arm64", "python3.14", "no-bytecode"])
def test_the_manifest_says_what_the_zip_was_built_for_and_is(
    builds: dict[str, Build], build_name: str
) -> None:
    """runtime, architecture, Python version, bytecode tag, sha256 (hex and Terraform's
    base64) and sizes: all true of the zip beside it."""
    import base64
    import hashlib

    build_ = builds[build_name]
    manifest = build_.manifest()
    data = build_.zip_path.read_bytes()
    zipped, unzipped = build_.sizes()
    assert manifest == {
        "format": 1,
        "zip": build_.zip_path.name,
        "runtime": f"python{build_.python_version}",
        "architecture": build_.arch,
        "python_version": build_.python_version,
        "bytecode": manifest["bytecode"],
        "sha256": hashlib.sha256(data).hexdigest(),
        "sha256_base64": base64.b64encode(hashlib.sha256(data).digest()).decode(),
        "size": zipped,
        "unzipped_size": unzipped,
    }
    assert manifest["sha256"] == build_.sha256()
    tag = f"cpython-{build_.python_version.replace('.', '')}"
    assert manifest["bytecode"] in (None, tag)


@pytest.mark.parametrize("runtime", ["python3.10", "python3.15", "pypy3.12", "3.12"])
def test_a_runtime_the_lock_does_not_cover_is_refused_up_front(runtime: str) -> None:
    """RUNTIME outside the lock ends at once with exit 2 and one line naming the covered
    runtimes, never pip's "hashes do not match" (nor a traceback)."""
    result = run_build(RUNTIME=runtime, OUTPUT="/nonexistent/never-written.zip")
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert f"not '{runtime}'" in line
    assert "python3.11 python3.12 python3.13 python3.14" in line
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_the_lock_covers_exactly_the_runtimes_the_lock_script_and_module_name() -> None:
    """The lock's `# runtimes:` line (what the build accepts) is the lock script's
    PYTHON_VERSIONS, and those are the module's allowed runtimes."""
    import importlib.util

    lock = (ROOT / "requirements" / "lambda-runtime.txt").read_text()
    (line,) = re.findall(r"^# runtimes: (.*)$", lock, re.M)
    spec = importlib.util.spec_from_file_location(
        "lock", ROOT / "scripts" / "lock_lambda_runtime.py"
    )
    assert spec is not None
    assert spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert line.split() == [f"python{v}" for v in script.PYTHON_VERSIONS]
    variables = (ROOT / "terraform" / "variables.tf").read_text()
    runtime_block = variables.split('variable "runtime"', 1)[1].split("\n}\n", 1)[0]
    allowed = re.search(r"condition\s*=\s*contains\(\[(.*?)\]", runtime_block)
    assert allowed is not None
    assert re.findall(r'"(python3\.\d+)"', allowed.group(1)) == line.split()


def test_bytecode_off_gives_a_zip_without_any_cache(builds: dict[str, Build]) -> None:
    """BYTECODE=no: no .pyc at all, the manifest says none, and the report says so."""
    build_ = builds["no-bytecode"]
    assert not [n for n in build_.names() if "__pycache__/" in n or n.endswith((".pyc", ".pyo"))]
    assert build_.manifest()["bytecode"] is None
    assert "bytecode: none" in build_.report


def test_a_target_whose_python_is_missing_is_built_without_bytecode_and_says_so(
    builds: dict[str, Build],
) -> None:
    """python3.14: compiled by CPython 3.14 when this machine has it; otherwise no
    bytecode at all and one note on stderr saying so and how to get it."""
    build_ = builds["python3.14"]
    tag = build_.manifest()["bytecode"]
    names = build_.names()
    if tag is None:
        assert "no CPython 3.14 on this machine, so the zip has no bytecode" in build_.notes
        assert not [n for n in names if n.endswith(".pyc")]
    else:
        assert tag == "cpython-314"
        assert "no CPython" not in build_.notes
        assert [n for n in names if n.endswith(".pyc")]


@pytest.mark.parametrize("build_name", ["default", "arm64", "python3.14", "local"])
def test_only_the_target_versions_bytecode_is_in_the_zip(
    builds: dict[str, Build], build_name: str
) -> None:
    """With bytecode, every zipped module has exactly its `__pycache__/NAME.cpython-3XY.pyc`
    for the target's version (unchecked-hash, path /var/task), and no other cache exists;
    without, no cache at all."""
    build_ = builds[build_name]
    tag = build_.manifest()["bytecode"]
    names = build_.names()
    caches = {n for n in names if "__pycache__/" in n or n.endswith((".pyc", ".pyo"))}
    if tag is None:
        assert caches == set()
        return
    assert tag == f"cpython-{build_.python_version.replace('.', '')}"
    sources = [n for n in names if n.endswith(".py")]
    expected = {
        (PurePosixPath(n).parent / "__pycache__" / f"{PurePosixPath(n).stem}.{tag}.pyc").as_posix()
        for n in sources
    }
    assert caches == expected
    with zipfile.ZipFile(build_.zip_path) as archive:
        for name in sorted(caches):
            header = archive.read(name)
            # PEP 552 flags: bit 0 = hash-based, bit 1 = check_source; unchecked = 0b01.
            assert int.from_bytes(header[4:8], "little") == 0b01, name
            assert b"/var/task/" in header, name
            assert b"/tmp/" not in header, name


def test_the_default_zip_carries_bytecode_when_this_machine_has_python312(
    builds: dict[str, Build],
) -> None:
    """The default build compiles with CPython 3.12 whenever one is on this machine (PATH
    or pyenv), as the build promises; without one it says so."""
    import glob
    import shutil

    candidates = [
        shutil.which("python3.12"),
        *glob.glob(os.path.expanduser("~/.pyenv/versions/3.12.*/bin/python3.12")),
    ]
    usable = any(
        c
        and subprocess.run(
            [c, "-c", "import sys; assert sys.version_info[:2] == (3, 12)"],
            capture_output=True,
            check=False,
            timeout=60,
        ).returncode
        == 0
        for c in candidates
    )
    manifest = builds["default"].manifest()
    if usable:
        assert manifest["bytecode"] == "cpython-312"
    else:
        assert manifest["bytecode"] is None
        assert "no CPython 3.12" in builds["default"].notes


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
def test_the_zip_leaves_out_the_sdk_tests_and_local_tooling(
    builds: dict[str, Build], build_name: str
) -> None:
    """No boto3/botocore (the runtime's), tests, moto, reassembly_trigger/local or the
    test helpers of reassembly_trigger/testing/ (source or bytecode)."""
    names = builds[build_name].names()
    top_levels = {name.split("/")[0] for name in names}
    assert not top_levels & {*RUNTIME_PROVIDED, "tests", "moto", "rich"}
    assert not [n for n in names if n.startswith("reassembly_trigger/local/")]
    assert not [n for n in names if n.startswith("reassembly_trigger/testing")]
    assert (ROOT / "reassembly_trigger" / "testing" / "__init__.py").is_file()
    assert not [n for n in names if "/tests/" in n or n.startswith("test_")]


def test_nothing_in_the_zip_names_the_build_machine(builds: dict[str, Build]) -> None:
    """No entry records where the build ran (pip's direct_url.json is left out)."""
    build_ = builds["default"]
    with zipfile.ZipFile(build_.zip_path) as archive:
        assert not [n for n in archive.namelist() if n.endswith("direct_url.json")]
        records = [n for n in archive.namelist() if n.endswith(".dist-info/RECORD")]
        for record in records:
            assert str(ROOT) not in archive.read(record).decode()


@pytest.mark.parametrize("build_name", ["default", "arm64", "python3.14"])
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


@pytest.mark.parametrize("build_name", ["default", "arm64", "python3.14"])
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


@pytest.mark.parametrize(
    "folder", [ROOT, ROOT / "tests" / "build" / "monorepo"], ids=["root", "monorepo"]
)
def test_the_npm_lock_is_in_sync_with_package_json_so_npm_ci_works(folder: Path) -> None:
    """package-lock.json pins what package.json asks for, and every optional (platform)
    dependency of a locked package is locked too: `npm ci` refuses a lock missing them.
    (tests/build/monorepo/: the monorepo-shaped workspace of tests/build/test_monorepo.py.)"""
    package = json.loads((folder / "package.json").read_text())
    lock = json.loads((folder / "package-lock.json").read_text())
    packages = lock["packages"]
    assert packages[""]["devDependencies"] == package["devDependencies"]
    for name, version in package["devDependencies"].items():
        assert packages[f"node_modules/{name}"]["version"] == version
    missing = {
        (path, dependency)
        for path, entry in packages.items()
        for dependency in entry.get("optionalDependencies", {})
        if f"node_modules/{dependency}" not in packages
        and f"{path}/node_modules/{dependency}" not in packages
    }
    assert missing == set()
