"""Few-shot, open-set topic benchmark: T topics from K examples each, thresholds calibrated without test data.

    .venv/bin/python scripts/topic_datasets.py --out var/topics          # convert the shared intent sets once
    .venv/bin/python scripts/bench_topics.py grid --out var/bench_topics  # embed (cached) + the (T, K, seed) grid
    .venv/bin/python scripts/bench_topics.py tune                        # choose scoring knobs on *valid* splits
    .venv/bin/python scripts/bench_topics.py latency                     # add-topic latency on a ~24k index
    .venv/bin/python scripts/bench_topics.py report --shots 10           # a slice of the grid as markdown

Protocol (docs/topics.md): per seed, pick T in-scope intents and K train examples of each; every rule's threshold is
set from those examples and the background only (or from the valid split for `valid-f1`); test positives are the
chosen intents' test rows, negatives are out-of-scope rows and every other intent. Scoring runs on cached vectors
through the library's pure functions (`index.scoring.topic_scores`, `index.calibration.topic_threshold`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from topic_datasets import OOS, OOS_IN_DOMAIN, OOS_LABELS, TopicRow, load_splits

from index import Encoder, GuardConfig, load_rows
from index.calibration import best_f1_threshold, topic_threshold
from index.scoring import topic_scores

REPO = Path(__file__).resolve().parent.parent
Vec = NDArray[np.float32]
GROUPS = ("ood", "near", "other")
TRAIN_CAP = 30  # train rows embedded per intent: K <= 20 plus room for different seeds
ALLOW_CAP = 400
SAFE_BACKGROUND = 1000  # safe exemplars added to data/background.jsonl (the guard adds up to 5000 of them)


# ------------------------------------------------------------------------------------------------ rules
@dataclass(frozen=True, slots=True)
class Rule:
    """A scoring + threshold rule. `fixed` set = one global threshold (semantic-router style), no calibration."""

    name: str
    top_m: int = 3
    knn_weight: float = 0.5
    target_fmr: float = 0.01
    floor: float = 0.35
    positive_quantile: float | None = None
    positive_margin: float = 0.0
    fixed: float | None = None
    allows: int = 0  # allow-examples per topic taken from the dataset's allow pool
    valid_f1: bool = False  # per-topic threshold = max F1 on the valid split (what /evaluate suggests)


def default_rules(cfg: GuardConfig) -> list[Rule]:
    base = Rule(
        "lightguard",
        cfg.topic_top_m,
        cfg.topic_knn_weight,
        cfg.topic_target_fmr,
        cfg.topic_threshold_floor,
        cfg.topic_positive_quantile,
        cfg.topic_positive_margin,
    )
    return [
        base,
        # the rule before issue 5: background quantile + floor, no leave-one-out term
        replace(base, name="lightguard v0 (floor only)", positive_quantile=None, positive_margin=0.0),
        replace(base, name="knn-only", knn_weight=1.0),
        replace(base, name="centroid-only", knn_weight=0.0),
        # semantic-router: mean of the top-5 similarities per route, one fixed threshold (HuggingFaceEncoder: 0.5)
        Rule("semantic-router@0.5", top_m=5, knn_weight=1.0, fixed=0.5),
        replace(base, name="lightguard valid-f1", valid_f1=True),
        replace(base, name="lightguard +5 allows", allows=5),
    ]


# ------------------------------------------------------------------------------------------------ embeddings
@dataclass(slots=True)
class Embedded:
    """Vectors and labels of one dataset's rows, per split."""

    vectors: dict[str, Vec]
    labels: dict[str, list[str]]

    def intents(self) -> list[str]:
        return sorted(set(self.labels["train"]) - OOS_LABELS)


def _cap_per_label(rows: Sequence[TopicRow], cap: int, seed: int = 0) -> list[TopicRow]:
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


def _embed_cached(encoder: Encoder, texts: list[str], cache: Path, tag: str) -> Vec:
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


