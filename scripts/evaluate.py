"""Random-split and out-of-source evaluation of kNN, centroid, linear-head and fused scoring; tunes on dev only.

Out-of-source: whole source families are held out in folds (each fold holds both classes), the index is built
from the remaining train rows, and the fold's rows are scored. Fusion weights, temperatures and k are chosen by
mean AUPRC over the folds' *dev* rows; Platt scaling and the threshold by the pooled out-of-source dev scores.
Test rows are only reported, never used to choose. Run: `.venv/bin/python scripts/evaluate.py [--write-config]`.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from index import SAFE, Exemplar, Guard, GuardConfig, Label, fit_platt, normalize_text, split_windows
from index.calibration import Platt
from index.datasets import DatasetRow, default_data_dir, load_rows
from index.encoder import Encoder
from index.evaluation import BinaryMetrics, binary_metrics, plot_pr_curves
from index.taxonomy import load_taxonomy

REPO = Path(__file__).resolve().parent.parent
# Each fold holds out families that together contain both classes, so AUPRC is defined on the fold alone.
FOLDS: dict[str, tuple[str, ...]] = {
    "jailbreak-vs-roleplay": ("jailbreak", "roleplay"),
    "real-chat": ("real-chat",),
    "toxicity": ("toxicity",),
    "instructions": ("harmful-instructions", "benign-instructions", "lookalike"),
    "self-harm-posts": ("self-harm-posts",),
}
LOOKALIKE_FAMILIES = ("lookalike",)
KS = (8, 16, 32)
TEMPERATURES = (0.02, 0.05, 0.1)
STEP = 0.1


class Embeddings:
    """Exemplar vectors (whole text, as indexed) and window vectors (as classified) for every row, cached on disk."""

    def __init__(self, encoder: Encoder, rows: Sequence[DatasetRow], config: GuardConfig, cache_dir: Path) -> None:
        key = hashlib.sha256(
            "\n".join(
                [encoder.model_id, str(config.window_tokens), str(config.window_overlap)] + [r.text for r in rows]
            ).encode()
        ).hexdigest()[:16]
        path = cache_dir / f"emb-{key}.npz"
        if path.exists():
            data = np.load(path)
            self.exemplars, self.windows, self.owners = data["exemplars"], data["windows"], data["owners"]
            return
        t0 = time.perf_counter()
        probe = Guard(encoder, [], config)
        self.exemplars = probe.embed([r.text for r in rows], progress=_progress("exemplars"))
        # A row that fits one window is classified exactly as it is indexed: reuse its exemplar vector.
        pieces: list[np.ndarray] = []
        owners: list[int] = []
        long_windows: list[str] = []
        long_owners: list[int] = []
        for n, row in enumerate(rows):
            parts = split_windows(encoder, normalize_text(row.text), config.window_overlap, config.window_tokens)
            if len(parts) == 1:
                owners.append(n)
            else:
                long_windows.extend(parts)
                long_owners.extend([n] * len(parts))
        pieces.append(self.exemplars[owners])
        pieces.append(probe.embed(long_windows, progress=_progress("windows")))
        self.windows = np.concatenate(pieces, axis=0)
        self.owners = np.asarray(owners + long_owners, dtype=np.int64)
        cache_dir.mkdir(parents=True, exist_ok=True)
        np.savez(path, exemplars=self.exemplars, windows=self.windows, owners=self.owners)
        print(
            f"embedded {len(rows)} rows + {len(long_windows)} windows in {time.perf_counter() - t0:.0f}s",
            file=sys.stderr,
        )


def _progress(what: str):  # type: ignore[no-untyped-def]
    last = [0.0]

    def report(done: int, total: int) -> None:
        if time.perf_counter() - last[0] > 10 or done == total:
            last[0] = time.perf_counter()
            print(f"  {what}: {done}/{total}", file=sys.stderr)

    return report


class FoldScores:
    """Unsafe score of each scorer variant for every window of the query rows; rows score as their worst window."""

    def __init__(
        self,
        encoder: Encoder,
        labels: list[Label],
        rows: Sequence[DatasetRow],
        emb: Embeddings,
        index_mask: np.ndarray,
        query_mask: np.ndarray,
        config: GuardConfig,
    ) -> None:
        ids = np.flatnonzero(index_mask)
        exemplars = [Exemplar(int(i), rows[i].text, rows[i].category) for i in ids]
        guard = Guard.from_vectors(encoder, labels, exemplars, emb.exemplars[ids], config)
        safe_col = guard.builtin_labels.index(SAFE)
        win = np.flatnonzero(query_mask[emb.owners])
        position = np.cumsum(query_mask) - 1  # row index -> position among query rows
        self.owner = position[emb.owners[win]]
        self.n = int(query_mask.sum())
        vecs = emb.windows[win]
        self.labels = guard.builtin_labels
        self.safe_col = safe_col
        self.dists: dict[str, np.ndarray] = {}
        for k, t in itertools.product(KS, TEMPERATURES):
            guard.config = replace(config, k=k, knn_temperature=t, centroid_temperature=t)
            d = guard.builtin_distributions(vecs)
            self.dists[f"knn k={k} T={t}"] = d["knn"]
            if k == KS[0]:
                self.dists[f"centroid T={t}"] = d["centroid"]
            if k == KS[0] and t == TEMPERATURES[0] and "head" in d:
                self.dists["head"] = d["head"]
        self.windows = {name: 1.0 - dist[:, safe_col] for name, dist in self.dists.items()}

    def top_category(self, combo: dict[str, float]) -> np.ndarray:
        """Per row: the most probable unsafe category of its worst window (what a verdict reports)."""
        dist = sum(w * self.dists[name] for name, w in combo.items())
        unsafe = 1.0 - dist[:, self.safe_col]
        dist = dist.copy()
        dist[:, self.safe_col] = -1.0
        top = np.argmax(dist, axis=1)
        worst = np.full(self.n, -1)
        best = np.full(self.n, -np.inf)
        for w, (row, score) in enumerate(zip(self.owner, unsafe, strict=True)):
            if score > best[row]:
                best[row], worst[row] = score, w
        return np.asarray([self.labels[top[w]] for w in worst])

    def fused(self, combo: dict[str, float]) -> np.ndarray:
        """Per-row score: the weighted sum per window (as the product fuses), then the worst window."""
        per_window = sum(w * self.windows[name] for name, w in combo.items())
        out = np.full(self.n, -np.inf)
        np.maximum.at(out, self.owner, per_window)
        return np.clip(out, 1e-6, 1 - 1e-6)


def evaluate(args: argparse.Namespace) -> None:
    from index.onnx_encoder import OnnxEncoder

    config = GuardConfig()
    encoder = OnnxEncoder(Path(args.model_dir), variant=args.variant)
    taxonomy = load_taxonomy()
    labels = [Label(c.id, "safe" if c.id == SAFE else "builtin", action=c.action) for c in taxonomy.categories]
    rows = load_rows(Path(args.data) if args.data else None)
    if args.limit:
        rows = rows[:: max(1, len(rows) // args.limit)]
    emb = Embeddings(encoder, rows, config, REPO / "var" / "cache")
    split = np.asarray([r.split for r in rows])
    family = np.asarray([r.family for r in rows])
    unsafe = np.asarray([r.category != SAFE for r in rows])
    known = set(family.tolist())
    folds = {name: fams for name, fams in FOLDS.items() if set(fams) & known}

    # ---- out-of-source folds
    oos: dict[str, dict[str, Any]] = {}
    for name, fams in folds.items():
        held = np.isin(family, fams)
        t0 = time.perf_counter()
        query = held & (split != "train")
        scores = FoldScores(encoder, labels, rows, emb, (split == "train") & ~held, query, config)
        oos[name] = {"scores": scores, "split": split[query], "y": unsafe[query]}
        print(f"fold {name}: {int(held.sum())} rows held out ({time.perf_counter() - t0:.0f}s)", file=sys.stderr)
    # ---- random split: index = every train row
    rnd_mask = split != "train"
    rnd = FoldScores(encoder, labels, rows, emb, split == "train", rnd_mask, config)
    rnd_split, rnd_y, rnd_family = split[rnd_mask], unsafe[rnd_mask], family[rnd_mask]

    candidates = candidate_fusions(rnd.windows)

    def fold_auprc(combo: dict[str, float], which: str) -> list[float]:
        res = []
        for fold in oos.values():
            keep = fold["split"] == which
            s = fold["scores"].fused(combo)[keep]
            res.append(binary_metrics(s, fold["y"][keep], 0.5).auprc)
        return res

    ranked = sorted(candidates, key=lambda c: -float(np.nanmean(fold_auprc(c, "dev"))))
    best = ranked[0]
    pooled_raw = np.concatenate([f["scores"].fused(best)[f["split"] == "dev"] for f in oos.values()])
    pooled_y = np.concatenate([f["y"][f["split"] == "dev"] for f in oos.values()])
    platt = fit_platt(pooled_raw, pooled_y)
    # One threshold for all traffic: the best mean F1 over the dev sets, each out-of-source fold and the random split
    # counted once (pooling would let the biggest fold decide; the random split stands for in-source traffic). F1 is
    # taken at the deployment prevalence (--prevalence): our dev sets are 50-70 % unsafe, real traffic is mostly
    # benign, and an F1 cut chosen at 60 % prevalence flags benign look-alikes far too often.
    dev_sets = [
        (platt.apply(f["scores"].fused(best)[f["split"] == "dev"]), f["y"][f["split"] == "dev"]) for f in oos.values()
    ]
    dev_sets.append((platt.apply(rnd.fused(best)[rnd_split == "dev"]), rnd_y[rnd_split == "dev"]))
    grid = np.round(np.arange(0.05, 0.96, 0.01), 2)
    mean_f1 = [np.mean([f1_at_prevalence(s, y, t, args.prevalence) for s, y in dev_sets]) for t in grid]
    threshold = float(grid[int(np.argmax(mean_f1))])
    category_thresholds = fit_category_thresholds(
        [(f["scores"], f["split"] == "dev", f["y"]) for f in oos.values()] + [(rnd, rnd_split == "dev", rnd_y)],
        best,
        platt,
        threshold,
        grid,
        args.prevalence,
    )
    # Sixteen more parameters must earn their place on dev: adopt them only for a clear mean-F1 gain over the dev sets.
    gain = category_threshold_gain(
        [(f["scores"], f["split"] == "dev", f["y"]) for f in oos.values()] + [(rnd, rnd_split == "dev", rnd_y)],
        best,
        platt,
        threshold,
        category_thresholds,
        args.prevalence,
    )
    print(f"per-category thresholds: {category_thresholds} (dev mean F1 gain {gain:+.4f})", file=sys.stderr)
    if gain < MIN_CATEGORY_GAIN:
        print(f"not adopted: gain below {MIN_CATEGORY_GAIN}", file=sys.stderr)
        category_thresholds = {}

    singles = {
        "kNN only": best_single(candidates, "knn", fold_auprc),
        "centroid only": best_single(candidates, "centroid", fold_auprc),
        "linear head only": {"head": 1.0},
        "fused (chosen)": best,
    }
    report = {
        "category_thresholds": category_thresholds,
        "config": best,
        "platt": asdict(platt),
        "threshold": threshold,
        "model_id": encoder.model_id,
        "rows": len(rows),
        "folds": {n: list(f) for n, f in folds.items()},
        "results": {},
    }

    def per_category(combo: dict[str, float]) -> dict[str, float]:
        return category_thresholds if combo == best else {}

    lines = [
        "| scorer | eval set | n | AUPRC | F1 | precision | recall | accuracy | FPR | look-alike FPR |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for title, combo in singles.items():
        for which in ("dev", "test"):
            for fold_name, fold in oos.items():
                keep = fold["split"] == which
                m = decision_metrics(
                    fold["scores"], keep, fold["y"][keep], combo, platt, threshold, per_category(combo)
                )
                report["results"][f"{title}|oos:{fold_name}|{which}"] = m.as_dict()
                lines.append(row_md(title, f"out-of-source {fold_name} ({which})", m, None))
            keep = rnd_split == which
            m = decision_metrics(rnd, keep, rnd_y[keep], combo, platt, threshold, per_category(combo))
            look = np.isin(rnd_family, LOOKALIKE_FAMILIES) & keep
            look_m = decision_metrics(rnd, look, rnd_y[look], combo, platt, threshold, per_category(combo))
            look_fpr = look_m.fpr if look.any() else float("nan")
            report["results"][f"{title}|random|{which}"] = m.as_dict() | {"lookalike_fpr": look_fpr}
            lines.append(row_md(title, f"random split ({which})", m, look_fpr))
    mean_lines = ["| scorer | mean out-of-source AUPRC (dev) | mean out-of-source AUPRC (test) |", "|---|---|---|"]
    for title, combo in singles.items():
        mean_lines.append(
            f"| {title} | {np.nanmean(fold_auprc(combo, 'dev')):.3f} | {np.nanmean(fold_auprc(combo, 'test')):.3f} |"
        )
    print("\n".join(mean_lines))
    print()
    print("\n".join(lines))
    print(f"\nchosen: {best}  platt={platt}  threshold={threshold:.3f}")
    out_dir = REPO / "reports"
    out_dir.mkdir(exist_ok=True)
    # one file per model and variant: evaluating a second encoder must not overwrite the base's report
    suffix = "" if (args.name, args.variant) == ("base", "int8") else f"-{args.name}-{args.variant}"
    (out_dir / f"evaluate{suffix}.json").write_text(json.dumps(report, indent=2, default=float))
    keep = rnd_split == "test"
    # docs/results.md shows the default run's curves; any other model's go beside its report, not into docs/
    image = REPO / "docs" / "img" / "pr-base-random-test.png" if not suffix else out_dir / f"pr{suffix}-random-test.png"
    plot_pr_curves(
        {t: (rnd.fused(c)[keep], rnd_y[keep]) for t, c in singles.items()},
        image,
        f"{args.name} encoder, random split (test)",
    )
    if args.write_config:
        write_scoring_config(best, platt, threshold, category_thresholds, encoder.model_id)


MIN_CATEGORY_ROWS = 150
MIN_CATEGORY_GAIN = 0.01
SHRINK_ROWS = 300


def fit_category_thresholds(
    sets: list[tuple[FoldScores, np.ndarray, np.ndarray]],
    combo: dict[str, float],
    platt: Platt,
    global_threshold: float,
    grid: np.ndarray,
    prevalence: float,
) -> dict[str, float]:
    """A threshold per built-in category, for rows whose top category it is, on dev rows only.

    Rows of every dev set are pooled by predicted category; a category needs MIN_CATEGORY_ROWS rows with both
    classes, and its best prevalence-weighted F1 cut is shrunk towards the global threshold by n / (n + SHRINK_ROWS)
    so that a small category cannot swing far on a few rows.
    """
    scores, cats, ys = [], [], []
    for fold, keep, y in sets:
        scores.append(platt.apply(fold.fused(combo))[keep])
        cats.append(fold.top_category(combo)[keep])
        ys.append(y[keep])
    s, c, y = np.concatenate(scores), np.concatenate(cats), np.concatenate(ys)
    out: dict[str, float] = {}
    for category in sorted(set(c.tolist())):
        rows = c == category
        n, pos = int(rows.sum()), int(y[rows].sum())
        if n < MIN_CATEGORY_ROWS or pos < 20 or n - pos < 20:
            continue
        f1 = [f1_at_prevalence(s[rows], y[rows], t, prevalence) for t in grid]
        best = float(grid[int(np.argmax(f1))])
        shrink = n / (n + SHRINK_ROWS)
        out[category] = round(shrink * best + (1 - shrink) * global_threshold, 3)
    return out


def category_threshold_gain(
    sets: list[tuple[FoldScores, np.ndarray, np.ndarray]],
    combo: dict[str, float],
    platt: Platt,
    threshold: float,
    category_thresholds: dict[str, float],
    prevalence: float,
) -> float:
    """Mean over the dev sets of prevalence-weighted F1 with per-category thresholds minus without them."""
    diffs = []
    for fold, keep, y in sets:
        scores = platt.apply(fold.fused(combo))[keep]
        cuts = np.asarray([category_thresholds.get(c, threshold) for c in fold.top_category(combo)[keep]])
        with_cuts = f1_at_prevalence(scores - cuts + threshold, y[keep], threshold, prevalence)
        diffs.append(with_cuts - f1_at_prevalence(scores, y[keep], threshold, prevalence))
    return float(np.nanmean(diffs))


def decision_metrics(
    fold: FoldScores,
    keep: np.ndarray,
    y: np.ndarray,
    combo: dict[str, float],
    platt: Platt,
    threshold: float,
    category_thresholds: dict[str, float],
) -> BinaryMetrics:
    """Ranking metrics of the calibrated score; decision metrics as the product decides (per-category thresholds)."""
    scores = platt.apply(fold.fused(combo))[keep]
    ranking = binary_metrics(scores, y, threshold)
    if not category_thresholds:
        return ranking
    cuts = np.asarray([category_thresholds.get(c, threshold) for c in fold.top_category(combo)[keep]])
    decided = binary_metrics(scores - cuts + threshold, y, threshold)
    return replace(decided, auprc=ranking.auprc, roc_auc=ranking.roc_auc)


def f1_at_prevalence(scores: np.ndarray, unsafe: np.ndarray, threshold: float, prevalence: float) -> float:
    """F1 with the negatives re-weighted so that unsafe rows make up `prevalence` of the set."""
    pos, neg = int(unsafe.sum()), int((~unsafe).sum())
    if pos == 0 or neg == 0:
        return float("nan")
    weight = (pos / neg) * (1 - prevalence) / prevalence
    pred = scores >= threshold
    tp = float((pred & unsafe).sum())
    fp = float((pred & ~unsafe).sum()) * weight
    fn = float((~pred & unsafe).sum())
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def candidate_fusions(scores: dict[str, np.ndarray]) -> list[dict[str, float]]:
    knn_names = [n for n in scores if n.startswith("knn")]
    cent_names = [n for n in scores if n.startswith("centroid")]
    has_head = "head" in scores
    grid = np.round(np.arange(0, 1 + 1e-9, STEP), 3)
    out = []
    for kn, cn in itertools.product(knn_names, cent_names):
        for wk, wc in itertools.product(grid, grid):
            wh = round(1 - wk - wc, 3)
            if wh < -1e-9 or (wh > 0 and not has_head):
                continue
            combo = {kn: float(wk), cn: float(wc)} | ({"head": float(wh)} if has_head else {})
            out.append({k: v for k, v in combo.items() if v > 0})
    unique = {json.dumps(c, sort_keys=True) for c in out if c}
    return [json.loads(c) for c in sorted(unique)]


def best_single(candidates: list[dict[str, float]], prefix: str, fold_auprc) -> dict[str, float]:  # type: ignore[no-untyped-def]
    singles = [c for c in candidates if len(c) == 1 and next(iter(c)).startswith(prefix)]
    return max(singles, key=lambda c: float(np.nanmean(fold_auprc(c, "dev"))))


def row_md(title: str, where: str, m, look_fpr: float | None) -> str:  # type: ignore[no-untyped-def]
    look = "" if look_fpr is None else f"{look_fpr:.3f}"
    return (
        f"| {title} | {where} | {m.n} | {m.auprc:.3f} | {m.f1:.3f} | {m.precision:.3f} | {m.recall:.3f} | "
        f"{m.accuracy:.3f} | {m.fpr:.3f} | {look} |"
    )


def write_scoring_config(
    combo: dict[str, float], platt: Platt, threshold: float, category_thresholds: dict[str, float], model_id: str
) -> None:
    knn = next((n for n in combo if n.startswith("knn")), None)
    cent = next((n for n in combo if n.startswith("centroid")), None)
    defaults = GuardConfig()
    k = int(knn.split("k=")[1].split()[0]) if knn else defaults.k
    t_knn = float(knn.split("T=")[1]) if knn else defaults.knn_temperature
    t_cent = float(cent.split("T=")[1]) if cent else defaults.centroid_temperature
    path = default_data_dir() / "scoring.json"
    # Only the keys this evaluation chooses are replaced: deployment knobs set by hand (ann_threshold, the topic_*
    # settings) stay as they are.
    config: dict[str, object] = json.loads(path.read_text()) if path.is_file() else {}
    config |= {
        "k": k,
        "knn_temperature": t_knn,
        "centroid_temperature": t_cent,
        "weight_knn": combo.get(knn, 0.0) if knn else 0.0,
        "weight_centroid": combo.get(cent, 0.0) if cent else 0.0,
        "weight_head": combo.get("head", 0.0),
        "platt": asdict(platt),
        "threshold": round(threshold, 4),
        "category_thresholds": category_thresholds,
        "_chosen_with": model_id,
    }
    path.write_text(json.dumps(config, indent=2) + "\n")
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", default=os.environ.get("LIGHTGUARD_MODEL_DIR", str(REPO / "models" / "base")))
    parser.add_argument("--name", default="base")
    parser.add_argument("--variant", default="int8", choices=["int8", "fp32"])
    parser.add_argument("--data", default=None)
    parser.add_argument(
        "--prevalence", type=float, default=0.2, help="share of unsafe prompts assumed when choosing the threshold"
    )
    parser.add_argument("--limit", type=int, default=0, help="evaluate on about this many rows (smoke runs)")
    parser.add_argument("--write-config", action="store_true", help="write the chosen scoring to data/scoring.json")
    evaluate(parser.parse_args())


if __name__ == "__main__":
    main()
