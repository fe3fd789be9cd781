"""The topic benchmark's episodes: intent datasets and the background embedded (cached), T topics of K examples
drawn per seed, each scored under every rule, and the grid's summary tables."""

from __future__ import annotations

import hashlib
import json
import random
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from benchmarks.data.topics import OOS, OOS_IN_DOMAIN, OOS_LABELS, TopicRow, load_splits
from benchmarks.layout import DATA_DIR, REPO
from benchmarks.topics.rules import (
    Background,
    Episode,
    Rule,
    episode_metrics,
    fit_topics,
    oracle_thresholds,
    score_matrix,
    thresholds_for,
    with_allows,
)
from index import Encoder, load_rows
from index.topics import GramStats

Vec = NDArray[np.float32]
TRAIN_CAP = 30  # train rows embedded per intent: K <= 20 plus room for different seeds
ALLOW_CAP = 400
SAFE_BACKGROUND = 1000  # safe exemplars added to data/background.jsonl (the guard adds up to 5000 of them)


# ------------------------------------------------------------------------------------------------ embeddings
@dataclass(slots=True)
class Embedded:
    """Vectors and labels of one dataset's rows, per split."""

    vectors: dict[str, Vec]
    labels: dict[str, list[str]]

    def intents(self) -> list[str]:
        return sorted(set(self.labels["train"]) - OOS_LABELS)


def cap_per_label(rows: Sequence[TopicRow], cap: int, seed: int = 0) -> list[TopicRow]:
    """At most `cap` rows per label, drawn at random (seeded)."""
    rng = random.Random(seed)
    shuffled = list(rows)
    rng.shuffle(shuffled)
    seen: dict[str, int] = {}
    out = []
    for r in shuffled:
        if seen.get(r.label, 0) < cap:
            seen[r.label] = seen.get(r.label, 0) + 1
            out.append(r)
    return out


def embed_cached(encoder: Encoder, texts: list[str], cache: Path, tag: str) -> Vec:
    key = hashlib.sha256("\n".join([encoder.model_id, *texts]).encode()).hexdigest()[:16]
    path = cache / f"topics-{tag}-{key}.npy"
    if path.exists():
        return np.asarray(np.load(path), dtype=np.float32)
    from index import Guard

    t0 = time.perf_counter()
    vectors = Guard(encoder, []).embed(texts)
    cache.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    print(f"  embedded {tag}: {len(texts)} texts in {time.perf_counter() - t0:.0f}s", file=sys.stderr)
    return vectors


def benchmark_splits(folder: Path) -> dict[str, list[TopicRow]]:
    """The rows the benchmark embeds, in order: every split, train capped per intent and the allow pool per label."""
    splits = load_splits(folder)
    splits["train"] = cap_per_label(splits["train"], TRAIN_CAP)
    if "allow" in splits:
        splits["allow"] = cap_per_label(splits["allow"], ALLOW_CAP)
    return splits


def embed_dataset(encoder: Encoder, folder: Path, cache: Path) -> Embedded:
    splits = benchmark_splits(folder)
    vectors = {
        s: embed_cached(encoder, [r.text for r in rows], cache, f"{folder.name}-{s}") for s, rows in splits.items()
    }
    return Embedded(vectors, {s: [r.label for r in rows] for s, rows in splits.items()})


def background_texts() -> tuple[list[str], list[str]]:
    """The background's texts: data/background.jsonl (the heads' negatives) and a fixed sample of safe exemplars."""
    generic = [json.loads(line)["text"] for line in (REPO / "data" / "background.jsonl").open(encoding="utf-8")]
    safe = [r.text for r in load_rows(DATA_DIR / "safety.jsonl", splits={"train"}) if r.category == "safe"]
    return generic, random.Random(0).sample(safe, min(SAFE_BACKGROUND, len(safe)))


def embed_background(encoder: Encoder, cache: Path) -> Background:
    generic, safe = background_texts()
    vectors = embed_cached(encoder, generic + safe, cache, "background")
    return Background(vectors, vectors[: len(generic)])


