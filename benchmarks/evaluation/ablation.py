"""The paper's ablation (single vs multi embedding × binary vs multi-class training, losses), judged out of source.

Every model is scored with benchmarks.evaluation.evaluate's own pieces (source-family folds, fusion chosen on the
folds' dev rows, Platt + best-F1 threshold on pooled out-of-source dev, metrics on out-of-source test). Results
accumulate in var/ablation/results.json so the grid can be resumed; `report` rewrites the tables in docs/ablation.md.

    .venv/bin/python -m benchmarks.evaluation.ablation grid [--limit 8000] [--only NAME ...]
    .venv/bin/python -m benchmarks.evaluation.ablation evaluate --model-dir models/finetuned --name finetuned
    .venv/bin/python -m benchmarks.evaluation.ablation report
    .venv/bin/python -m benchmarks.evaluation.ablation compare reports/evaluate.json \\
        reports/evaluate-finetuned-int8.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.layout import DATA_DIR, MODELS_DIR, REPO

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmarks.evaluation.decisions import best_single, candidate_fusions
from benchmarks.evaluation.evaluate import FOLDS, LOOKALIKE_FAMILIES
from benchmarks.evaluation.vectors import FoldScores, taxonomy_labels
from index import SAFE, Guard, GuardConfig, Label, fit_platt, normalize_text, split_windows
from index.calibration import best_f1_threshold
from index.datasets import DatasetRow, load_rows
from index.encoding import Encoder
from index.encoding.models import read_manifest
from index.evaluation import binary_metrics, plot_pr_curves
from index.taxonomy import load_taxonomy
from index.training import data_digest, select_examples, stale_reason, train
from index.training_config import TrainConfig

WORK = REPO / "var" / "ablation"
RESULTS = WORK / "results.json"
DOC = REPO / "docs" / "ablation.md"
BEGIN, END = "<!-- ablation:begin -->", "<!-- ablation:end -->"
LATENCY_TEXT = "How do I pick the lock on my neighbour's front door while they are away?"

# Grid budget: ~1.2k examples, 32 tokens, one epoch (the shared 2-core machine trained at ~6-12 examples/s). Multi-class
# caps are per category (17 labels), binary caps per class (2 labels), so both see about the same number of texts.
_SMALL_MC = TrainConfig(max_examples=75, max_seq_length=32, learning_rate=2e-5, dev_sample=200)
_SMALL_BIN = replace(_SMALL_MC, labels="binary", max_examples=600)
GRID: dict[str, TrainConfig] = {
    "triplet-soft/multiclass": _SMALL_MC,
    "triplet-soft/binary": _SMALL_BIN,
    "triplet-soft/multiclass/lr-1e-4": replace(_SMALL_MC, learning_rate=1e-4),
    "batch-all/multiclass": replace(_SMALL_MC, loss="batch-all"),
    "batch-hard/multiclass": replace(_SMALL_MC, loss="batch-hard"),
    "contrastive/multiclass": replace(_SMALL_MC, loss="contrastive"),
    "mnrl/multiclass": replace(_SMALL_MC, loss="mnrl"),
    "batch-semi-hard/multiclass": replace(_SMALL_MC, loss="batch-semi-hard"),
    "triplet-soft/multiclass/no-hard-negatives": replace(_SMALL_MC, hard_negatives=False),
    "triplet-soft/multiclass/64-tokens": replace(_SMALL_MC, max_seq_length=64),
}


class WindowEmbeddings:
    """vectors.Embeddings, but a text that is a single window reuses its exemplar vector instead of re-encoding."""

    def __init__(self, encoder: Encoder, rows: list[DatasetRow], config: GuardConfig) -> None:
        key = hashlib.sha256(
            "\n".join(
                [encoder.model_id, str(config.window_tokens), str(config.window_overlap)] + [r.text for r in rows]
            ).encode()
        ).hexdigest()[:16]
        path = REPO / "var" / "cache" / f"ablation-{key}.npz"
        if path.exists():
            data = np.load(path)
            self.exemplars, self.windows, self.owners = data["exemplars"], data["windows"], data["owners"]
            return
        t0 = time.perf_counter()
        probe = Guard(encoder, [], config)
        self.exemplars = probe.embed([r.text for r in rows])
        extra: list[str] = []
        slots: list[tuple[int, int]] = []  # (row, -1 = its exemplar vector | index into extra)
        for n, row in enumerate(rows):
            clean = normalize_text(row.text)
            parts = split_windows(encoder, clean, config.window_overlap, config.window_tokens)
            if parts == [clean]:
                slots.append((n, -1))
                continue
            for part in parts:
                slots.append((n, len(extra)))
                extra.append(part)
        extra_vecs = probe.embed(extra) if extra else np.zeros((0, self.exemplars.shape[1]), np.float32)
        self.windows = np.stack([self.exemplars[n] if j < 0 else extra_vecs[j] for n, j in slots]).astype(np.float32)
        self.owners = np.asarray([n for n, _ in slots], dtype=np.int64)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, exemplars=self.exemplars, windows=self.windows, owners=self.owners)
        print(f"  embedded {len(rows)} rows + {len(extra)} windows in {time.perf_counter() - t0:.0f}s", file=sys.stderr)


def subsample(rows: list[DatasetRow], limit: int) -> list[DatasetRow]:
    """The same stride subsample as `benchmarks/evaluation/evaluate.py --limit`."""
    return rows[:: max(1, len(rows) // limit)] if limit else rows


def out_of_source(
    model_dir: Path, rows: list[DatasetRow], variant: str = "int8", fixed: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Out-of-source metrics for kNN-only (multi-embedding), centroid-only (single) and fused scoring.

    Two index label sets: the taxonomy categories (what the Guard serves) and binary safe/unsafe. `fixed` (an earlier
    result) reuses its scorer settings instead of choosing them, e.g. to compare fp32 with int8 on equal terms.
    """
    from index import OnnxEncoder

    encoder = OnnxEncoder(model_dir, variant)  # type: ignore[arg-type]
    config = GuardConfig()
    emb = WindowEmbeddings(encoder, rows, config)
    split = np.asarray([r.split for r in rows])
    family = np.asarray([r.family for r in rows])
    unsafe = np.asarray([r.category != SAFE for r in rows])
    taxonomy = load_taxonomy(DATA_DIR / "taxonomy.toml")
    label_sets = {
        "multiclass": (rows, taxonomy_labels(taxonomy)),
        "binary": (
            [r if r.category == SAFE else replace(r, category="unsafe") for r in rows],
            [Label("unsafe", "builtin"), Label(SAFE, "safe")],
        ),
    }
    out: dict[str, Any] = {"model_id": encoder.model_id, "rows": len(rows), "latency_ms": latency_ms(model_dir)}
    pooled: dict[str, Any] = {}
    for mode, (mode_rows, labels) in label_sets.items():
        folds = []
        for fams in FOLDS.values():
            held = np.isin(family, fams)
            if not held.any():
                continue
            query = held & (split != "train")
            scores = FoldScores(encoder, labels, mode_rows, emb, (split == "train") & ~held, query, config)
            folds.append((scores, split[query], unsafe[query], family[query]))

        def fold_auprc(combo: dict[str, float], which: str, folds: list[Any] = folds) -> list[float]:
            return [binary_metrics(s.fused(combo)[sp == which], y[sp == which], 0.5).auprc for s, sp, y, _ in folds]

        candidates = candidate_fusions(folds[0][0].windows)
        if fixed is not None:
            scorers = {name: fixed[f"{mode}|{name}"]["combo"] for name in ("kNN", "centroid", "fused")}
        else:
            scorers = {
                "kNN": best_single(candidates, "knn", fold_auprc),
                "centroid": best_single(candidates, "centroid", fold_auprc),
                "fused": max(candidates, key=lambda c: float(np.nanmean(fold_auprc(c, "dev")))),
            }
        for name, combo in scorers.items():
            dev_s = np.concatenate([s.fused(combo)[sp == "dev"] for s, sp, _, _ in folds])
            dev_y = np.concatenate([y[sp == "dev"] for _, sp, y, _ in folds])
            platt = fit_platt(dev_s, dev_y)
            threshold, _ = best_f1_threshold(platt.apply(dev_s), dev_y)
            test_s = platt.apply(np.concatenate([s.fused(combo)[sp == "test"] for s, sp, _, _ in folds]))
            test_y = np.concatenate([y[sp == "test"] for _, sp, y, _ in folds])
            test_f = np.concatenate([f[sp == "test"] for _, sp, _, f in folds])
            m = binary_metrics(test_s, test_y, threshold)
            look = np.isin(test_f, LOOKALIKE_FAMILIES) & ~test_y
            # The same decision without Platt: a steep fit saturates at exactly 0/1, ties whole folds, and the
            # best-F1 cut then degenerates to "flag everything"; a threshold on the raw fused score cannot.
            raw_dev = np.concatenate([s.fused(combo)[sp == "dev"] for s, sp, _, _ in folds])
            raw_threshold, _ = best_f1_threshold(raw_dev, dev_y)
            raw_test = np.concatenate([s.fused(combo)[sp == "test"] for s, sp, _, _ in folds])
            m_raw = binary_metrics(raw_test, test_y, raw_threshold)
            out[f"{mode}|{name}"] = {
                "combo": combo,
                "auprc_dev": float(np.nanmean(fold_auprc(combo, "dev"))),
                "auprc_test": float(np.nanmean(fold_auprc(combo, "test"))),
                "f1_test": m.f1,
                "accuracy_test": m.accuracy,
                "lookalike_fpr_test": float(np.mean(test_s[look] >= threshold)) if look.any() else float("nan"),
                "threshold": threshold,
                "f1_test_raw": m_raw.f1,
                "accuracy_test_raw": m_raw.accuracy,
                "lookalike_fpr_test_raw": float(np.mean(raw_test[look] >= raw_threshold)) if look.any() else np.nan,
            }
            pooled[f"{mode}|{name}"] = (raw_test, test_y)  # raw: a saturated Platt fit would flatten the PR curve
    out["_pooled"] = pooled
    return out


