"""benchmarks.serving.bulk: the seeded input and the table (the timed runs are the benchmark's, not the tests')."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.serving.bulk import BulkRun, build_input, table


def test_build_input_is_seeded_and_numbered(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "safety.jsonl").write_text(
        "\n".join(json.dumps({"text": f"text {n}", "split": "dev" if n % 2 else "train"}) for n in range(10)) + "\n"
    )
    build_input(tmp_path / "a.jsonl", 50, seed=3, data_dir=data)
    build_input(tmp_path / "b.jsonl", 50, seed=3, data_dir=data)
    rows = [json.loads(line) for line in (tmp_path / "a.jsonl").read_text().splitlines()]
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    assert [r["id"] for r in rows] == [f"r{n}" for n in range(50)]
    assert {int(r["text"].split()[1]) % 2 for r in rows} == {1}, "dev rows only"


def test_table_compares_per_core_rates() -> None:
    out = table([BulkRun("local", 2, 1000, 10.0), BulkRun("ray, 1 actor", 1, 1000, 18.0)])
    assert "| local | 2 | 1000 | 10.0 | 100 | 50 | 100 % |" in out
    assert "| ray, 1 actor | 1 | 1000 | 18.0 | 56 | 56 | 111 % |" in out
