"""Per-topic ridge heads: the closed form, its leave-one-out predictions, and the shared negative statistics."""

from __future__ import annotations

import numpy as np
import pytest

from index.topics import GramStats, fit_topic_head


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _weighted_ridge(pos: np.ndarray, neg: np.ndarray, w_pos: float, w_neg: float, l2: float) -> np.ndarray:
    """Reference: the weighted least-squares normal equations written out, bias unpenalised."""
    x = np.c_[np.r_[pos, neg].astype(np.float64), np.ones(len(pos) + len(neg))]
    y = np.r_[np.ones(len(pos)), -np.ones(len(neg))]
    c = np.r_[np.full(len(pos), w_pos), np.full(len(neg), w_neg)]
    penalty = np.diag(np.r_[np.full(pos.shape[1], l2), 0.0])
    return np.linalg.solve((x * c[:, None]).T @ x + penalty, (x * c[:, None]).T @ y)


@pytest.fixture
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    positives = _unit(rng.normal(size=(8, 16)) + 1.5 * np.eye(16)[0])
    negatives = _unit(rng.normal(size=(300, 16)))
    return positives, negatives


def test_head_is_class_balanced_weighted_ridge(data: tuple[np.ndarray, np.ndarray]) -> None:
    pos, neg = data
    head, _ = fit_topic_head(pos, GramStats.of(neg), l2=0.01)
    beta = _weighted_ridge(pos, neg, 0.5 / len(pos), 0.5 / len(neg), 0.01)
    np.testing.assert_allclose(head.weights, beta[:-1], atol=1e-5)
    assert head.bias == pytest.approx(beta[-1], abs=1e-6)
    assert head.predict(pos).mean() > 0.5 > -0.5 > head.predict(neg).mean()


def test_leave_one_out_equals_refitting_without_the_example(data: tuple[np.ndarray, np.ndarray]) -> None:
    pos, neg = data
    _, loo = fit_topic_head(pos, GramStats.of(neg), l2=0.01)
    for i in range(len(pos)):
        beta = _weighted_ridge(np.delete(pos, i, axis=0), neg, 0.5 / len(pos), 0.5 / len(neg), 0.01)
        assert loo[i] == pytest.approx(float(np.r_[pos[i], 1.0] @ beta), abs=1e-5)
    in_sample = fit_topic_head(pos, GramStats.of(neg), l2=0.01)[0].predict(pos)
    assert (loo < in_sample).all(), "an example left out scores lower than when it was fitted on"


def test_gram_stats_add_up(data: tuple[np.ndarray, np.ndarray]) -> None:
    _, neg = data
    split = GramStats.of(neg[:100]).plus(neg[100:])
    whole = GramStats.of(neg)
    np.testing.assert_allclose(split.gram, whole.gram, atol=1e-9)
    assert split.count == whole.count == 300
    assert whole.plus(None) is whole and whole.plus(neg[:0]) is whole


def test_allow_examples_as_negatives_push_the_head_down_there(data: tuple[np.ndarray, np.ndarray]) -> None:
    pos, neg = data
    allow = _unit(pos[:2] + 0.05)
    plain, _ = fit_topic_head(pos, GramStats.of(neg), l2=0.01)
    with_allow, _ = fit_topic_head(pos, GramStats.of(neg).plus(allow), l2=0.01)
    assert (with_allow.predict(allow) < plain.predict(allow)).all()
