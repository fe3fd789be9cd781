"""Platt scaling on confident scores: the fit must reach the penalised optimum, not run off to a step function."""

from __future__ import annotations

import numpy as np
import pytest

from index import fit_platt
from index.scoring import logit


def _confident_scores(seed: int, n: int = 2000, wrong: float = 0.15) -> tuple[np.ndarray, np.ndarray]:
    """Scores near 0/1 with `wrong` of them on the wrong side: the shape of a fine-tuned model's fused scores.

    Logits 6..13.5 in magnitude stay inside logit's 1e-6 clip, so distinct scores have distinct logits.
    """
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.6
    side = np.where(y ^ (rng.random(n) < wrong), 1.0, -1.0)
    raw = 1.0 / (1.0 + np.exp(-side * rng.uniform(6, 13.5, n)))
    return raw, y


def _penalised_loss(a: float, b: float, raw: np.ndarray, y: np.ndarray, ridge: float = 1.0) -> float:
    """fit_platt's objective: cross-entropy to Platt's smoothed targets plus the ridge towards (1, 0)."""
    x = logit(raw)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    t = np.where(y, (n_pos + 1.0) / (n_pos + 2.0), 1.0 / (n_neg + 2.0))
    z = a * x + b
    return float(np.sum(np.logaddexp(0.0, z) - t * z) + 0.5 * ridge * ((a - 1.0) ** 2 + b**2))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fit_platt_on_confident_scores_is_the_optimum_of_its_objective(seed: int) -> None:
    raw, y = _confident_scores(seed)
    platt = fit_platt(raw, y)
    fitted = _penalised_loss(platt.a, platt.b, raw, y)
    # a coarse grid around any sane calibration: the fit must be at least as good as its best point
    grid = min(_penalised_loss(a, b, raw, y) for a in np.linspace(0.02, 3.0, 150) for b in np.linspace(-3, 3, 61))
    assert fitted <= grid + 1e-6
    assert fitted <= _penalised_loss(1.0, 0.0, raw, y)  # never worse than where it started


def test_fit_platt_flattens_overconfident_scores_without_ties() -> None:
    raw, y = _confident_scores(3)
    platt = fit_platt(raw, y)
    cal = platt.apply(raw)
    # 15 % of the confident scores are wrong: the calibrated score must be less extreme than the raw one
    assert 0 < platt.a < 1
    assert cal.min() > 0.02 and cal.max() < 0.98
    # monotone and strictly increasing: distinct raw scores stay distinct (no exact 0/1 plateau)
    order = np.argsort(raw)
    assert (np.diff(cal[order]) >= 0).all()
    assert len(np.unique(cal)) == len(np.unique(raw))
    # confident-right rows still score on the right side of 0.5
    assert cal[raw > 0.999].min() > 0.5 > cal[raw < 0.001].max()
