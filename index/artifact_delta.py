"""A saved guard's edits since its full artifact, in one small file beside it: what an edit writes instead of the
whole index.

A full artifact (`index.artifact`) costs time and memory in the size of the index (the store's serialisation, a
manifest of every exemplar, their checksums: ~0.8 s of CPU and ~60 MB written for the 30k seed exemplars). Between
full builds only labels and exemplars change, so an edit saves the difference from the full artifact it was loaded
from or wrote last (its *base*): every label, the base's exemplars that are gone, and the exemplars added since with
their vectors. The file names its base; a delta whose base is not the one beside it, or that does not match its
checksum, is ignored (the base is used, and the caller catches up from its change log).

File layout: `_MAGIC`, the SHA-256 of the payload (32 bytes), the payload (an `.npz` holding a JSON header, the
removed ids and the added vectors).
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import operator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from index.config import GuardConfig
from index.errors import IndexArtifactError
from index.files import atomic_write_file
from index.guard import Guard
from index.scoring import LinearHead
from index.types import Action, Exemplar, Ids, Label, LabelKind, Role, Vectors

DELTA_FILE = "delta.bin"
DELTA_FORMAT = 1
_MAGIC = b"LGDELTA1"
_DIGEST = 32


def base_id(manifest: dict[str, Any]) -> str:
    """The identity of a full artifact, from its manifest: its files' checksums, size and metadata (version)."""
    parts = [manifest.get("checksums"), manifest.get("count"), manifest.get("metadata")]
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class ArtifactBase:
    """A full artifact as written or read, kept in memory so that an edit can be saved as a delta from it.

    `head`, `background` are the guard's own objects (compared by identity: edits never change them, a build or a
    refit replaces them); `exemplars` maps id -> exemplar as the base holds them.
    """

    id: str
    exemplars: dict[int, Exemplar]
    head: LinearHead | None
    background: Vectors
    config: GuardConfig
    builtin_order: list[str]
    metadata: dict[str, Any]  # the full artifact's own (a delta saved beside it has its own)
    ids: frozenset[int] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ids", frozenset(self.exemplars))


def artifact_base(guard: Guard, manifest: dict[str, Any]) -> ArtifactBase:
    """The base record of `guard` as the full artifact `manifest` describes it (call before the guard changes)."""
    with guard.lock:
        return ArtifactBase(
            id=base_id(manifest),
            exemplars=guard.exemplars,
            head=guard.head,
            background=guard.background,
            config=guard.config,
            builtin_order=guard.builtin_labels,
            metadata=dict(manifest.get("metadata", {})),
        )


@dataclass(frozen=True, slots=True)
class GuardDelta:
    """A guard's difference from its base: every label, the base's exemplar ids gone, the exemplars added since."""

    base: str
    model_id: str
    labels: list[Label]
    removed: Ids
    added: list[Exemplar]
    vectors: Vectors
    count: int

    @property
    def size(self) -> int:
        """Exemplars the delta changes (removed + added): how far the guard has moved from its base."""
        return len(self.removed) + len(self.added)


def capture_delta(guard: Guard, base: ArtifactBase) -> GuardDelta | None:
    """`guard`'s difference from `base`, read in one short hold of its lock (classification waits for it); None
    when it changed in a way only a full artifact holds: another head, background, configuration or set of built-in
    labels (a build or a refit), or an exemplar id of the base now holding another exemplar."""
    with guard.lock:
        if (
            guard.head is not base.head
            or guard.background is not base.background
            or guard.config != base.config
            or guard.builtin_labels != base.builtin_order
        ):
            return None
        current = guard.exemplars
        labels = list(guard.labels.values())
        added_ids = sorted(current.keys() - base.ids)
        vectors = guard.vectors(added_ids)
    # with no lock (classification need not wait: comparing the ~30k seed exemplars costs ~20-30 ms of CPU on a busy
    # 2-core machine): the exemplars the guard kept from its base are the same objects, tested by identity in C
    before = base.exemplars
    common = list(base.ids & current.keys())
    kept = map(operator.is_, map(current.__getitem__, common), map(before.__getitem__, common))
    if any(current[i] != before[i] for i in itertools.compress(common, map(operator.not_, kept))):
        return None  # not done by any edit of the service (exemplars change by removal and addition)
    return GuardDelta(
        base=base.id,
        model_id=guard.encoder.model_id,
        labels=labels,
        removed=np.asarray(sorted(base.ids - current.keys()), dtype=np.int64),
        added=[current[i] for i in added_ids],
        vectors=vectors,
        count=len(current),
    )


