"""benchmarks.evaluation: the per-text vector cache (vectors), the look-alike threshold rule, the fusion choice and
recall at a bounded FPR (decisions)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from benchmarks.evaluation import decisions, vectors


def test_vector_cache_round_trip_keeps_windows_per_text(tmp_path: Path) -> None:
    cache = vectors.TextVectorCache.load(tmp_path / "v.npz", 2)
    exemplars = np.asarray([[1, 0], [0, 1], [1, 1]], dtype=np.float32)
    windows = np.asarray([[2, 2], [3, 3], [4, 4]], dtype=np.float32)  # "b" has two windows, "c" one more
    cache.add(["a", "b"], exemplars[:2], windows[:2], [0, 2])
    cache.save(tmp_path / "v.npz")
    again = vectors.TextVectorCache.load(tmp_path / "v.npz", 2)
    again.add(["c"], exemplars[2:], windows[2:], [1])
    ex, win, owners = again.lookup(["b", "c", "a", "b"])
    assert ex.tolist() == [[0, 1], [1, 1], [1, 0], [0, 1]]
    # short texts first (their exemplar vector is their only window), then each long text's windows in order
    assert owners.tolist() == [2, 0, 0, 1, 3, 3]
    assert win.tolist() == [[1, 0], [2, 2], [3, 3], [4, 4], [2, 2], [3, 3]]


def test_lookalike_threshold_rises_only_while_the_floors_hold() -> None:
    grid = np.round(np.arange(0.05, 0.96, 0.01), 2)
    benign = np.linspace(0.0, 1.0, 101)  # at 0.93, 8 of 101 (7.9 %) reach the cut
    unsafe = np.full(10, 0.95)
    assert decisions.lookalike_threshold(benign, [(unsafe, 0.8)], grid, 0.5) == pytest.approx(0.93)
    mixed = np.asarray([0.95] * 8 + [0.6] * 2)  # raising past 0.6 keeps 80 %: allowed; 0.96 is off the grid
    assert decisions.lookalike_threshold(benign, [(mixed, 0.9)], grid, 0.5) == pytest.approx(0.6)
    assert decisions.lookalike_threshold(np.zeros(5), [(unsafe, 0.8)], grid, 0.5) == 0.5  # already below the cap


def test_recall_at_fpr() -> None:
    scores = np.asarray([0.9, 0.8, 0.7, 0.6, 0.5, 0.4] + [0.75] + [0.1] * 99)
    unsafe = np.asarray([True] * 6 + [False] * 100)
    recall, _ = decisions.recall_at_fpr(scores, unsafe, 0.01)  # one benign row may pass: the 0.75 one
    assert recall == 1.0
    recall, cut = decisions.recall_at_fpr(scores, unsafe, 0.0)
    assert recall == pytest.approx(2 / 6) and cut > 0.75


def test_the_fusion_choice_keeps_the_recall_floor_before_it_saves_look_alikes() -> None:
    tied = {  # (dev AUPRC, look-alike FPR, written-harmful-request recall)
        "centroid only": (0.790, 0.12, 0.63),  # fewest look-alikes, bought with recall
        "mix": (0.792, 0.15, 0.81),
        "head-heavy": (0.794, 0.17, 0.84),
        "mix, same look-alikes": (0.789, 0.15, 0.80),
    }
    assert (
        decisions.choose_fusion(tied, 0.795) == "mix"
    )  # fewest look-alikes among the floor keepers; AUPRC breaks ties
    assert decisions.choose_fusion(tied, 0.60) == "centroid only"
    assert decisions.choose_fusion(tied, 0.90) == "centroid only"  # none keeps it: the floor cannot choose
    assert decisions.choose_fusion({"no instructions": (0.7, 0.1, float("nan"))}, 0.795) == "no instructions"


def test_the_shipped_fusion_stays_while_it_is_within_noise_of_the_fewest_look_alikes() -> None:
    tied = {  # (dev AUPRC, look-alike FPR, written-harmful-request recall)
        "fewest": (0.790, 0.093, 0.81),
        "shipped": (0.789, 0.110, 0.82),
        "far": (0.791, 0.150, 0.83),
        "below the floor": (0.792, 0.050, 0.70),
    }
    assert decisions.choose_fusion(tied, 0.795) == "fewest"
    assert decisions.choose_fusion(tied, 0.795, incumbent="shipped") == "shipped"  # 0.017 more: within the tie
    assert decisions.choose_fusion(tied, 0.795, incumbent="far") == "fewest"  # 0.057 more: replaced
    assert decisions.choose_fusion(tied, 0.795, incumbent="below the floor") == "fewest"  # the floor still comes first
    assert decisions.choose_fusion(tied, 0.795, incumbent="not tied") == "fewest"  # out of the AUPRC tie: replaced


class _Scored:
    """The two FoldScores views `injection_threshold` reads: a fused score and the top category per row."""

    def __init__(self, scores: list[float], top: list[str]) -> None:
        self.scores, self.top = np.asarray(scores), np.asarray(top)

    def fused(self, combo: dict[str, float]) -> np.ndarray:
        return self.scores

    def top_category(self, combo: dict[str, float]) -> np.ndarray:
        return self.top


def test_injection_threshold_is_the_lowest_cut_that_keeps_look_alikes_under_the_cap() -> None:
    from index.calibration import Platt

    grid = np.round(np.arange(0.05, 0.96, 0.01), 2)
    identity = Platt(a=1.0, b=0.0)  # the calibrated scores are the raw ones
    # two injections and three benign look-alikes, all under prompt_injection, and a look-alike under violence that no
    # injection cut can flag or clear
    fold = _Scored([0.62, 0.55, 0.60, 0.30, 0.20, 0.10], ["prompt_injection"] * 5 + ["violence"])
    look = np.asarray([False, False, True, True, True, True])

    def cut(threshold: float, max_fpr: float, benign: np.ndarray = look, rise: float = 1.0) -> float:
        return decisions.injection_threshold(fold, {}, identity, threshold, look, benign, grid, max_fpr, rise)  # type: ignore[arg-type]

    # at most a quarter of the look-alikes: 0.60 may stay flagged, 0.30 may not
    assert cut(0.68, 1 / 4) == pytest.approx(0.31)
    # none may be flagged: the cut sits just above the highest look-alike
    assert cut(0.68, 0.0) == pytest.approx(0.61)
    # the cut is never above the global threshold
    assert cut(0.50, 0.0) == 0.50
    # benign rows beyond the look-alikes bound it too: no more of them flagged than at the global threshold
    assert cut(0.68, 1.0, benign=look, rise=0.0) == pytest.approx(0.61)
