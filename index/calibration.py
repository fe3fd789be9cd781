"""Calibration: Platt scaling of the unsafe score and threshold selection (topic thresholds: index.topics)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from index.scoring.functions import logit, sigmoid

FloatArray = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Platt:
    """score = sigmoid(a * logit(raw) + b): monotone, so rankings (AUPRC, ROC-AUC) are unchanged."""

    a: float = 1.0
    b: float = 0.0

    def apply(self, raw: NDArray[np.floating] | float) -> FloatArray:
        return sigmoid(self.a * logit(np.asarray(raw, dtype=np.float64)) + self.b)


def fit_platt(raw: NDArray[np.floating], unsafe: NDArray[np.bool_], iterations: int = 200, ridge: float = 1.0) -> Platt:
    """Fit Platt scaling by Newton's method on the log loss, with a backtracking line search.

    Platt's label smoothing and a small ridge pull towards the identity (a=1, b=0) keep the optimum finite when the
    scores separate the classes perfectly. The line search keeps every step downhill: a full Newton step from the
    identity on confident scores (logits near +-14, many on the wrong side) lands where every p(1-p) underflows,
    the Hessian is the ridge alone, and plain Newton then runs off to a slope in the thousands, where the calibrated
    score is exactly 0 or 1 for most rows (ties that ruin any threshold chosen on it).
    """
    x = logit(np.asarray(raw, dtype=np.float64))
    y = np.asarray(unsafe, dtype=bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return Platt()
    t = np.where(y, (n_pos + 1.0) / (n_pos + 2.0), 1.0 / (n_neg + 2.0))

    def objective(a: float, b: float) -> float:
        z = a * x + b
        # cross-entropy against the smoothed targets, written with softplus so it stays finite for any z
        return float(np.sum(np.logaddexp(0.0, z) - t * z) + 0.5 * ridge * ((a - 1.0) ** 2 + b**2))

    a, b = 1.0, 0.0
    current = objective(a, b)
    for _ in range(iterations):
        p = sigmoid(a * x + b)
        g = np.array([np.sum((p - t) * x) + ridge * (a - 1.0), np.sum(p - t) + ridge * b])
        w = p * (1 - p) + 1e-12
        h = np.array([[np.sum(w * x * x), np.sum(w * x)], [np.sum(w * x), np.sum(w)]]) + ridge * np.eye(2)
        step = np.linalg.solve(h, g)
        scale = 1.0
        while scale > 1e-10:
            trial = objective(a - scale * step[0], b - scale * step[1])
            if trial <= current:
                break
            scale /= 2
        else:
            break  # no downhill step along the Newton direction: at the optimum up to rounding
        a, b, current = a - scale * step[0], b - scale * step[1], trial
        if np.abs(scale * step).max() < 1e-9:
            break
    return Platt(float(a), float(b))


def best_f1_threshold(scores: NDArray[np.floating], positive: NDArray[np.bool_]) -> tuple[float, float]:
    """The threshold (flag when score >= threshold) that maximises F1, and that F1."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(positive, dtype=bool)
    if not y.any():
        return float(s.max(initial=0.0)) + 1e-6, 0.0
    order = np.argsort(-s, kind="stable")
    s_sorted, y_sorted = s[order], y[order]
    tp = np.cumsum(y_sorted)
    fp = np.cumsum(~y_sorted)
    f1 = 2 * tp / (tp + fp + y.sum())
    # only cut between distinct scores
    last_of_run = np.r_[s_sorted[1:] != s_sorted[:-1], True]
    f1 = np.where(last_of_run, f1, -1.0)
    best = int(np.argmax(f1))
    return float(s_sorted[best]), float(f1[best])


def fmr_threshold(scores: ArrayLike, positive: ArrayLike, target_fmr: float) -> float:
    """The lowest threshold (just above a negative's score) whose false-match rate on these items is <= target_fmr."""
    s = np.asarray(scores, dtype=np.float64)
    neg = np.sort(s[~np.asarray(positive, dtype=bool)])[::-1]
    if neg.size == 0:  # no negatives: nothing to keep out, so every item may match
        return float(s.min()) if s.size else 0.0
    allowed = int(np.floor(target_fmr * neg.size + 1e-9))  # negatives that may score at or above the threshold
    return float(neg[allowed]) + 1e-6 if allowed < neg.size else float(neg[-1])
