"""The quick dev check recorded with a fine-tuned model: dev AUPRC of centroid and kNN scoring (a sanity check)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from index.datasets import DatasetRow
from index.evaluation import average_precision
from index.scoring import centroids, knn_distribution, softmax
from index.text import normalize_text
from index.types import SAFE

if TYPE_CHECKING:
    from index.training import Example
    from index.training_config import TrainConfig


def quick_dev_metrics(
    model: Any, rows: Sequence[DatasetRow], examples: Sequence[Example], config: TrainConfig
) -> dict[str, Any]:
    """Dev AUPRC of centroid and kNN (k=16, T=0.05) scoring over taxonomy categories, index = training examples.

    A sanity check recorded in the manifest (random split, so optimistic); choices are made on the out-of-source
    evaluation (benchmarks.evaluation.evaluate, benchmarks.evaluation.ablation).
    """
    dev = [r for r in rows if r.split == "dev"]
    dev = random.Random(config.seed).sample(dev, min(len(dev), config.dev_sample))
    if not dev or not any(r.category == SAFE for r in dev) or all(r.category == SAFE for r in dev):
        return {"n": len(dev), "note": "dev sample lacks one class"}
    # A seeded sample of the training texts stands in for the full index: encoding them all with torch costs minutes.
    examples = random.Random(config.seed + 2).sample(list(examples), min(len(examples), 2 * config.dev_sample))
    cats = sorted({e.category for e in examples})
    idx = np.asarray([cats.index(e.category) for e in examples], dtype=np.int64)
    index_vecs = np.asarray(model.encode([e.text for e in examples], batch_size=64, normalize_embeddings=True))
    query = np.asarray(model.encode([normalize_text(r.text) for r in dev], batch_size=64, normalize_embeddings=True))
    sims = query @ index_vecs.T
    y = np.asarray([r.category != SAFE for r in dev])
    out: dict[str, Any] = {"n": len(dev)}
    if SAFE in cats:
        safe = cats.index(SAFE)
        cent = softmax(query @ centroids(index_vecs, idx, len(cats)).T, 0.05)
        k = min(16, len(examples))
        top = np.argsort(-sims, axis=1)[:, :k]
        knn = knn_distribution(np.take_along_axis(sims, top, axis=1), idx[top], len(cats), 0.05)
        out["auprc_centroid"] = round(average_precision(1.0 - cent[:, safe], y), 4)
        out["auprc_knn"] = round(average_precision(1.0 - knn[:, safe], y), 4)
    return out
