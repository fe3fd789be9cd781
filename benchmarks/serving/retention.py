"""Decision-log retention on a large SQLite log: batch times, and what a concurrent writer waits meanwhile.

    python -m benchmarks.serving.retention [--rows 2000000] [--batch 2000] [--keep-days 1]

Fills a fresh SQLite file (WAL, as the service opens it) with `--rows` decisions spread over the last `--span-days`
days, then, while a writer thread commits 100-row batches every 20 ms as the decision-log writer does under load,
runs one retention pass by age. Prints the rows deleted, batches, the longest batch (how long the write lock is
held at most), rows/s, the writer's commit latency (p50 / p99 / max) before and during the pass, and the time of
the console's counts query (per category, last hour and day) on the filled log.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from service.db.engine import create_db_engine, make_sessionmaker, upgrade_database
from service.db.models import utcnow
from service.db.repositories import DecisionRepository
from service.usecases.retention import RetentionPolicy, prune_decisions

CATEGORIES = [None, None, None, None, "violence", "hate", "weapons", "competitors"]


def fill(sessions: sessionmaker[Session], rows: int, span: timedelta, chunk: int = 50_000) -> None:
    now = utcnow()
    step = span / max(1, rows)
    for start in range(0, rows, chunk):
        batch: list[dict[str, Any]] = [
            {
                "created_at": now - span + step * n,
                "endpoint": "classify",
                "text_digest": f"{n:016x}",
                "flagged": CATEGORIES[n % len(CATEGORIES)] is not None,
                "category": CATEGORIES[n % len(CATEGORIES)],
                "score": 0.5,
                "index_version": 1,
            }
            for n in range(start, min(rows, start + chunk))
        ]
        with sessions() as session:
            DecisionRepository(session).add_many(batch)
            session.commit()


class Writer(threading.Thread):
    """Commits `rows` new decisions every `every_s`, as the decision-log writer does; records each commit's time."""

    def __init__(self, sessions: sessionmaker[Session], rows: int = 100, every_s: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.sessions, self.rows, self.every_s = sessions, rows, every_s
        self.latencies: list[float] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            batch = [
                {
                    "created_at": utcnow(),
                    "endpoint": "classify",
                    "text_digest": "f" * 16,
                    "flagged": False,
                    "score": 0.1,
                    "index_version": 1,
                }
                for _ in range(self.rows)
            ]
            began = time.perf_counter()
            with self.sessions() as session:
                DecisionRepository(session).add_many(batch)
                session.commit()
            self.latencies.append(time.perf_counter() - began)
            self.stop.wait(self.every_s)

    def take(self) -> list[float]:
        taken, self.latencies = self.latencies, []
        return taken


def describe(latencies: list[float]) -> str:
    if not latencies:
        return "no commits"
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    return (
        f"{len(ordered)} commits, p50 {1000 * statistics.median(ordered):.1f} ms, p99 {1000 * p99:.1f} ms,"
        f" max {1000 * ordered[-1]:.1f} ms"
    )


def run(
    rows: int, batch: int, keep_days: float, span_days: float, folder: Path, baseline_s: float = 2.0
) -> dict[str, Any]:
    url = f"sqlite:///{folder / 'retention.db'}"
    engine = create_db_engine(url)
    upgrade_database(url, engine)
    sessions = make_sessionmaker(engine)
    try:
        began = time.perf_counter()
        fill(sessions, rows, timedelta(days=span_days))
        filled_s = time.perf_counter() - began
        began = time.perf_counter()
        with sessions() as session:
            now = utcnow()
            for span in (timedelta(hours=1), timedelta(days=1)):
                DecisionRepository(session).count_by_category(now - span, now)
        counts_s = time.perf_counter() - began
        writer = Writer(sessions)
        writer.start()
        writer.stop.wait(baseline_s)  # the writer's latency alone, before the pass
        alone = writer.take()
        report = prune_decisions(sessions, RetentionPolicy(max_age=timedelta(days=keep_days), batch_rows=batch))
        during = writer.take()
        writer.stop.set()
        writer.join()
        return {
            "rows": rows,
            "filled_s": filled_s,
            "counts_s": counts_s,
            "report": report,
            "writer_alone": describe(alone),
            "writer_during": describe(during),
        }
    finally:
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--batch", type=int, default=2_000)
    parser.add_argument("--keep-days", type=float, default=1.0)
    parser.add_argument("--span-days", type=float, default=2.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        result = run(args.rows, args.batch, args.keep_days, args.span_days, Path(folder))
    report = result["report"]
    print(f"log: {result['rows']:,} rows over {args.span_days:g} days (filled in {result['filled_s']:.1f} s)")
    print(f"counts per category, last hour + last day: {1000 * result['counts_s']:.0f} ms")
    print(
        f"retention (keep {args.keep_days:g} days, batches of {args.batch:,}): {report.deleted:,} rows deleted in"
        f" {report.batches} batches, {report.seconds:.1f} s ({report.deleted / max(report.seconds, 1e-9):,.0f} rows/s),"
        f" longest batch {1000 * report.longest_batch_s:.1f} ms"
    )
    print(f"writer alone:  {result['writer_alone']}")
    print(f"writer during: {result['writer_during']}")


if __name__ == "__main__":
    main()
