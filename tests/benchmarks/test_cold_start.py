"""benchmarks.serving.cold_start on the hashing encoder: three timings, and the warm rounds embed nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.serving.cold_start import run


@pytest.mark.server
def test_cold_start_benchmark_runs_on_the_fixtures(tmp_path: Path) -> None:
    rows = run(tmp_path / "work", fixtures=True)
    assert [case for case, _ in rows][1:] == ["new empty home, warm cache", "rebuild, no model change (warm cache)"]
    assert all(seconds > 0 for _, seconds in rows)
    assert (tmp_path / "work" / "embeddings.sqlite3").is_file()


@pytest.mark.server
def test_a_given_warm_cache_skips_the_cold_round_and_is_kept(tmp_path: Path) -> None:
    run(tmp_path / "first", fixtures=True)
    cache = tmp_path / "first" / "embeddings.sqlite3"
    size = cache.stat().st_size
    rows = run(tmp_path / "work", fixtures=True, cache=cache)
    assert [case for case, _ in rows] == ["new empty home, warm cache", "rebuild, no model change (warm cache)"]
    assert cache.stat().st_size >= size and not (tmp_path / "work" / "embeddings.sqlite3").exists()
