"""Save and load a Guard as one directory, written atomically and verified by checksums at load.

A full build writes the whole directory; an edit writes only its delta from it (`index.artifact_delta`), which
loading applies when it belongs to the directory's files and is intact (else the full artifact alone is used).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from index.artifact_delta import ArtifactBase, apply_delta, artifact_base, base_id, read_guard_delta
from index.calibration import Platt
from index.config import GuardConfig
from index.encoding.cache import EmbeddingCache
from index.encoding.encoder import Encoder
from index.errors import IndexArtifactError, InvalidInputError, LightguardError
from index.files import atomic_write_dir
from index.guard import Guard
from index.scoring import LinearHead
from index.store import StoreBackend, VectorStore
from index.text import NORMALIZATION_VERSION
from index.types import Exemplar, Label, Vectors

FORMAT_VERSION = 1
_MANIFEST = "guard.json"
_VECTORS = "vectors.faiss"
_ARRAYS = "arrays.npz"

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class GuardImage:
    """What `save_guard` writes, captured from a guard under its lock (`capture_guard`) so that the slow part
    (checksums, the manifest, the disk) can run later with no lock held while the guard goes on changing."""

    model_id: str
    dim: int
    store: VectorStore  # a copy: serialised when the image is written
    background: Vectors
    head: LinearHead | None
    config: GuardConfig
    builtin_order: list[str]
    labels: list[Label]
    exemplars: list[Exemplar]


def capture_guard(guard: Guard) -> GuardImage:
    """The guard's state as `save_guard` would write it, read in one hold of its lock: a copy of the store (a memory
    copy, not its serialisation), references to the arrays (edits replace them, never change them) and shallow
    copies of the labels and exemplars."""
    with guard.lock:
        return GuardImage(
            model_id=guard.encoder.model_id,
            dim=guard.encoder.dim,
            store=guard.store.copy(),
            background=guard.background,
            head=guard.head,
            config=guard.config,
            builtin_order=guard.builtin_labels,
            labels=list(guard.labels.values()),
            exemplars=list(guard.exemplars.values()),
        )


def image_base(image: GuardImage, manifest: dict[str, Any]) -> ArtifactBase:
    """What an edit's delta is saved against once `image` is written as the full artifact `manifest`."""
    return ArtifactBase(
        id=base_id(manifest),
        exemplars={e.id: e for e in image.exemplars},
        head=image.head,
        background=image.background,
        config=image.config,
        builtin_order=list(image.builtin_order),
        metadata=dict(manifest.get("metadata", {})),
    )


@dataclass(frozen=True, slots=True)
class LoadedArtifact:
    """A guard read from an artifact: its metadata (the delta's when one was applied) and the full artifact it was
    read from (what the next delta is saved against)."""

    guard: Guard
    metadata: dict[str, Any]
    base: ArtifactBase


