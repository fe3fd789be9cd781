"""Time to ready of a new empty home with a cold and then a warm embedding cache, and a rebuild that changes no
model (issue 19): `python -m benchmarks.serving.cold_start` (the real model, the shipped data; minutes for the cold
round), `--fixtures` for the hashing encoder on the test fixtures (seconds), `--cache FILE` to time the warm rounds
only, against an embedding cache filled before (e.g. `.cache/embeddings.sqlite3` after a `make run`). With the real
model, a first round times what a fresh clone does: a cold cache and the committed seed-vector pack (every other
round runs with LIGHTGUARD_SEED_VECTORS=off)."""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import time
from pathlib import Path
from typing import Any

from benchmarks.layout import REPO, VAR_DIR
from benchmarks.machine import machine
from benchmarks.serving.server import free_port, serve_cmd, start_server, stop_server
from benchmarks.tables import markdown_table
from service.context import open_context
from service.settings import Settings

FIXTURES = REPO / "tests" / "service" / "fixtures"


def fresh_home_ready_s(home: Path, cache: Path, extra: dict[str, str]) -> float:
    """Seconds from starting `lightguard serve` on an empty `home` (its own SQLite database) to /readyz 200."""
    shutil.rmtree(home, ignore_errors=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIGHTGUARD_")}
    env |= {"LIGHTGUARD_HOME": str(home), "LIGHTGUARD_EMBEDDING_CACHE": str(cache), "LIGHTGUARD_SEED_VECTORS": "off"}
    env |= extra
    port = free_port()
    t0 = time.perf_counter()
    proc = start_server(serve_cmd(port), port, env, log=home.parent / f"{home.name}.log")
    ready = time.perf_counter() - t0
    stop_server(proc)
    return ready


def rebuild_s(home: Path, cache: Path, extra: dict[str, str]) -> float:
    """Seconds of one index rebuild of `home` (loaded first) through the service's lifecycle, in this process."""
    values: dict[str, Any] = {
        "home": home,
        "embedding_cache": str(cache),
        "seed_vectors": "off",
        "follow_interval_s": 0,
    }
    if "LIGHTGUARD_ENCODER" in extra:
        values |= {"encoder": extra["LIGHTGUARD_ENCODER"], "data_dir": extra["LIGHTGUARD_DATA_DIR"]}
    ctx = open_context(Settings(**values))
    try:
        asyncio.run(ctx.lifecycle.load_or_build())
        t0 = time.perf_counter()
        asyncio.run(ctx.lifecycle.rebuild("benchmark"))
        return time.perf_counter() - t0
    finally:
        ctx.close()


def run(work: Path, fixtures: bool, cache: Path | None = None) -> list[tuple[str, float]]:
    """The timings, in order; `work` is emptied first (its caches start cold). `cache`: an embedding cache
    used as it is instead (not emptied, not moved): the cold round is left out."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    extra = {"LIGHTGUARD_ENCODER": "hashing", "LIGHTGUARD_DATA_DIR": str(FIXTURES)} if fixtures else {}
    rows: list[tuple[str, float]] = []
    if cache is None:
        if not fixtures:  # a fresh clone: a cold cache of its own, the committed pack
            packed = fresh_home_ready_s(work / "home-p", work / "pack-cache.sqlite3", {"LIGHTGUARD_SEED_VECTORS": ""})
            rows.append(("new empty home, cold cache, seed-vector pack (a fresh clone)", packed))
        cache = work / "embeddings.sqlite3"
        cold = fresh_home_ready_s(work / "home-a", cache, extra)
        rows.append(("new empty home, cold cache (embeds every exemplar)", cold))
    rows.append(("new empty home, warm cache", fresh_home_ready_s(work / "home-b", cache, extra)))
    rows.append(("rebuild, no model change (warm cache)", rebuild_s(work / "home-b", cache, extra)))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--work", type=Path, default=VAR_DIR / "bench-cold-start", help="emptied first")
    ap.add_argument("--fixtures", action="store_true", help="hashing encoder on tests/service/fixtures")
    ap.add_argument("--cache", type=Path, help="a warm embedding cache to use as it is (no cold round)")
    args = ap.parse_args()
    info = machine()
    print(f"CPU: {info['cpu']} ({info['cores']} cores, {info['int8_isa']}), load average {info['loadavg']}")
    rows = run(args.work, args.fixtures, args.cache)
    print(markdown_table(["case", "seconds"], [(case, f"{s:.1f}") for case, s in rows], ["---", "---:"]))


if __name__ == "__main__":
    main()
