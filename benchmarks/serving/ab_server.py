"""Interleaved A/B of the serving path: server builds (git revisions of this repository) and settings, alternated.

On a shared 2-core machine the same build's throughput moves by 20 % between runs minutes apart, so two builds
measured one after the other compare the machine's phases, not the builds. This starts each arm's server in turn,
round after round, and reports every round, the medians, and how many rounds each arm won against the first:

    .venv/bin/python -m benchmarks.serving.ab_server --arm before 641fedf --arm after . --rounds 6
    .venv/bin/python -m benchmarks.serving.ab_server --arm 2ms . --arm 0ms . LIGHTGUARD_BATCH_WAIT_MS=0 --clients 8

An arm is NAME REV [KEY=VALUE ...]: REV `.` is the working tree; any other revision is checked out (detached) under
var/ab/ and imported ahead of the installed package, with this tree's model (LIGHTGUARD_MODEL_DIR) and the bench's
LIGHTGUARD_HOME (var/bench-home, built by benchmarks.serving.bench), so revisions must share the database schema
unless an arm names a home of its own: `--arm old a694ecf LIGHTGUARD_HOME=var/ab-home-old` builds one at its first
start, from that revision's data. KEY=VALUE pairs are environment settings for that arm's server. The load
generator is benchmarks.serving.load (one process, N client threads, keep-alive connections). The worktrees stay
for the next run; `git worktree remove var/ab/<sha>` drops one (after `make clean`, `git worktree prune` forgets
them).
"""

from __future__ import annotations

import argparse
import os
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.layout import VAR_DIR
from benchmarks.machine import proc_stats
from benchmarks.serving.load import Mode, run_load
from benchmarks.serving.server import build_env, checkout, free_port, serve_cmd, start_server, stop_server

WARMUP_REQUESTS = 200


@dataclass
class Arm:
    name: str
    rev: str
    env: dict[str, str]
    rates: list[float] = field(default_factory=list)
    p50_ms: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)


def parse_arm(values: list[str]) -> Arm:
    if len(values) < 2:
        raise SystemExit(f"--arm needs NAME REV [KEY=VALUE ...], got {values}")
    env = {}
    for pair in values[2:]:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--arm {values[0]}: {pair!r} is not KEY=VALUE")
        env[key] = value
    return Arm(values[0], values[1], env)


def measure(arm: Arm, tree: Path | None, home: Path, mode: Mode, requests: int, clients: int) -> None:
    env = build_env(tree, home, arm.env)
    port = free_port()
    try:
        proc = start_server(serve_cmd(port), port, env)
    except RuntimeError as exc:
        raise SystemExit(f"arm {arm.name}: {exc}") from exc
    try:
        run_load(port, mode, WARMUP_REQUESTS, clients)
        before = proc_stats(proc.pid)
        res = run_load(port, mode, requests, clients)
        after = proc_stats(proc.pid)
    finally:
        stop_server(proc)
    arm.rates.append(res["prompts"] / res["wall"])
    arm.p50_ms.append(statistics.median(res["samples"]) * 1000)
    arm.cpu_ms.append((after["cpu_s"] - before["cpu_s"]) * 1000 / res["prompts"])


def summary(arms: list[Arm]) -> str:
    """Markdown: per arm the median prompts/s, p50 and server CPU per prompt, every round's rate, and the rounds in
    which it beat the first arm (same round, so the same phase of the machine)."""
    lines = [
        "| arm | median prompts/s | rounds (prompts/s) | median p50 ms | median server CPU ms/prompt"
        " | beat the first |",
        "|---|---|---|---|---|---|",
    ]
    first = arms[0]
    for arm in arms:
        wins = sum(a > b for a, b in zip(arm.rates, first.rates, strict=True))
        lines.append(
            f"| {arm.name} | {statistics.median(arm.rates):.1f} | {', '.join(f'{r:.0f}' for r in arm.rates)} "
            f"| {statistics.median(arm.p50_ms):.2f} | {statistics.median(arm.cpu_ms):.2f} "
            f"| {'-' if arm is first else f'{wins} of {len(arm.rates)}'} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arm", nargs="+", action="append", required=True, metavar="NAME REV [KEY=VALUE]")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--requests", type=int, default=3000, help="measured requests per arm and round")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--mode", choices=["single", "batch"], default="single", help="1 or 64 prompts per request")
    ap.add_argument("--home", type=Path, default=Path(os.environ.get("LIGHTGUARD_HOME", VAR_DIR / "bench-home")))
    args = ap.parse_args()
    arms = [parse_arm(values) for values in args.arm]
    if len(arms) < 2:
        raise SystemExit("give at least two --arm")
    trees = {arm.rev: checkout(arm.rev) for arm in arms}
    for r in range(args.rounds):
        for arm in arms:
            measure(arm, trees[arm.rev], args.home, args.mode, args.requests, args.clients)
            print(
                f"round {r}: {arm.name}: {arm.rates[-1]:.1f} prompts/s, p50 {arm.p50_ms[-1]:.2f} ms, "
                f"server CPU {arm.cpu_ms[-1]:.2f} ms/prompt",
                flush=True,
            )
    print(summary(arms))


if __name__ == "__main__":
    main()
