"""The GPU run's verdict: each model's out-of-source numbers from its evaluation report, and whether a candidate
earns the default (issue 18: it must beat base out of source, held out of fine-tuning too, without flagging more
benign look-alikes). The device run only screens: a winner is re-exported to int8 ONNX and re-judged here.

The same verdict for evaluation reports made anywhere (the CPU run of the candidates, docs/ablation.md):

    python -m benchmarks.training.gpu_verdict --fold prompt-injection base=reports/evaluate-base-full-int8.json \
        triplet-hn=reports/evaluate-cpu-triplet-hn-int8.json heldout-prompt-injection-triplet-hn=reports/...
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

SCORERS = ("fused (chosen)", "kNN only", "centroid only", "linear head only")
CHOSEN = SCORERS[0]
HELDOUT_PREFIX = "heldout-"
AUPRC_GAIN = 0.005  # benchmarks.evaluation.evaluate's AUPRC_TIE: less is noise between runs
# issue 18: no benign look-alike family flagged more often, and written harmful requests caught as often (random dev)
GUARDED_BENIGN = ("lookalike", "contrast", "injection-lookalike")
GUARDED_RECALL = "harmful-instructions"


def summarise(report: dict[str, Any], fold_focus: str) -> dict[str, Any]:
    """Mean out-of-source AUPRC / F1 per scorer (dev and test), the chosen scoring's per-fold test numbers, the
    random split's look-alike FPR and the family table rows about injections and look-alikes."""
    results, folds = report["results"], list(report["folds"])
    out: dict[str, Any] = {"model_id": report["model_id"], "rows": report["rows"], "config": report["config"]}
    out["threshold"] = report["threshold"]
    for scorer in SCORERS:
        for which in ("dev", "test"):
            got = [
                results[f"{scorer}|oos:{fold}|{which}"] for fold in folds if f"{scorer}|oos:{fold}|{which}" in results
            ]
            out[f"{scorer}|{which}|auprc"] = _mean([g["auprc"] for g in got])
            out[f"{scorer}|{which}|f1"] = _mean([g["f1"] for g in got])
    out["folds"] = {
        fold: {k: results[f"{CHOSEN}|oos:{fold}|test"][k] for k in ("auprc", "f1", "recall", "fpr")}
        for fold in folds
        if f"{CHOSEN}|oos:{fold}|test" in results
    }
    out["lookalike_fpr_test"] = results.get(f"{CHOSEN}|random|test", {}).get("lookalike_fpr", float("nan"))
    out["focus_fold"] = out["folds"].get(fold_focus)
    out["family"] = [line for line in report.get("family", []) if "lookalike" in line or fold_focus in line]
    out["random_dev"] = family_rates(report, CHOSEN, "random dev")
    return out


def family_rates(report: dict[str, Any], scoring: str, split: str) -> dict[str, float]:
    """{family: flagged share} of one scoring and split: evaluate's `family_rates` records, or for reports written
    before it stored them, its markdown family table ("| scoring | split | family (FPR) | n | 0.123 |")."""
    if "family_rates" in report:
        return {
            r["family"]: float(r["rate"])
            for r in report["family_rates"]
            if (r["scoring"], r["split"]) == (scoring, split)
        }
    rates = {}
    for line in report.get("family", []):
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 5 and cells[0] == scoring and cells[1] == split and cells[2].endswith(("(FPR)", "(recall)")):
            rates[cells[2].rsplit(" (", 1)[0]] = float(cells[4])
    return rates


def collect(reports: dict[str, Path], fold_focus: str) -> dict[str, Any]:
    """Summaries of the reports that exist, the winner (best mean out-of-source *dev* AUPRC among the candidates)
    and the verdict."""
    models = {n: summarise(json.loads(p.read_text()), fold_focus) for n, p in reports.items() if p.is_file()}
    missing = sorted(n for n, p in reports.items() if not p.is_file())
    candidates = [n for n in models if n != "base" and not n.startswith(HELDOUT_PREFIX)]
    winner = max(candidates, key=lambda n: models[n][f"{CHOSEN}|dev|auprc"], default=None)
    return {"models": models, "missing": missing, "winner": winner, "verdict": judge(models, winner, fold_focus)}