def embed_dataset(encoder: Encoder, folder: Path, cache: Path) -> Embedded:
    splits = load_splits(folder)
    splits["train"] = _cap_per_label(splits["train"], TRAIN_CAP)
    if "allow" in splits:
        splits["allow"] = _cap_per_label(splits["allow"], ALLOW_CAP)
    vectors = {
        s: _embed_cached(encoder, [r.text for r in rows], cache, f"{folder.name}-{s}") for s, rows in splits.items()
    }
    return Embedded(vectors, {s: [r.label for r in rows] for s, rows in splits.items()})


def embed_background(encoder: Encoder, cache: Path) -> Vec:
    """data/background.jsonl plus a fixed sample of the shipped safe exemplars, as the guard calibrates against."""
    texts = [json.loads(line)["text"] for line in (REPO / "data" / "background.jsonl").open(encoding="utf-8")]
    safe = [r.text for r in load_rows(splits={"train"}) if r.category == "safe"]
    texts += random.Random(0).sample(safe, min(SAFE_BACKGROUND, len(safe)))
    return _embed_cached(encoder, texts, cache, "background")


# ------------------------------------------------------------------------------------------------ scoring
@dataclass(slots=True)
class Episode:
    """One (T, K, seed) draw: the chosen topics' examples and the queries with their truth."""

    topics: list[str]
    positives: list[Vec]
    allows: list[Vec | None]
    queries: Vec
    truth: NDArray[np.int64]  # index into topics, -1 for negatives
    group: NDArray[np.str_]  # "pos" / "ood" / "near" / "other"
    valid_queries: Vec
    valid_truth: NDArray[np.int64]


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
    positives = []
    for t in topics:
        rows = np.flatnonzero(train_labels == t).tolist()
        positives.append(data.vectors["train"][sorted(rng.sample(rows, min(k, len(rows))))])
    truth, group = _truth(data.labels["test"], topics)
    valid_truth, _ = _truth(data.labels["valid"], topics)
    allows: list[Vec | None] = [None] * len(topics)
    return Episode(topics, positives, allows, data.vectors["test"], truth, group, data.vectors["valid"], valid_truth)


def with_allows(ep: Episode, pool: Vec, per_topic: int) -> list[Vec | None]:
    """Each topic gets the `per_topic` pool rows nearest its centroid among those nearest to it (an operator adding
    the near misses they saw)."""
    cents = np.stack([p.mean(axis=0) / np.linalg.norm(p.mean(axis=0)) for p in ep.positives])
    sims = pool @ cents.T
    owner = sims.argmax(axis=1)
    out: list[Vec | None] = []
    for t in range(len(ep.topics)):
        rows = np.flatnonzero(owner == t)
        best = rows[np.argsort(-sims[rows, t])[:per_topic]]
        out.append(pool[best] if best.size else None)
    return out


def score_matrix(queries: Vec, positives: list[Vec], allows: list[Vec | None], rule: Rule) -> Vec:
    cols = [topic_scores(queries, p, a, rule.top_m, rule.knn_weight) for p, a in zip(positives, allows, strict=True)]
    return np.stack(cols, axis=1)


def loo_scores(positives: Vec, allows: Vec | None, rule: Rule) -> Vec:
    """Leave-one-out scores of a topic's own examples (as Guard._leave_one_out)."""
    n = positives.shape[0]
    if n < 2:
        return np.zeros(0, dtype=np.float32)
    return np.asarray(
        [
            topic_scores(positives[i : i + 1], np.delete(positives, i, axis=0), allows, rule.top_m, rule.knn_weight)[0]
            for i in range(n)
        ],
        dtype=np.float32,
    )


def calibration_inputs(ep: Episode, background: Vec, rule: Rule) -> list[tuple[Vec, Vec]]:
    """Per topic: (LOO scores, background scores); background = corpus + the other topics' examples."""
    out = []
    for t, (pos, allow) in enumerate(zip(ep.positives, ep.allows, strict=True)):
        others = [p for j, p in enumerate(ep.positives) if j != t]
        bg = np.concatenate([background, *others], axis=0)
        out.append((loo_scores(pos, allow, rule), topic_scores(bg, pos, allow, rule.top_m, rule.knn_weight)))
    return out


