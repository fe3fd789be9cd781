"""Bulk classification throughput: the local engine against Ray Data with 1 and 2 actors on one seeded file.

    python -m benchmarks.serving.bulk [--rows 100000] [--seed 0]

Rows are drawn (seeded, with replacement) from the dev split of data/safety.jsonl. The local engine is timed as
`lightguard classify --input` runs it (guard on every core, batches of 64, JSONL out); Ray as `--engine ray`
runs it (a local Ray of this machine's cores, one guard per actor on one thread, JSONL out), its time including
the actors' start and the guard's load. Prints a markdown table for docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.layout import DATA_DIR, VAR_DIR
from benchmarks.tables import markdown_table
from service.bulk.local import classify_lines
from service.bulk.ray_engine import RayJob, run
from service.bulk.rows import jsonl_lines
from service.context import open_guard
from service.settings import Settings


@dataclass(frozen=True, slots=True)
class BulkRun:
    engine: str
    cores: int
    rows: int
    seconds: float

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds

    @property
    def rows_per_core_s(self) -> float:
        return self.rows_per_s / self.cores


def build_input(path: Path, rows: int, seed: int, data_dir: Path = DATA_DIR) -> None:
    """`rows` JSONL lines `{id, text}` drawn with replacement from the dev split, seeded."""
    dev = []
    with (data_dir / "safety.jsonl").open(encoding="utf-8") as lines:
        for line in lines:
            item = json.loads(line)
            if item.get("split") == "dev":
                dev.append(item["text"])
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for n in range(rows):
            out.write(json.dumps({"id": f"r{n}", "text": rng.choice(dev)}, ensure_ascii=False) + "\n")


def time_local(settings: Settings, source: Path, output: Path, cores: int) -> BulkRun:
    guard = open_guard(settings)
    lines = jsonl_lines(source.read_text(encoding="utf-8"))
    started = time.perf_counter()
    with output.open("w", encoding="utf-8") as out:
        for rows in classify_lines(guard, lines, 64):
            out.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    return BulkRun("local", cores, len(lines), time.perf_counter() - started)


def time_ray(settings: Settings, source: Path, output: Path, actors: int) -> BulkRun:
    shutil.rmtree(output, ignore_errors=True)
    started = time.perf_counter()
    rows = run(settings, RayJob(source, output, actors=actors, batch_size=256))
    return BulkRun(f"ray, {actors} actor{'s' if actors > 1 else ''}", actors, rows, time.perf_counter() - started)


def table(runs: list[BulkRun]) -> str:
    local = runs[0].rows_per_core_s
    return markdown_table(
        ["engine", "cores", "rows", "seconds", "rows/s", "rows/s per core", "per core vs local"],
        [
            (
                r.engine,
                r.cores,
                r.rows,
                f"{r.seconds:.1f}",
                f"{r.rows_per_s:.0f}",
                f"{r.rows_per_core_s:.0f}",
                f"{100 * r.rows_per_core_s / local:.0f} %",
            )
            for r in runs
        ],
        ["---", "---:", "---:", "---:", "---:", "---:", "---:"],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    import ray

    work = VAR_DIR / "bulk-bench"
    source = work / f"rows-{args.rows}-seed{args.seed}.jsonl"
    if not source.exists():
        build_input(source, args.rows, args.seed)
    settings = Settings()
    cores = os.cpu_count() or 1
    runs = [time_local(settings, source, work / "local.jsonl", cores)]
    ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    runs += [time_ray(settings, source, work / f"ray-{n}.jsonl", n) for n in (1, 2)]
    ray.shutdown()
    print(table(runs))


if __name__ == "__main__":
    main()