def write_guard_delta(delta: GuardDelta, directory: Path, metadata: dict[str, Any]) -> int:
    """Write `delta` beside its base in `directory` (atomically: a crash leaves the previous delta or none); the
    caller makes sure the base there is `delta.base`. Returns the bytes written."""
    header = {
        "format": DELTA_FORMAT,
        "base": delta.base,
        "model_id": delta.model_id,
        "count": delta.count,
        "labels": [asdict(label) for label in delta.labels],
        "added": [[e.id, e.text, e.label, e.role] for e in delta.added],
        "metadata": metadata,
    }
    payload = io.BytesIO()
    np.savez(
        payload,
        header=np.frombuffer(json.dumps(header, ensure_ascii=False).encode(), dtype=np.uint8),
        removed=delta.removed,
        vectors=delta.vectors,
    )
    body = payload.getvalue()
    data = _MAGIC + hashlib.sha256(body).digest() + body
    atomic_write_file(directory / DELTA_FILE, data)
    return len(data)


def read_guard_delta(directory: Path, base: str) -> tuple[GuardDelta, dict[str, Any]] | None:
    """The delta beside the full artifact `base` in `directory` and its metadata; None when there is none.

    Raises IndexArtifactError when it is corrupt or belongs to another base (the caller then uses the base alone).
    """
    path = directory / DELTA_FILE
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    head = len(_MAGIC) + _DIGEST
    body = data[head:]
    if data[: len(_MAGIC)] != _MAGIC or hashlib.sha256(body).digest() != data[len(_MAGIC) : head]:
        raise IndexArtifactError(f"index delta {path} is corrupt (bad header or checksum)")
    try:
        with np.load(io.BytesIO(body), allow_pickle=False) as arrays:
            header = json.loads(arrays["header"].tobytes().decode("utf-8"))
            removed = arrays["removed"].astype(np.int64)
            vectors = arrays["vectors"].astype(np.float32)
        if header.get("format") != DELTA_FORMAT:
            raise IndexArtifactError(f"index delta {path} has format {header.get('format')}, need {DELTA_FORMAT}")
        if header["base"] != base:
            raise IndexArtifactError(f"index delta {path} was saved against another full artifact")
        labels = [
            Label(
                str(raw["name"]),
                cast(LabelKind, raw["kind"]),
                cast(Action, raw["action"]),
                None if raw["threshold"] is None else float(raw["threshold"]),
                bool(raw["enabled"]),
            )
            for raw in header["labels"]
        ]
        added = [Exemplar(int(i), str(text), str(label), cast(Role, role)) for i, text, label, role in header["added"]]
        delta = GuardDelta(base, str(header["model_id"]), labels, removed, added, vectors, int(header["count"]))
        metadata = dict(header["metadata"])
    except (KeyError, TypeError, ValueError, OSError) as exc:
        raise IndexArtifactError(f"index delta {path} is unreadable: {exc}") from exc
    return delta, metadata


def apply_delta(guard: Guard, delta: GuardDelta) -> None:
    """Bring `guard`, loaded from the delta's base, to the state the delta describes; raises IndexArtifactError when
    the result is not that state (the caller then reloads the base alone). Thresholds are taken as saved."""
    if delta.model_id != guard.encoder.model_id:
        raise IndexArtifactError(f"index delta made with {delta.model_id!r}, the encoder is {guard.encoder.model_id!r}")
    if delta.vectors.shape != (len(delta.added), guard.encoder.dim):
        raise IndexArtifactError(f"index delta vectors have shape {delta.vectors.shape}, need (n, {guard.encoder.dim})")
    names = [label.name for label in delta.labels]
    keep = set(names)
    for name, label in guard.labels.items():
        if label.kind == "custom" and name not in keep:
            guard.remove_label(name)
    present = guard.exemplars
    gone = [int(i) for i in delta.removed if int(i) in present]
    if gone:
        guard.remove_exemplars(gone)
    for label in delta.labels:
        guard.upsert_label(label)
    if delta.added:
        guard.add_exemplars(delta.added, delta.vectors, calibrate=False)
    if list(guard.labels) != names or len(guard) != delta.count:
        # e.g. a topic deleted and created again under its name keeps its base position here, not the live one's
        raise IndexArtifactError("index delta does not reproduce the saved guard (label order or exemplar count)")