def thresholds_for(ep: Episode, background: Vec, rule: Rule, inputs: list[tuple[Vec, Vec]] | None = None) -> Vec:
    if rule.fixed is not None:
        return np.full(len(ep.topics), rule.fixed, dtype=np.float32)
    if rule.valid_f1:
        scores = score_matrix(ep.valid_queries, ep.positives, ep.allows, rule)
        return np.asarray(
            [best_f1_threshold(scores[:, t], ep.valid_truth == t)[0] for t in range(len(ep.topics))], dtype=np.float32
        )
    inputs = calibration_inputs(ep, background, rule) if inputs is None else inputs
    return np.asarray(
        [
            topic_threshold(loo, bg, rule.target_fmr, rule.floor, rule.positive_quantile, rule.positive_margin)
            for loo, bg in inputs
        ],
        dtype=np.float32,
    )


# ------------------------------------------------------------------------------------------------ metrics
def auroc(pos: NDArray[np.floating], neg: NDArray[np.floating]) -> float:
    """Mann-Whitney AUROC (ties count half); nan when a side is empty."""
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    values = np.concatenate([pos, neg])
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(values.size, dtype=np.float64)
    sorted_vals = values[order]
    # average ranks over ties
    start = 0
    for end in range(1, values.size + 1):
        if end == values.size or sorted_vals[end] != sorted_vals[start]:
            ranks[order[start:end]] = (start + end + 1) / 2.0
            start = end
    r_pos = ranks[: pos.size].sum()
    return float((r_pos - pos.size * (pos.size + 1) / 2) / (pos.size * neg.size))


def episode_metrics(
    scores: Vec, thresholds: Vec, truth: NDArray[np.int64], group: NDArray[np.str_]
) -> dict[str, float]:
    """Topic accuracy, false-match rate per negative group, AUROC, TPR at 1% FMR and the threshold gap.

    A row's margin is max over topics of (score - threshold); it matches the arg-max topic when the margin is >= 0
    (the guard picks the topic with the largest margin). The gap is the offset added to every threshold that would
    maximise F1 on these rows (positive: the calibrated thresholds were too low); it is report-only.
    """
    margins = scores - thresholds[None, :]
    best = margins.argmax(axis=1)
    margin = margins.max(axis=1)
    is_pos = truth >= 0
    correct = is_pos & (best == truth)
    matched = margin >= 0
    out: dict[str, float] = {"accuracy": float((correct & matched)[is_pos].mean()) if is_pos.any() else float("nan")}
    neg = ~is_pos
    out["fmr"] = float(matched[neg].mean()) if neg.any() else float("nan")
    far = (group == "ood") | (group == "other")
    out["fmr_far"] = float(matched[far].mean()) if far.any() else float("nan")
    for g in GROUPS:
        rows = group == g
        out[f"fmr_{g}"] = float(matched[rows].mean()) if rows.any() else float("nan")
    out["auroc"] = auroc(margin[is_pos], margin[neg])
    if neg.any():
        cut = float(np.quantile(margin[neg], 0.99, method="higher")) + 1e-6
        out["tpr@1%"] = float((correct & (margin >= cut))[is_pos].mean()) if is_pos.any() else float("nan")
    # best global offset on these rows: a flag is a TP only when it names the right topic
    order = np.argsort(-margin, kind="stable")
    tp = np.cumsum(correct[order])
    fp = np.cumsum(~correct[order])
    f1 = 2 * tp / (tp + fp + is_pos.sum())
    out["gap"] = float(margin[order][int(np.argmax(f1))]) if is_pos.any() else float("nan")
    return out


# ------------------------------------------------------------------------------------------------ grid
@dataclass(slots=True)
class GridResult:
    rows: list[dict[str, Any]] = field(default_factory=list)

    def add(self, **row: Any) -> None:
        self.rows.append(row)


def run_episode(
    ep: Episode, background: Vec, rules: Sequence[Rule], allow_pool: Vec | None, split: str = "test"
) -> dict[str, dict[str, float]]:
    out = {}
    queries, truth = (ep.queries, ep.truth) if split == "test" else (ep.valid_queries, ep.valid_truth)
    group = ep.group if split == "test" else np.where(ep.valid_truth >= 0, "pos", "other")
    for rule in rules:
        if rule.allows:
            if allow_pool is None:
                continue
            ep_rule = replace(ep, allows=with_allows(ep, allow_pool, rule.allows))
        else:
            ep_rule = ep
        thresholds = thresholds_for(ep_rule, background, rule)
        scores = score_matrix(queries, ep_rule.positives, ep_rule.allows, rule)
        out[rule.name] = episode_metrics(scores, thresholds, truth, group)
    return out


