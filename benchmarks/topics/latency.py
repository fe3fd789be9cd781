"""Add-topic latency: the API's topic creation on a ~24k-exemplar index, and what classify costs per topic."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.data.topics import load_splits
from benchmarks.layout import DATA_DIR, REPO
from benchmarks.topics.episodes import Vec, embed_background, load_encoder
from benchmarks.topics.rules import (
    Background,
)
from index import GuardConfig, load_rows
from index.topics import TopicBank, fit_topic_head, topic_score_matrix, topic_scores


# ------------------------------------------------------------------------------------------------ latency
def _percentiles(samples: list[float]) -> str:
    a = np.asarray(samples) * 1000
    return f"p50 {np.percentile(a, 50):.0f} ms, p90 {np.percentile(a, 90):.0f} ms, max {a.max():.0f} ms (n={a.size})"


def latency(args: argparse.Namespace) -> None:
    """Time adding a 20-example topic to a guard holding the shipped exemplars (index + calibration, encode included).

    The shipped train exemplars are indexed with *random* unit vectors except the background (embedded for real):
    FAISS insert and calibration cost do not depend on what the vectors mean, and embedding 24k texts here would
    take most of an hour on two shared cores.
    """
    from benchmarks.evaluation.vectors import taxonomy_labels
    from index import Exemplar, Guard, Label, load_guard_config, load_taxonomy
    from service.serving.runtime import configure_threads

    configure_threads(1)  # the thread settings `lightguard serve` runs with
    encoder = load_encoder(args.encoders[0])
    taxonomy = load_taxonomy(DATA_DIR / "taxonomy.toml")
    labels = taxonomy_labels(taxonomy)
    rows = load_rows(DATA_DIR / "safety.jsonl", splits={"train"})
    exemplars = [Exemplar(i + 1, r.text, r.category) for i, r in enumerate(rows)]
    rng = np.random.default_rng(0)
    vecs = rng.standard_normal((len(rows), encoder.dim)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    background = embed_background(encoder, args.cache)
    t0 = time.perf_counter()
    config = load_guard_config(args.scoring_config) if args.scoring_config else GuardConfig()
    guard = Guard.from_vectors(encoder, labels, exemplars, vecs, config, background.generic)
    print(f"guard with {len(guard)} exemplars built in {time.perf_counter() - t0:.0f}s", file=sys.stderr)
    hwu = load_splits(args.data / "hwu64")["train"]
    by_label: dict[str, list[str]] = {}
    for r in hwu:
        by_label.setdefault(r.label, []).append(r.text)
    names = sorted(by_label)[: args.repeats]
    library: list[float] = []
    encode_only: list[float] = []
    index_only: list[float] = []
    topic_vectors: list[Vec] = []
    next_id = len(rows) + 10
    for n, name in enumerate(names):
        texts = by_label[name][:20]
        ex = [Exemplar(next_id + j, t, f"bench_{n}") for j, t in enumerate(texts)]
        next_id += len(ex)
        t0 = time.perf_counter()
        v = guard.embed(texts)
        t1 = time.perf_counter()
        guard.upsert_label(Label(f"bench_{n}", "custom"))
        guard.add_exemplars(ex, v)
        t2 = time.perf_counter()
        encode_only.append(t1 - t0)
        index_only.append(t2 - t1)
        library.append(t2 - t0)
        topic_vectors.append(v)
    print(f"library (embed + upsert_label + add_exemplars, {len(guard)} exemplars): {_percentiles(library)}")
    print(f"  of which embedding 20 texts: {_percentiles(encode_only)}")
    print(f"  of which upsert_label + add_exemplars (index, head, calibration): {_percentiles(index_only)}")
    classify_cost(topic_vectors, background, encoder.dim)
    api = api_latency(args, names, by_label)
    if api:
        print(f"POST /v1/topics (TestClient, SQLite, {api[1]} exemplars): {_percentiles(api[0])}")


def classify_cost(topic_vectors: list[Vec], background: Background, dim: int, repeats: int = 200) -> None:
    """Topic scoring of one query against N topics of 20 examples: all topics stacked (what `Guard` does) vs one
    `topic_scores` call per topic (what it did before). The embedding of the query is not included."""
    cfg = GuardConfig()
    negatives = background.head_negatives()
    query = topic_vectors[0][:1]
    for n in (1, 20, 100):
        topics = [topic_vectors[i % len(topic_vectors)] for i in range(n)]
        heads = [fit_topic_head(p, negatives, cfg.topic_head_l2)[0] for p in topics]
        bank = TopicBank.stack(
            [f"t{i}" for i in range(n)],
            topics,
            [np.zeros((0, dim), dtype=np.float32)] * n,
            [(h.weights, h.bias) for h in heads],
            cfg.topic_head_weight,
            dim,
        )
        t0 = time.perf_counter()
        for _ in range(repeats):
            topic_score_matrix(query, bank, cfg.topic_top_m, cfg.topic_knn_weight)
        stacked = (time.perf_counter() - t0) / repeats
        t0 = time.perf_counter()
        for _ in range(repeats):
            for p in topics:
                topic_scores(query, p, None, cfg.topic_top_m, cfg.topic_knn_weight)
        loop = (time.perf_counter() - t0) / repeats
        print(f"topic scoring, 1 query x {n} topics: stacked {1000 * stacked:.2f} ms, loop {1000 * loop:.2f} ms")


def api_latency(
    args: argparse.Namespace, names: list[str], by_label: dict[str, list[str]]
) -> tuple[list[float], int] | None:
    """End-to-end POST /v1/topics (HTTP + DB + embed + index + calibration) on a TestClient app, real encoder.

    `--home` points at a built lightguard home (the full shipped index); without it the app seeds the small test
    fixtures (tests/service/fixtures) into a temporary home, so the index is small and the library timing above is the
    one that covers a 24k-exemplar index.
    """
    import tempfile

    from fastapi.testclient import TestClient

    from service.app import create_app
    from service.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        if args.home is not None:
            settings = Settings(home=args.home, model_dir=REPO / "models" / args.encoders[0])
        else:
            settings = Settings(
                home=Path(tmp),
                data_dir=REPO / "tests" / "service" / "fixtures",
                model_dir=REPO / "models" / args.encoders[0],
                decision_log=False,
            )
        samples: list[float] = []
        with TestClient(create_app(settings)) as client:
            deadline = time.monotonic() + 1800
            while client.get("/readyz").status_code != 200:
                if time.monotonic() > deadline:
                    raise SystemExit("index not ready after 30 minutes")
                time.sleep(0.5)  # polling the readiness probe
            count = int(client.get("/v1/index").json().get("count", 0))
            for n, name in enumerate(names):
                body = {"name": f"bench_api_{n}", "examples": by_label[name][:20]}
                t0 = time.perf_counter()
                r = client.post("/v1/topics", json=body)
                samples.append(time.perf_counter() - t0)
                if r.status_code != 201:
                    raise SystemExit(f"POST /v1/topics failed: {r.status_code} {r.text}")
                client.delete(f"/v1/topics/{r.json()['id']}")
    return samples, count
