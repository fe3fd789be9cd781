"""How far the committed seed-vector pack is from this CPU's own vectors, and whether it changes a verdict.

    .venv/bin/python -m benchmarks.evaluation.seed_pack_drift [--sample 3000]      # ~3 min on 2 cores (cache warm)

The pack (data/seed-vectors.json) holds the seed texts' vectors as one machine's ONNX Runtime int8 kernels computed
them, and its key names the model, not the CPU. Since the export's weights are 7-bit (index/encoding/export.py),
AVX2, AVX-512 VNNI and AMX kernels compute the same integer sums; only float rounding outside them can differ (with
8-bit weights, an AVX2-made pack was at mean cosine 0.992 from an AMX CPU's vectors and 1.4 % of verdicts flipped).
Run it on a CPU of another kind than the pack's maker (the manifest's `made_on`) to see what is left. This prints
(1) the cosine of `--sample` seed texts' pack vectors to the vectors this machine computes for them, and (2) the
random split scored with the shipped scoring (data/scoring.json) twice — exemplars from this machine's vectors
(`benchmarks.evaluation`'s cache) and from the pack's, queries always this machine's: AUPRC, per-family rates and the
share of verdicts that differ.
"""

from __future__ import annotations

import argparse
import copy
import random

import numpy as np

from benchmarks.evaluation.decisions import flags, shipped_scoring
from benchmarks.evaluation.evaluate import family_table
from benchmarks.evaluation.vectors import Embeddings, FoldScores, taxonomy_labels
from benchmarks.layout import DATA_DIR, REPO
from index import SAFE, GuardConfig, OnnxEncoder
from index.config import load_guard_config
from index.cpu import int8_isa
from index.datasets import load_rows
from index.encoding.cache import encoder_key
from index.encoding.seed_pack import SeedPackManifest, SeedVectorPack
from index.evaluation import binary_metrics
from index.taxonomy import load_taxonomy
from index.text import normalize_text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sample", type=int, default=3000, help="seed texts re-encoded for the cosine")
    args = ap.parse_args()
    encoder = OnnxEncoder(REPO / "models" / "base", "int8")  # what data/seed-vectors.json is made for
    key = encoder_key(encoder)
    pack = SeedVectorPack(DATA_DIR / "seed-vectors.json")
    rows = load_rows(DATA_DIR / "safety.jsonl")
    split = np.asarray([r.split for r in rows])
    train = np.flatnonzero(split == "train")
    packed, hit = pack.get(key, [normalize_text(rows[i].text) for i in train], encoder.dim)
    if not hit.any():
        raise SystemExit(f"the pack was not made for {key!r}: nothing to compare")
    made_on = SeedPackManifest.read(DATA_DIR / "seed-vectors.json").made_on or "not recorded"
    print(
        f"CPU int8: {int8_isa()}, the pack's maker: {made_on}; "
        f"pack covers {hit.mean():.1%} of the {len(train)} train rows"
    )

    sample = [int(i) for i in np.flatnonzero(hit)]
    random.Random(0).shuffle(sample)
    sample = sample[: args.sample]
    fresh = encoder.encode([normalize_text(rows[train[i]].text) for i in sample])
    cos = np.sum(packed[sample] * fresh, axis=1) / np.linalg.norm(packed[sample], axis=1)  # fresh rows are unit
    print(
        f"cosine, pack vs this CPU ({len(sample)} texts): mean {cos.mean():.4f}, p1 {np.percentile(cos, 1):.4f}, "
        f"min {cos.min():.4f}"
    )

    config = GuardConfig()
    taxonomy = load_taxonomy(DATA_DIR / "taxonomy.toml")
    labels = taxonomy_labels(taxonomy)
    own = Embeddings(encoder, rows, config, REPO / "var" / "cache")
    from_pack = copy.copy(own)
    from_pack.exemplars = own.exemplars.copy()
    from_pack.exemplars[train[hit]] = packed[hit]
    family = np.asarray([r.family for r in rows])
    unsafe = np.asarray([r.category != SAFE for r in rows])
    query = split != "train"
    q_split, q_family, q_y = split[query], family[query], unsafe[query]
    cuts = load_guard_config(DATA_DIR / "scoring.json").category_thresholds
    verdicts = {}
    for name, emb in (("this CPU's vectors", own), ("the pack's vectors", from_pack)):
        scores = FoldScores(encoder, labels, rows, emb, split == "train", query, config)
        shipped = shipped_scoring(DATA_DIR / "scoring.json", scores.windows)
        assert shipped is not None, "data/scoring.json does not match this evaluation's scorers"
        combo, platt, threshold = shipped
        verdicts[name] = flags(scores, combo, platt, threshold, cuts)
        calibrated = platt.apply(scores.fused(combo))
        for which in ("dev", "test"):
            keep = q_split == which
            print(f"{name}, {which}: AUPRC {binary_metrics(calibrated[keep], q_y[keep], threshold).auprc:.4f}")
        print("\n".join(family_table([(name, combo, platt, threshold, cuts)], scores, q_split, q_y, q_family, {})[0]))
    differ = verdicts["this CPU's vectors"] != verdicts["the pack's vectors"]
    print(f"verdicts that differ: {int(differ.sum())} of {len(differ)} ({differ.mean():.2%})")


if __name__ == "__main__":
    main()