def valid_groups(data: Embedded, topics: list[str]) -> NDArray[np.str_]:
    return _truth(data.labels["valid"], topics)[1]


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


def grid(args: argparse.Namespace) -> None:
    cfg = GuardConfig()
    rules = default_rules(cfg)
    results: list[dict[str, Any]] = []
    for enc_name in args.encoders:
        if not (REPO / "models" / enc_name).is_dir():
            print(f"skip encoder {enc_name}: models/{enc_name} does not exist", file=sys.stderr)
            continue
        encoder = load_encoder(enc_name)
        background = embed_background(encoder, args.cache)
        for ds in args.datasets:
            data = embed_dataset(encoder, args.data / ds, args.cache)
            pool = data.vectors.get("allow")
            t0 = time.perf_counter()
            for n_topics in args.topics:
                for k in args.shots:
                    for seed in range(args.seeds):
                        ep = draw_episode(data, n_topics, k, seed)
                        if ep is None:
                            continue
                        for rule, m in run_episode(ep, background, rules, pool).items():
                            results.append(
                                {"encoder": enc_name, "dataset": ds, "T": n_topics, "K": k, "seed": seed}
                                | {"rule": rule}
                                | m
                            )
            print(f"{enc_name} {ds}: grid in {time.perf_counter() - t0:.0f}s", file=sys.stderr)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "episodes.json").write_text(json.dumps(results, indent=1))
    table = summarise(results, ("encoder", "dataset", "T", "K", "rule"), METRICS)
    (args.out / "summary.json").write_text(json.dumps(table, indent=1))
    (args.out / "summary.md").write_text(markdown(table, ("encoder", "dataset", "T", "K", "rule")) + "\n")
    print(markdown(table, ("encoder", "dataset", "T", "K", "rule")))


# ------------------------------------------------------------------------------------------------ tuning
def tune(args: argparse.Namespace) -> None:
    """Choose top_m / knn_weight / target_fmr / floor on the valid splits only (seeds disjoint from the test grid).

    Objective: the largest mean topic accuracy whose mean false-match rate on unrelated text and other intents
    (`fmr_far`; in-domain near misses are reported, not optimised) is <= --fmr-cap.
    """
    encoder = load_encoder(args.encoders[0])
    background = embed_background(encoder, args.cache)
    datasets = {ds: embed_dataset(encoder, args.data / ds, args.cache) for ds in args.datasets}
    grid_rows: list[dict[str, Any]] = []
    lifts = ((None, 0.0), (0.1, 0.1), (0.2, 0.05), (0.2, 0.1), (0.3, 0.05), (0.3, 0.1))
    for top_m, w in ((1, 0.0), (1, 0.5), (1, 1.0), (3, 0.5), (3, 1.0), (5, 0.5), (5, 1.0)):
        base = Rule(f"m={top_m} w={w}", top_m, w)
        for ds, data in datasets.items():
            for n_topics in args.topics:
                for k in args.shots:
                    for seed in range(args.seeds):
                        ep = draw_episode(data, n_topics, k, 100 + seed)  # seeds disjoint from the test grid's
                        if ep is None:
                            continue
                        inputs = calibration_inputs(ep, background, base)
                        scores = score_matrix(ep.valid_queries, ep.positives, ep.allows, base)
                        group = valid_groups(data, ep.topics)
                        for fmr in (0.005, 0.01, 0.05):
                            for floor in (0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6):
                                for q, margin in lifts:
                                    rule = replace(
                                        base, target_fmr=fmr, floor=floor, positive_quantile=q, positive_margin=margin
                                    )
                                    th = thresholds_for(ep, background, rule, inputs)
                                    m = episode_metrics(scores, th, ep.valid_truth, group)
                                    grid_rows.append(
                                        {"top_m": top_m, "w": w, "fmr_target": fmr, "floor": floor}
                                        | {"q": "-" if q is None else q, "margin": margin}
                                        | {"dataset": ds, "T": n_topics, "K": k}
                                        | m
                                    )
        print(f"tuned top_m={top_m} w={w}", file=sys.stderr)
    keys = ("top_m", "w", "fmr_target", "floor", "q", "margin")
    metrics = ("accuracy", "fmr_far", "fmr_near", "auroc")
    table = summarise(grid_rows, keys, metrics)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "tune_rows.json").write_text(json.dumps(grid_rows))
    (args.out / "tune.json").write_text(json.dumps(table, indent=1))
    # the accuracy / false-match frontier: no rule is better on both
    frontier, best = [], -1.0
    for r in sorted(table, key=lambda r: (r["fmr_far"], -r["accuracy"])):
        if r["accuracy"] > best:
            best = r["accuracy"]
            frontier.append(r)
    print("valid frontier (accuracy vs false matches on unrelated text + other intents):")
    print(markdown(frontier, keys, metrics))
    ok = sorted((r for r in table if r["fmr_far"] <= args.fmr_cap), key=lambda r: -r["accuracy"])
    print(f"best with fmr_far <= {args.fmr_cap}:\n" + markdown(ok[:5], keys, metrics))
    cur = GuardConfig()
    now = (
        cur.topic_top_m,
        cur.topic_knn_weight,
        cur.topic_target_fmr,
        cur.topic_threshold_floor,
        "-" if cur.topic_positive_quantile is None else cur.topic_positive_quantile,
        cur.topic_positive_margin,
    )
    old = (*now[:4], "-", 0.0)
    current = [r for r in table if tuple(r[k] for k in keys) in (now, old)]
    print("current defaults and the floor-only rule before issue 5:\n" + markdown(current, keys, metrics))


