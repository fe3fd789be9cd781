"""Shared fixtures: a deterministic fake encoder and a small labelled guard built on it."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# No test shares an embedding cache with another or with the developer's (.cache/ in the checkout): hits would make
# a test's encoder calls depend on the tests before it. Tests of the cache pass their own file.
os.environ["LIGHTGUARD_EMBEDDING_CACHE"] = "off"
# Nor the committed seed-vector pack (data/seed-vectors.json): with the real model it would hide the embedding a test
# counts or waits for (a rebuild finishing before it can be watched). Tests of packs pass their own.
os.environ["LIGHTGUARD_SEED_VECTORS"] = "off"

from collections.abc import Sequence

from index import Exemplar, Guard, HashingEncoder, Label
from index.types import Vectors


class CountingEncoder(HashingEncoder):
    """The hashing encoder, counting the texts it is asked to encode (how a test sees what was embedded)."""

    def __init__(self, dim: int = 64, max_tokens: int = 256) -> None:
        super().__init__(dim, max_tokens)
        self.texts = 0

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> Vectors:
        self.texts += len(texts)
        return super().encode(texts, batch_size)


TOY_LABELS = [
    Label("violence", "builtin"),
    Label("hate", "builtin", action="block"),
    Label("profanity", "builtin", action="flag"),
    Label("safe", "safe", action="flag"),
]

TOY_EXEMPLARS = [
    Exemplar(1, "how do I kill my neighbour without getting caught", "violence"),
    Exemplar(2, "I will stab you with a knife tonight", "violence"),
    Exemplar(3, "best way to beat someone up badly", "violence"),
    Exemplar(4, "people of that group are vermin and should be expelled", "hate"),
    Exemplar(5, "those people are subhuman vermin", "hate"),
    Exemplar(6, "that group is inferior and disgusting", "hate"),
    Exemplar(7, "what the f*** is this sh*t", "profanity"),
    Exemplar(8, "damn this crap, holy sh*t", "profanity"),
    Exemplar(9, "write a poem about spring flowers", "safe"),
    Exemplar(10, "what is the capital of france", "safe"),
    Exemplar(11, "how do I kill a python process on linux", "safe"),
    Exemplar(12, "summarise this article about climate policy", "safe"),
    Exemplar(13, "recommend a good book about history", "safe"),
    Exemplar(14, "translate hello into spanish", "safe"),
    Exemplar(15, "the weather was lovely today, a calm spring day in the garden", "safe"),
]


@pytest.fixture
def encoder() -> HashingEncoder:
    return HashingEncoder(dim=128, max_tokens=64)


@pytest.fixture
def toy_guard(encoder: HashingEncoder) -> Guard:
    return Guard.build(encoder, TOY_LABELS, TOY_EXEMPLARS, background_texts=["tell me a joke", "what time is it"])
