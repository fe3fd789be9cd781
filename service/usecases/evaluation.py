"""Measuring a topic on labelled texts: precision / recall / F1 / false-match rate and suggested thresholds."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from index import best_f1_threshold, fmr_threshold


@dataclass(frozen=True, slots=True)
class MetricsAt:
    threshold: float
    precision: float
    recall: float
    f1: float
    false_match_rate: float  # share of the non-matching items scored at or above the threshold


@dataclass(frozen=True, slots=True)
class SuggestedThresholds:
    best_f1: MetricsAt  # the threshold with the highest F1 on the items
    target_fmr: MetricsAt  # the lowest threshold whose false-match rate on the items is <= the target


@dataclass(frozen=True, slots=True)
class TopicEvaluationReport:
    topic_id: int
    name: str
    items: int
    positives: int
    negatives: int
    target_fmr: float
    current: MetricsAt  # at the topic's current threshold
    suggested: SuggestedThresholds
    scores: list[float]  # the topic score of each item, in request order (cosine units)
    index_version: int


def threshold_metrics(scores: Sequence[float], labels: Sequence[bool], threshold: float) -> MetricsAt:
    """Precision, recall, F1 and false-match rate when an item matches at score >= threshold (empty sides give 0)."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=bool)
    hit = s >= threshold
    tp, fp = int((hit & y).sum()), int((hit & ~y).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / int(y.sum()) if y.any() else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    fmr = fp / int((~y).sum()) if (~y).any() else 0.0
    return MetricsAt(
        threshold=round(threshold, 6),
        precision=round(precision, 6),
        recall=round(recall, 6),
        f1=round(f1, 6),
        false_match_rate=round(fmr, 6),
    )


def suggest_thresholds(
    scores: Sequence[float], labels: Sequence[bool], target_fmr: float, floor: float = 0.0
) -> SuggestedThresholds:
    """The max-F1 threshold and the target-false-match-rate threshold on labelled scores, with their metrics, neither
    below `floor` (the index's topic threshold floor): topic scores are clipped at 0, so on a sample whose negatives
    all score 0 "just above the highest negative" is 0.000001, which would match any text the topic scores at all."""
    best, _ = best_f1_threshold(np.asarray(scores, dtype=np.float64), np.asarray(labels, dtype=bool))
    fmr = fmr_threshold(scores, labels, target_fmr)
    return SuggestedThresholds(
        best_f1=threshold_metrics(scores, labels, max(best, floor)),
        target_fmr=threshold_metrics(scores, labels, max(fmr, floor)),
    )
