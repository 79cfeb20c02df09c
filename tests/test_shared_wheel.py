"""stereo-spot-shared comes only from the wheel this repository builds."""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path

import stereo_spot_shared

ROOT = Path(__file__).resolve().parents[1]


def test_the_shared_types_are_installed_from_the_built_wheel_file() -> None:
    """pip recorded a direct install of shared-types/dist/*.whl: not an index, not a
    source tree, not an editable install."""
    dist = importlib.metadata.distribution("stereo-spot-shared")
    direct_url = json.loads(dist.read_text("direct_url.json") or "{}")
    assert "archive_info" in direct_url, direct_url
    assert direct_url["url"].startswith("file://")
    assert direct_url["url"].endswith("-py3-none-any.whl")
    assert "/shared-types/dist/" in direct_url["url"]


def test_the_imported_module_is_not_the_source_checkout() -> None:
    """`import stereo_spot_shared` resolves to site-packages, never shared-types/src."""
    module_path = Path(stereo_spot_shared.__file__).resolve()
    assert (ROOT / "shared-types" / "src") not in module_path.parents
    assert "site-packages" in module_path.parts


def test_the_pin_can_only_be_met_by_the_local_version() -> None:
    """The project pins the local version label that public indexes refuse."""
    requirements = importlib.metadata.requires("stereo-spot-reassembly-trigger") or []
    assert "stereo-spot-shared==0.1.0+stereospot" in requirements
    assert importlib.metadata.version("stereo-spot-shared") == "0.1.0+stereospot"
