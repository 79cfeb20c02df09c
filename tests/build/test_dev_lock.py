"""The development environment is pinned: requirements/dev.txt, with hashes, covers what
pyproject.toml asks for, and runs the Lambda zip's versions."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements" / "dev.txt"
#: `name==version` at the start of a lock entry (markers may follow).
_PIN = re.compile(r"^([A-Za-z0-9_.-]+)==([^\s;\\]+)", re.MULTILINE)


def pins() -> dict[str, Version]:
    """The lock's pins by canonical name (the first, for a name pinned per Python)."""
    found: dict[str, Version] = {}
    for name, version in _PIN.findall(LOCK.read_text()):
        found.setdefault(canonicalize_name(name), Version(version))
    return found


def project_requirements() -> list[Requirement]:
    """pyproject's dependencies and every extra, self-references left out."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = [*project["dependencies"]]
    for extra in project["optional-dependencies"].values():
        declared += extra
    requirements = [Requirement(text) for text in declared]
    return [r for r in requirements if canonicalize_name(r.name) != project["name"]]


def entries() -> list[str]:
    """The lock's entries, each with its continuation lines."""
    return re.split(r"\n(?=[A-Za-z0-9])", LOCK.read_text().split("\n", 2)[2])


def test_the_pin_pattern_reads_every_entry_of_the_lock() -> None:
    """Every entry is a pin the pattern reads, and the lock holds the tools: a change of
    the lock's format fails here, instead of leaving the checks below nothing to check."""
    found = entries()
    assert [e.splitlines()[0] for e in found if not _PIN.match(e)] == []
    assert len(found) >= 50
    assert {"boto3", "moto", "pytest", "ruff", "mypy", "structlog"} <= set(pins())


def test_every_pin_carries_hashes() -> None:
    """pip installs the lock with --require-hashes: every entry has a sha256."""
    found = entries()
    assert found
    for entry in found:
        assert _PIN.match(entry), entry.splitlines()[0]
        assert "--hash=sha256:" in entry, entry.splitlines()[0]


def test_the_lock_satisfies_every_requirement_of_the_project() -> None:
    """Editing pyproject's dependencies or extras without `bash scripts/lock_dev.sh` fails
    here; stereo-spot-shared is never in the lock (it comes from the built wheel)."""
    locked = pins()
    shared = canonicalize_name("stereo-spot-shared")
    assert shared not in locked
    requirements = project_requirements()
    assert {"boto3", "moto", "pytest"} <= {canonicalize_name(r.name) for r in requirements}
    for requirement in requirements:
        name = canonicalize_name(requirement.name)
        if name == shared:
            continue
        assert name in locked, f"{requirement} is not in requirements/dev.txt"
        assert locked[name] in requirement.specifier, f"{name}=={locked[name]} vs {requirement}"


def test_the_venv_runs_the_versions_the_lambda_zip_bundles() -> None:
    """transitions, structlog and pydantic are the zip's (requirements/lambda-runtime.in)."""
    locked = pins()
    runtime = ROOT / "requirements" / "lambda-runtime.in"
    checked = set()
    for line in runtime.read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            requirement = Requirement(line.split("#")[0].strip())
            assert locked[canonicalize_name(requirement.name)] in requirement.specifier
            checked.add(canonicalize_name(requirement.name))
    assert checked >= {"transitions", "structlog", "pydantic"}


def test_moto_is_held_to_the_major_version_it_was_written_against() -> None:
    """local/aws/moto_tuning.py patches moto's internals: a new major is a deliberate step."""
    moto = next(r for r in project_requirements() if r.name == "moto")

    assert Version("6") not in moto.specifier
    assert pins()["moto"].major == 5
    assert "hypothesis" in pins()
