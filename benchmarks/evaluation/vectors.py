"""Vectors and per-scorer scores of the evaluation: every row's exemplar and window vectors (cached per text on
disk) and, per fold, each kNN / centroid / head variant's unsafe score."""

from __future__ import annotations

import hashlib
import itertools
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Protocol

import numpy as np

from index import SAFE, Exemplar, Guard, GuardConfig, Label, normalize_text, split_windows
from index.datasets import DatasetRow
from index.encoding import Encoder
from index.taxonomy import Taxonomy

KS = (8, 16, 32)
TEMPERATURES = (0.02, 0.05, 0.1)


def taxonomy_labels(taxonomy: Taxonomy) -> list[Label]:
    """The taxonomy's categories as the guard's built-in labels (`safe` the safe one), with their actions."""
    return [Label(c.id, "safe" if c.id == SAFE else "builtin", action=c.action) for c in taxonomy.categories]


class TextVectors(Protocol):
    """Per row its exemplar vector; per window its vector and the row that owns it (Embeddings and its variants)."""

    exemplars: np.ndarray
    windows: np.ndarray
    owners: np.ndarray


def weighted_sum(parts: dict[str, np.ndarray], combo: dict[str, float]) -> np.ndarray:
    """sum(w * parts[name]) over the combination's weights."""
    total = np.zeros_like(parts[next(iter(combo))])
    for name, w in combo.items():
        total = total + w * parts[name]
    return total


class Embeddings:
    """Exemplar vectors (whole text, as indexed) and window vectors (as classified) for every row, cached on disk.

    The cache is per text (keyed by SHA-256 of the raw text, per model and window setting), so a rebuilt dataset
    re-encodes only its new rows.
    """

    def __init__(self, encoder: Encoder, rows: Sequence[DatasetRow], config: GuardConfig, cache_dir: Path) -> None:
        setting = f"{encoder.model_id}|{config.window_tokens}|{config.window_overlap}"
        path = cache_dir / f"vectors-{hashlib.sha256(setting.encode()).hexdigest()[:16]}.npz"
        cache = TextVectorCache.load(path, encoder.dim)
        texts = [r.text for r in rows]
        missing = [t for t in dict.fromkeys(texts) if cache.key(t) not in cache.index]
        if missing:
            t0 = time.perf_counter()
            probe = Guard(encoder, [], config)
            exemplars = probe.embed(missing, progress=progress_printer("exemplars"))
            # A text that fits one window is classified exactly as it is indexed: it stores no window vectors.
            parts = [
                split_windows(encoder, normalize_text(t), config.window_overlap, config.window_tokens) for t in missing
            ]
            long_windows = [w for p in parts if len(p) > 1 for w in p]
            windows = probe.embed(long_windows, progress=progress_printer("windows"))
            counts = [len(p) if len(p) > 1 else 0 for p in parts]
            cache.add(missing, exemplars, windows, counts)
            cache.save(path)
            print(
                f"embedded {len(missing)} new texts + {len(long_windows)} windows in {time.perf_counter() - t0:.0f}s",
                file=sys.stderr,
            )
        self.exemplars, self.windows, self.owners = cache.lookup(texts)


