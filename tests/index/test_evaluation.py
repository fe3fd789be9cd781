"""Binary metrics against hand-computed values, and the PR-curve plot."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from index.evaluation import average_precision, binary_metrics, plot_pr_curves, roc_auc


def test_metrics_at_threshold_match_hand_counts() -> None:
    scores = [0.9, 0.8, 0.7, 0.4, 0.3, 0.2]
    unsafe = [True, False, True, True, False, False]
    m = binary_metrics(scores, unsafe, 0.5, ["hate", None, "violence", "hate", None, None])
    # predicted unsafe: 0.9, 0.8, 0.7 -> tp 2, fp 1, fn 1, tn 2
    assert (m.precision, m.recall, m.accuracy) == pytest.approx((2 / 3, 2 / 3, 4 / 6))
    assert m.f1 == pytest.approx(2 / 3)
    assert m.fpr == pytest.approx(1 / 3)
    assert m.per_category_recall == {"hate": 0.5, "violence": 1.0}


def test_average_precision_and_roc_auc_known_values() -> None:
    scores = np.array([0.9, 0.8, 0.7, 0.4, 0.3, 0.2])
    y = np.array([True, False, True, True, False, False])
    # AP = mean precision at each positive: (1/1 + 2/3 + 3/4) / 3
    assert average_precision(scores, y) == pytest.approx((1 + 2 / 3 + 3 / 4) / 3)
    # ROC-AUC = fraction of (pos, neg) pairs ordered correctly: 7 of 9
    assert roc_auc(scores, y) == pytest.approx(7 / 9)


def test_ties_count_half_and_perfect_ranking_is_one() -> None:
    assert roc_auc(np.array([0.5, 0.5]), np.array([True, False])) == pytest.approx(0.5)
    assert average_precision(np.array([0.9, 0.1]), np.array([True, False])) == 1.0
    assert np.isnan(roc_auc(np.array([0.1]), np.array([True])))


def test_pr_curve_png_is_written(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    y = rng.random(100) < 0.4
    path = plot_pr_curves({"demo": (y * 0.5 + rng.random(100) * 0.5, y)}, tmp_path / "pr.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
