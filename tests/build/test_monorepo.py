"""This repository as the pipeline monorepo's packages/reassembly-trigger, through Nx.

A monorepo-shaped workspace is built in a temporary folder, as the contract describes
the pipeline's ("Where this package lives"): a root package.json with Nx 22 from the npm
registry (tests/build/monorepo/: package.json and its package-lock.json, so `npm ci`
installs exactly that), an nx.json, a packages/shared-types Nx project whose `build`
runs `python -m build` and writes its wheel to packages/shared-types/dist/, and this
repository's files at packages/reassembly-trigger. From the workspace root, Nx must see
exactly the two projects, `nx run reassembly-trigger:build` must build the zip from
that wheel (at dist/deploy.zip too, for the monorepo's Terraform), and
`nx run reassembly-trigger:test` must pass against that wheel.

The nested test run is narrowed to tests/build/test_shared_wheel.py (Nx forwards what follows
`--` to pytest: `nx run reassembly-trigger:test -- tests/build/test_shared_wheel.py`), so the
suite is not run a second time inside itself; its cost is the nested .venv's bootstrap.
Needs Node.js and npm (the npm registry); without them the tests skip, saying so.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "build" / "monorepo"
NODE = shutil.which("node")
NPM = shutil.which("npm")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        NODE is None or NPM is None,
        reason="Node.js (node and npm) is not installed: the monorepo-shaped workspace "
        "needs Nx from the npm registry",
    ),
]

#: The monorepo's nx.json, reduced to what the targets need.
NX_JSON = {
    "namedInputs": {"default": ["{projectRoot}/**/*"]},
    "targetDefaults": {"build": {"cache": False}, "test": {"cache": False}},
}
#: packages/shared-types as the monorepo has it: `python -m build` in the package folder.
SHARED_TYPES_PROJECT = {
    "name": "shared-types",
    "projectType": "library",
    "targets": {
        "build": {
            "executor": "nx:run-commands",
            "outputs": ["{projectRoot}/dist"],
            "options": {
                # --no-isolation: the build backend from this repository's locked .venv,
                # on PATH (the monorepo's own build fetches it; CI needs no extra index).
                "command": "python -m build --wheel --no-isolation",
                "cwd": "{projectRoot}",
            },
        }
    },
}
#: The monorepo's version, without the embedded copy's "+stereospot" label, and a file
#: only its wheel has: together they show which wheel a zip or a .venv took.
SHARED_TYPES_PYPROJECT = """\
[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "stereo-spot-shared"
version = "0.1.0"
requires-python = ">=3.11"
dependencies = ["pydantic>=2.0"]

[tool.hatch.build.targets.wheel]
packages = ["src/stereo_spot_shared"]
"""
MARKER = "stereo_spot_shared/built_by_the_monorepo.txt"
ZIP = "packages/reassembly-trigger/dist/deploy.zip"
BUILT_ZIP = "packages/reassembly-trigger/dist/deploy-python3.12-x86_64.zip"


@dataclass
class Monorepo:
    """The workspace and how to run a command at its root."""

    root: Path
    env: dict[str, str]

    def run(self, *command: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """A command at the workspace root; its output on failure is the assertion's."""
        result = subprocess.run(
            list(command),
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )
        assert result.returncode == 0, (
            f"{' '.join(command)} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
        )
        return result

    def nx(self, *arguments: str) -> subprocess.CompletedProcess[str]:
        """The workspace's own Nx (node_modules/.bin/nx)."""
        return self.run(str(self.root / "node_modules" / ".bin" / "nx"), *arguments)


def copy_repository(into: Path) -> None:
    """This repository's files, as a checkout has them (tracked and not ignored)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            target = into / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def clean_environment() -> dict[str, str]:
    """This environment, with this repository's .venv first on PATH (`python -m build`)
    and nothing that would choose a shared-types wheel or a venv for the scripts."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("SHARED_TYPES_HOME", "SHARED_TYPES_WHEEL", "PYTHON", "VIRTUAL_ENV")
        and not key.startswith("NX_")
    }
    env["PATH"] = f"{ROOT / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env.update({"NX_DAEMON": "false", "NX_NO_CLOUD": "true", "NX_TUI": "false", "CI": "true"})
    return env


