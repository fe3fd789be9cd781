"""Is the fine-tuned encoder's out-of-source gain real? Fine-tune once per fold with the fold's source families left
out of training too, and score each such model on its own fold only (docs/ablation.md, "Held out of fine-tuning").

    .venv/bin/python -m benchmarks.evaluation.evaluate --model-dir models/base --name base-full  # the base report
    .venv/bin/python -m benchmarks.training.heldout                  # one training + one evaluation per fold

Models go to models/ft-heldout-<fold> (`lightguard train --exclude-family ... --if-stale`: reused when current),
reports to reports/evaluate-ft-heldout-<fold>-int8.json (reused when present; delete one to redo it). Prints, per
fold, the out-of-source test AUPRC / F1 of the production ("fused (chosen)") scoring for base, the held-out
fine-tune and, if reports/evaluate-finetuned-int8.json exists, the default fine-tune that saw every family.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from benchmarks.evaluation.evaluate import FOLDS, ensure_report, report_path
from benchmarks.layout import REPO

SCORER = "fused (chosen)"
BASE_REPORT_COMMAND = "python -m benchmarks.evaluation.evaluate --model-dir models/base --name base-full"


def metrics(report: Path, fold: str) -> tuple[float, float] | None:
    if not report.exists():
        return None
    got = json.loads(report.read_text())["results"][f"{SCORER}|oos:{fold}|test"]
    return float(got["auprc"]), float(got["f1"])


def main() -> None:
    python = sys.executable
    base_report = report_path("base-full")
    if not base_report.exists():
        sys.exit(f"{base_report} is missing: run {BASE_REPORT_COMMAND}")
    for fold, families in FOLDS.items():
        name = f"ft-heldout-{fold}"
        model = REPO / "models" / name
        exclude = [arg for family in families for arg in ("--exclude-family", family)]
        train = [python, "-m", "service.cli.main", "train", "--if-stale", "--quiet", "--out", str(model), *exclude]
        subprocess.run(train, check=True, cwd=REPO)
        ensure_report(name, model)

    print(
        "| fold (held out of index and fine-tuning) | base AUPRC / F1 | held-out fine-tune | fine-tune, every family |"
    )
    print("|---|---|---|---|")
    sums: dict[str, list[float]] = {"base": [0, 0, 0], "held": [0, 0, 0], "leaky": [0, 0, 0]}
    for fold in FOLDS:
        cells = []
        for key, report in (
            ("base", base_report),
            ("held", report_path(f"ft-heldout-{fold}")),
            ("leaky", report_path("finetuned")),
        ):
            got = metrics(report, fold)
            if got is None:
                cells.append("–")
                continue
            sums[key][0] += got[0]
            sums[key][1] += got[1]
            sums[key][2] += 1
            cells.append(f"{got[0]:.3f} / {got[1]:.3f}")
        print(f"| {fold} | " + " | ".join(cells) + " |")
    means = [f"{s[0] / s[2]:.3f} / {s[1] / s[2]:.3f}" if s[2] else "–" for s in sums.values()]
    print("| mean over folds | " + " | ".join(means) + " |")


if __name__ == "__main__":
    main()
