"""Atomic directory and file writes: the guard artifact (its folder and its delta) and the model manifests."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any


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


def atomic_write_file(path: Path, data: bytes) -> None:
    """Write `data` to a temp file beside `path`, fsync, then rename it over `path` (a crash leaves the old file or
    the new one, never a mix). The file is readable by all (mkstemp makes 0600; other users and the service read
    manifests and artifacts)."""
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    try:
        os.chmod(name, 0o644)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def atomic_write_json(path: Path, data: Any) -> None:
    """`data` as indented JSON with a final newline, written as `atomic_write_file` does (manifests)."""
    atomic_write_file(path, (json.dumps(data, indent=2) + "\n").encode("utf-8"))