@pytest.fixture(scope="module")
def monorepo(tmp_path_factory: pytest.TempPathFactory) -> Monorepo:
    """The workspace, with Nx installed from its lock."""
    root = tmp_path_factory.mktemp("monorepo")
    for name in ("package.json", "package-lock.json"):
        shutil.copy2(FIXTURES / name, root / name)
    (root / "nx.json").write_text(json.dumps(NX_JSON, indent=2))
    shared = root / "packages" / "shared-types"
    shutil.copytree(ROOT / "shared-types" / "src", shared / "src")
    (shared / "src" / MARKER).write_text("the monorepo's wheel\n")
    (shared / "pyproject.toml").write_text(SHARED_TYPES_PYPROJECT)
    (shared / "project.json").write_text(json.dumps(SHARED_TYPES_PROJECT, indent=2))
    copy_repository(root / "packages" / "reassembly-trigger")
    workspace = Monorepo(root, clean_environment())
    workspace.run(str(NPM), "ci", "--no-audit", "--no-fund")
    return workspace


def test_the_project_graph_has_the_monorepos_shared_types_and_this_package_only(
    monorepo: Monorepo,
) -> None:
    """GIVEN this repository at packages/reassembly-trigger WHEN Nx lists the projects
    THEN there are exactly two: no second `shared-types`, no stray workspace project;
    reassembly-trigger's root is its folder and its build depends on shared-types:build."""
    shown = monorepo.nx("show", "projects", "--json")
    assert sorted(json.loads(shown.stdout)) == ["reassembly-trigger", "shared-types"]
    project = json.loads(monorepo.nx("show", "project", "reassembly-trigger", "--json").stdout)
    assert project["root"] == "packages/reassembly-trigger"
    for target in ("build", "test"):
        assert {"projects": ["shared-types"], "target": "build"} in (
            project["targets"][target]["dependsOn"]
        )
    shared = json.loads(monorepo.nx("show", "project", "shared-types", "--json").stdout)
    assert shared["root"] == "packages/shared-types"


def test_the_build_makes_the_zip_from_the_monorepos_wheel_at_both_paths(
    monorepo: Monorepo,
) -> None:
    """GIVEN the workspace WHEN `nx run reassembly-trigger:build` runs at its root THEN
    shared-types:build wrote the wheel, and the zip (at dist/deploy.zip and under its
    target's name, each with its manifest) carries that wheel's files byte for byte."""
    monorepo.nx("run", "reassembly-trigger:build")
    (wheel,) = (monorepo.root / "packages" / "shared-types" / "dist").glob("*.whl")
    assert wheel.name.startswith("stereo_spot_shared-0.1.0-")
    deploy, built = monorepo.root / ZIP, monorepo.root / BUILT_ZIP
    assert deploy.read_bytes() == built.read_bytes()
    manifest = json.loads(Path(f"{deploy}.manifest.json").read_text())
    assert manifest == {
        **json.loads(Path(f"{built}.manifest.json").read_text()),
        "zip": "deploy.zip",
    }
    assert manifest["sha256"] == hashlib.sha256(deploy.read_bytes()).hexdigest()
    assert (manifest["runtime"], manifest["architecture"]) == ("python3.12", "x86_64")
    with zipfile.ZipFile(wheel) as built_wheel, zipfile.ZipFile(deploy) as zipped:
        names = set(zipped.namelist())
        package_files = [
            name
            for name in built_wheel.namelist()
            if name.startswith("stereo_spot_shared/") and not name.endswith("/")
        ]
        assert MARKER in package_files
        for name in package_files:
            assert name in names, name
            assert zipped.read(name) == built_wheel.read(name), name
    assert "stereo_spot_shared-0.1.0.dist-info/METADATA" in names
    assert not [name for name in names if "+stereospot" in name]


def test_the_tests_run_from_the_workspace_root_against_the_monorepos_wheel(
    monorepo: Monorepo,
) -> None:
    """GIVEN the workspace WHEN `nx run reassembly-trigger:test -- tests/build/test_shared_wheel.py`
    runs at its root THEN the package's .venv holds the monorepo's wheel and they pass."""
    result = monorepo.nx(
        "run",
        "reassembly-trigger:test",
        "--",
        "tests/build/test_shared_wheel.py",
        "-p",
        "no:cacheprovider",
    )
    output = result.stdout + result.stderr
    assert "stereo-spot-shared from stereo_spot_shared-0.1.0-" in output
    assert " passed" in output
    assert " failed" not in output


def test_standalone_the_embedded_copy_is_the_shared_types_project(
    tmp_path: Path,
) -> None:
    """GIVEN this repository on its own WHEN its Nx lists the projects THEN the embedded
    shared-types copy is the `shared-types` project (this repository's nx.json adds it)."""
    copy_repository(tmp_path)
    standalone = Monorepo(tmp_path, clean_environment())
    standalone.run(str(NPM), "ci", "--no-audit", "--no-fund")
    shown = standalone.nx("show", "projects", "--json")
    assert sorted(json.loads(shown.stdout)) == ["reassembly-trigger", "shared-types"]
    shared = json.loads(standalone.nx("show", "project", "shared-types", "--json").stdout)
    assert shared["root"] == "shared-types"
