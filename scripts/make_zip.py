"""Zip a directory deterministically (the same files give the same bytes) and write
the zip's manifest beside it.

Entries are sorted, stamped with one fixed time (SOURCE_DATE_EPOCH, or 1980-01-01,
the earliest a zip can hold), given normalised permissions (0644, or 0755 when the
owner may execute) and compressed at a fixed level. Byte caches are left out, except
the target's own bytecode (`--bytecode cpython-312`: `__pycache__/NAME.cpython-312.pyc`
beside a zipped `NAME.py`). So Terraform's `source_code_hash` changes only when a file
does.

The manifest (`<zip>.manifest.json`) says what the zip was built for: runtime,
architecture, Python version, bytecode tag, sha256 and size. The Terraform module
refuses to deploy a zip whose manifest disagrees with the function's runtime or
architecture, or with the zip itself.

Usage: python scripts/make_zip.py STAGING_DIR OUTPUT_ZIP --runtime python3.12
           --architecture x86_64 [--bytecode cpython-312|none]
Prints the target, the path, the zipped and unzipped sizes, the bytecode and the sha256.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import stat
import sys
import time
import zipfile
from pathlib import Path

ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
COMPRESSLEVEL = 9
MIB = 1024 * 1024


def fixed_date_time() -> tuple[int, int, int, int, int, int]:
    """The one timestamp every entry carries."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if not epoch:
        return ZIP_EPOCH
    stamp = time.gmtime(int(epoch))[:6]
    return max(ZIP_EPOCH, (stamp[0], stamp[1], stamp[2], stamp[3], stamp[4], stamp[5]))


def is_cache(relative: Path) -> bool:
    """A byte cache: `__pycache__/` content or a stray `.pyc`/`.pyo`."""
    return "__pycache__" in relative.parts or relative.suffix in (".pyc", ".pyo")


def is_target_bytecode(relative: Path, tag: str | None, sources: set[Path]) -> bool:
    """`pkg/__pycache__/mod.<tag>.pyc` whose `pkg/mod.py` is zipped: the only cache kept.

    Another interpreter's or optimisation level's file would never be loaded by the
    target runtime, and one without its source would be dead weight.
    """
    if tag is None or relative.parent.name != "__pycache__":
        return False
    suffix = f".{tag}.pyc"
    if not relative.name.endswith(suffix):
        return False
    return relative.parent.parent / (relative.name.removesuffix(suffix) + ".py") in sources


def files_to_zip(staging: Path, bytecode_tag: str | None = None) -> list[Path]:
    """Every regular file under `staging` to zip, relative, sorted by its zip name."""
    found = [
        path.relative_to(staging)
        for path in staging.rglob("*")
        if path.is_file() and not path.is_symlink()
    ]
    sources = {p for p in found if not is_cache(p)}
    kept = sources | {p for p in found if is_target_bytecode(p, bytecode_tag, sources)}
    return sorted(kept, key=lambda p: p.as_posix())


def write_zip(staging: Path, output: Path, bytecode_tag: str | None = None) -> tuple[int, int]:
    """Write the zip; return (total uncompressed bytes, number of bytecode files)."""
    date_time = fixed_date_time()
    unzipped = 0
    compiled = 0
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    with zipfile.ZipFile(partial, "w") as archive:
        for relative in files_to_zip(staging, bytecode_tag):
            compiled += relative.suffix == ".pyc"
            source = staging / relative
            data = source.read_bytes()
            owner_executes = source.stat().st_mode & stat.S_IXUSR
            info = zipfile.ZipInfo(relative.as_posix(), date_time=date_time)
            info.create_system = 3  # Unix, so the permission bits below are honoured
            info.external_attr = (stat.S_IFREG | (0o755 if owner_executes else 0o644)) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data, compresslevel=COMPRESSLEVEL)
            unzipped += len(data)
    partial.replace(output)  # never leave a half-written zip under the real name
    return unzipped, compiled


def manifest_path(output: Path) -> Path:
    """Where the manifest of `output` goes (the Terraform module looks there too)."""
    return output.with_name(output.name + ".manifest.json")


def manifest(
    output: Path, *, runtime: str, architecture: str, bytecode_tag: str | None, unzipped: int
) -> dict[str, object]:
    """What the zip was built for and what it is; Terraform compares it at plan time."""
    data = output.read_bytes()
    digest = hashlib.sha256(data)
    return {
        "format": 1,
        "zip": output.name,
        "runtime": runtime,
        "architecture": architecture,
        "python_version": runtime.removeprefix("python"),
        "bytecode": bytecode_tag,
        "sha256": digest.hexdigest(),
        # The form of Terraform's filebase64sha256(), i.e. the function's source_code_hash.
        "sha256_base64": base64.b64encode(digest.digest()).decode(),
        "size": len(data),
        "unzipped_size": unzipped,
    }


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    """STAGING_DIR OUTPUT_ZIP --runtime R --architecture A [--bytecode TAG|none]."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("staging", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--runtime", required=True, help="e.g. python3.12")
    parser.add_argument("--architecture", required=True, choices=("x86_64", "arm64"))
    parser.add_argument(
        "--bytecode", default="none", help="cache tag to keep, e.g. cpython-312 (default: none)"
    )
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    """Zip STAGING_DIR into OUTPUT_ZIP, write its manifest and report both."""
    arguments = parse_arguments(argv)
    output = arguments.output.resolve()
    tag = None if arguments.bytecode == "none" else arguments.bytecode
    unzipped, compiled = write_zip(arguments.staging, output, tag)
    described = manifest(
        output,
        runtime=arguments.runtime,
        architecture=arguments.architecture,
        bytecode_tag=tag,
        unzipped=unzipped,
    )
    manifest_path(output).write_text(json.dumps(described, indent=2) + "\n")
    zipped = output.stat().st_size
    print(f"target:   {arguments.runtime} {arguments.architecture}")
    print(f"path:     {output}")
    print(f"manifest: {manifest_path(output)}")
    print(f"zipped:   {zipped} bytes ({zipped / MIB:.2f} MiB)")
    print(f"unzipped: {unzipped} bytes ({unzipped / MIB:.2f} MiB)")
    print(f"bytecode: {f'{tag} ({compiled} files)' if tag else 'none'}")
    print(f"sha256:   {described['sha256']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
