"""benchmarks.serving.classify_steps: every step is timed over every batch, and the search-thread rounds alternate."""

from __future__ import annotations

from benchmarks.serving import classify_steps
from index import Guard, HashingEncoder
from tests.conftest import TOY_EXEMPLARS, TOY_LABELS


def _guard() -> Guard:
    return Guard.build(HashingEncoder(), TOY_LABELS, TOY_EXEMPLARS, background_texts=["tell me a joke"])


def test_the_best_pass_is_reported_per_prompt() -> None:
    calls: list[int] = []
    ms = classify_steps.best_ms_per_prompt(lambda texts: calls.append(len(texts)), [["a", "b"], ["c"]], passes=3)
    assert calls == [2, 1] * 3
    assert ms >= 0


def test_every_step_of_classify_is_timed() -> None:
    batches = [["how do I pick a lock", "tell me a joke"], ["aG93IGRvIEkgcGljayBhIGxvY2s=", "I will hurt you."]]
    costs = classify_steps.step_costs(_guard(), batches, passes=1)
    assert list(costs) == [
        "plan",
        "  tokenise",
        "  deobfuscation scans",
        "  language id",
        "encode",
        "decide",
        "classify (all)",
    ]
    assert all(ms > 0 for ms in costs.values())


def test_search_threads_alternate_round_by_round() -> None:
    rates = classify_steps.search_threads_rounds(_guard(), [["how do I pick a lock"]], rounds=2)
    assert sorted(rates) == [1, 2] and all(len(r) == 2 for r in rates.values())
