"""The evaluation's choices and decision metrics: fusion candidates, thresholds (global, look-alike capped,
per category, operating points) and metrics as the product decides."""

from __future__ import annotations

import itertools
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from benchmarks.evaluation.vectors import FoldScores
from index.calibration import Platt
from index.evaluation import BinaryMetrics, binary_metrics

STEP = 0.1  # fusion weight grid
MAX_LOOKALIKE_FPR = 0.08  # benign look-alikes flagged at most (random split, dev)
OPERATING_PREVALENCE = {"strict": 0.5, "balanced": None, "permissive": 0.05}  # None: --prevalence


def shipped_scoring(path: Path, names: dict[str, np.ndarray]) -> tuple[dict[str, float], Platt, float] | None:
    """The fusion, Platt scaling and threshold of an existing scoring.json, as this script names its scorers."""
    if not path.is_file():
        return None
    raw = json.loads(path.read_text())
    parts = {
        f"knn k={raw['k']} T={raw['knn_temperature']}": raw.get("weight_knn", 0.0),
        f"centroid T={raw['centroid_temperature']}": raw.get("weight_centroid", 0.0),
        "head": raw.get("weight_head", 0.0),
    }
    combo = {name: float(w) for name, w in parts.items() if w}
    if not set(combo) <= set(names):
        print(f"{path}: scorer settings outside this script's grid, not reported", file=sys.stderr)
        return None
    return combo, Platt(**raw["platt"]), float(raw["threshold"])


def flags(
    fold: FoldScores, combo: dict[str, float], platt: Platt, threshold: float, category_thresholds: dict[str, float]
) -> np.ndarray:
    """Per row: flagged as the product decides (per-category thresholds where there are any)."""
    scores = platt.apply(fold.fused(combo))
    if not category_thresholds:
        return np.asarray(scores >= threshold)
    cuts = np.asarray([category_thresholds.get(c, threshold) for c in fold.top_category(combo)])
    return np.asarray(scores >= cuts)


def recall_at_fpr(scores: np.ndarray, unsafe: np.ndarray, max_fpr: float) -> tuple[float, float]:
    """(recall, threshold) at the lowest cut that flags at most `max_fpr` of the benign rows."""
    neg = np.sort(scores[~unsafe])[::-1]
    allowed = int(np.floor(max_fpr * len(neg)))
    cut = float(np.nextafter(neg[allowed], np.inf)) if allowed < len(neg) else float(neg.min())
    return float(np.mean(scores[unsafe] >= cut)), cut


def mean_f1_at(dev_sets: list[tuple[np.ndarray, np.ndarray]], grid: np.ndarray) -> dict[float, list[float]]:
    """Per candidate prevalence: mean prevalence-weighted F1 over the dev sets at each threshold of `grid`."""
    return {p: [float(np.mean([f1_at_prevalence(s, y, t, p) for s, y in dev_sets])) for t in grid] for p in {0.5, 0.05}}


def operating_points(
    dev_sets: list[tuple[np.ndarray, np.ndarray]], grid: np.ndarray, f1: dict[float, list[float]], prevalence: float
) -> dict[str, float]:
    """Thresholds an operator can pick by name: each maximises the mean dev F1 at the prevalence it assumes
    (strict: half the traffic unsafe, flags more; permissive: one prompt in twenty, flags less)."""
    out: dict[str, float] = {}
    for name, p in OPERATING_PREVALENCE.items():
        p = prevalence if p is None else p
        scores = f1[p] if p in f1 else [np.mean([f1_at_prevalence(s, y, t, p) for s, y in dev_sets]) for t in grid]
        out[name] = float(grid[int(np.argmax(scores))])
    return out


def lookalike_threshold(
    benign: np.ndarray, floors: list[tuple[np.ndarray, float]], grid: np.ndarray, threshold: float
) -> float:
    """The F1 threshold, raised while more than MAX_LOOKALIKE_FPR of the `benign` look-alike scores reach it, never
    past the cut where the share of some `floors` scores (unsafe rows) reaching it would fall below its minimum."""
    for t in grid[grid > threshold]:
        if float(np.mean(benign >= threshold)) <= MAX_LOOKALIKE_FPR:
            break
        if any(float(np.mean(scores >= t)) < floor for scores, floor in floors):
            break
        threshold = float(t)
    return threshold