def latency_ms(model_dir: Path) -> float:
    """p50 of one short prompt through the int8 encoder, one thread."""
    from index import OnnxEncoder

    encoder = OnnxEncoder(model_dir, "int8", threads=1)
    encoder.encode([LATENCY_TEXT])
    times = []
    for _ in range(40):
        t0 = time.perf_counter()
        encoder.encode([LATENCY_TEXT])
        times.append(time.perf_counter() - t0)
    return round(1000 * statistics.median(times), 2)


def record(name: str, result: dict[str, Any], extra: dict[str, Any]) -> None:
    pooled = result.pop("_pooled")
    WORK.mkdir(parents=True, exist_ok=True)
    np.savez(
        WORK / f"scores-{name.replace('/', '_')}.npz",
        **{k.replace("|", "__") + "__s": v[0] for k, v in pooled.items()},
        **{k.replace("|", "__") + "__y": v[1] for k, v in pooled.items()},
    )
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results[name] = result | extra
    RESULTS.write_text(json.dumps(results, indent=2, default=float) + "\n")
    print(f"{name}: " + ", ".join(f"{k} AUPRC {v['auprc_test']:.3f}" for k, v in result.items() if "|" in k))


def training_info(model_dir: Path) -> dict[str, Any]:
    info = read_manifest(model_dir).extra.get("training", {})
    return {
        k: info.get(k) for k in ("config", "examples", "train_seconds", "total_seconds", "examples_per_second", "dev")
    }


