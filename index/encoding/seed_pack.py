"""Seed-vector packs: the committed, read-only vectors of the seed index's texts under one encoder (issue 19), so a
fresh clone's first build takes them instead of embedding ~32k texts (~2 minutes on two cores).

A pack is two files: a JSON manifest (`SeedPackManifest`: the encoder key the vectors were made under, the data
they cover, the blob's sha256) and a blob beside it: `count` 16-byte text digests (`text_key` of the normalised
text, as the embedding cache keys them), then `count` x `dim` little-endian float16 rows in the same order, then the
bytes of the fits (`index.fits`) a build on exactly these vectors computes, so that build does not refit either.

`SeededEmbeddingCache` puts a pack behind an embedding cache (or none): texts the cache lacks are looked up in the
pack when the pack was made under the running encoder's key (else it is ignored, with one info line), and hits are
written into the cache. A pack is content-addressed by text: one made before a data edit still covers the texts that
did not change. A missing, unreadable or corrupt pack logs a warning and acts as empty: never a failed build.
float16 (not the float32 an encoder returns): half the bytes in git, and the rounding (cosine >= 0.99999 to the
float32 vector, docs/performance.md) is far below what int8 quantisation already moves a vector.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import threading
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from index.cpu import int8_isa
from index.encoding.cache import EmbeddingCache, text_key
from index.files import atomic_write_file, atomic_write_json
from index.fits import FitCache
from index.types import Vectors

log = logging.getLogger(__name__)

PACK_FORMAT = 1
"""Bumped when the blob's layout or the manifest's fields change (an older pack is then ignored)."""
DIGEST_BYTES = 16
REGENERATE = "make seed-vectors"
"""The command that writes the committed pack (`lightguard export-seed-vectors`), named in every message about it."""


@dataclass(frozen=True, slots=True)
class SeedPackManifest:
    """What a pack's blob holds and what it was made from."""

    encoder_key: str
    dim: int
    count: int
    blob: str
    """File name of the blob, beside the manifest."""
    sha256: str
    data_digest: str
    """sha256 over the sorted digests of the texts covered: equal for two packs of the same seed texts."""
    dtype: str = "float16"
    fits: dict[str, list[int]] = field(default_factory=dict)
    """Fit key (hex) -> [offset, length] of its bytes in the blob."""
    made_on: str = ""
    """The int8 instructions of the CPU that computed the vectors (`index.cpu.int8_isa`; "" in older packs): only
    float rounding should differ on another kind since the export's 7-bit weights, and
    `benchmarks.evaluation.seed_pack_drift` measures what does."""
    format: int = PACK_FORMAT
    command: str = REGENERATE

    @classmethod
    def read(cls, path: Path) -> SeedPackManifest:
        """Raises ValueError (bad JSON or fields) or OSError."""
        raw = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(raw, dict) or raw.get("format") != PACK_FORMAT:
            raise ValueError(f"not a format-{PACK_FORMAT} seed-vector manifest")
        try:
            return cls(**raw)
        except TypeError as exc:
            raise ValueError(f"bad seed-vector manifest fields ({exc})") from exc


def write_seed_pack(
    manifest_path: Path,
    encoder_key: str,
    vectors: Mapping[str, NDArray[np.float32]],
    fits: Mapping[bytes, bytes] | None = None,
) -> SeedPackManifest:
    """Write a pack of `vectors` (normalised text -> vector, as the encoder returned it) and `fits` (fit key ->
    bytes, rewritten without timestamps) to `manifest_path` and a `.bin` blob beside it; the same inputs give the
    same bytes. Returns the manifest written."""
    fits = fits or {}
    digests = sorted((text_key(text), text) for text in vectors)
    dim = len(next(iter(vectors.values()))) if vectors else 0
    rows = np.zeros((len(digests), dim), dtype="<f2")
    for n, (_, text) in enumerate(digests):
        rows[n] = np.asarray(vectors[text], dtype=np.float32)
    keys = b"".join(d for d, _ in digests)
    out = io.BytesIO()
    out.write(keys)
    out.write(rows.tobytes())
    placed: dict[str, list[int]] = {}
    for key in sorted(fits):
        data = _stable_npz(fits[key])
        placed[key.hex()] = [out.tell(), len(data)]
        out.write(data)
    blob = out.getvalue()
    blob_path = manifest_path.with_suffix(".bin")
    manifest = SeedPackManifest(
        encoder_key=encoder_key,
        dim=dim,
        count=len(digests),
        blob=blob_path.name,
        sha256=hashlib.sha256(blob).hexdigest(),
        data_digest=hashlib.sha256(keys).hexdigest(),
        fits=placed,
        made_on=int8_isa(),
    )
    manifest_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_file(blob_path, blob)  # a reader between the two renames sees the old manifest's checksum fail
    atomic_write_json(manifest_path, asdict(manifest))
    return manifest


