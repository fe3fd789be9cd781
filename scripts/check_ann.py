"""Does approximate search change verdicts? The served guard (IVF above `ann_threshold`) against exact search.

    .venv/bin/python scripts/check_ann.py [--rows 2000] [--nprobe 16 32 64]

Loads the guard the service would serve (LIGHTGUARD_HOME, default var/bench-home), re-indexes its own vectors with
exact search, and scores a seeded sample of labelled `dev` rows both ways: top-k recall against exact, mean and
largest change of the calibrated unsafe score, decisions that flip, and AUPRC of each. Prints one table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> None:
    from index import Guard
    from index.evaluation import average_precision
    from service.context import open_guard
    from service.serving.runtime import configure_threads
    from service.settings import Settings

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", type=Path, default=Path(os.environ.get("LIGHTGUARD_HOME", REPO / "var" / "bench-home")))
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--nprobe", type=int, nargs="+", default=[16, 32, 64])
    args = ap.parse_args()

    configure_threads(1)
    served = open_guard(Settings(home=args.home))
    if served._store.backend != "ivf":
        sys.exit(f"the served index uses {served._store.backend} search; set ann_threshold below {len(served)}")
    rows = [json.loads(line) for line in (REPO / "data" / "safety.jsonl").open(encoding="utf-8")]
    dev = [r for r in rows if r["split"] == "dev"]
    pick = np.random.default_rng(0).choice(len(dev), min(args.rows, len(dev)), replace=False)
    texts = [dev[i]["text"] for i in pick]
    unsafe = np.asarray([dev[i]["category"] != "safe" for i in pick])
    queries = served.embed(texts)

    ids = sorted(served.exemplars)
    exact = Guard.from_vectors(
        served.encoder,
        served.labels.values(),
        [served.exemplars[i] for i in ids],
        served.vectors(ids),
        dataclasses.replace(served.config, ann_threshold=None),
        served.background,
    )
    k = served.config.k
    exact_ids = exact._store.search(queries, k)[1]
    exact_scores = np.asarray([v.score for v in exact.score_vectors(queries)])
    exact_flags = np.asarray([v.flagged for v in exact.score_vectors(queries)])
    print(f"{len(served):,} exemplars, {len(texts):,} dev rows ({unsafe.mean():.0%} unsafe), k={k}")
    print("| search | recall@k | mean abs score change | max | flipped decisions | AUPRC | search p50 ms |")
    print("|---|---|---|---|---|---|---|")
    print(f"| exact | 1 | 0 | 0 | 0 | {average_precision(exact_scores, unsafe):.4f} | {_p50(exact, queries):.2f} |")
    store = served._store
    for nprobe in args.nprobe:
        store.ann = dataclasses.replace(store.ann, nprobe=nprobe)
        found = store.search(queries, k)[1]
        recall = np.mean([len(set(a) & set(b)) / k for a, b in zip(found, exact_ids, strict=True)])
        verdicts = served.score_vectors(queries)
        scores = np.asarray([v.score for v in verdicts])
        flips = int((np.asarray([v.flagged for v in verdicts]) != exact_flags).sum())
        delta = np.abs(scores - exact_scores)
        print(
            f"| IVF nprobe {nprobe} | {recall:.3f} | {delta.mean():.4f} | {delta.max():.3f} | {flips} | "
            f"{average_precision(scores, unsafe):.4f} | {_p50(served, queries):.2f} |"
        )


def _p50(guard: object, queries: np.ndarray) -> float:
    store = guard._store  # type: ignore[attr-defined]
    times = []
    for q in queries[:300]:
        start = time.perf_counter()
        store.search(q[None, :], 32)
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1000)


if __name__ == "__main__":
    main()