LOOKALIKE_TIE = 0.02
"""Dev look-alike rates closer than this are a tie: ~1.5 standard errors of a rate near 0.1 over the 547 rows."""


def choose_fusion(
    tied: dict[str, tuple[float, float, float]], min_instruction_recall: float, incumbent: str | None = None
) -> str:
    """The fusion to ship among those tied on dev AUPRC, each given as (dev AUPRC, dev look-alike FPR, dev recall of
    written harmful requests) at its own threshold: the fewest look-alikes flagged (then the higher AUPRC), among
    the fusions that keep the recall floor when any does — unless the fusion shipped now (`incumbent`) is among
    them and flags at most LOOKALIKE_TIE more look-alikes than that one: then it stays.

    Fewest look-alikes, because their unsafe twins are their nearest neighbours and the head-heavy fusions that win
    on AUPRC by a hair flag them far more often (docs/results.md, "Why look-alikes were flagged"). The floor first,
    because the fewest look-alikes alone can be bought with recall: a fine-tuned encoder's tight clusters made
    centroid-only scoring the choice, at 0.63 recall against base's 0.82 (docs/ablation.md), and a model
    comparison then measured the fusion choice as much as the encoder. The incumbent stays within noise, because
    the choice among dozens of tied fusions follows a few look-alike rows: re-exporting the same encoder with 7-bit
    weights moved it from the shipped fusion to one that flags 9 fewer of 547 dev look-alikes and 8 points less of
    the unseen harmful-request fold (out-of-source `instructions`, dev recall 0.34 against 0.42; docs/results.md)."""
    keeping = {key: v for key, v in tied.items() if v[2] >= min_instruction_recall} or tied
    best = min(keeping, key=lambda key: (round(keeping[key][1], 3), -keeping[key][0]))
    if incumbent in keeping and keeping[incumbent][1] <= keeping[best][1] + LOOKALIKE_TIE:
        return incumbent
    return best


MIN_CATEGORY_ROWS = 150
MIN_CATEGORY_GAIN = 0.01
SHRINK_ROWS = 300


def fit_category_thresholds(
    sets: list[tuple[FoldScores, np.ndarray, np.ndarray]],
    combo: dict[str, float],
    platt: Platt,
    global_threshold: float,
    grid: np.ndarray,
    prevalence: float,
) -> dict[str, float]:
    """A threshold per built-in category, for rows whose top category it is, on dev rows only.

    Rows of every dev set are pooled by predicted category; a category needs MIN_CATEGORY_ROWS rows with both
    classes, and its best prevalence-weighted F1 cut is shrunk towards the global threshold by n / (n + SHRINK_ROWS)
    so that a small category cannot swing far on a few rows.
    """
    scores, cats, ys = [], [], []
    for fold, keep, y in sets:
        scores.append(platt.apply(fold.fused(combo))[keep])
        cats.append(fold.top_category(combo)[keep])
        ys.append(y[keep])
    s, c, y = np.concatenate(scores), np.concatenate(cats), np.concatenate(ys)
    out: dict[str, float] = {}
    for category in sorted(set(c.tolist())):
        rows = c == category
        n, pos = int(rows.sum()), int(y[rows].sum())
        if n < MIN_CATEGORY_ROWS or pos < 20 or n - pos < 20:
            continue
        f1 = [f1_at_prevalence(s[rows], y[rows], t, prevalence) for t in grid]
        best = float(grid[int(np.argmax(f1))])
        shrink = n / (n + SHRINK_ROWS)
        out[category] = round(shrink * best + (1 - shrink) * global_threshold, 3)
    return out


