"""In-process costs of a micro-batch's steps on the shipped guard, and FAISS search threads 1 against 2 (issue 19):

    .venv/bin/python -m benchmarks.serving.classify_steps --home var/bench-home
    OMP_WAIT_POLICY=PASSIVE .venv/bin/python -m benchmarks.serving.classify_steps --home var/bench-home

`steps`: milliseconds per prompt of planning (and, inside it, tokenising, the deobfuscation scans, language id),
encoding and deciding, on the load generator's short prompts in batches of 8 (what 8 single-prompt clients send),
best of `--passes`. `search threads`: whole `Guard.classify` batches with FAISS on 1 and 2 OpenMP threads, alternated
round by round; OpenMP reads OMP_WAIT_POLICY when FAISS loads, so compare it by running the module twice.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.layout import VAR_DIR
from benchmarks.machine import machine
from benchmarks.samples import short_prompts
from index import Guard, set_search_threads
from index.deobfuscate import deobfuscation
from index.language import detect_language

BATCH = 8


def best_ms_per_prompt(run: Callable[[list[str]], object], batches: list[list[str]], passes: int) -> float:
    """The fastest of `passes` passes of `run` over `batches`, in milliseconds per prompt."""
    prompts = sum(len(b) for b in batches)
    best = float("inf")
    for _ in range(passes):
        start = time.perf_counter()
        for texts in batches:
            run(texts)
        best = min(best, (time.perf_counter() - start) * 1000 / prompts)
    return best


def step_costs(guard: Guard, batches: list[list[str]], passes: int = 3) -> dict[str, float]:
    """Milliseconds per prompt of each step of `Guard.classify` (see the module docstring)."""
    plans = {id(texts): guard.plan(texts) for texts in batches}
    vectors = {id(texts): guard.encode_plan(plans[id(texts)]) for texts in batches}
    return {
        "plan": best_ms_per_prompt(guard.plan, batches, passes),
        "  tokenise": best_ms_per_prompt(guard.encoder.token_spans, batches, passes),
        "  deobfuscation scans": best_ms_per_prompt(lambda b: [deobfuscation(t) for t in b], batches, passes),
        "  language id": best_ms_per_prompt(lambda b: [detect_language(t) for t in b], batches, passes),
        "encode": best_ms_per_prompt(lambda b: guard.encode_plan(plans[id(b)]), batches, passes),
        "decide": best_ms_per_prompt(lambda b: guard.decide(plans[id(b)], *vectors[id(b)]), batches, passes),
        "classify (all)": best_ms_per_prompt(guard.classify, batches, passes),
    }


def search_threads_rounds(guard: Guard, batches: list[list[str]], rounds: int) -> dict[int, list[float]]:
    """Prompts/s of `Guard.classify` over `batches` with FAISS on 1 and on 2 threads, alternated `rounds` times."""
    rates: dict[int, list[float]] = {1: [], 2: []}
    prompts = sum(len(b) for b in batches)
    for _ in range(rounds):
        for threads, out in rates.items():
            set_search_threads(threads)
            start = time.perf_counter()
            for texts in batches:
                guard.classify(texts)
            out.append(prompts / (time.perf_counter() - start))
    set_search_threads(1)
    return rates


def main() -> None:
    from service.context import open_guard
    from service.serving.runtime import configure_threads
    from service.settings import Settings

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", type=Path, default=Path(os.environ.get("LIGHTGUARD_HOME", VAR_DIR / "bench-home")))
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=8)
    args = ap.parse_args()
    configure_threads(1)  # as the server does
    guard = open_guard(Settings(home=args.home))
    prompts = short_prompts(256)
    batches = [prompts[i : i + BATCH] for i in range(0, len(prompts), BATCH)]
    guard.classify(batches[0])  # loads the language identifier and the lexicon
    print(machine() | {"OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY")})
    for step, ms in step_costs(guard, batches, args.passes).items():
        print(f"{step:24s} {ms:.3f} ms/prompt")
    rates = search_threads_rounds(guard, batches, args.rounds)
    wins = sum(two > one for one, two in zip(rates[1], rates[2], strict=True))
    print(
        f"classify, FAISS on 1 thread: median {statistics.median(rates[1]):.0f} prompts/s; on 2: "
        f"{statistics.median(rates[2]):.0f}, faster in {wins} of {args.rounds} rounds"
    )


if __name__ == "__main__":
    main()
