"""The vectors of a guard build: reused from a previous guard, taken from the embedding cache, or embedded."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from index.encoding import EmbeddingCache, Encoder, embed_cached
from index.types import Exemplar, Vectors

if TYPE_CHECKING:
    from index.guard import Guard

log = logging.getLogger(__name__)


def build_vectors(
    encoder: Encoder,
    exemplars: Sequence[Exemplar],
    background_texts: Sequence[str],
    batch_size: int,
    reuse: Guard | None = None,
    cache: EmbeddingCache | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[Vectors, Vectors]:
    """Vectors of `exemplars` (in order) and of `background_texts`.

    `reuse`: a guard whose vectors are taken, not recomputed, for the exemplars it holds with the same id and text,
    when it was built with the same encoder (model id) — e.g. a saved index whose scoring configuration is out of
    date: 24k exemplars are re-indexed in seconds instead of re-encoded in minutes. Vectors depend only on the
    encoder and the normalised text, so the result equals a full build.

    `cache`: an embedding cache (`index.encoding.EmbeddingCache`) that vectors of the other texts are taken from and
    stored in, for the next build of any guard on this model (a new home built from a warm cache embeds nothing).
    """
    vectors = np.empty((len(exemplars), encoder.dim), dtype=np.float32)
    reused: list[int] = []
    if reuse is not None and reuse.encoder.model_id == encoder.model_id:
        known = reuse.exemplars
        reused = [n for n, e in enumerate(exemplars) if (old := known.get(e.id)) is not None and old.text == e.text]
        if reused:
            vectors[reused] = reuse.vectors([exemplars[n].id for n in reused])
    skip = set(reused)
    fresh = [n for n in range(len(exemplars)) if n not in skip]
    texts = [exemplars[n].text for n in fresh] + list(background_texts)
    result = embed_cached(encoder, texts, batch_size, cache, progress)
    embedded, cached = result.vectors, result.cached
    log.info(
        "guard build on %s: %d texts embedded, %d from the embedding cache or seed-vector pack, %d reused from the"
        " previous index",
        encoder.model_id,
        len(texts) - cached,
        cached,
        len(reused),
    )
    vectors[fresh] = embedded[: len(fresh)]
    return vectors, embedded[len(fresh) :]