def _stable_npz(data: bytes) -> bytes:
    """The same arrays in an .npz whose zip entries carry a fixed date (np.savez stamps the current time)."""
    out = io.BytesIO()
    with np.load(io.BytesIO(data), allow_pickle=False) as arrays, zipfile.ZipFile(out, "w") as zf:
        for name in sorted(arrays.files):
            with zf.open(zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0)), "w") as entry:
                np.lib.format.write_array(entry, arrays[name], allow_pickle=False)
    return out.getvalue()


class SeedVectorPack:
    """A pack as a read-only vector source (`get`, the embedding cache's shape) and fit source (`get_fit`), read on
    first use. Safe for several threads."""

    def __init__(self, manifest_path: Path) -> None:
        self.path = Path(manifest_path)
        self._lock = threading.Lock()
        self._manifest: SeedPackManifest | None = None
        self._rows: NDArray[np.float16] | None = None
        self._blob: NDArray[np.uint8] | None = None
        self._row_of: dict[bytes, int] = {}
        self._refused: set[str] = set()  # encoder keys already logged as not matching
        self._matched = False
        self._broken: str | None = None

    @property
    def broken(self) -> str | None:
        """Why the pack is ignored in this process (missing, unreadable, corrupt), None while it is usable."""
        return self._broken

    def get(self, model_key: str, texts: Sequence[str], dim: int) -> tuple[Vectors, NDArray[np.bool_]]:
        """(len(texts), dim) float32 rows with the pack's vectors where found, and which rows were found: none when
        the pack was made under another encoder key."""
        out = np.zeros((len(texts), dim), dtype=np.float32)
        hit = np.zeros(len(texts), dtype=np.bool_)
        with self._lock:
            if not self._open(model_key, dim):
                return out, hit
            assert self._rows is not None
            for n, text in enumerate(texts):
                row = self._row_of.get(text_key(text))
                if row is not None:
                    out[n] = self._rows[row]
                    hit[n] = True
        return out, hit

    def get_fit(self, key: bytes) -> bytes | None:
        """A shipped fit's bytes by its key, once `get` found the pack made for the running encoder."""
        with self._lock:
            if not self._matched or self._manifest is None or self._blob is None:
                return None
            place = self._manifest.fits.get(key.hex())
            if place is None:
                return None
            offset, length = place
            return self._blob[offset : offset + length].tobytes()

    def _open(self, model_key: str, dim: int) -> bool:
        if self._broken is not None:
            return False
        if self._manifest is None:
            try:
                self._manifest = SeedPackManifest.read(self.path)
            except FileNotFoundError:
                return self._ignore(f"no seed vectors at {self.path}", warn=False)
            except (OSError, ValueError) as exc:
                return self._ignore(f"seed vectors {self.path} unreadable ({exc})")
        manifest = self._manifest
        if manifest.encoder_key != model_key or manifest.dim != dim:
            if model_key not in self._refused:
                self._refused.add(model_key)
                log.info(
                    "seed vectors %s ignored: made for encoder %r (dim %d), this encoder is %r (dim %d);"
                    " `%s` writes a pack for it",
                    self.path,
                    manifest.encoder_key,
                    manifest.dim,
                    model_key,
                    dim,
                    REGENERATE,
                )
            return False
        if self._rows is None:
            if not self._load(manifest):
                return False
            # replicas on another kind of CPU may compute their own texts' vectors a little differently
            log.info(
                "seed vectors %s: %d texts, computed with %s int8 kernels (this CPU: %s)",
                self.path,
                manifest.count,
                manifest.made_on or "unrecorded",
                int8_isa(),
            )
        self._matched = True
        return True

    def _load(self, manifest: SeedPackManifest) -> bool:
        blob_path = self.path.parent / manifest.blob
        try:
            sha = hashlib.sha256()
            with blob_path.open("rb") as f:
                while chunk := f.read(1 << 20):
                    sha.update(chunk)
            if sha.hexdigest() != manifest.sha256:
                return self._ignore(
                    f"seed vectors {blob_path} do not match their manifest's sha256 (damaged, or one of the two"
                    f" files edited); `{REGENERATE}` writes them again"
                )
            if manifest.dtype != "float16":
                return self._ignore(f"seed vectors {self.path}: dtype {manifest.dtype!r}, expected float16")
            # mapped, not read: the page cache holds the 25 MB, and may drop them once the first build is done
            blob = np.memmap(blob_path, dtype=np.uint8, mode="r")
        except (OSError, ValueError) as exc:
            return self._ignore(f"seed vectors {blob_path} unreadable ({exc})")
        keys_end = manifest.count * DIGEST_BYTES
        rows_end = keys_end + manifest.count * manifest.dim * 2
        if len(blob) < rows_end:
            return self._ignore(f"seed vectors {blob_path} shorter than their manifest says")
        keys = blob[:keys_end].tobytes()
        self._row_of = {keys[n * DIGEST_BYTES : (n + 1) * DIGEST_BYTES]: n for n in range(manifest.count)}
        self._rows = blob[keys_end:rows_end].view("<f2").reshape(manifest.count, manifest.dim)
        self._blob = blob
        return True

    def _ignore(self, why: str, warn: bool = True) -> bool:
        self._broken = why
        if warn:
            log.warning("%s: embedding those texts instead", why)
        else:
            log.info("%s: embedding every seed text", why)
        return False


