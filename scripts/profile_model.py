"""Where one model run's time goes: ONNX Runtime's per-operator profile of the serving graph, one thread.

    .venv/bin/python scripts/profile_model.py                 # models/base, int8, the bench's ~30-token prompts
    .venv/bin/python scripts/profile_model.py --variant fp32 --prompts 32

Runs each of the bench's short prompts (scripts/bench.py `short_prompts`) alone, as the service does, through a
one-thread session built by the service's own `_session` (same options, same disabled fusions), `--rounds` times,
and prints the kernel time per run by operator. The int8 graph's matrix products dominate, and their speed depends
on the CPU's int8 instructions (printed first): the reason bench numbers differ between machines
(docs/performance.md).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from bench import int8_isa, machine, short_prompts  # noqa: E402

from index.export import ONNX_FILES  # noqa: E402
from index.onnx_encoder import OnnxEncoder, _session  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, default=REPO / "models" / "base")
    parser.add_argument("--variant", choices=("int8", "fp32"), default="int8")
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    encoder = OnnxEncoder(args.model_dir, args.variant, threads=1)
    encodings = encoder._tokenizer.encode_batch(short_prompts(args.prompts))
    (REPO / "var").mkdir(exist_ok=True)
    session = _session(args.model_dir / ONNX_FILES[args.variant], 1, profile_prefix=str(REPO / "var" / "ort-profile"))
    for enc in encodings:  # warm-up round (arena growth, first-run costs): left out of the table
        encoder._run([enc], session)
    measured_from_us = (time.time_ns() - session.get_profiling_start_time_ns()) / 1000
    for _ in range(args.rounds):
        for enc in encodings:
            encoder._run([enc], session)
    profile = Path(session.end_profiling())
    times = _kernel_times(profile, measured_from_us)
    profile.unlink()

    runs = args.rounds * len(encodings)
    total = sum(times.values())
    tokens = sum(len(e.ids) for e in encodings) / len(encodings)
    print(f"cpu: {machine()['cpu']}; int8 instructions: {int8_isa()}")
    print(f"{args.variant}, one thread, {len(encodings)} prompts x {args.rounds} rounds, {tokens:.1f} tokens each\n")
    print("| operator | µs per run | share |")
    print("|---|---|---|")
    for op, us in times.most_common():
        print(f"| {op} | {us / runs:.0f} | {100 * us / total:.1f} % |")
    print(f"| all kernels | {total / runs:.0f} | |")


def _kernel_times(profile: Path, from_us: float) -> Counter[str]:
    out: Counter[str] = Counter()
    for event in json.loads(profile.read_text()):
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time") and event["ts"] >= from_us:
            out[event["args"]["op_name"]] += event["dur"]
    return out


if __name__ == "__main__":
    main()