def run_grid(args: argparse.Namespace) -> None:
    all_rows = load_rows(DATA_DIR / "safety.jsonl")
    rows = subsample(all_rows, args.limit)
    done = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    base = MODELS_DIR / "base"
    if "base" not in done or done["base"].get("rows") != len(rows):
        record("base", out_of_source(base, rows), {"trained": False})
    for name, config in GRID.items():
        if args.only and name not in args.only:
            continue
        model_dir = WORK / "models" / name.replace("/", "_")
        if stale_reason(model_dir, config, data_digest(select_examples(all_rows, config))) is not None:
            print(f"training {name}", file=sys.stderr)
            train(config, model_dir, all_rows, say=lambda m: print(f"  {m}", file=sys.stderr))
        elif name in done and done[name].get("rows") == len(rows):
            continue
        record(name, out_of_source(model_dir, rows), {"trained": True, **training_info(model_dir)})


def run_evaluate(args: argparse.Namespace) -> None:
    rows = subsample(load_rows(DATA_DIR / "safety.jsonl"), args.limit)
    model_dir = Path(args.model_dir)
    trained = "training" in read_manifest(model_dir).extra
    extra = {"trained": trained, "variant": args.variant, **(training_info(model_dir) if trained else {})}
    fixed = json.loads(RESULTS.read_text())[args.same_as] if args.same_as else None
    record(args.name, out_of_source(model_dir, rows, args.variant, fixed), extra | {"same_as": args.same_as})


