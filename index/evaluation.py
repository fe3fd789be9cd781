"""Binary safety metrics from scores (numpy only) and a precision-recall curve plot."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True, slots=True)
class BinaryMetrics:
    """Metrics of `score >= threshold` against unsafe labels; `auprc` (average precision) is the primary metric."""

    n: int
    positives: int
    threshold: float
    accuracy: float
    precision: float
    recall: float
    f1: float
    auprc: float
    roc_auc: float
    fpr: float
    per_category_recall: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def average_precision(scores: NDArray[np.floating], positive: NDArray[np.bool_]) -> float:
    """Area under the precision-recall curve as average precision (step-wise, ties grouped)."""
    y = np.asarray(positive, dtype=bool)
    if not y.any():
        return float("nan")
    precision, recall, _ = pr_curve(scores, y)
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def roc_auc(scores: NDArray[np.floating], positive: NDArray[np.bool_]) -> float:
    """ROC-AUC by the rank statistic (ties count half)."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=np.float64)
    sorted_s = s[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_s, return_index=True, return_counts=True)
    avg = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def pr_curve(
    scores: NDArray[np.floating], positive: NDArray[np.bool_]
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """(precision, recall, thresholds) at each distinct score, from the highest threshold down."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(positive, dtype=bool)
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    last = np.r_[np.flatnonzero(s_sorted[1:] != s_sorted[:-1]), len(s) - 1]
    tp = np.cumsum(y_sorted)[last]
    fp = np.cumsum(~y_sorted)[last]
    precision = tp / np.maximum(tp + fp, 1)
    recall = tp / max(int(y.sum()), 1)
    return precision, recall, s_sorted[last]


def binary_metrics(
    scores: Sequence[float] | NDArray[np.floating],
    unsafe: Sequence[bool] | NDArray[np.bool_],
    threshold: float,
    categories: Sequence[str | None] | None = None,
) -> BinaryMetrics:
    """All headline metrics at `threshold`; per-category recall over unsafe rows that name a category."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(unsafe, dtype=bool)
    pred = s >= threshold
    tp = int((pred & y).sum())
    fp = int((pred & ~y).sum())
    fn = int((~pred & y).sum())
    tn = int((~pred & ~y).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    per_cat: dict[str, list[bool]] = defaultdict(list)
    if categories is not None:
        for cat, is_unsafe, hit in zip(categories, y, pred, strict=True):
            if cat and is_unsafe:
                per_cat[cat].append(bool(hit))
    return BinaryMetrics(
        n=len(s),
        positives=int(y.sum()),
        threshold=float(threshold),
        accuracy=(tp + tn) / len(s) if len(s) else 0.0,
        precision=precision,
        recall=recall,
        f1=2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        auprc=average_precision(s, y),
        roc_auc=roc_auc(s, y),
        fpr=fp / (fp + tn) if fp + tn else 0.0,
        per_category_recall={c: float(np.mean(v)) for c, v in sorted(per_cat.items())},
    )


def plot_pr_curves(
    curves: dict[str, tuple[NDArray[np.floating], NDArray[np.bool_]]], path: Path, title: str = "Precision-recall"
) -> Path:
    """Write a PNG with one precision-recall curve per named (scores, labels) pair."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 5), dpi=110)
    for name, (scores, labels) in curves.items():
        precision, recall, _ = pr_curve(scores, labels)
        ap = average_precision(scores, labels)
        ax.step(
            np.r_[0.0, recall],
            np.r_[precision[0] if len(precision) else 1.0, precision],
            where="post",
            label=f"{name} (AP {ap:.3f})",
        )
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
