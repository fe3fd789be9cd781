"""How long an operator waits for a new topic to be live: `POST /v1/topics` with 10 examples (encode, index, head,
calibration, commit) on a real server, idle and while 8 classify clients run; builds alternated round by round.

    .venv/bin/python -m benchmarks.serving.topic_add                                   # this tree, 3 rounds
    .venv/bin/python -m benchmarks.serving.topic_add --arm before 1ad18d0 --arm after . --rounds 3

Arms are `benchmarks.serving.ab_server`'s (NAME REV [KEY=VALUE ...], other revisions checked out under var/ab/) and
the home is the bench's (LIGHTGUARD_HOME, default var/bench-home: the full seed index). Each topic is deleted after
it is timed, so the index is the same size for every add. `benchmarks.serving.bench` runs one round of this too.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.layout import VAR_DIR
from benchmarks.samples import short_prompts
from benchmarks.serving.ab_server import Arm, parse_arm
from benchmarks.serving.load import run_load
from benchmarks.serving.server import build_env, checkout, free_port, serve_cmd, start_server, stop_server

EXAMPLES = 10
LOAD_CLIENTS = 8


@dataclass
class TopicAddTimes:
    """Seconds per `POST /v1/topics`, with no other traffic and under `LOAD_CLIENTS` classify clients."""

    idle: list[float] = field(default_factory=list)
    loaded: list[float] = field(default_factory=list)
    classified_per_s: list[float] = field(default_factory=list)  # the load's rate while topics were added


def topic_examples(adds: int, examples: int = EXAMPLES) -> list[list[str]]:
    """`adds` disjoint groups of `examples` test-split prompts (distinct texts: no add re-encodes another's)."""
    texts = short_prompts(adds * examples)
    if len(texts) < adds * examples:
        raise SystemExit(f"only {len(texts)} sample prompts for {adds} adds of {examples} examples; add fewer")
    return [texts[i * examples : (i + 1) * examples] for i in range(adds)]


def _request(conn: http.client.HTTPConnection, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    conn.request(method, path, None if body is None else json.dumps(body), {"Content-Type": "application/json"})
    resp = conn.getresponse()
    data = resp.read()
    return resp.status, json.loads(data) if data else None


def add_topics(port: int, groups: list[list[str]], prefix: str) -> list[float]:
    """Time one `POST /v1/topics` per group of examples (the topic is deleted after it is timed)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    samples = []
    try:
        for n, examples in enumerate(groups):
            t = time.perf_counter()
            status, body = _request(conn, "POST", "/v1/topics", {"name": f"{prefix}_{n}", "examples": examples})
            samples.append(time.perf_counter() - t)
            if status != 201:
                raise RuntimeError(f"POST /v1/topics: {status} {body}")
            status, body = _request(conn, "DELETE", f"/v1/topics/{body['id']}")
            if status >= 300:
                raise RuntimeError(f"DELETE /v1/topics: {status} {body}")
    finally:
        conn.close()
    return samples


def measure_topic_adds(port: int, adds: int, times: TopicAddTimes, load_requests: int = 4000) -> None:
    """`adds` topic adds with no other traffic, then `adds` more while `LOAD_CLIENTS` classify clients run (the
    load runs until every add is done: it is sized by `load_requests` and restarted if it ends first)."""
    groups = topic_examples(2 * adds + 1)
    add_topics(port, groups[:1], "warmup")
    times.idle += add_topics(port, groups[1 : adds + 1], "idle")
    done = threading.Event()
    rates: list[float] = []

    def load() -> None:
        while not done.is_set():
            res = run_load(port, "single", load_requests, LOAD_CLIENTS)
            rates.append(res["prompts"] / res["wall"])

    loader = threading.Thread(target=load)
    loader.start()
    try:
        time.sleep(2.0)  # let the load generator start and reach its steady rate before the first add
        times.loaded += add_topics(port, groups[adds + 1 :], "loaded")
    finally:
        done.set()
        loader.join()
    times.classified_per_s += rates


def pct_ms(samples: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(samples) * 1000, q)) if samples else float("nan")


def measure_arm(arm: Arm, tree: Path | None, home: Path, adds: int, times: TopicAddTimes) -> None:
    env = build_env(tree, home, arm.env)
    port = free_port()
    try:
        proc = start_server(serve_cmd(port), port, env)
    except RuntimeError as exc:
        raise SystemExit(f"arm {arm.name}: {exc}") from exc
    try:
        measure_topic_adds(port, adds, times)
    finally:
        stop_server(proc)


def summary(arms: list[tuple[Arm, TopicAddTimes]]) -> str:
    lines = [
        f"| arm | idle p50 ms | idle p99 ms | {LOAD_CLIENTS} clients p50 ms | {LOAD_CLIENTS} clients p99 ms"
        " | classify prompts/s meanwhile | adds |",
        "|---|---|---|---|---|---|---|",
    ]
    for arm, t in arms:
        rate = statistics.median(t.classified_per_s) if t.classified_per_s else float("nan")
        lines.append(
            f"| {arm.name} | {pct_ms(t.idle, 50):.0f} | {pct_ms(t.idle, 99):.0f} | {pct_ms(t.loaded, 50):.0f} "
            f"| {pct_ms(t.loaded, 99):.0f} | {rate:.0f} | {len(t.idle)} + {len(t.loaded)} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arm", nargs="+", action="append", metavar="NAME REV [KEY=VALUE]")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--adds", type=int, default=10, help="topic adds per arm, round and phase (idle, loaded)")
    ap.add_argument("--home", type=Path, default=Path(os.environ.get("LIGHTGUARD_HOME", VAR_DIR / "bench-home")))
    args = ap.parse_args()
    arms = [parse_arm(values) for values in args.arm or [["this", "."]]]
    trees = {arm.rev: checkout(arm.rev) for arm in arms}
    results = [(arm, TopicAddTimes()) for arm in arms]
    for r in range(args.rounds):
        for arm, times in results:
            n_idle, n_loaded = len(times.idle), len(times.loaded)
            measure_arm(arm, trees[arm.rev], args.home, args.adds, times)
            print(
                f"round {r}: {arm.name}: idle p50 {pct_ms(times.idle[n_idle:], 50):.0f} ms, "
                f"{LOAD_CLIENTS} clients p50 {pct_ms(times.loaded[n_loaded:], 50):.0f} ms "
                f"p99 {pct_ms(times.loaded[n_loaded:], 99):.0f} ms",
                flush=True,
            )
    print(summary(results))


if __name__ == "__main__":
    main()
