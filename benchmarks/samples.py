"""Deterministic prompt samples drawn from the shipped data (data/safety.jsonl), shared by the serving benchmarks."""

from __future__ import annotations

import json

import numpy as np

from benchmarks.layout import DATA_DIR


def short_prompts(n: int) -> list[str]:
    """Test-split prompts of 18-26 words (~30 tokens), deterministic."""
    out = []
    with open(DATA_DIR / "safety.jsonl", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            if row.get("split") == "test" and 18 <= len(row["text"].split()) <= 26:
                out.append(row["text"])
    rng = np.random.default_rng(0)
    return [out[i] for i in rng.permutation(len(out))[:n]]


def long_prompt(words: int) -> str:
    """A benign-looking document of `words` words: short test prompts repeated end to end."""
    base = " ".join(short_prompts(400))
    tokens = base.split()
    return " ".join((tokens * (words // max(1, len(tokens)) + 1))[:words])
