"""Decider: a verdict's category scores from the fused distribution of its worst unit."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from index.config import GuardConfig
from index.decision import Decider
from index.labels import LabelSet
from index.scoring import Scores
from index.types import SAFE, Label

NAMES = ["violence", SAFE, "self_harm", "hate", "prompt_injection", "sexual", "weapons", "drugs", "crime", "privacy"]


@settings(max_examples=200, deadline=None)
@given(
    fused=arrays(np.float32, (3, len(NAMES)), elements=st.floats(0.0, 1.0, width=32)),
    unsafe=arrays(np.float64, (3,), elements=st.floats(0.0, 1.0)),
    disabled=st.sets(st.sampled_from([n for n in NAMES if n != SAFE]), max_size=3),
)
def test_category_scores_share_the_unsafe_score_as_the_scalar_sum_did(
    fused: np.ndarray, unsafe: np.ndarray, disabled: set[str]
) -> None:
    """The unsafe mass is summed over the row (not one numpy scalar per label, for cost): the same float32
    additions in column order, so the same category scores to the last bit."""
    labels = LabelSet(Label(n, "safe" if n == SAFE else "builtin", enabled=n not in disabled) for n in NAMES)
    decider = Decider(GuardConfig(), labels, {})
    k = np.full((3, 1), -1, dtype=np.int64)
    scores = Scores(unsafe, fused, {}, np.full((3, 1), -np.inf, dtype=np.float32), k)
    verdict = decider.verdict(scores, np.arange(3))
    worst = int(np.argmax(unsafe))
    mass = max(1e-12, float(sum(fused[worst, i] for i, n in enumerate(NAMES) if n != SAFE)))
    expected = {
        n: round(float(unsafe[worst]) * float(fused[worst, i]) / mass, 6)
        for i, n in enumerate(NAMES)
        if n != SAFE and n not in disabled
    }
    assert verdict.categories == expected
