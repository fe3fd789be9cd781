"""A custom topic's threshold from its own examples and background text (docs/topics.md)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def topic_threshold(
    positive_scores: NDArray[np.floating],
    background_scores: NDArray[np.floating],
    target_fmr: float,
    floor: float,
    positive_quantile: float | None = None,
    positive_margin: float = 0.0,
    interpolation: float | None = None,
) -> float:
    """Open-set threshold for a topic from its own examples' leave-one-out scores and its background scores.

    With `interpolation` set (the shipped rule, docs/topics.md): the threshold lies that fraction of the way from
    the (1 - target_fmr) quantile of the background scores up to the `positive_quantile` quantile of the
    leave-one-out scores (the median when that is None). Both ends are the topic's own, so one fraction fits tight
    topics (paraphrases scoring high among themselves) and loose ones. It never lets more than 3x `target_fmr` of
    the background through, and never goes below `floor`; without leave-one-out scores (one example) it is the
    background quantile.

    With `interpolation` None (the rules before it, kept for the benchmark's baselines): the background quantile,
    capped at the median leave-one-out score unless that would exceed 3x the target false-match rate, raised to
    the `positive_quantile` quantile of the leave-one-out scores minus `positive_margin` when that is set.
    """
    bg = np.asarray(background_scores, dtype=np.float64)
    pos = np.asarray(positive_scores, dtype=np.float64)
    if bg.size == 0:
        return floor
    quantile = float(np.quantile(bg, 1.0 - target_fmr, method="higher"))
    threshold = quantile + 1e-6
    relaxed = float(np.quantile(bg, max(0.0, 1.0 - 3 * target_fmr), method="higher")) + 1e-6
    if interpolation is not None:
        if pos.size:
            anchor = float(np.quantile(pos, 0.5 if positive_quantile is None else positive_quantile))
            threshold = max(threshold + interpolation * (anchor - threshold), relaxed)
        return max(threshold, floor)
    if pos.size:
        median_pos = float(np.median(pos))
        if threshold > median_pos:
            threshold = max(median_pos, relaxed)
        if positive_quantile is not None:
            threshold = max(threshold, float(np.quantile(pos, positive_quantile)) - positive_margin)
    return max(threshold, floor)