def judge(models: dict[str, Any], winner: str | None, fold_focus: str) -> dict[str, Any]:
    base = models.get("base")
    if base is None or winner is None:
        return {"earns_default": False, "why": "base or every candidate lacks an evaluation"}
    won = models[winner]
    checks: dict[str, bool | None] = {
        "beats base out of source (mean test AUPRC + 0.005)": won[f"{CHOSEN}|test|auprc"]
        >= base[f"{CHOSEN}|test|auprc"] + AUPRC_GAIN,
        "no more benign look-alikes flagged (random test)": won["lookalike_fpr_test"] <= base["lookalike_fpr_test"],
    }
    for family in GUARDED_BENIGN:
        if family in base["random_dev"]:
            checks[f"{family} flagged no more often than by base (random dev)"] = (
                won["random_dev"].get(family, 1.0) <= base["random_dev"][family]
            )
    if GUARDED_RECALL in base["random_dev"]:
        checks[f"{GUARDED_RECALL} recall not lower than base's (random dev)"] = (
            won["random_dev"].get(GUARDED_RECALL, 0.0) >= base["random_dev"][GUARDED_RECALL]
        )
    held = next((m for n, m in models.items() if n == f"{HELDOUT_PREFIX}{fold_focus}-{winner}"), None)
    if held is not None and held["focus_fold"] and base["focus_fold"]:
        checks[f"held out of fine-tuning, {fold_focus} fold AUPRC >= base"] = (
            held["focus_fold"]["auprc"] >= base["focus_fold"]["auprc"]
        )
    else:  # not run: it cannot pass, and the verdict says it was not run rather than that it failed
        checks[f"held out of fine-tuning, {fold_focus} fold AUPRC >= base"] = None
    return {"earns_default": all(ok is True for ok in checks.values()), "checks": checks}


def verdict_markdown(results: dict[str, Any], fold_focus: str) -> str:
    models = results["models"]
    lines = [
        "| model | mean OOS AUPRC fused dev / test | F1 test | kNN / centroid / head test AUPRC | "
        f"look-alike FPR (random test) | {fold_focus} fold AUPRC / F1 |",
        "|---|---|---|---|---|---|",
    ]
    for name, m in models.items():
        focus = m["focus_fold"] or {}
        lines.append(
            f"| {name} | {m[f'{CHOSEN}|dev|auprc']:.3f} / {m[f'{CHOSEN}|test|auprc']:.3f} | "
            f"{m[f'{CHOSEN}|test|f1']:.3f} | {m['kNN only|test|auprc']:.3f} / {m['centroid only|test|auprc']:.3f} / "
            f"{m['linear head only|test|auprc']:.3f} | {m['lookalike_fpr_test']:.3f} | "
            f"{focus.get('auprc', float('nan')):.3f} / {focus.get('f1', float('nan')):.3f} |"
        )
    verdict = results["verdict"]
    lines += ["", f"winner (best mean out-of-source dev AUPRC): {results['winner']}"]
    for check, ok in verdict.get("checks", {}).items():
        lines.append(f"- {'NOT RUN' if ok is None else 'PASS' if ok else 'FAIL'}: {check}")
    lines.append(f"earns the default (to be confirmed on int8 ONNX here): {verdict['earns_default']}")
    if results["missing"]:
        lines.append(f"not evaluated (time): {', '.join(results['missing'])}")
    return "\n".join(lines) + "\n"


def _mean(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return sum(finite) / len(finite) if finite else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description="Judge fine-tune candidates from their evaluation reports.")
    parser.add_argument("--fold", default="prompt-injection", help="the fold held out of fine-tuning too")
    parser.add_argument(
        "reports", nargs="+", metavar="NAME=REPORT", help=f"base=..., candidates, {HELDOUT_PREFIX}<fold>-<name>=..."
    )
    args = parser.parse_args()
    reports = dict(item.split("=", 1) for item in args.reports)
    print(verdict_markdown(collect({name: Path(path) for name, path in reports.items()}, args.fold), args.fold), end="")


if __name__ == "__main__":
    main()
