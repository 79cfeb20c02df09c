"""stereo-spot-shared comes only from a built wheel file: the embedded copy's (this
repository on its own) or the monorepo's packages/shared-types/dist/ (nested)."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
from functools import cache
from pathlib import Path

from packaging.specifiers import SpecifierSet
from packaging.utils import parse_wheel_filename

import stereo_spot_shared

ROOT = Path(__file__).resolve().parents[2]


@cache
def shared_types_home() -> Path:
    """The shared-types folder the scripts use here (scripts/shared_types.sh decides)."""
    shown = subprocess.run(
        ["bash", "-c", 'source scripts/shared_types.sh && shared_types_home "$PWD"'],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(shown.stdout.strip())


def test_the_shared_types_are_installed_from_the_built_wheel_file() -> None:
    """pip recorded a direct install of the home's dist/*.whl: not an index, not a
    source tree, not an editable install."""
    dist = importlib.metadata.distribution("stereo-spot-shared")
    direct_url = json.loads(dist.read_text("direct_url.json") or "{}")
    assert "archive_info" in direct_url, direct_url
    assert direct_url["url"].startswith("file://")
    assert direct_url["url"].endswith("-none-any.whl")
    assert direct_url["url"].startswith(f"file://{shared_types_home()}/dist/")


def test_the_imported_module_is_not_the_source_checkout() -> None:
    """`import stereo_spot_shared` resolves to site-packages, never shared-types/src."""
    module_path = Path(stereo_spot_shared.__file__).resolve()
    assert (ROOT / "shared-types" / "src") not in module_path.parents
    assert "site-packages" in module_path.parts


def test_the_installed_version_is_the_homes_wheel_and_the_pin_admits_both_homes() -> None:
    """The version installed is the home's wheel's; the project's pin admits the
    embedded copy's local version (0.1.0+stereospot) and the monorepo's (0.1.0)."""
    (wheel,) = (shared_types_home() / "dist").glob("stereo_spot_shared-*.whl")
    _, built, _, _ = parse_wheel_filename(wheel.name)
    assert importlib.metadata.version("stereo-spot-shared") == str(built)
    requirements = importlib.metadata.requires("stereo-spot-reassembly-trigger") or []
    (pin,) = [r for r in requirements if r.startswith("stereo-spot-shared")]
    specifier = SpecifierSet(pin.removeprefix("stereo-spot-shared"))
    assert specifier.contains("0.1.0+stereospot")
    assert specifier.contains("0.1.0")


def test_standalone_the_home_is_the_embedded_copy_and_nested_the_monorepos(
    tmp_path: Path,
) -> None:
    """The home is the monorepo's packages/shared-types only beside a workspace nx.json."""
    script = ROOT / "scripts" / "shared_types.sh"

    def home(root: Path) -> str:
        shown = subprocess.run(
            ["bash", "-c", f'source "{script}" && shared_types_home "{root}"'],
            capture_output=True,
            text=True,
            check=True,
            env={"PATH": "/usr/bin:/bin"},
        )
        return shown.stdout.strip()

    package = tmp_path / "packages" / "reassembly-trigger"
    package.mkdir(parents=True)
    assert home(package) == f"{package}/shared-types"
    (tmp_path / "packages" / "shared-types").mkdir()
    (tmp_path / "packages" / "shared-types" / "pyproject.toml").write_text("")
    assert home(package) == f"{package}/shared-types"  # no workspace nx.json yet
    (tmp_path / "nx.json").write_text("{}")
    assert home(package) == str(tmp_path / "packages" / "shared-types")
