"""Fine-tune all-MiniLM-L6-v2 on data/safety.jsonl and export it to models/finetuned (see docs/ablation.md).

Run: `.venv/bin/python scripts/train.py [--if-stale] [--loss triplet-soft] [--labels multiclass] ...`.
`--if-stale` exits at once when models/finetuned was built from the same config and the same training rows.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from dataclasses import fields
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from index.datasets import load_rows
from index.models import default_models_dir
from index.training import FINETUNED_NAME, LOSSES, TrainConfig, data_digest, select_examples, stale_reason, train


def parse_config(argv: list[str] | None = None) -> tuple[TrainConfig, argparse.Namespace]:
    defaults = TrainConfig()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=default_models_dir() / FINETUNED_NAME, help="model directory")
    parser.add_argument("--data", type=Path, default=None, help="dataset JSONL (default data/safety.jsonl)")
    parser.add_argument("--if-stale", action="store_true", help="do nothing when --out is current")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument(
        "--exclude-family",
        action="append",
        default=[],
        help="leave this source family out of training and the dev check (repeatable; a held-out-family check)",
    )
    parser.add_argument("--loss", choices=LOSSES, default=defaults.loss)
    parser.add_argument("--labels", choices=("binary", "multiclass"), default=defaults.labels)
    parser.add_argument("--hard-negatives", action=argparse.BooleanOptionalAction, default=defaults.hard_negatives)
    for f in fields(TrainConfig):
        if f.name in {"loss", "labels", "hard_negatives"}:
            continue
        kind = float if isinstance(getattr(defaults, f.name), float) else int
        parser.add_argument(f"--{f.name.replace('_', '-')}", type=kind, default=getattr(defaults, f.name))
    args = parser.parse_args(argv)
    config = TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig)})
    return config, args


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    # SIGTERM (kill, systemd, make being stopped) takes the same clean-up path as Ctrl-C: no temp dir is left behind.
    signal.signal(signal.SIGTERM, _interrupt)
    config, args = parse_config(argv)
    excluded = set(args.exclude_family)
    rows = [r for r in load_rows(args.data) if r.family not in excluded]
    if args.if_stale:
        reason = stale_reason(args.out, config, data_digest(select_examples(rows, config)))
        if reason is None:
            print(f"{args.out} is up to date")
            return 0
        print(f"rebuilding {args.out}: {reason}", file=sys.stderr)
    started = time.perf_counter()
    manifest = train(config, args.out, rows, show_progress=not args.quiet, say=lambda msg: print(msg, file=sys.stderr))
    info = manifest.extra["training"]
    print(
        f"wrote {args.out} in {time.perf_counter() - started:.0f}s "
        f"({info['examples']} examples, {info['examples_per_second']} examples/s, dev {info['dev']})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
