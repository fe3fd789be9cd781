"""How far a fine-tuned encoder moved from base: per dataset row, the cosine between the vector base gives it and the
one the fine-tune gives it (both int8 ONNX, whole text as indexed), overall and per source family.

    .venv/bin/python -m benchmarks.training.drift --model-dir models/cpu-softmax-distill2 [--model-dir ...]

Reads the evaluation's vector cache (var/cache, benchmarks.evaluation.evaluate) and embeds only what is missing
there. docs/ablation.md quotes it beside each anchored (`--distill`) fine-tune.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from benchmarks.evaluation.vectors import Embeddings
from benchmarks.layout import DATA_DIR, REPO
from index import GuardConfig, OnnxEncoder, load_rows


def drift_table(base: np.ndarray, tuned: np.ndarray, families: Sequence[str]) -> list[tuple[str, int, float, float]]:
    """(family, rows, mean cosine, 10th-percentile cosine) per family, then "all"; rows of unit vectors."""
    cosine = np.einsum("ij,ij->i", base, tuned)
    family = np.asarray(families)
    out = []
    for name in [*sorted(set(families)), "all"]:
        values = cosine if name == "all" else cosine[family == name]
        out.append((name, len(values), float(values.mean()), float(np.percentile(values, 10))))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default=str(REPO / "models" / "base"))
    parser.add_argument("--model-dir", action="append", required=True)
    args = parser.parse_args()
    rows = load_rows(DATA_DIR / "safety.jsonl")
    config = GuardConfig()
    cache = REPO / "var" / "cache"
    base = Embeddings(OnnxEncoder(Path(args.base)), rows, config, cache).exemplars
    families = [r.family for r in rows]
    for model_dir in args.model_dir:
        tuned = Embeddings(OnnxEncoder(Path(model_dir)), rows, config, cache).exemplars
        print(f"\n{model_dir}: cosine to base per row\n")
        print("| family | rows | mean | 10th percentile |\n|---|---:|---:|---:|")
        for name, n, mean, p10 in drift_table(base, tuned, families):
            print(f"| {name} | {n} | {mean:.3f} | {p10:.3f} |")


if __name__ == "__main__":
    main()
