"""Scoring maths: distributions sum to one, fusion and calibration keep order, topic scores are open-set."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from index import Platt, best_f1_threshold, fit_platt
from index.scoring import centroids, fuse, knn_distribution, softmax
from index.topics import TopicBank, topic_score_matrix, topic_scores, topic_threshold

finite = st.floats(-1.0, 1.0, allow_nan=False, width=32)


@settings(max_examples=200, deadline=None)
@given(
    sims=arrays(np.float32, (3, 6), elements=finite),
    labels=arrays(np.int64, (3, 6), elements=st.integers(-1, 3)),
    temperature=st.floats(0.01, 2.0),
)
def test_knn_distribution_is_a_distribution(sims: np.ndarray, labels: np.ndarray, temperature: float) -> None:
    p = knn_distribution(sims, labels, 4, temperature)
    assert p.shape == (3, 4)
    assert np.all(p >= 0)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)
    for r in range(3):
        voters = set(labels[r][labels[r] >= 0].tolist())
        if voters:
            assert all(p[r, c] == 0 for c in range(4) if c not in voters), "only voting labels get mass"


@settings(max_examples=200, deadline=None)
@given(
    sims=arrays(np.float32, (5, 9), elements=finite),
    labels=arrays(np.int64, (5, 9), elements=st.integers(-1, 6)),
    temperature=st.floats(0.01, 2.0),
)
def test_knn_distribution_adds_the_votes_as_add_at_did(
    sims: np.ndarray, labels: np.ndarray, temperature: float
) -> None:
    """The votes are summed with one bincount instead of np.add.at (cost): the same float64 additions in the same
    order, so bit-identical distributions and verdicts."""
    valid = (labels >= 0) & np.isfinite(sims)
    row_max = np.max(np.where(valid, sims, -np.inf), axis=1, keepdims=True)
    row_max = np.where(np.isfinite(row_max), row_max, 0.0)
    weights = np.exp(np.where(valid, sims.astype(np.float64) - row_max, -np.inf) / temperature)
    out = np.zeros((5, 7), dtype=np.float64)
    np.add.at(out, (np.repeat(np.arange(5), 9), np.where(valid, labels, 0).ravel()), weights.ravel())
    totals = out.sum(axis=1, keepdims=True)
    empty = totals[:, 0] == 0
    out[empty], totals[empty] = 1.0, 7
    np.testing.assert_array_equal(knn_distribution(sims, labels, 7, temperature), (out / totals).astype(np.float32))


def test_knn_nearest_neighbour_dominates_at_low_temperature() -> None:
    sims = np.array([[0.9, 0.5, 0.5, 0.5]], dtype=np.float32)
    labels = np.array([[0, 1, 1, 1]])
    assert knn_distribution(sims, labels, 2, 0.01)[0, 0] > 0.99
    assert knn_distribution(sims, labels, 2, 10.0)[0, 1] > 0.7


def test_knn_ignores_empty_slots_and_uniform_when_nothing_votes() -> None:
    sims = np.array([[0.9, -np.inf], [-np.inf, -np.inf]], dtype=np.float32)
    labels = np.array([[1, -1], [-1, -1]])
    p = knn_distribution(sims, labels, 2, 0.1)
    np.testing.assert_allclose(p, [[0.0, 1.0], [0.5, 0.5]])


@settings(max_examples=100, deadline=None)
@given(logits=arrays(np.float32, (4, 5), elements=st.floats(-30, 30, width=32)), t=st.floats(0.01, 5.0))
def test_softmax_rows_sum_to_one_and_keep_order(logits: np.ndarray, t: float) -> None:
    p = softmax(logits, t)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)
    picked = logits[np.arange(4), np.argmax(p, axis=1)]
    assert (picked >= logits.max(axis=1) - 1e-4).all(), "the most probable label has the largest logit"


def test_centroids_are_unit_and_empty_label_is_zero() -> None:
    v = np.eye(3, dtype=np.float32)
    c = centroids(v, np.array([0, 0, 1]), 3)
    np.testing.assert_allclose(np.linalg.norm(c[:2], axis=1), 1.0, atol=1e-6)
    assert not c[2].any()


def test_fuse_is_weighted_mean() -> None:
    a = np.array([[1.0, 0.0]], dtype=np.float32)
    b = np.array([[0.0, 1.0]], dtype=np.float32)
    np.testing.assert_allclose(fuse([(3.0, a), (1.0, b)]), [[0.75, 0.25]])


def test_topic_score_is_open_set_and_allow_examples_suppress() -> None:
    pos = np.array([[1.0, 0.0, 0.0], [0.96, 0.28, 0.0]], dtype=np.float32)
    near = np.array([[0.99, 0.14, 0.0]], dtype=np.float32)
    unrelated = np.array([[0.0, 0.0, 1.0]], dtype=np.float32)
    assert topic_scores(near, pos, None)[0] > 0.95
    assert abs(topic_scores(unrelated, pos, None)[0]) < 1e-6, "no softmax: unrelated text scores ~0"
    allow = np.array([[0.99, 0.14, 0.0]], dtype=np.float32)
    assert topic_scores(near, pos, allow)[0] == 0.0, "as close to an allow-example as to a positive: no match"
    far_allow = np.array([[0.0, 1.0, 0.0]], dtype=np.float32)
    assert topic_scores(near, pos, far_allow)[0] == topic_scores(near, pos, None)[0]


def test_topic_score_mixes_in_the_head() -> None:
    pos = np.array([[1.0, 0.0, 0.0], [0.96, 0.28, 0.0]], dtype=np.float32)
    q = np.array([[0.99, 0.14, 0.0], [0.0, 0.6, 0.8]], dtype=np.float32)
    sim = topic_scores(q, pos, None)
    head = np.array([0.9, -0.8], dtype=np.float32)
    np.testing.assert_allclose(topic_scores(q, pos, None, head=head, head_weight=0.25), 0.75 * sim + 0.25 * head)
    np.testing.assert_allclose(topic_scores(q, pos, None, head=head, head_weight=0.0), sim)
    # the allow-example rule applies to the mixed score: as close to an allow-example as to a positive = no match
    assert topic_scores(q[:1], pos, q[:1], head=head[:1], head_weight=0.5)[0] == 0.0


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 6), min_size=1, max_size=5),
    allow_sizes=st.lists(st.integers(0, 3), min_size=5, max_size=5),
    with_head=st.lists(st.booleans(), min_size=5, max_size=5),
    top_m=st.integers(1, 4),
    seed=st.integers(0, 1000),
)
def test_topic_score_matrix_equals_scoring_each_topic(
    sizes: list[int], allow_sizes: list[int], with_head: list[bool], top_m: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    dim, t = 8, len(sizes)
    positives = [_unit(rng.normal(size=(k, dim)) + 0.5) for k in sizes]
    allows = [_unit(rng.normal(size=(k, dim)) + 0.5) for k in allow_sizes[:t]]
    heads = [(rng.normal(size=dim).astype(np.float32), float(rng.normal())) if h else None for h in with_head[:t]]
    queries = _unit(rng.normal(size=(6, dim)) + 0.5)
    bank = TopicBank.stack([f"t{i}" for i in range(t)], positives, allows, heads, 0.4, dim)
    matrix = topic_score_matrix(queries, bank, top_m, 0.5)
    assert matrix.shape == (6, t)
    for i in range(t):
        head = heads[i]
        expected = topic_scores(
            queries,
            positives[i],
            allows[i] if allows[i].shape[0] else None,
            top_m,
            0.5,
            head=None if head is None else queries @ head[0] + head[1],
            head_weight=0.4 if head is not None else 0.0,
        )
        np.testing.assert_allclose(matrix[:, i], expected, atol=1e-5)


@settings(max_examples=100, deadline=None)
@given(raw=arrays(np.float64, 20, elements=st.floats(0.001, 0.999)), a=st.floats(0.1, 5), b=st.floats(-3, 3))
def test_platt_is_monotone(raw: np.ndarray, a: float, b: float) -> None:
    out = Platt(a, b).apply(raw)
    order = np.argsort(raw, kind="stable")
    assert (np.diff(out[order]) >= -1e-12).all()
    assert ((out >= 0) & (out <= 1)).all()


def test_fit_platt_moves_scores_towards_the_labels() -> None:
    rng = np.random.default_rng(0)
    y = rng.random(400) < 0.5
    raw = np.clip(np.where(y, 0.3, 0.1) + rng.normal(0, 0.05, 400), 0.01, 0.99)
    platt = fit_platt(raw, y)
    cal = platt.apply(raw)
    assert cal[y].mean() > 0.6 > 0.4 > cal[~y].mean()


def test_fit_platt_stays_finite_on_separable_scores() -> None:
    raw = np.r_[np.full(50, 0.01), np.full(50, 0.99)]
    platt = fit_platt(raw, np.r_[np.zeros(50, bool), np.ones(50, bool)])
    assert np.isfinite([platt.a, platt.b]).all() and 0 < platt.a < 20
    assert platt.apply(0.99) > 0.9 and platt.apply(0.01) < 0.1


def test_best_f1_threshold_separable() -> None:
    scores = np.array([0.1, 0.2, 0.8, 0.9])
    threshold, f1 = best_f1_threshold(scores, np.array([False, False, True, True]))
    assert f1 == 1.0 and 0.2 < threshold <= 0.8


def test_topic_threshold_targets_the_false_match_rate() -> None:
    bg = np.linspace(0.0, 0.5, 1001)
    t = topic_threshold(np.array([0.8, 0.9]), bg, 0.01, floor=0.1)
    assert np.mean(bg >= t) <= 0.01
    assert topic_threshold(np.array([0.8]), bg, 0.01, floor=0.7) == 0.7
    # a topic whose own examples score below the quantile is relaxed to its median, bounded by 3x the target
    t_relaxed = topic_threshold(np.array([0.3, 0.3, 0.3]), bg, 0.01, floor=0.0)
    assert np.mean(bg >= t_relaxed) <= 0.03 + 1e-9


def test_topic_threshold_interpolates_between_background_and_examples() -> None:
    bg = np.linspace(0.0, 0.5, 1001)
    q99 = float(np.quantile(bg, 0.99, method="higher"))
    loo = np.array([0.7, 0.8, 0.9, 0.95, 1.0])
    t = topic_threshold(loo, bg, 0.01, 0.0, positive_quantile=0.3, interpolation=0.4)
    assert t == pytest.approx(q99 + 0.4 * (float(np.quantile(loo, 0.3)) - q99), abs=1e-5)
    # a tighter topic (higher leave-one-out scores) gets a higher threshold from the same background
    assert topic_threshold(loo + 0.05, bg, 0.01, 0.0, 0.3, interpolation=0.4) > t
    # examples scoring below the background: never more than 3x the target false-match rate of the background
    low = topic_threshold(np.zeros(5), bg, 0.01, 0.0, 0.3, interpolation=0.4)
    assert np.mean(bg >= low) <= 0.03 + 1e-9
    # one example (no leave-one-out scores): the background quantile; the floor always holds
    assert topic_threshold(np.zeros(0), bg, 0.01, 0.0, 0.3, interpolation=0.4) == pytest.approx(q99, abs=1e-5)
    assert topic_threshold(loo, bg, 0.01, 0.9, 0.3, interpolation=0.4) == 0.9


def test_sigmoid_is_stable_for_extreme_inputs() -> None:
    from index.scoring import sigmoid

    out = sigmoid(np.array([-1e4, -50.0, 0.0, 50.0, 1e4]))
    np.testing.assert_allclose(out, [0.0, 1.9287e-22, 0.5, 1.0, 1.0], rtol=1e-3, atol=1e-30)