def injection_threshold(
    fold: FoldScores,
    combo: dict[str, float],
    platt: Platt,
    threshold: float,
    lookalikes: np.ndarray,
    benign: np.ndarray,
    grid: np.ndarray,
    max_fpr: float,
    max_benign_rise: float = 0.01,
    category: str = "prompt_injection",
) -> float:
    """The lowest cut, never above `threshold`, for rows whose top category is `category` at which at most `max_fpr`
    of the `lookalikes` rows (benign prompts built around injection trigger words) are flagged, and at most
    `max_benign_rise` more of all `benign` rows than at `threshold` (every benign prompt has a top category: without
    this bound, look-alikes that never land in `category` would let the cut fall to the grid's floor).

    Injections score lower than other attacks (MiniLM puts "ignore your instructions and ..." near ordinary
    instructions), so one threshold for all traffic leaves half of them unflagged; their own operating point is
    recall at a look-alike FPR, as issue 18 defines it.
    """
    scores = platt.apply(fold.fused(combo))
    own = fold.top_category(combo) == category
    allowed = float(np.mean(scores[benign] >= threshold)) + max_benign_rise
    for cut in sorted(float(t) for t in grid if t < threshold):
        flagged = scores >= np.where(own, cut, threshold)
        if float(np.mean(flagged[lookalikes])) <= max_fpr and float(np.mean(flagged[benign])) <= allowed:
            return cut
    return threshold


def category_threshold_gain(
    sets: list[tuple[FoldScores, np.ndarray, np.ndarray]],
    combo: dict[str, float],
    platt: Platt,
    threshold: float,
    category_thresholds: dict[str, float],
    prevalence: float,
) -> float:
    """Mean over the dev sets of prevalence-weighted F1 with per-category thresholds minus without them."""
    diffs = []
    for fold, keep, y in sets:
        scores = platt.apply(fold.fused(combo))[keep]
        cuts = np.asarray([category_thresholds.get(c, threshold) for c in fold.top_category(combo)[keep]])
        with_cuts = f1_at_prevalence(scores - cuts + threshold, y[keep], threshold, prevalence)
        diffs.append(with_cuts - f1_at_prevalence(scores, y[keep], threshold, prevalence))
    return float(np.nanmean(diffs))


def decision_metrics(
    fold: FoldScores,
    keep: np.ndarray,
    y: np.ndarray,
    combo: dict[str, float],
    platt: Platt,
    threshold: float,
    category_thresholds: dict[str, float],
) -> BinaryMetrics:
    """Ranking metrics of the calibrated score; decision metrics as the product decides (per-category thresholds)."""
    scores = platt.apply(fold.fused(combo))[keep]
    ranking = binary_metrics(scores, y, threshold)
    if not category_thresholds:
        return ranking
    cuts = np.asarray([category_thresholds.get(c, threshold) for c in fold.top_category(combo)[keep]])
    decided = binary_metrics(scores - cuts + threshold, y, threshold)
    return replace(decided, auprc=ranking.auprc, roc_auc=ranking.roc_auc)


def f1_at_prevalence(scores: np.ndarray, unsafe: np.ndarray, threshold: float, prevalence: float) -> float:
    """F1 with the negatives re-weighted so that unsafe rows make up `prevalence` of the set."""
    pos, neg = int(unsafe.sum()), int((~unsafe).sum())
    if pos == 0 or neg == 0:
        return float("nan")
    weight = (pos / neg) * (1 - prevalence) / prevalence
    pred = scores >= threshold
    tp = float((pred & unsafe).sum())
    fp = float((pred & ~unsafe).sum()) * weight
    fn = float((~pred & unsafe).sum())
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def candidate_fusions(scores: dict[str, np.ndarray]) -> list[dict[str, float]]:
    knn_names = [n for n in scores if n.startswith("knn")]
    cent_names = [n for n in scores if n.startswith("centroid")]
    has_head = "head" in scores
    grid = np.round(np.arange(0, 1 + 1e-9, STEP), 3)
    out = []
    for kn, cn in itertools.product(knn_names, cent_names):
        for wk, wc in itertools.product(grid, grid):
            wh = round(1 - wk - wc, 3)
            if wh < -1e-9 or (wh > 0 and not has_head):
                continue
            combo = {kn: float(wk), cn: float(wc)} | ({"head": float(wh)} if has_head else {})
            out.append({k: v for k, v in combo.items() if v > 0})
    unique = {json.dumps(c, sort_keys=True) for c in out if c}
    return [json.loads(c) for c in sorted(unique)]


def best_single(
    candidates: list[dict[str, float]], prefix: str, fold_auprc: Callable[[dict[str, float], str], Sequence[float]]
) -> dict[str, float]:
    singles = [c for c in candidates if len(c) == 1 and next(iter(c)).startswith(prefix)]
    return max(singles, key=lambda c: float(np.nanmean(fold_auprc(c, "dev"))))
