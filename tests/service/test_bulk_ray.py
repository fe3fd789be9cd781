"""`lightguard classify --engine ray` on a real local Ray (2 CPUs) with the hashing encoder: same verdicts as local."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from service.bulk import ray_engine
from service.bulk.ray_engine import BulkInputError, BulkJobError, GuardActor, RayJob, input_format, run
from service.bulk.rows import jsonl_lines
from service.cli.main import app
from tests.service.support import FIXTURES, make_settings

# Ray warns about its own deprecated settings when it builds its DataContext: not ours to fix.
pytestmark = [pytest.mark.ray, pytest.mark.filterwarnings("ignore::DeprecationWarning:ray")]

if os.environ.get("LIGHTGUARD_REQUIRE_RAY"):
    import ray
else:
    ray = pytest.importorskip("ray", reason="pip install -e '.[ray]' (make install-ray)")

WORDS = [
    "how",
    "do",
    "I",
    "bake",
    "bread",
    "kill",
    "neighbour",
    "stab",
    "knife",
    "vermin",
    "people",
    "poem",
    "spring",
    "capital",
    "france",
    "weather",
]


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("home")


def _texts(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choices(WORDS, k=rng.randint(3, 12))) for _ in range(n)]


def _read_jsonl_dir(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for part in sorted(path.glob("*.jsonl")) for line in jsonl_lines(part.read_text())]


def _local_engine(home: Path, src: Path, out: Path) -> list[dict[str, Any]]:
    """The local engine as users run it, in a process of its own (as Ray's actors are): nothing an earlier test left
    in this process's numerical libraries can tell the two apart."""
    env = os.environ | {
        "LIGHTGUARD_HOME": str(home),
        "LIGHTGUARD_DATA_DIR": str(FIXTURES),
        "LIGHTGUARD_ENCODER": "hashing",
    }
    command = [sys.executable, "-m", "service.cli.main", "classify", "--input", str(src), "--output", str(out)]
    subprocess.run(command, env=env, check=True, capture_output=True, timeout=300)
    return [json.loads(line) for line in jsonl_lines(out.read_text())]


def _assert_same_verdicts(got: dict[str, dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    assert len(got) == len(expected)
    for want in expected:
        row = got[want["id"]]
        assert (row["flagged"], row["category"], row["action"]) == (want["flagged"], want["category"], want["action"])
        assert row["score"] == pytest.approx(want["score"], abs=1e-6)
        assert row["categories"] == pytest.approx(want["categories"], abs=1e-6)


# Line separators a JSON string may hold as they are (json.dumps with ensure_ascii=False writes them raw), where
# str.splitlines would cut a line: both engines must keep such a row whole.
SEPARATORS = ("\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\x1c")


def _write_rows(path: Path, n: int) -> None:
    texts = [
        t if i % 50 else SEPARATORS[i // 50 % len(SEPARATORS)].join(t.split(" ", 1)) for i, t in enumerate(_texts(n))
    ]
    lines = [json.dumps({"id": f"r{i}", "text": text}, ensure_ascii=False) for i, text in enumerate(texts)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_same_verdicts_as_the_local_engine(local_ray: None, home: Path, tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    _write_rows(src, 3000)
    written = run(make_settings(home), RayJob(src, tmp_path / "out.jsonl", actors=2, batch_size=200))
    got = {row["id"]: row for row in _read_jsonl_dir(tmp_path / "out.jsonl")}
    assert written == 3000 and len(got) == 3000, "every id exactly once"
    assert not [row for row in got.values() if "error" in row], "rows holding U+2028 & co. stay whole"
    _assert_same_verdicts(got, _local_engine(home, src, tmp_path / "local.jsonl"))


def _killed_once(killed: Path, starts: Path, at_batch: int) -> type[GuardActor]:
    """A guard actor whose process SIGKILLs itself at its `at_batch`-th batch, once in the whole job: the first actor
    to get there creates `killed` (O_EXCL, so no other actor, nor its own restart, does it again). Every actor start
    appends its pid to `starts`. Defined in a function, so Ray ships the class by value to the workers."""

    class KilledOnceGuardActor(GuardActor):
        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            self.batches = 0
            with starts.open("a") as log:
                log.write(f"{os.getpid()}\n")

        def __call__(self, batch: Any) -> Any:
            self.batches += 1
            if self.batches == at_batch:
                try:
                    fd = os.open(killed, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
                except FileExistsError:
                    pass
                else:
                    os.write(fd, f"{os.getpid()}\n".encode())
                    os.close(fd)
                    os.kill(os.getpid(), signal.SIGKILL)
            return super().__call__(batch)

    return KilledOnceGuardActor


def _killed_pid(killed: Path) -> int:
    assert killed.exists(), "no actor reached the batch it dies at: the test tested nothing"
    return int(killed.read_text())


def test_a_killed_actor_is_restarted_and_no_row_is_lost_or_duplicated(
    local_ray: None, home: Path, tmp_path: Path
) -> None:
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    _write_rows(src, 2000)
    killed, starts = tmp_path / "killed", tmp_path / "starts"
    # 20 batches over 2 actors: one of them reaches its 3rd, after it has returned 2, whatever the split.
    actor = _killed_once(killed, starts, at_batch=3)
    written = run(make_settings(home), RayJob(src, out, actors=2, batch_size=100), actor=actor)
    pids = [int(pid) for pid in starts.read_text().split()]
    assert _killed_pid(killed) in pids and len(pids) == 3, "two actors, and the killed one started again"
    rows = _read_jsonl_dir(out)
    ids = [row["id"] for row in rows]
    assert written == len(rows) == 2000 and sorted(ids) == sorted(f"r{i}" for i in range(2000)), "each id once"
    assert not [p for p in tmp_path.iterdir() if ".staging-" in p.name]
    _assert_same_verdicts({row["id"]: row for row in rows}, _local_engine(home, src, tmp_path / "local.jsonl"))


def test_a_write_killed_mid_part_leaves_no_duplicate_part(
    local_ray: None, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src, out, killed = tmp_path / "in.jsonl", tmp_path / "out.jsonl", tmp_path / "killed"
    _write_rows(src, 1000)
    sink_class = type(ray_engine._jsonl_sink(str(out)))

    class KilledOnceSink(sink_class):  # type: ignore[misc, valid-type]
        """Writes half of its first part, flushed to disk, then SIGKILLs its process (once in the job)."""

        def write_block_to_file(self, block: Any, file: Any) -> None:
            try:
                fd = os.open(killed, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                super().write_block_to_file(block, file)
                return
            lines = block.to_arrow().column("line").to_pylist()
            for line in lines[: len(lines) // 2]:
                file.write((line + "\n").encode("utf-8"))
            file.flush()
            os.write(fd, f"{os.getpid()}\n".encode())
            os.close(fd)
            os.kill(os.getpid(), signal.SIGKILL)

    # The sink object travels to the write tasks pickled (by value: the class is local), so the driver's patch
    # reaches them.
    monkeypatch.setattr(ray_engine, "_jsonl_sink", KilledOnceSink)
    written = run(make_settings(home), RayJob(src, out, actors=2, batch_size=100))
    _killed_pid(killed)
    ids = [row["id"] for row in _read_jsonl_dir(out)]
    assert written == len(ids) == 1000 and sorted(ids) == sorted(f"r{i}" for i in range(1000)), "each id once"
    assert not [p for p in tmp_path.iterdir() if ".staging-" in p.name]


def test_without_retries_a_killed_actor_stops_the_job_and_writes_nothing(
    local_ray: None, home: Path, tmp_path: Path
) -> None:
    src, out = tmp_path / "in.parquet", tmp_path / "out.parquet"
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"id": list(range(1000)), "text": _texts(1000)}), src)
    killed = tmp_path / "killed"
    actor = _killed_once(killed, tmp_path / "starts", at_batch=2)
    with pytest.raises(BulkJobError, match="wrote nothing to"):
        run(make_settings(home), RayJob(src, out, actors=1, batch_size=100, task_retries=0), actor=actor)
    _killed_pid(killed)
    assert not out.exists(), "no output, not even the parts written before the kill"
    assert not [p for p in tmp_path.iterdir() if ".staging-" in p.name]


def test_bad_rows_are_reported_and_the_job_goes_on(local_ray: None, home: Path, tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    (src / "a.jsonl").write_text(
        "\n".join(
            [
                json.dumps({"id": "a", "text": "hello there"}),
                "this is not json",
                json.dumps({"id": "c"}),
                json.dumps({"id": "d", "text": "   \u200b "}),
                json.dumps(["not", "an", "object"]),
            ]
        )
        + "\n"
    )
    (src / "b.jsonl").write_text(json.dumps({"id": "e", "text": "what is the capital of france"}) + "\n")
    out = tmp_path / "out.jsonl"
    assert run(make_settings(home), RayJob(src, out, actors=1, batch_size=2)) == 6
    rows = sorted(_read_jsonl_dir(out), key=lambda r: (r["id"] is None, str(r["id"])))
    assert [(r["id"], "error" in r) for r in rows] == [
        ("a", False),
        ("c", True),
        ("d", True),
        ("e", False),
        (None, True),
        (None, True),
    ]
    assert {"a.jsonl: not valid JSON", "a.jsonl: expected a JSON object"} == {r["error"] for r in rows[4:]}


def test_parquet_rows_without_text_get_an_error(local_ray: None, home: Path, tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    src = tmp_path / "in.parquet"
    pq.write_table(pa.table({"id": [1, 2, 3], "text": ["hello there", None, "those people are vermin"]}), src)
    out = tmp_path / "out.parquet"
    assert run(make_settings(home), RayJob(src, out, actors=1)) == 3
    table = pq.read_table(out).sort_by("id").to_pylist()
    assert [r["id"] for r in table] == [1, 2, 3]
    assert table[1]["error"] == "in.parquet: field 'text' is missing or not a string" and table[1]["flagged"] is None
    assert table[0]["error"] is None and isinstance(table[0]["flagged"], bool)
    assert set(table[2]["categories"]) == set(table[0]["categories"])


def test_parquet_round_trip_through_the_cli(local_ray: None, home: Path, tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    src = tmp_path / "in"
    src.mkdir()
    texts = _texts(50, seed=1)
    pq.write_table(pa.table({"id": list(range(25)), "text": texts[:25]}), src / "part-0.parquet")
    pq.write_table(pa.table({"id": list(range(25, 50)), "text": texts[25:]}), src / "part-1.parquet")
    env = {"LIGHTGUARD_HOME": str(home), "LIGHTGUARD_DATA_DIR": str(FIXTURES), "LIGHTGUARD_ENCODER": "hashing"}
    out = tmp_path / "out.parquet"
    args = ["classify", "--engine", "ray", "--input", str(src), "--output", str(out), "--actors", "2"]
    result = CliRunner().invoke(app, [*args, "--batch-size", "10"], env=env)
    assert result.exit_code == 0, result.output
    ids = pq.read_table(out, columns=["id"]).column("id").to_pylist()
    assert sorted(ids) == list(range(50))


def test_input_format_refuses_what_it_cannot_read(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text("{}\n")
    (tmp_path / "b.parquet").write_bytes(b"")
    with pytest.raises(BulkInputError, match="both"):
        input_format(tmp_path)
    with pytest.raises(BulkInputError, match="does not exist"):
        input_format(tmp_path / "missing.jsonl")
    assert input_format(tmp_path / "a.jsonl") == "jsonl"


def test_an_existing_output_is_refused(tmp_path: Path) -> None:
    (tmp_path / "in.jsonl").write_text("{}\n")
    (tmp_path / "out.parquet").mkdir()
    (tmp_path / "out.parquet" / "old.parquet").write_bytes(b"")
    with pytest.raises(BulkInputError, match="exists"):
        run(make_settings(tmp_path / "home"), RayJob(tmp_path / "in.jsonl", tmp_path / "out.parquet"))
