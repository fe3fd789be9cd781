"""IVF search latency and recall@10 against nprobe on one 1M-vector synthetic index.

    .venv/bin/python scripts/sweep_nprobe.py      # ~3 min on 2 cores, ~4 GB of memory

Builds one IVF store with the service's defaults (nlist ~2·sqrt(n)) over 1M clustered unit vectors (2,000 random
centres plus noise; scripts/bench.py's scale section draws its centres differently), then, for each nprobe, times
200 single-query searches (k=10, one thread, as the service searches) and measures recall against exact search.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    from index.store import VectorStore
    from service.runtime import configure_threads

    configure_threads(1)
    rng = np.random.default_rng(0)
    dim, n = 384, 1_000_000
    centres = rng.normal(size=(2000, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    vecs = np.empty((n, dim), np.float32)
    for s in range(0, n, 100_000):
        chunk = centres[rng.integers(0, len(centres), 100_000)] + 0.02 * rng.normal(size=(100_000, dim))
        vecs[s : s + 100_000] = chunk / np.linalg.norm(chunk, axis=1, keepdims=True)
    queries = centres[rng.integers(0, len(centres), 200)] + 0.02 * rng.normal(size=(200, dim))
    queries = (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype(np.float32)
    sims = np.concatenate([queries @ vecs[s : s + 200_000].T for s in range(0, n, 200_000)], axis=1)
    exact = np.argsort(-sims, axis=1)[:, :10]
    start = time.perf_counter()
    store = VectorStore(dim, "sweep", ann_threshold=0)
    store.add(range(n), vecs)
    print(f"build {time.perf_counter() - start:.1f} s, nlist {store._index.nlist}", flush=True)
    for nprobe in (8, 12, 16, 24, 32):
        for i in range(5):
            store.search(queries[i : i + 1], 10, nprobe)
        samples = []
        for i in range(200):
            t = time.perf_counter()
            store.search(queries[i : i + 1], 10, nprobe)
            samples.append(time.perf_counter() - t)
        found = store.search(queries, 10, nprobe)[1]
        recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, exact, strict=True)])
        p50, p99 = np.median(samples) * 1000, np.percentile(samples, 99) * 1000
        print(f"nprobe {nprobe}: p50 {p50:.2f} ms, p99 {p99:.2f} ms, recall@10 {recall:.3f}", flush=True)


if __name__ == "__main__":
    main()