class TextVectorCache:
    """Per-text exemplar vectors plus the window vectors of texts longer than one window."""

    def __init__(self, keys: list[str], exemplars: np.ndarray, windows: np.ndarray, counts: np.ndarray) -> None:
        self.keys, self.exemplars, self.windows, self.counts = keys, exemplars, windows, counts
        self.index = {k: i for i, k in enumerate(keys)}
        self.starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64) if len(counts) else counts

    @staticmethod
    def key(text: str) -> str:
        return hashlib.sha256(text.encode()).hexdigest()[:24]

    @classmethod
    def load(cls, path: Path, dim: int) -> TextVectorCache:
        if not path.exists():
            empty = np.zeros((0, dim), dtype=np.float32)
            return cls([], empty, empty, np.zeros(0, dtype=np.int64))
        data = np.load(path)
        return cls(data["keys"].tolist(), data["exemplars"], data["windows"], data["counts"])

    def add(self, texts: list[str], exemplars: np.ndarray, windows: np.ndarray, counts: list[int]) -> None:
        self.__init__(  # type: ignore[misc]
            self.keys + [self.key(t) for t in texts],
            np.concatenate([self.exemplars, exemplars]),
            np.concatenate([self.windows, windows]),
            np.concatenate([self.counts, np.asarray(counts, dtype=np.int64)]),
        )

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, keys=np.asarray(self.keys), exemplars=self.exemplars, windows=self.windows, counts=self.counts)
        tmp.replace(path)

    def lookup(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(exemplar vectors, window vectors, owner row of each window) for `texts`, as the evaluation reads them."""
        rows = np.asarray([self.index[self.key(t)] for t in texts], dtype=np.int64)
        exemplars = self.exemplars[rows]
        counts = self.counts[rows]
        short = np.flatnonzero(counts == 0)
        long_rows = np.flatnonzero(counts > 0)
        pieces = [exemplars[short]]
        owners = [short]
        for n in long_rows:
            start = self.starts[rows[n]]
            pieces.append(self.windows[start : start + counts[n]])
            owners.append(np.full(counts[n], n, dtype=np.int64))
        return exemplars, np.concatenate(pieces, axis=0), np.concatenate(owners).astype(np.int64)


def progress_printer(what: str) -> Callable[[int, int], None]:
    last = [0.0]

    def report(done: int, total: int) -> None:
        if time.perf_counter() - last[0] > 10 or done == total:
            last[0] = time.perf_counter()
            print(f"  {what}: {done}/{total}", file=sys.stderr)

    return report


class FoldScores:
    """Unsafe score of each scorer variant for every window of the query rows; rows score as their worst window."""

    def __init__(
        self,
        encoder: Encoder,
        labels: list[Label],
        rows: Sequence[DatasetRow],
        emb: TextVectors,
        index_mask: np.ndarray,
        query_mask: np.ndarray,
        config: GuardConfig,
    ) -> None:
        ids = np.flatnonzero(index_mask)
        exemplars = [Exemplar(int(i), rows[int(i)].text, rows[int(i)].category) for i in ids]
        guard = Guard.from_vectors(encoder, labels, exemplars, emb.exemplars[ids], config)
        safe_col = guard.builtin_labels.index(SAFE)
        win = np.flatnonzero(query_mask[emb.owners])
        position = np.cumsum(query_mask) - 1  # row index -> position among query rows
        self.owner = position[emb.owners[win]]
        self.n = int(query_mask.sum())
        vecs = emb.windows[win]
        self.labels = guard.builtin_labels
        self.safe_col = safe_col
        self.dists: dict[str, np.ndarray] = {}
        for k, t in itertools.product(KS, TEMPERATURES):
            guard.config = replace(config, k=k, knn_temperature=t, centroid_temperature=t)
            d = guard.builtin_distributions(vecs)
            self.dists[f"knn k={k} T={t}"] = d["knn"]
            if k == KS[0]:
                self.dists[f"centroid T={t}"] = d["centroid"]
            if k == KS[0] and t == TEMPERATURES[0] and "head" in d:
                self.dists["head"] = d["head"]
        self.windows = {name: 1.0 - dist[:, safe_col] for name, dist in self.dists.items()}

    def top_category(self, combo: dict[str, float]) -> np.ndarray:
        """Per row: the most probable unsafe category of its worst window (what a verdict reports)."""
        dist = weighted_sum(self.dists, combo)
        unsafe = 1.0 - dist[:, self.safe_col]
        dist = dist.copy()
        dist[:, self.safe_col] = -1.0
        top = np.argmax(dist, axis=1)
        worst = np.full(self.n, -1)
        best = np.full(self.n, -np.inf)
        for w, (row, score) in enumerate(zip(self.owner, unsafe, strict=True)):
            if score > best[row]:
                best[row], worst[row] = score, w
        return np.asarray([self.labels[top[w]] for w in worst])

    def fused(self, combo: dict[str, float]) -> np.ndarray:
        """Per-row score: the weighted sum per window (as the product fuses), then the worst window."""
        per_window = weighted_sum(self.windows, combo)
        out = np.full(self.n, -np.inf)
        np.maximum.at(out, self.owner, per_window)
        clipped: np.ndarray = np.clip(out, 1e-6, 1 - 1e-6)
        return clipped