class SeededEmbeddingCache:
    """An `EmbeddingCache` (and `index.fits.FitCache`) that reads `cache` (None: no cache) and then `pack` for what
    the cache lacks, copying pack hits into the cache; writes go to the cache only."""

    def __init__(self, cache: EmbeddingCache | None, pack: SeedVectorPack) -> None:
        self.cache = cache
        self.pack = pack

    def get(self, model_key: str, texts: Sequence[str], dim: int) -> tuple[Vectors, NDArray[np.bool_]]:
        if self.cache is not None:
            vectors, hit = self.cache.get(model_key, texts, dim)
        else:
            vectors, hit = np.zeros((len(texts), dim), dtype=np.float32), np.zeros(len(texts), dtype=np.bool_)
        missing = np.flatnonzero(~hit)
        if not len(missing):
            return vectors, hit
        found, found_hit = self.pack.get(model_key, [texts[int(n)] for n in missing], dim)
        rows = missing[found_hit]
        if len(rows):
            vectors[rows] = found[found_hit]
            hit[rows] = True
            if self.cache is not None:  # the next build reads them from the cache
                self.cache.put(model_key, [texts[int(n)] for n in rows], vectors[rows])
        return vectors, hit

    def put(self, model_key: str, texts: Sequence[str], vectors: Vectors) -> None:
        if self.cache is not None:
            self.cache.put(model_key, texts, vectors)

    def get_fit(self, key: bytes) -> bytes | None:
        if isinstance(self.cache, FitCache) and (data := self.cache.get_fit(key)) is not None:
            return data
        return self.pack.get_fit(key)

    def put_fit(self, key: bytes, data: bytes) -> None:
        if isinstance(self.cache, FitCache):
            self.cache.put_fit(key, data)


class SeedPackRecorder:
    """An `EmbeddingCache` (and `FitCache`) in front of `cache` (or none) that keeps every vector a build reads or
    writes through it, and every fit: what `write_seed_pack` is given after a build of the seed index."""

    def __init__(self, cache: EmbeddingCache | None = None) -> None:
        self.cache = cache
        self.vectors: dict[str, NDArray[np.float32]] = {}
        self.fits: dict[bytes, bytes] = {}
        self.model_keys: set[str] = set()

    def get(self, model_key: str, texts: Sequence[str], dim: int) -> tuple[Vectors, NDArray[np.bool_]]:
        self.model_keys.add(model_key)
        if self.cache is None:
            return np.zeros((len(texts), dim), dtype=np.float32), np.zeros(len(texts), dtype=np.bool_)
        vectors, hit = self.cache.get(model_key, texts, dim)
        for n in np.flatnonzero(hit):
            self.vectors[texts[int(n)]] = vectors[n].copy()
        return vectors, hit

    def put(self, model_key: str, texts: Sequence[str], vectors: Vectors) -> None:
        self.model_keys.add(model_key)
        for text, row in zip(texts, vectors, strict=True):
            self.vectors[text] = np.array(row, dtype=np.float32)
        if self.cache is not None:
            self.cache.put(model_key, texts, vectors)

    def get_fit(self, key: bytes) -> bytes | None:
        data = self.cache.get_fit(key) if isinstance(self.cache, FitCache) else None
        if data is not None:
            self.fits[key] = data
        return data

    def put_fit(self, key: bytes, data: bytes) -> None:
        self.fits[key] = data
        if isinstance(self.cache, FitCache):
            self.cache.put_fit(key, data)
