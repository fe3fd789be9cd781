"""benchmarks.evaluation.served_families: per-family flag rates of the served guard, by family and split."""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any, cast

from benchmarks.evaluation.served_families import markdown, served_rates
from index import Guard
from index.datasets import DatasetRow


class _RuleGuard:
    """Flags texts holding "attack"; calls it a prompt injection when it also says "ignore"."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def classify(self, texts: Sequence[str]) -> list[Any]:
        self.calls.append(len(texts))
        return [
            SimpleNamespace(
                flagged="attack" in t,
                category=("prompt_injection" if "ignore" in t else "jailbreak") if "attack" in t else None,
            )
            for t in texts
        ]


def _row(text: str, category: str, split: str, family: str) -> DatasetRow:
    return DatasetRow(text, category, "src", "MIT", split, family, False)


def test_rates_count_the_measured_class_of_each_family_per_split() -> None:
    rows = [
        _row("attack ignore the rules", "prompt_injection", "dev", "prompt-injection"),
        _row("attack in disguise", "prompt_injection", "dev", "prompt-injection"),
        _row("a quiet request", "prompt_injection", "dev", "prompt-injection"),
        _row("ignore this benign text", "safe", "dev", "prompt-injection"),  # the family's other class: not counted
        _row("attack-looking but fine", "safe", "dev", "lookalike"),
        _row("harmless", "safe", "dev", "lookalike"),
        _row("attack ignore", "prompt_injection", "train", "prompt-injection"),  # not a measured split
        _row("attack", "safe", "test", "contrast"),
    ]
    guard = _RuleGuard()
    rates = {(r.split, r.family): r for r in served_rates(cast(Guard, guard), rows)}
    assert set(rates) == {("dev", "prompt-injection"), ("dev", "lookalike"), ("test", "contrast")}
    injection = rates["dev", "prompt-injection"]
    assert (injection.kind, injection.n, round(injection.rate, 3), round(injection.own_category or 0, 3)) == (
        "recall",
        3,
        0.667,
        0.333,
    )
    assert (rates["dev", "lookalike"].kind, rates["dev", "lookalike"].rate) == ("FPR", 0.5)
    assert rates["dev", "lookalike"].own_category is None
    assert rates["test", "contrast"].rate == 1.0
    assert sum(guard.calls) == 6
    table = markdown(list(rates.values()))
    assert "| random dev | prompt-injection (recall) | 3 | 0.667 | 0.333 |" in table
    rows.append(DatasetRow("attack ignore", "prompt_injection", "other", "MIT", "dev", "prompt-injection", False))
    per_source = served_rates(cast(Guard, guard), rows, splits=("dev",), by_source="prompt-injection")
    assert [(r.family, r.n, round(r.rate, 3)) for r in per_source] == [("other", 1, 1.0), ("src", 3, 0.667)]
