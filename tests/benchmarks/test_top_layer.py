"""The per-fold top-layer probe (benchmarks/evaluation/top_layer.py): padding must not change a text's vector, and the
report must choose each arm's fusion on dev and measure it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from benchmarks.evaluation.top_layer import Top, batch, report


def test_a_text_embeds_the_same_alone_and_beside_a_longer_one() -> None:
    from transformers import BertConfig
    from transformers.models.bert.modeling_bert import BertLayer

    torch.manual_seed(0)
    config = BertConfig(hidden_size=384, num_attention_heads=4, intermediate_size=64, attn_implementation="sdpa")
    layer = BertLayer(config).eval()
    model = Top(nn.ModuleList([layer]), labels=3).eval()
    rng = np.random.default_rng(0)
    states = rng.normal(size=(12, 384)).astype(np.float16)
    offsets = np.asarray([0, 3, 12])  # row 0: 3 tokens, row 1: 9 tokens
    with torch.no_grad():
        alone = model.embed(*batch(states, offsets, np.asarray([0])))
        padded = model.embed(*batch(states, offsets, np.asarray([1, 0])))
    assert padded.shape == (2, 384)
    np.testing.assert_allclose(padded[1].numpy(), alone[0].numpy(), atol=1e-5)


def _fold(rng: np.random.Generator, good: bool, families: list[str]) -> dict[str, object]:
    n = 200
    y = rng.random(n) < 0.5
    noise = rng.random(n)
    head = np.where(y, 0.6, 0.4) * (0.9 if good else 0.0) + noise * (0.1 if good else 1.0)
    return {
        "scores": {"head": head.tolist(), "knn k=32 T=0.05": noise.tolist(), "centroid T=0.1": noise[::-1].tolist()},
        "split": ["dev" if i % 2 else "test" for i in range(n)],
        "y": y.tolist(),
        "family": [families[i % len(families)] if y[i] else families[-1] for i in range(n)],
    }


def test_report_chooses_the_fusion_on_dev_and_tells_the_arms_apart(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    folds = {
        name: {"base": _fold(rng, False, fams), "tuned": _fold(rng, True, fams)}
        for name, fams in {
            "prompt-injection": ["prompt-injection", "injection-lookalike"],
            "contrast": ["contrast", "contrast"],
            "random": ["harmful-instructions", "prompt-injection", "contrast"],
        }.items()
    }
    path = tmp_path / "top-layer-x.json"
    path.write_text(json.dumps({"args": {}, "folds": folds}))
    base, tuned = report([path])
    assert base["arm"] == "base" and tuned["arm"] == "top-layer-x:tuned"
    assert tuned["fusion"] == {"head": 1.0}  # the only informative scorer wins the dev choice
    assert tuned["oos test"] > 0.95 > 0.7 > base["oos test"]
    assert tuned["inj held-out recall@3% test"] == pytest.approx(1.0)
    assert tuned["look-alike FPR test"] < base["look-alike FPR test"]
