"""benchmarks.serving.retention on a small log: the pass deletes what is past the age, in batches, beside a writer."""

from __future__ import annotations

from pathlib import Path

from benchmarks.serving.retention import describe, run


def test_retention_bench_deletes_the_older_half_in_batches(tmp_path: Path) -> None:
    result = run(rows=3_000, batch=400, keep_days=1.0, span_days=2.0, folder=tmp_path, baseline_s=0.0)
    report = result["report"]
    assert 1_400 <= report.deleted <= 1_600  # rows are spread evenly over two days
    assert report.batches == report.deleted // 400 + 1
    assert report.longest_batch_s > 0 and result["counts_s"] > 0
    assert result["writer_during"].endswith("ms") or result["writer_during"] == "no commits"


def test_describe_latencies() -> None:
    assert describe([]) == "no commits"
    assert describe([0.001, 0.002, 0.003]) == "3 commits, p50 2.0 ms, p99 3.0 ms, max 3.0 ms"