def report(args: argparse.Namespace) -> None:
    """Print a slice of the last grid's summary (--out) as markdown: the tables in docs/topics.md."""
    table = json.loads((args.out / "summary.json").read_text())
    keep = [
        r
        for r in table
        if r["dataset"] in args.datasets
        and r["T"] in args.topics
        and r["K"] in args.shots
        and r["encoder"] in args.encoders
        and (not args.rules or r["rule"] in args.rules)
    ]
    keep.sort(key=lambda r: (args.datasets.index(r["dataset"]), r["encoder"], r["T"], r["K"]))
    print(markdown(keep, ("encoder", "dataset", "T", "K", "rule")))


# ------------------------------------------------------------------------------------------------ latency
def _percentiles(samples: list[float]) -> str:
    a = np.asarray(samples) * 1000
    return f"p50 {np.percentile(a, 50):.0f} ms, p90 {np.percentile(a, 90):.0f} ms, max {a.max():.0f} ms (n={a.size})"


def latency(args: argparse.Namespace) -> None:
    """Time adding a 20-example topic to a guard holding the shipped exemplars (index + calibration, encode included).

    The shipped train exemplars are indexed with *random* unit vectors except the background (embedded for real):
    FAISS insert and calibration cost do not depend on what the vectors mean, and embedding 24k texts here would
    take most of an hour on two shared cores.
    """
    from index import Exemplar, Guard, Label, load_taxonomy

    encoder = load_encoder(args.encoders[0])
    taxonomy = load_taxonomy()
    labels = [Label(c.id, "safe" if c.id == "safe" else "builtin", action=c.action) for c in taxonomy.categories]
    rows = load_rows(splits={"train"})
    exemplars = [Exemplar(i + 1, r.text, r.category) for i, r in enumerate(rows)]
    rng = np.random.default_rng(0)
    vecs = rng.standard_normal((len(rows), encoder.dim)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    background = embed_background(encoder, args.cache)
    t0 = time.perf_counter()
    guard = Guard.from_vectors(encoder, labels, exemplars, vecs, GuardConfig(), background[:2000])
    print(f"guard with {len(guard)} exemplars built in {time.perf_counter() - t0:.0f}s", file=sys.stderr)
    hwu = load_splits(args.data / "hwu64")["train"]
    by_label: dict[str, list[str]] = {}
    for r in hwu:
        by_label.setdefault(r.label, []).append(r.text)
    names = sorted(by_label)[: args.repeats]
    library: list[float] = []
    encode_only: list[float] = []
    next_id = len(rows) + 10
    for n, name in enumerate(names):
        texts = by_label[name][:20]
        ex = [Exemplar(next_id + j, t, f"bench_{n}") for j, t in enumerate(texts)]
        next_id += len(ex)
        t0 = time.perf_counter()
        v = guard.embed(texts)
        t1 = time.perf_counter()
        guard.upsert_label(Label(f"bench_{n}", "custom"))
        guard.add_exemplars(ex, v)
        t2 = time.perf_counter()
        encode_only.append(t1 - t0)
        library.append(t2 - t0)
    print(f"library (embed + upsert_label + add_exemplars, {len(guard)} exemplars): {_percentiles(library)}")
    print(f"  of which embedding 20 texts: {_percentiles(encode_only)}")
    api = api_latency(args, names, by_label)
    if api:
        print(f"POST /v1/topics (TestClient, SQLite, {api[1]} exemplars): {_percentiles(api[0])}")


def api_latency(
    args: argparse.Namespace, names: list[str], by_label: dict[str, list[str]]
) -> tuple[list[float], int] | None:
    """End-to-end POST /v1/topics (HTTP + DB + embed + index + calibration) on a TestClient app, real encoder.

    `--home` points at a built lightguard home (the full shipped index); without it the app seeds the small test
    fixtures (tests/service/fixtures) into a temporary home, so the index is small and the library timing above is the
    one that covers a 24k-exemplar index.
    """
    import tempfile

    from fastapi.testclient import TestClient

    from service.app import create_app
    from service.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        if args.home is not None:
            settings = Settings(home=args.home, model_dir=REPO / "models" / args.encoders[0])
        else:
            settings = Settings(
                home=Path(tmp),
                data_dir=REPO / "tests" / "service" / "fixtures",
                model_dir=REPO / "models" / args.encoders[0],
                decision_log=False,
            )
        samples: list[float] = []
        with TestClient(create_app(settings)) as client:
            deadline = time.monotonic() + 1800
            while client.get("/readyz").status_code != 200:
                if time.monotonic() > deadline:
                    raise SystemExit("index not ready after 30 minutes")
                time.sleep(0.5)  # polling the readiness probe
            count = int(client.get("/v1/index").json().get("count", 0))
            for n, name in enumerate(names):
                body = {"name": f"bench_api_{n}", "examples": by_label[name][:20]}
                t0 = time.perf_counter()
                r = client.post("/v1/topics", json=body)
                samples.append(time.perf_counter() - t0)
                if r.status_code != 201:
                    raise SystemExit(f"POST /v1/topics failed: {r.status_code} {r.text}")
                client.delete(f"/v1/topics/{r.json()['id']}")
    return samples, count


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("grid", "tune", "latency", "report"))
    parser.add_argument("--data", type=Path, default=REPO / "var" / "topics")
    parser.add_argument("--cache", type=Path, default=REPO / "var" / "cache")
    parser.add_argument("--out", type=Path, default=REPO / "var" / "bench_topics")
    parser.add_argument("--encoders", nargs="*", default=["base", "finetuned"])
    parser.add_argument(
        "--datasets",
        nargs="*",
        default=["hwu64", "banking77_oos", "snips", "chitchat_smalltalk", "semantic_router_healthcare"],
    )
    parser.add_argument("--topics", nargs="*", type=int, default=[1, 5, 20])
    parser.add_argument("--shots", nargs="*", type=int, default=[5, 10, 20])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--fmr-cap", type=float, default=0.03)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--home", type=Path, default=None)
    parser.add_argument("--rules", nargs="*", default=[], help="report: only these rules")
    args = parser.parse_args(argv)
    commands: dict[str, Callable[[argparse.Namespace], None]] = {
        "grid": grid,
        "tune": tune,
        "latency": latency,
        "report": report,
    }
    commands[args.command](args)


if __name__ == "__main__":
    main()
