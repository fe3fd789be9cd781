"""Issue 18's fine-tune candidates on a CPU (no GPU lent), judged as the GPU plan would judge them.

    .venv/bin/python -m benchmarks.training.cpu_candidates                          # every candidate
    .venv/bin/python -m benchmarks.training.cpu_candidates --only softmax --heldout softmax

The recipes are the GPU plan's (benchmarks/training/gpu_run.py, CANDIDATES) at 64 tokens instead of 128 (bf16
autocast as there), so that a training takes ~21 min on 2 cores of a Zen 4 with avx512_bf16 (~75 min in fp32 at 128).
Each model is trained unless current (`stale_reason`, as `lightguard train --if-stale`) into models/cpu-<name>,
evaluated on int8 ONNX as it would be served (benchmarks.evaluation.evaluate: reports/evaluate-cpu-<name>-int8.json,
reused when present; delete it to redo), and judged against base evaluated on the same CPU
(benchmarks.training.gpu_verdict). `--heldout NAME` also trains NAME with the injection fold's families left out of
its training (benchmarks/training/heldout.py's protocol for that fold), which the verdict needs. Run it beside
nothing else; docs/ablation.md holds what it measured.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

from benchmarks.evaluation.evaluate import FOLDS, ensure_report
from benchmarks.layout import DATA_DIR, REPO
from benchmarks.training.gpu_run import CANDIDATES, HELDOUT_FOLD
from benchmarks.training.gpu_verdict import HELDOUT_PREFIX, collect, verdict_markdown
from index import data_digest, load_rows, select_examples, stale_reason, train
from index.training_config import TrainConfig

CPU_MAX_SEQ_LENGTH = 64
MODELS_DIR = REPO / "models"


def cpu_recipe(config: TrainConfig) -> TrainConfig:
    return replace(config, max_seq_length=CPU_MAX_SEQ_LENGTH)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def ensure_trained(name: str, config: TrainConfig, exclude: frozenset[str] = frozenset()) -> Path:
    """models/cpu-<name> trained with `config` on the dataset minus `exclude`'s families, unless already current."""
    out = MODELS_DIR / f"cpu-{name}"
    rows = [r for r in load_rows(DATA_DIR / "safety.jsonl") if r.family not in exclude]
    reason = stale_reason(out, config, data_digest(select_examples(rows, config)))
    if reason is None:
        log(f"{out} is up to date")
        return out
    log(f"training {out}: {reason}")
    train(config, out, rows, say=log)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", choices=sorted(CANDIDATES), help="these candidates (repeatable)")
    parser.add_argument("--heldout", choices=sorted(CANDIDATES), help=f"also train it with {HELDOUT_FOLD} held out")
    parser.add_argument("--base-name", default="base-cpu", help="report name of base's evaluation on this CPU")
    args = parser.parse_args()
    names = args.only or sorted(CANDIDATES)
    reports = {"base": ensure_report(args.base_name, MODELS_DIR / "base")}
    for name in names:
        reports[name] = ensure_report(f"cpu-{name}", ensure_trained(name, cpu_recipe(CANDIDATES[name])))
    if args.heldout:
        held = f"heldout-{args.heldout}"
        model = ensure_trained(held, cpu_recipe(CANDIDATES[args.heldout]), frozenset(FOLDS[HELDOUT_FOLD]))
        reports[f"{HELDOUT_PREFIX}{HELDOUT_FOLD}-{args.heldout}"] = ensure_report(f"cpu-{held}", model)
    print(verdict_markdown(collect(reports, HELDOUT_FOLD), HELDOUT_FOLD), end="")


if __name__ == "__main__":
    main()