def save_guard(guard: Guard, directory: Path, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write the guard (store, exemplars, labels, config, head, background) atomically; returns the manifest.

    `metadata` is stored verbatim (the service records the database state digest and index version there).
    """
    return write_guard_image(capture_guard(guard), directory, metadata)


def write_guard_image(image: GuardImage, directory: Path, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write a captured guard (`capture_guard`) atomically, as `save_guard` does; returns the manifest."""
    store_bytes = image.store.to_bytes()
    arrays = io.BytesIO()
    head = image.head
    np.savez(
        arrays,
        background=image.background,
        head_weights=head.weights if head is not None else np.zeros((0, 0), np.float32),
        head_bias=head.bias if head is not None else np.zeros(0, np.float32),
    )
    arrays_bytes = arrays.getvalue()
    manifest: dict[str, Any] = {
        "format": FORMAT_VERSION,
        "normalization": NORMALIZATION_VERSION,
        "model_id": image.model_id,
        "dim": image.dim,
        "count": len(image.exemplars),
        "checksums": {
            _VECTORS: hashlib.sha256(store_bytes).hexdigest(),
            _ARRAYS: hashlib.sha256(arrays_bytes).hexdigest(),
        },
        "config": asdict(image.config),
        "builtin_order": image.builtin_order,
        "labels": [asdict(label) for label in image.labels],
        "exemplars": [[e.id, e.text, e.label, e.role] for e in image.exemplars],
        "metadata": metadata or {},
    }
    atomic_write_dir(
        directory,
        {
            _VECTORS: store_bytes,
            _ARRAYS: arrays_bytes,
            _MANIFEST: json.dumps(manifest, ensure_ascii=False).encode(),
        },
    )
    return manifest


def read_guard_metadata(directory: Path, delta: bool = True) -> dict[str, Any]:
    """The `metadata` saved with a guard, without loading vectors (raises IndexArtifactError if unreadable): its
    delta's when it has an intact one (unless `delta` is False: the full artifact's)."""
    manifest = _read_manifest(directory)
    if delta:
        try:
            found = read_guard_delta(directory, base_id(manifest))
        except IndexArtifactError:
            found = None  # logged when the guard is loaded
        if found is not None:
            return found[1]
    return dict(manifest.get("metadata", {}))


def artifact_files(directory: Path) -> dict[str, bytes]:
    """The full artifact's files (its manifest and the files it checksums; not the delta), by name."""
    manifest = _read_manifest(directory)
    names = [_MANIFEST, *manifest.get("checksums", {})]
    try:
        return {name: (directory / name).read_bytes() for name in names}
    except FileNotFoundError as exc:
        raise IndexArtifactError(f"index artifact file missing: {exc.filename}") from exc


def load_guard(
    directory: Path, encoder: Encoder, store: StoreBackend | None = None, cache: EmbeddingCache | None = None
) -> Guard:
    """Load a saved guard; raises IndexArtifactError when missing, corrupt, or built with another encoder.

    `store`: the backend that wrote the vectors (default: FAISS, as the saved configuration describes); `cache`: the
    embedding cache the guard's `embed` uses (see `Guard.build`).
    """
    return load_artifact(directory, encoder, store, cache).guard


def load_artifact(
    directory: Path, encoder: Encoder, store: StoreBackend | None = None, cache: EmbeddingCache | None = None
) -> LoadedArtifact:
    """`load_guard`, with the metadata and the base record; a delta that is corrupt, foreign or does not apply is
    logged and left out (the guard is then the full artifact's, at its version)."""
    manifest = _read_manifest(directory)
    guard = _load_full(directory, manifest, encoder, store, cache)
    base = artifact_base(guard, manifest)  # before the delta changes the guard
    metadata = dict(manifest.get("metadata", {}))
    found = None
    try:
        found = read_guard_delta(directory, base.id)
        if found is not None:
            apply_delta(guard, found[0])
            metadata = found[1]
    except LightguardError as exc:
        log.warning("index delta in %s not used (%s); using the full artifact alone", directory, exc)
        if found is not None:  # applied in part: start again from the full artifact
            guard = _load_full(directory, manifest, encoder, store, cache)
            base = artifact_base(guard, manifest)
    return LoadedArtifact(guard, metadata, base)


def _load_full(
    directory: Path,
    manifest: dict[str, Any],
    encoder: Encoder,
    store: StoreBackend | None,
    cache: EmbeddingCache | None,
) -> Guard:
    if manifest.get("format") != FORMAT_VERSION:
        raise IndexArtifactError(
            f"index artifact in {directory} has format {manifest.get('format')}, need {FORMAT_VERSION}"
        )
    if manifest.get("normalization") != NORMALIZATION_VERSION:
        raise IndexArtifactError(
            f"index artifact in {directory} was built with text normalisation v{manifest.get('normalization')}, "
            f"this version normalises as v{NORMALIZATION_VERSION}"
        )
    if manifest["model_id"] != encoder.model_id:
        raise IndexArtifactError(
            f"index artifact in {directory} was built with {manifest['model_id']!r}, "
            f"the encoder is {encoder.model_id!r}"
        )
    blobs: dict[str, bytes] = {}
    for name, digest in manifest["checksums"].items():
        try:
            blobs[name] = (directory / name).read_bytes()
        except FileNotFoundError as exc:
            raise IndexArtifactError(f"index artifact file missing: {directory / name}") from exc
        if hashlib.sha256(blobs[name]).hexdigest() != digest:
            raise IndexArtifactError(f"index artifact file {directory / name} does not match its checksum")
    try:
        cfg = dict(manifest["config"])
        cfg["platt"] = Platt(**cfg["platt"])
        config = GuardConfig(**cfg)
        arrays = np.load(io.BytesIO(blobs[_ARRAYS]))
        labels = [Label(**raw) for raw in manifest["labels"]]
        order = manifest["builtin_order"]
        labels.sort(key=lambda lab: order.index(lab.name) if lab.name in order else len(order))
        background = arrays["background"].astype(np.float32)
        guard = Guard(encoder, labels, config, background=background, store=store, cache=cache)
        if arrays["head_weights"].size:
            guard.head = LinearHead(arrays["head_weights"], arrays["head_bias"])
        stored = guard.store_backend.from_bytes(blobs[_VECTORS], encoder.dim, encoder.model_id)
        exemplars = [Exemplar(int(i), text, label, role) for i, text, label, role in manifest["exemplars"]]
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise IndexArtifactError(f"index artifact in {directory} is unreadable: {exc}") from exc
    if guard.builtin_labels != order:
        raise IndexArtifactError(f"index artifact in {directory} has an inconsistent label order")
    if len(stored) != manifest["count"]:
        raise IndexArtifactError(f"index artifact in {directory}: stored vectors and exemplar list disagree")
    try:
        # the saved (trained) index is used as is; centroids and topic matrices are derived as at build time
        guard.adopt_store(stored, exemplars)
    except InvalidInputError as exc:
        raise IndexArtifactError(f"index artifact in {directory}: stored vectors and exemplar list disagree") from exc
    return guard


def _read_manifest(directory: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads((directory / _MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise IndexArtifactError(f"no index artifact in {directory}") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise IndexArtifactError(f"index manifest {directory / _MANIFEST} is corrupt: {exc}") from exc
    return data