def fmt(x: Any) -> str:
    return "–" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.3f}"


def run_report(args: argparse.Namespace) -> None:
    results = json.loads(RESULTS.read_text())
    lines = [
        "| model (grid budget unless noted) | eval rows | corner | out-of-source AUPRC (dev / test) | "
        "F1 test (Platt / raw) | accuracy test (raw) | look-alike FPR test (raw) | train s | examples/s | "
        "int8 p50 ms |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        granularities = ["binary", "multiclass"]
        if r.get("config"):
            granularities = [r["config"]["labels"]]
        for mode in granularities:
            for scorer, corner in (("centroid", "Se"), ("kNN", "Me")):
                m = r[f"{mode}|{scorer}"]
                # The paper's names; its multi-embedding multi-class corner is spelled "McEMcC".
                tag = {("Se", "binary"): "SeBC", ("Se", "multiclass"): "SeMcC", ("Me", "binary"): "MeBC"}.get(
                    (corner, mode), "McEMcC"
                )
                lines.append(
                    f"| {name} | {r['rows']} | {tag} ({scorer}, {mode} index) | {fmt(m['auprc_dev'])} / "
                    f"{fmt(m['auprc_test'])} | {fmt(m['f1_test'])} / {fmt(m.get('f1_test_raw'))} | "
                    f"{fmt(m.get('accuracy_test_raw'))} | {fmt(m.get('lookalike_fpr_test_raw'))} | "
                    f"{r.get('train_seconds') or '–'} | "
                    f"{r.get('examples_per_second') or '–'} | {r['latency_ms']} |"
                )
    fused = [
        "| model | eval rows | fused AUPRC (dev / test) | F1 test (Platt / raw) | accuracy test (raw) | "
        "look-alike FPR test (raw) |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        m = r["multiclass|fused"]
        fused.append(
            f"| {name} | {r['rows']} | {fmt(m['auprc_dev'])} / {fmt(m['auprc_test'])} | {fmt(m['f1_test'])} / "
            f"{fmt(m.get('f1_test_raw'))} | {fmt(m.get('accuracy_test_raw'))} | "
            f"{fmt(m.get('lookalike_fpr_test_raw'))} |"
        )
    block = "\n".join([BEGIN, "### Corners and losses", "", *lines, "", "### Production scoring", "", *fused, END])
    text = DOC.read_text() if DOC.exists() else f"# Ablation\n\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    DOC.write_text(head + block + rest.split(END, 1)[1])
    print(f"wrote {DOC}")
    if args.plot:
        curves = {}
        for name in args.plot:
            data = np.load(WORK / f"scores-{name.replace('/', '_')}.npz")
            curves[f"{name} fused"] = (data["multiclass__fused__s"], data["multiclass__fused__y"].astype(bool))
        out = REPO / "docs" / "img" / "pr-finetuned-oos-test.png"
        plot_pr_curves(curves, out, "out-of-source test (pooled folds), fused scoring, uncalibrated")
        print(f"wrote {out}")


COMPARE_SCORERS = ("kNN only", "centroid only", "linear head only", "fused (chosen)")


def run_compare(args: argparse.Namespace) -> None:
    """Per-fold differences of two benchmarks.evaluation.evaluate reports (each scored with its own dev-chosen
    settings)."""
    base, other = (json.loads(Path(p).read_text()) for p in (args.base, args.other))
    print(f"{other['model_id']} minus {base['model_id']} ({base['rows']} / {other['rows']} rows)")
    print(f"base fused {base['config']} threshold {base['threshold']}; other {other['config']} {other['threshold']}")
    folds = list(base["folds"])
    print("| scorer | split | metric | " + " | ".join(folds) + " | mean Δ | min / max Δ | base mean → other mean |")
    print("|---|---|---|" + "---|" * (len(folds) + 3))
    for scorer in COMPARE_SCORERS:
        for which in ("dev", "test"):
            for metric in ("auprc", "f1"):
                b = [base["results"][f"{scorer}|oos:{f}|{which}"][metric] for f in folds]
                o = [other["results"][f"{scorer}|oos:{f}|{which}"][metric] for f in folds]
                d = [y - x for x, y in zip(b, o, strict=True)]
                print(
                    f"| {scorer} | {which} | {metric} | " + " | ".join(f"{x:+.3f}" for x in d) + f" | "
                    f"{np.mean(d):+.3f} | {min(d):+.3f} / {max(d):+.3f} | {np.mean(b):.3f} → {np.mean(o):.3f} |"
                )
    for which in ("dev", "test"):
        b, o = base["results"][f"fused (chosen)|random|{which}"], other["results"][f"fused (chosen)|random|{which}"]
        print(
            f"random split ({which}), fused: AUPRC {b['auprc']:.3f} → {o['auprc']:.3f}, F1 {b['f1']:.3f} → "
            f"{o['f1']:.3f}, look-alike FPR {b['lookalike_fpr']:.3f} → {o['lookalike_fpr']:.3f}"
        )


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> None:
    signal.signal(signal.SIGTERM, _interrupt)  # a killed grid run cleans its training temp dir like Ctrl-C
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    grid = sub.add_parser("grid")
    grid.add_argument("--limit", type=int, default=5000)
    grid.add_argument("--only", nargs="*", default=[])
    ev = sub.add_parser("evaluate")
    ev.add_argument("--model-dir", required=True)
    ev.add_argument("--name", required=True)
    ev.add_argument("--limit", type=int, default=0)
    ev.add_argument("--variant", default="int8", choices=["int8", "fp32"])
    ev.add_argument("--same-as", default=None, help="reuse the scorer settings of this earlier result")
    rep = sub.add_parser("report")
    rep.add_argument("--plot", nargs="*", default=[], help="result names to draw in docs/img/pr-finetuned-oos-test.png")
    cmp = sub.add_parser("compare", help="per-fold differences of two benchmarks/evaluation/evaluate.py reports")
    cmp.add_argument("base", help="reports/evaluate.json of the reference encoder")
    cmp.add_argument("other", help="reports/evaluate-<name>-<variant>.json of the encoder to compare")
    args = parser.parse_args()
    {"grid": run_grid, "evaluate": run_evaluate, "report": run_report, "compare": run_compare}[args.command](args)


if __name__ == "__main__":
    main()
