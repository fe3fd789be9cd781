"""Atomic directory writes, shared by the store and the guard artifact."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


def atomic_write_dir(directory: Path, files: dict[str, bytes]) -> None:
    """Write `files` into a fresh temp dir beside `directory`, fsync, then swap it in with renames.

    A crash leaves either the old directory or the new one, never a mix; a stale temp dir is ignored.
    """
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.tmp-", dir=directory.parent))
    try:
        for name, data in files.items():
            with open(tmp / name, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        old = directory.with_name(f".{directory.name}.old-{os.getpid()}")
        if directory.exists():
            os.replace(directory, old)
        os.replace(tmp, directory)
        shutil.rmtree(old, ignore_errors=True)
        dir_fd = os.open(directory.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