# ------------------------------------------------------------------------------------------------ scoring
def _truth(labels: list[str], topics: list[str]) -> tuple[NDArray[np.int64], NDArray[np.str_]]:
    index = {t: i for i, t in enumerate(topics)}
    truth = np.asarray([index.get(lab, -1) for lab in labels], dtype=np.int64)
    group = np.asarray(
        [
            "pos" if lab in index else "ood" if lab == OOS else "near" if lab == OOS_IN_DOMAIN else "other"
            for lab in labels
        ]
    )
    return truth, group


def draw_episode(data: Embedded, n_topics: int, k: int, seed: int) -> Episode | None:
    intents = data.intents()
    if n_topics >= len(intents):
        return None
    rng = random.Random(seed * 1000 + n_topics * 10 + k)
    topics = sorted(rng.sample(intents, n_topics))
    train_labels = np.asarray(data.labels["train"])
    example_rows = []
    for t in topics:
        rows = np.flatnonzero(train_labels == t).tolist()
        example_rows.append(sorted(rng.sample(rows, min(k, len(rows)))))
    positives = [data.vectors["train"][rows] for rows in example_rows]
    truth, group = _truth(data.labels["test"], topics)
    valid_truth, valid_group = _truth(data.labels["valid"], topics)
    allows: list[Vec | None] = [None] * len(topics)
    return Episode(
        topics,
        positives,
        allows,
        data.vectors["test"],
        truth,
        group,
        data.vectors["valid"],
        valid_truth,
        valid_group,
        example_rows,
    )


# ------------------------------------------------------------------------------------------------ grid
def run_episode(
    ep: Episode,
    background: Background,
    negatives: GramStats,
    rules: Sequence[Rule],
    allow_pool: Vec | None,
    split: str = "test",
) -> dict[str, dict[str, float]]:
    """Every rule on one episode's test (or valid) rows."""
    out = {}
    queries, truth, group = (
        (ep.queries, ep.truth, ep.group) if split == "test" else (ep.valid_queries, ep.valid_truth, ep.valid_group)
    )
    for rule in rules:
        if (rule.valid_f1 or rule.valid_fmr is not None) and split == "valid":
            continue  # it would be fitted on the rows it is scored on
        if rule.allows:
            if allow_pool is None:
                continue
            ep_rule = replace(ep, allows=with_allows(ep, allow_pool, rule.allows))
        else:
            ep_rule = ep
        topics = fit_topics(ep_rule, negatives, rule)
        scores = score_matrix(queries, topics, rule)
        if rule.oracle_fmr is not None:
            thresholds = oracle_thresholds(scores, group, rule.oracle_fmr)
        else:
            thresholds = thresholds_for(ep_rule, topics, background, rule)
        out[rule.name] = episode_metrics(scores, thresholds, truth, group)
    return out


def summarise(rows: list[dict[str, Any]], keys: Sequence[str], metrics: Sequence[str]) -> list[dict[str, Any]]:
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in keys), []).append(r)
    out = []
    for key, members in groups.items():
        agg: dict[str, Any] = dict(zip(keys, key, strict=True))
        agg["seeds"] = len(members)
        for m in metrics:
            vals = [float(r[m]) for r in members if m in r and not np.isnan(r[m])]
            agg[m] = statistics.fmean(vals) if vals else float("nan")
            agg[m + "_sd"] = statistics.pstdev(vals) if len(vals) > 1 else 0.0
        out.append(agg)
    return out


METRICS = ("accuracy", "fmr_ood", "fmr_other", "fmr_near", "fmr_far", "auroc", "tpr@1%", "gap")


def markdown(table: list[dict[str, Any]], keys: Sequence[str], metrics: Sequence[str] = METRICS) -> str:
    head = "| " + " | ".join([*keys, *metrics]) + " |"
    lines = [head, "|" + "---|" * (len(keys) + len(metrics))]
    for r in table:
        cells = [str(r[k]) for k in keys]
        for m in metrics:
            v = r[m]
            cells.append("–" if np.isnan(v) else f"{v:.3f}" if m in ("auroc", "gap") else f"{100 * v:.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def load_encoder(name: str) -> Encoder:
    from index import OnnxEncoder

    return OnnxEncoder(REPO / "models" / name)
