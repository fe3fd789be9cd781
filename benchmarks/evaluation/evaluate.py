"""Random-split and out-of-source evaluation of kNN, centroid, linear-head and fused scoring; tunes on dev only.

Out-of-source: whole source families are held out in folds (each fold holds both classes), the index is built
from the remaining train rows, and the fold's rows are scored. Fusion weights, temperatures and k are chosen by
mean AUPRC over the folds' *dev* rows; Platt scaling and the threshold by the pooled out-of-source dev scores.
Test rows are only reported, never used to choose.
Run: `.venv/bin/python -m benchmarks.evaluation.evaluate [--write-config]` (`make eval`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.evaluation.decisions import (
    MIN_CATEGORY_GAIN,
    best_single,
    candidate_fusions,
    category_threshold_gain,
    choose_fusion,
    decision_metrics,
    f1_at_prevalence,
    fit_category_thresholds,
    flags,
    injection_threshold,
    lookalike_threshold,
    mean_f1_at,
    operating_points,
    recall_at_fpr,
    shipped_scoring,
)
from benchmarks.evaluation.vectors import Embeddings, FoldScores, taxonomy_labels
from benchmarks.layout import DATA_DIR, REPO, REPORTS_DIR
from index import SAFE, Encoder, GuardConfig, fit_platt
from index.calibration import Platt
from index.datasets import load_rows
from index.evaluation import BinaryMetrics, binary_metrics, plot_pr_curves
from index.taxonomy import load_taxonomy

# Each fold holds out families that together contain both classes, so AUPRC is defined on the fold alone.
FOLDS: dict[str, tuple[str, ...]] = {
    "jailbreak-vs-roleplay": ("jailbreak", "roleplay"),
    "real-chat": ("real-chat",),
    "toxicity": ("toxicity",),
    "instructions": ("harmful-instructions", "benign-instructions", "lookalike"),
    "self-harm-posts": ("self-harm-posts",),
    # injections with their benign look-alikes (trigger words, finance questions, clean carrier documents)
    "prompt-injection": ("prompt-injection", "injection-lookalike"),
    "contrast": ("contrast",),
    "adversarial": ("adversarial",),
}
LOOKALIKE_FAMILIES = ("lookalike",)
# Random-split rows reported per family at the decision threshold: FPR for benign look-alikes, recall for attacks.
BENIGN_FAMILIES = ("lookalike", "contrast", "injection-lookalike")
UNSAFE_FAMILIES = ("harmful-instructions", "prompt-injection", "adversarial", "jailbreak")
INJECTION_FOLD = "prompt-injection"
INJECTION_CATEGORY = "prompt_injection"
AUPRC_TIE = 0.005
LOOKALIKE_CHOICE_FAMILIES = ("lookalike", "contrast")  # benign look-alikes of harmful requests (random split, dev)
# The shipped build before issue 18 (data/scoring.json of 07519e3) recalled 0.795 of the random split's dev written
# harmful requests: a threshold raised for look-alikes may not go below that (this evaluation on that data).
MIN_INSTRUCTION_RECALL = 0.795
# ... and 0.604 of the out-of-source instructions fold's dev harmful requests (same run): new sources must not lose
# what a look-alike rule buys in source. A floor only stops a raise; where a fusion's F1 threshold is already below it
# (every tied fusion on the issue-18 data: 0.43-0.49), the threshold stays the F1 one.
MIN_OOS_INSTRUCTION_RECALL = 0.604
MAX_INJECTION_FPR = 0.03


def evaluate(args: argparse.Namespace, encoder: Encoder | None = None) -> None:
    """Run the evaluation with `main`'s arguments; `encoder` replaces the ONNX model of `--model-dir` (the GPU device
    run evaluates torch encoders: benchmarks/training/gpu_run.py)."""
    from index import OnnxEncoder

    config = GuardConfig()
    if encoder is None:
        encoder = OnnxEncoder(Path(args.model_dir), variant=args.variant)
    taxonomy = load_taxonomy(DATA_DIR / "taxonomy.toml")
    labels = taxonomy_labels(taxonomy)
    rows = load_rows(Path(args.data) if args.data else DATA_DIR / "safety.jsonl")
    if args.limit:
        rows = rows[:: max(1, len(rows) // args.limit)]
    emb = Embeddings(encoder, rows, config, REPO / "var" / "cache")
    split = np.asarray([r.split for r in rows])
    family = np.asarray([r.family for r in rows])
    source = np.asarray([r.source for r in rows])
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
        oos[name] = {"scores": scores, "split": split[query], "y": unsafe[query], "source": source[query]}
        print(f"fold {name}: {int(held.sum())} rows held out ({time.perf_counter() - t0:.0f}s)", file=sys.stderr)
    # ---- random split: index = every train row
    rnd_mask = split != "train"
    rnd = FoldScores(encoder, labels, rows, emb, split == "train", rnd_mask, config)
    rnd_split, rnd_y, rnd_family = split[rnd_mask], unsafe[rnd_mask], family[rnd_mask]
    rnd_source = source[rnd_mask]

    candidates = candidate_fusions(rnd.windows)

    def fold_auprc(combo: dict[str, float], which: str) -> list[float]:
        res = []
        for fold in oos.values():
            keep = fold["split"] == which
            s = fold["scores"].fused(combo)[keep]
            res.append(binary_metrics(s, fold["y"][keep], 0.5).auprc)
        return res

    shipped = shipped_scoring(DATA_DIR / "scoring.json", rnd.windows)
    dev_auprc = {json.dumps(c, sort_keys=True): float(np.nanmean(fold_auprc(c, "dev"))) for c in candidates}
    top = max(dev_auprc.values())
    grid = np.round(np.arange(0.05, 0.96, 0.01), 2)
    rnd_dev = rnd_split == "dev"
    benign_look = rnd_dev & ~rnd_y & np.isin(rnd_family, LOOKALIKE_CHOICE_FAMILIES)
    instructions = rnd_dev & rnd_y & (rnd_family == "harmful-instructions")

    def decide(combo: dict[str, float]) -> tuple[Platt, list[tuple[np.ndarray, np.ndarray]], float, float, float]:
        """Platt scaling, the dev sets, the threshold, and the dev look-alike FPR and written-harmful-request recall
        at it, for one fusion."""
        pooled_raw = np.concatenate([f["scores"].fused(combo)[f["split"] == "dev"] for f in oos.values()])
        pooled_y = np.concatenate([f["y"][f["split"] == "dev"] for f in oos.values()])
        platt = fit_platt(pooled_raw, pooled_y)
        # One threshold for all traffic: the best mean F1 over the dev sets, each out-of-source fold and the random
        # split counted once (pooling would let the biggest fold decide; the random split stands for in-source
        # traffic). F1 is taken at the deployment prevalence (--prevalence): our dev sets are 50-70 % unsafe, real
        # traffic is mostly benign, and an F1 cut chosen at 60 % prevalence flags benign look-alikes far too often.
        dev_sets = [
            (platt.apply(f["scores"].fused(combo)[f["split"] == "dev"]), f["y"][f["split"] == "dev"])
            for f in oos.values()
        ]
        dev_sets.append((platt.apply(rnd.fused(combo)[rnd_dev]), rnd_y[rnd_dev]))
        mean_f1 = [np.mean([f1_at_prevalence(s, y, t, args.prevalence) for s, y in dev_sets]) for t in grid]
        rnd_scores = platt.apply(rnd.fused(combo))
        floors = [(rnd_scores[instructions], args.min_instruction_recall)]
        if "instructions" in oos:
            fold = oos["instructions"]
            keep = fold["split"] == "dev"
            unseen = platt.apply(fold["scores"].fused(combo))[keep][fold["y"][keep]]
            floors.append((unseen, args.min_oos_instruction_recall))
        threshold = lookalike_threshold(rnd_scores[benign_look], floors, grid, float(grid[int(np.argmax(mean_f1))]))
        look_fpr = float(np.mean(rnd_scores[benign_look] >= threshold))
        recall = float(np.mean(rnd_scores[instructions] >= threshold)) if instructions.any() else float("nan")
        return platt, dev_sets, threshold, look_fpr, recall

    # Fusions within AUPRC_TIE of the best mean out-of-source dev AUPRC are a tie (runs of this search have moved
    # that much); among them the one whose threshold flags the fewest benign dev look-alikes wins, preferring those
    # that keep the written-harmful-request recall floor, and the shipped fusion stays while it is within noise of
    # that one (`choose_fusion`).
    tied = [key for key, auprc in dev_auprc.items() if auprc >= top - AUPRC_TIE]
    decisions = {key: decide(json.loads(key)) for key in tied}
    incumbent = json.dumps(shipped[0], sort_keys=True) if shipped else None
    best_key = choose_fusion(
        {key: (dev_auprc[key], d[3], d[4]) for key, d in decisions.items()}, args.min_instruction_recall, incumbent
    )
    print(f"shipped fusion {'kept' if best_key == incumbent else 'replaced'}: {incumbent}", file=sys.stderr)
    best: dict[str, float] = json.loads(best_key)
    platt, dev_sets, threshold, look_fpr, instruction_recall = decisions[best_key]
    print(
        f"{len(tied)} fusions within {AUPRC_TIE} of the best dev AUPRC {top:.4f}; chosen {best} "
        f"(dev AUPRC {dev_auprc[best_key]:.4f}), threshold {threshold:.2f}, dev look-alike FPR {look_fpr:.3f}, "
        f"dev written-harmful-request recall {instruction_recall:.3f}",
        file=sys.stderr,
    )
    dev_folds = [(f["scores"], f["split"] == "dev", f["y"]) for f in oos.values()] + [(rnd, rnd_dev, rnd_y)]
    category_thresholds = fit_category_thresholds(
        dev_folds,
        best,
        platt,
        threshold,
        grid,
        args.prevalence,
    )
    # Sixteen more parameters must earn their place on dev: adopt them only for a clear mean-F1 gain over the dev sets.
    gain = category_threshold_gain(
        dev_folds,
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
    # Injections get their own operating point whatever the rule above decided: the lowest cut at which at most
    # MAX_INJECTION_FPR of the random split's dev injection look-alikes (NotInject & co.) are flagged, and at most one
    # point more of all its dev benign rows.
    injection_lookalikes = rnd_dev & ~rnd_y & (rnd_family == "injection-lookalike")
    if injection_lookalikes.any():
        cut = injection_threshold(
            rnd, best, platt, threshold, injection_lookalikes, rnd_dev & ~rnd_y, grid, MAX_INJECTION_FPR
        )
        category_thresholds = {k: v for k, v in category_thresholds.items() if k != INJECTION_CATEGORY}
        if cut < threshold:
            category_thresholds[INJECTION_CATEGORY] = cut
        print(f"{INJECTION_CATEGORY} threshold {cut:.2f} (<= {MAX_INJECTION_FPR:.0%} dev look-alikes)", file=sys.stderr)

    singles = {
        "kNN only": best_single(candidates, "knn", fold_auprc),
        "centroid only": best_single(candidates, "centroid", fold_auprc),
        "linear head only": {"head": 1.0},
        "fused (chosen)": best,
    }
    report: dict[str, Any] = {
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
    chosen = ("fused (chosen)", best, platt, threshold, category_thresholds)
    family_lines, family_rates = family_table(
        [chosen] + ([("shipped scoring.json", *shipped, {})] if shipped else []), rnd, rnd_split, rnd_y, rnd_family, oos
    )
    print()
    print("\n".join(family_lines))
    injections = rnd_y & (rnd_family == INJECTION_FOLD)
    source_lines = injection_source_table(chosen, rnd, rnd_split, injections, rnd_source, oos)
    print()
    print("\n".join(source_lines))
    points = operating_points(dev_sets, grid, mean_f1_at(dev_sets, grid), args.prevalence)
    # balanced is what ships (after the look-alike rule); the others stay on their side of it
    points = {
        "strict": min(points["strict"], threshold),
        "balanced": threshold,
        "permissive": max(points["permissive"], threshold),
    }
    point_lines = operating_point_table(points, dev_folds, rnd, rnd_split, rnd_y, rnd_family, chosen)
    print()
    print("\n".join(point_lines))
    report["family"] = family_lines
    report["family_rates"] = family_rates
    report["injection_sources"] = source_lines
    report["operating_points"] = points
    print(f"\nchosen: {best}  platt={platt}  threshold={threshold:.3f}")
    path = report_path(args.name, args.variant)
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=float))
    keep = rnd_split == "test"
    # docs/results.md shows the default run's curves; any other model's go beside its report, not into docs/
    suffix = _report_suffix(args.name, args.variant)
    image = REPORTS_DIR / f"pr{suffix}-random-test.png" if suffix else REPO / "docs" / "img" / "pr-base-random-test.png"
    plot_pr_curves(
        {t: (rnd.fused(c)[keep], rnd_y[keep]) for t, c in singles.items()},
        image,
        f"{args.name} encoder, random split (test)",
    )
    if args.write_config:
        write_scoring_config(best, platt, threshold, category_thresholds, encoder.model_id)
        write_operating_points(points, encoder.model_id)


def family_table(
    configs: list[tuple[str, dict[str, float], Platt, float, dict[str, float]]],
    rnd: FoldScores,
    rnd_split: np.ndarray,
    rnd_y: np.ndarray,
    rnd_family: np.ndarray,
    oos: dict[str, dict[str, Any]],
) -> tuple[list[str], list[dict[str, Any]]]:
    """Random split per family (FPR of benign look-alikes, recall of attacks) and the held-out injection fold: the
    markdown table and, for the random split, its rows as data ({scoring, split, family, kind, n, rate})."""
    lines = [
        "| scoring | split | family | n | flagged (FPR for benign, recall for unsafe) |",
        "|---|---|---|---|---|",
    ]
    rates: list[dict[str, Any]] = []
    for title, combo, platt, threshold, cuts in configs:
        flagged = flags(rnd, combo, platt, threshold, cuts)
        for which in ("dev", "test"):
            for fam in BENIGN_FAMILIES + UNSAFE_FAMILIES:
                want_unsafe = fam in UNSAFE_FAMILIES
                keep = (rnd_split == which) & (rnd_family == fam) & (rnd_y == want_unsafe)
                if keep.any():
                    kind = "recall" if want_unsafe else "FPR"
                    rate = float(flagged[keep].mean())
                    n = int(keep.sum())
                    rates.append(
                        {
                            "scoring": title,
                            "split": f"random {which}",
                            "family": fam,
                            "kind": kind,
                            "n": n,
                            "rate": rate,
                        }
                    )
                    lines.append(f"| {title} | random {which} | {fam} ({kind}) | {n} | {rate:.3f} |")
        fold = oos.get(INJECTION_FOLD)
        if fold is None:
            continue
        scores = platt.apply(fold["scores"].fused(combo))
        held = flags(fold["scores"], combo, platt, threshold, cuts)
        for which in ("dev", "test"):
            keep = fold["split"] == which
            y = fold["y"][keep]
            recall, cut = recall_at_fpr(scores[keep], y, MAX_INJECTION_FPR)
            lines.append(
                f"| {title} | held-out {INJECTION_FOLD} {which} | at the threshold: recall / look-alike FPR | "
                f"{int(keep.sum())} | {float(held[keep][y].mean()):.3f} / {float(held[keep][~y].mean()):.3f} |"
            )
            lines.append(
                f"| {title} | held-out {INJECTION_FOLD} {which} | recall at <= {MAX_INJECTION_FPR:.0%} look-alike FPR "
                f"(cut {cut:.3f}) | {int(keep.sum())} | {recall:.3f} |"
            )
    return lines, rates


def injection_source_table(
    chosen: tuple[str, dict[str, float], Platt, float, dict[str, float]],
    rnd: FoldScores,
    rnd_split: np.ndarray,
    rnd_injection: np.ndarray,
    rnd_source: np.ndarray,
    oos: dict[str, dict[str, Any]],
) -> list[str]:
    """Recall of each injection source at the chosen threshold: in the random split (its train rows among the
    exemplars) and in the held-out injection fold (no row of any staged injection source among them)."""
    _, combo, platt, threshold, cuts = chosen
    lines = ["| source | random dev | random test | held out, dev | held out, test |", "|---|---|---|---|---|"]
    fold = oos.get(INJECTION_FOLD)
    flagged_rnd = flags(rnd, combo, platt, threshold, cuts)
    flagged_held = flags(fold["scores"], combo, platt, threshold, cuts) if fold else None
    for src in sorted(set(rnd_source[rnd_injection].tolist())):
        cells = []
        for which in ("dev", "test"):
            keep = rnd_injection & (rnd_source == src) & (rnd_split == which)
            cells.append(f"{float(flagged_rnd[keep].mean()):.2f} ({int(keep.sum())})" if keep.any() else "-")
        for which in ("dev", "test"):
            if fold is None or flagged_held is None:
                cells.append("-")
                continue
            keep = fold["y"] & (fold["source"] == src) & (fold["split"] == which)
            cells.append(f"{float(flagged_held[keep].mean()):.2f} ({int(keep.sum())})" if keep.any() else "-")
        lines.append(f"| {src} | {' | '.join(cells)} |")
    return lines


def operating_point_table(
    points: dict[str, float],
    sets: list[tuple[FoldScores, np.ndarray, np.ndarray]],
    rnd: FoldScores,
    rnd_split: np.ndarray,
    rnd_y: np.ndarray,
    rnd_family: np.ndarray,
    chosen: tuple[str, dict[str, float], Platt, float, dict[str, float]],
) -> list[str]:
    """What each operating point costs on dev: pooled FPR / recall over the dev sets, and look-alike FPR. A point
    moves the per-category thresholds with the global one (service/operating_points.py keeps their offsets)."""
    _, combo, platt, threshold, cuts = chosen
    lines = [
        "| operating point | threshold | dev FPR (pooled) | dev recall (pooled) | random dev look-alike FPR "
        "(lookalike / contrast / injection-lookalike) |",
        "|---|---|---|---|---|",
    ]
    for name, t in points.items():
        moved = {c: v + t - threshold for c, v in cuts.items()}
        flagged = np.concatenate([flags(fold, combo, platt, t, moved)[keep] for fold, keep, _ in sets])
        y = np.concatenate([y[keep] for _, keep, y in sets])
        rnd_flagged = flags(rnd, combo, platt, t, moved)
        look = []
        for fam in BENIGN_FAMILIES:
            keep = (rnd_split == "dev") & (rnd_family == fam) & ~rnd_y
            look.append(f"{float(np.mean(rnd_flagged[keep])):.3f}" if keep.any() else "-")
        lines.append(
            f"| {name} | {t:.2f} | {float(np.mean(flagged[~y])):.3f} | {float(np.mean(flagged[y])):.3f} | "
            f"{' / '.join(look)} |"
        )
    return lines


def write_operating_points(points: dict[str, float], model_id: str) -> None:
    path = DATA_DIR / "operating_points.json"
    body = {
        "_note": "LIGHTGUARD_OPERATING_POINT picks one of these thresholds (docs/results.md: what each costs on dev)",
        "_chosen_with": model_id,
        "points": {name: round(t, 4) for name, t in points.items()},
    }
    path.write_text(json.dumps(body, indent=2) + "\n")
    print(f"wrote {path}")


def row_md(title: str, where: str, m: BinaryMetrics, look_fpr: float | None) -> str:
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
    path = DATA_DIR / "scoring.json"
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


def _report_suffix(name: str, variant: str) -> str:
    # one file per model and variant: evaluating a second encoder must not overwrite the base's report
    return "" if (name, variant) == ("base", "int8") else f"-{name}-{variant}"


def report_path(name: str, variant: str = "int8") -> Path:
    """Where the evaluation of model `name` writes its report (the default run's: reports/evaluate.json)."""
    return REPORTS_DIR / f"evaluate{_report_suffix(name, variant)}.json"


def ensure_report(name: str, model_dir: Path) -> Path:
    """The int8 report of `model_dir` evaluated as `name`: run in a child process (its own memory) unless it exists
    already (delete it to redo); for the runners that judge several models (benchmarks/training)."""
    path = report_path(name)
    if not path.exists():
        print(f"evaluating {name} ({model_dir})", file=sys.stderr, flush=True)
        command = [sys.executable, "-m", "benchmarks.evaluation.evaluate", "--model-dir", str(model_dir)]
        subprocess.run([*command, "--name", name], check=True, cwd=REPO)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", default=os.environ.get("LIGHTGUARD_MODEL_DIR", str(REPO / "models" / "base")))
    parser.add_argument("--name", default="base")
    parser.add_argument("--variant", default="int8", choices=["int8", "fp32"])
    parser.add_argument("--data", default=None)
    parser.add_argument(
        "--prevalence", type=float, default=0.2, help="share of unsafe prompts assumed when choosing the threshold"
    )
    parser.add_argument(
        "--min-instruction-recall",
        type=float,
        default=MIN_INSTRUCTION_RECALL,
        help="dev recall of written harmful requests a threshold raised for look-alikes must keep",
    )
    parser.add_argument(
        "--min-oos-instruction-recall",
        type=float,
        default=MIN_OOS_INSTRUCTION_RECALL,
        help="the same floor on the out-of-source instructions fold's dev harmful requests",
    )
    parser.add_argument("--limit", type=int, default=0, help="evaluate on about this many rows (smoke runs)")
    parser.add_argument("--write-config", action="store_true", help="write the chosen scoring to data/scoring.json")
    evaluate(parser.parse_args())


if __name__ == "__main__":
    main()
