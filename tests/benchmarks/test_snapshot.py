"""benchmarks.evaluation.snapshot: the comparison that decides whether a refactoring changed a verdict."""

from __future__ import annotations

from benchmarks.evaluation.snapshot import differences


def test_equal_snapshots_and_scores_within_tolerance_do_not_differ() -> None:
    a = {"builtin": [{"flagged": True, "score": 0.5, "categories": {"hate": 0.25}}]}
    b = {"builtin": [{"flagged": True, "score": 0.5 + 1e-7, "categories": {"hate": 0.25}}]}
    assert differences(a, b) == []


def test_a_flag_a_score_a_key_or_a_length_that_changed_is_reported_where_it_is() -> None:
    a = {"builtin": [{"flagged": True, "score": 0.5, "categories": {"hate": 0.25}}], "extra": [1, 2]}
    b = {"builtin": [{"flagged": False, "score": 0.51, "categories": {"hate2": 0.25}}], "extra": [1]}
    found = differences(a, b)
    assert ".builtin[0].flagged: True != False" in found
    assert ".builtin[0].score: 0.5 != 0.51" in found
    assert any(d.startswith(".builtin[0].categories: keys") for d in found)
    assert ".extra: 2 != 1 items" in found
