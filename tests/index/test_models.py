"""Manifest read/write and checksum verification of model directories (no real model needed)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from index.encoding.models import (
    MANIFEST_FILE,
    ModelManifest,
    read_manifest,
    sha256_file,
    verify_model_dir,
    write_manifest,
)
from index.errors import ModelIntegrityError, ModelNotFoundError

FILES = {"model.onnx": b"fp32 graph", "model.int8.onnx": b"int8 graph", "tokenizer.json": b"{}"}


def _fake_model_dir(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, data in FILES.items():
        (root / name).write_bytes(data)
    manifest = ModelManifest(
        name="fake",
        base_model="test",
        files={name: sha256_file(root / name) for name in FILES},
        dim=8,
        max_tokens=16,
        created_at="2026-01-01T00:00:00+00:00",
        extra={"epochs": 1},
    )
    write_manifest(root, manifest)
    return root


def test_manifest_round_trip(tmp_path: Path) -> None:
    model_dir = _fake_model_dir(tmp_path / "m")
    manifest = read_manifest(model_dir)
    assert manifest.name == "fake" and manifest.dim == 8 and manifest.extra == {"epochs": 1}
    assert manifest.pooling == "mean" and manifest.normalize is True
    assert ModelManifest.from_dict(manifest.to_dict()) == manifest
    # Atomic write leaves no temp files behind.
    assert sorted(p.name for p in model_dir.iterdir()) == sorted([*FILES, MANIFEST_FILE])


def test_malformed_manifest_is_an_integrity_error(tmp_path: Path) -> None:
    model_dir = _fake_model_dir(tmp_path / "m")
    (model_dir / MANIFEST_FILE).write_text("{not json")
    with pytest.raises(ModelIntegrityError, match="not JSON"):
        read_manifest(model_dir)
    (model_dir / MANIFEST_FILE).write_text(json.dumps({"name": "x", "dim": "384"}))
    with pytest.raises(ModelIntegrityError, match="malformed"):
        read_manifest(model_dir)


def test_missing_dir_and_files_are_not_found(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        verify_model_dir(tmp_path / "nope", "int8")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotFoundError, match=r"manifest\.json is missing"):
        verify_model_dir(tmp_path / "empty", "int8")
    model_dir = _fake_model_dir(tmp_path / "m")
    (model_dir / "model.int8.onnx").unlink()
    verify_model_dir(model_dir, "fp32")  # the other variant is still usable
    with pytest.raises(ModelNotFoundError, match=r"model\.int8\.onnx"):
        verify_model_dir(model_dir, "int8")


def test_checksum_mismatch_names_the_file_and_the_fix(tmp_path: Path) -> None:
    model_dir = _fake_model_dir(tmp_path / "m")
    assert verify_model_dir(model_dir, "int8").name == "fake"
    (model_dir / "model.int8.onnx").write_bytes(b"tampered!!")
    with pytest.raises(ModelIntegrityError, match=r"model\.int8\.onnx.*make install"):
        verify_model_dir(model_dir, "int8")


def test_cache_rehashes_when_file_changes(tmp_path: Path) -> None:
    model_dir = _fake_model_dir(tmp_path / "m")
    verify_model_dir(model_dir, "fp32")
    path = model_dir / "model.onnx"
    stat = path.stat()
    path.write_bytes(b"FP32 GRAPH")  # same size, different bytes
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))
    with pytest.raises(ModelIntegrityError):
        verify_model_dir(model_dir, "fp32")


def test_cache_rehashes_when_manifest_checksum_changes(tmp_path: Path) -> None:
    model_dir = _fake_model_dir(tmp_path / "m")
    verify_model_dir(model_dir, "fp32")
    manifest = read_manifest(model_dir)
    files = {**manifest.files, "model.onnx": "0" * 64}
    write_manifest(model_dir, ModelManifest.from_dict({**manifest.to_dict(), "files": files}))
    with pytest.raises(ModelIntegrityError, match=r"model\.onnx"):
        verify_model_dir(model_dir, "fp32")


def test_manifest_without_checksum_for_needed_file(tmp_path: Path) -> None:
    model_dir = _fake_model_dir(tmp_path / "m")
    manifest = read_manifest(model_dir)
    files = {k: v for k, v in manifest.files.items() if k != "tokenizer.json"}
    write_manifest(model_dir, ModelManifest.from_dict({**manifest.to_dict(), "files": files}))
    with pytest.raises(ModelIntegrityError, match=r"no checksum for tokenizer\.json"):
        verify_model_dir(model_dir, "int8")
