"""Zip a directory deterministically: the same files give the same bytes.

Entries are sorted, stamped with one fixed time (SOURCE_DATE_EPOCH, or 1980-01-01,
the earliest a zip can hold), given normalised permissions (0644, or 0755 when the
owner may execute) and compressed at a fixed level. Byte caches are left out. So
Terraform's `source_code_hash` changes only when a file does.

Usage: python scripts/make_zip.py STAGING_DIR OUTPUT_ZIP [LABEL]
Prints the path, the zipped and unzipped sizes and the sha256.
"""

from __future__ import annotations

import hashlib
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
    """Byte caches differ per interpreter and build; Lambda compiles what it needs."""
    return "__pycache__" in relative.parts or relative.suffix in (".pyc", ".pyo")


def files_to_zip(staging: Path) -> list[Path]:
    """Every regular file under `staging`, relative, sorted by its zip name."""
    found = [
        path.relative_to(staging)
        for path in staging.rglob("*")
        if path.is_file() and not path.is_symlink()
    ]
    return sorted((p for p in found if not is_cache(p)), key=lambda p: p.as_posix())


def write_zip(staging: Path, output: Path) -> int:
    """Write the zip; return the total uncompressed size in bytes."""
    date_time = fixed_date_time()
    unzipped = 0
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    with zipfile.ZipFile(partial, "w") as archive:
        for relative in files_to_zip(staging):
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
    return unzipped


def main(argv: list[str]) -> int:
    """Zip STAGING_DIR into OUTPUT_ZIP and report it."""
    if len(argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    staging, output = Path(argv[0]), Path(argv[1]).resolve()
    unzipped = write_zip(staging, output)
    zipped = output.stat().st_size
    digest = hashlib.sha256(output.read_bytes()).hexdigest()
    if len(argv) == 3:
        print(f"target:   {argv[2]}")
    print(f"path:     {output}")
    print(f"zipped:   {zipped} bytes ({zipped / MIB:.2f} MiB)")
    print(f"unzipped: {unzipped} bytes ({unzipped / MIB:.2f} MiB)")
    print(f"sha256:   {digest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
