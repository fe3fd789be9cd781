"""Does the int8 export change verdicts? Each encoder indexes the shipped exemplars and scores the same dev rows.

    .venv/bin/python -m benchmarks.evaluation.quantization [--rows 2000] [--model-dir models/base] [--also DIR ...]

For `--model-dir` (fp32 and int8) and every `--also` directory (its int8 graph, e.g. an earlier export kept for
comparison) a guard is built from scratch over the labels, exemplars and scoring config of the guard the service
holds (LIGHTGUARD_HOME, default var/bench-home), then a seeded sample of labelled `dev` rows is scored. Prints
one table: cosine of each query vector to its fp32 vector (min over 1–3-token texts and over the rest, mean), AUPRC,
decisions that differ from fp32's, and single-prompt encode p50. Building each index embeds ~24k texts (a minute or
two on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.layout import DATA_DIR, REPO


def main() -> None:
    from index import Guard, OnnxEncoder, load_rows
    from index.evaluation import average_precision
    from service.context import open_guard
    from service.serving.runtime import configure_threads
    from service.settings import Settings
    from service.usecases.seed import load_background

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", type=Path, default=Path(os.environ.get("LIGHTGUARD_HOME", REPO / "var" / "bench-home")))
    ap.add_argument("--model-dir", type=Path, default=REPO / "models" / "base")
    ap.add_argument("--also", type=Path, nargs="*", default=[], help="other model directories (their int8 graph)")
    ap.add_argument("--rows", type=int, default=2000)
    args = ap.parse_args()

    configure_threads(1)
    settings = Settings(home=args.home)
    served = open_guard(settings)  # the labels, exemplars and scoring config the service holds
    labels = list(served.labels.values())
    exemplars = [served.exemplars[i] for i in sorted(served.exemplars)]
    background = load_background(settings.resolved_data_dir)
    dev = load_rows(DATA_DIR / "safety.jsonl", splits={"dev"})
    pick = np.random.default_rng(0).choice(len(dev), min(args.rows, len(dev)), replace=False)
    texts = [dev[i].text for i in pick]
    unsafe = np.asarray([dev[i].category != "safe" for i in pick])

    encoders = [("fp32", OnnxEncoder(args.model_dir, "fp32", threads=2))]
    encoders.append((f"int8 ({args.model_dir.name})", OnnxEncoder(args.model_dir, "int8", threads=2)))
    encoders += [(f"int8 ({d.name})", OnnxEncoder(d, "int8", threads=2)) for d in args.also]
    lengths = np.asarray([len(spans) for spans in encoders[0][1].token_spans(texts)])
    tiny = lengths <= 3
    print(f"{len(exemplars):,} exemplars, {len(texts):,} dev rows ({unsafe.mean():.0%} unsafe, {tiny.sum()} tiny)")
    print("| encoder | min cos (1–3 tokens) | min cos (rest) | mean cos | AUPRC | decisions ≠ fp32 | encode p50 ms |")
    print("|---|---|---|---|---|---|---|")
    reference: tuple[np.ndarray, np.ndarray] | None = None
    for name, encoder in encoders:
        start = time.perf_counter()
        guard = Guard.build(encoder, labels, exemplars, served.config, background)
        built = time.perf_counter() - start
        queries = guard.embed(texts)
        verdicts = guard.score_vectors(queries)
        scores = np.asarray([v.score for v in verdicts])
        flags = np.asarray([v.flagged for v in verdicts])
        if reference is None:
            reference = (queries, flags)
        cos = (queries * reference[0]).sum(axis=1)
        tiny_min = f"{cos[tiny].min():.4f}" if tiny.any() else "–"
        probe = ["How do I reset my password for the online banking app?"]
        samples = []
        for _ in range(50):
            t = time.perf_counter()
            encoder.encode(probe)
            samples.append(time.perf_counter() - t)
        print(
            f"| {name} | {tiny_min} | {cos[~tiny].min():.4f} | {cos.mean():.4f} | "
            f"{average_precision(scores, unsafe):.4f} | {int((flags != reference[1]).sum())} | "
            f"{np.median(samples) * 1000:.2f} |",
            flush=True,
        )
        print(f"  (index built in {built:.0f} s)", file=sys.stderr)
    print(json.dumps({"rows": len(texts), "exemplars": len(exemplars)}), file=sys.stderr)


if __name__ == "__main__":
    main()
