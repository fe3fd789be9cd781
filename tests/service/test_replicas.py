"""Stateless replicas: `lightguard serve` processes with different homes (what separate hosts look like) on one
PostgreSQL database converge on every edit and rebuild made through either; a replica started later with an empty
home loads the newest full build's artifact from the database instead of embedding the seed exemplars; SIGKILL of
one replica mid-rebuild loses nothing and the other carries on."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest

from index import HashingEncoder
from service.context import ServiceContext, open_context
from service.db.repositories import TopicRepository
from tests.service.support import (
    COOKING,
    COOKING_PARAPHRASE,
    Server,
    fresh_pg_database,
    lightguard_server,
    make_settings,
    rebuild_and_wait,
)
from tests.service.test_faults import ADMIN, big_data_dir, build_rows, kill9, poll, post_in_background

AUTH = {"Authorization": f"Bearer {ADMIN}"}
CONVERGE_S = 15.0  # follow interval 0.5 s; generous for 2 shared, busy cores
pytestmark = [pytest.mark.server, pytest.mark.postgres]


@pytest.fixture
def pg_database() -> Iterator[str]:
    with fresh_pg_database("lightguard_rep") as url:
        yield url


@contextmanager
def replica(home: Path, data: Path, url: str) -> Iterator[Server]:
    home.mkdir(exist_ok=True)
    with lightguard_server(home, ADMIN, data_dir=data, database_url=url, timeout=120) as srv:
        yield srv


def index(srv: Server) -> dict[str, object]:
    r = httpx.get(f"{srv.base}/v1/index", headers=AUTH, timeout=10)
    assert r.status_code == 200, r.text
    return dict(r.json())


def converge(replicas: list[Server], version: int) -> float:
    """Seconds until every replica reports `version` or newer, and the same version (bounded by CONVERGE_S)."""
    t0 = time.monotonic()
    poll(
        lambda: (
            len({int(index(s)["version"]) for s in replicas}) == 1  # type: ignore[call-overload]
            and int(index(replicas[0])["version"]) >= version
        ),  # type: ignore[call-overload]
        CONVERGE_S,
        f"every replica at v{version}",
    )
    return time.monotonic() - t0


def assert_verified(srv: Server) -> None:
    verify = httpx.get(f"{srv.base}/v1/index/verify", headers=AUTH, timeout=30).json()
    assert verify["ok"] is True, verify["problems"]


def classify(srv: Server, text: str) -> dict[str, object]:
    r = httpx.post(f"{srv.base}/v1/classify", json={"text": text}, headers=AUTH, timeout=10)
    assert r.status_code == 200, r.text
    return dict(r.json())


def loaded_from(srv: Server, source: str) -> float:
    for line in httpx.get(f"{srv.base}/metrics", headers=AUTH, timeout=10).text.splitlines():
        if line.startswith(f'lightguard_index_loaded_from_total{{source="{source}"}}'):
            return float(line.split()[-1])
    return 0.0


def test_replicas_with_their_own_homes_converge_and_a_new_one_loads_from_the_database(
    tmp_path: Path, pg_database: str
) -> None:
    data = big_data_dir(tmp_path, rows=3000, background=500)
    with ExitStack() as stack:
        t0 = time.monotonic()
        a = stack.enter_context(replica(tmp_path / "a", data, pg_database))
        built_s = time.monotonic() - t0  # migrated, seeded and embedded every exemplar
        b = stack.enter_context(replica(tmp_path / "b", data, pg_database))
        assert loaded_from(a, "build") == 1 and loaded_from(b, "database") == 1 and loaded_from(b, "build") == 0
        converge([a, b], 1)

        created = httpx.post(f"{a.base}/v1/topics", json={"name": "cooking", "examples": COOKING}, headers=AUTH)
        assert created.status_code == 201, created.text
        lag = converge([a, b], int(created.json()["index_version"]))
        assert (
            httpx.post(f"{b.base}/v1/classify", json={"text": COOKING_PARAPHRASE}, headers=AUTH).json()["category"]
            == "cooking"
        )
        topic = created.json()["id"]
        patched = httpx.patch(f"{b.base}/v1/topics/{topic}", json={"action": "flag"}, headers=AUTH, timeout=30)
        assert patched.status_code == 200, patched.text
        converge([a, b], int(patched.json()["index_version"]))
        with httpx.Client(base_url=b.base, headers=AUTH, timeout=60) as http:
            rebuilt = rebuild_and_wait(http)
        assert rebuilt["status"] == "succeeded", rebuilt
        converge([a, b], int(rebuilt["version"]))
        removed = httpx.delete(f"{a.base}/v1/topics/{topic}", headers=AUTH, timeout=30)
        assert removed.status_code == 204, removed.text
        extra = httpx.post(f"{a.base}/v1/topics", json={"name": "baking", "examples": COOKING[:3]}, headers=AUTH)
        assert extra.status_code == 201, extra.text
        converge([a, b], int(extra.json()["index_version"]))
        for srv in (a, b):
            assert_verified(srv)

        # a third replica, later, with an empty home: the rebuild's artifact from the database plus two edits
        t0 = time.monotonic()
        c = stack.enter_context(replica(tmp_path / "c", data, pg_database))
        loaded_s = time.monotonic() - t0
        assert loaded_from(c, "database") == 1 and loaded_from(c, "build") == 0
        converge([a, b, c], int(extra.json()["index_version"]))
        assert_verified(c)
        for text in (COOKING_PARAPHRASE, *COOKING):  # the same version answers the same on every replica
            verdicts = [classify(srv, text) for srv in (a, b, c)]
            assert len({(v["category"], v["index_version"]) for v in verdicts}) == 1, verdicts
            assert max(float(v["score"]) for v in verdicts) - min(float(v["score"]) for v in verdicts) < 1e-6
        print(f"\nfirst replica ready in {built_s:.1f} s (built), third {loaded_s:.1f} s (database), lag {lag:.2f} s")
        assert loaded_s < 60
    log = c.log.read_text()
    assert "read from the database" in log and "built (startup)" not in log, log[-3000:]
    assert "with a full build (artifact loaded)" in a.log.read_text()  # A followed B's rebuild from its artifact


def test_sigkill_of_one_replica_mid_rebuild_loses_nothing(tmp_path: Path, pg_database: str) -> None:
    data = big_data_dir(tmp_path)
    with replica(tmp_path / "b", data, pg_database) as b:
        with replica(tmp_path / "a", data, pg_database) as a:
            created = httpx.post(f"{a.base}/v1/topics", json={"name": "cooking", "examples": COOKING}, headers=AUTH)
            assert created.status_code == 201, created.text
            converge([a, b], int(created.json()["index_version"]))
            worker = post_in_background(f"{a.base}/v1/index/rebuild")
            poll(
                lambda: any(s == "building" and t == "rebuild" for _, t, s in build_rows(pg_database)),
                30,
                "the rebuild to start",
            )
            kill9(a)
            worker.join(10)
        assert any(s == "building" for _, _, s in build_rows(pg_database))
        # the other replica carries on: reads, edits and a rebuild of its own
        assert (
            httpx.post(f"{b.base}/v1/classify", json={"text": COOKING_PARAPHRASE}, headers=AUTH).json()["category"]
            == "cooking"
        )
        more = httpx.post(f"{b.base}/v1/topics", json={"name": "baking", "examples": COOKING[:3]}, headers=AUTH)
        assert more.status_code == 201, more.text
        with httpx.Client(base_url=b.base, headers=AUTH, timeout=60) as http:
            # the killed replica's build is seen as interrupted (its process is gone): it blocks no rebuild
            assert rebuild_and_wait(http)["status"] == "succeeded"
        assert_verified(b)
        # the killed replica comes back (its home as it was left) and converges; nothing committed was lost
        with replica(tmp_path / "a", data, pg_database) as a:
            converge([a, b], int(index(b)["version"]))
            assert_verified(a)
            names = {t["name"] for t in httpx.get(f"{a.base}/v1/topics", headers=AUTH).json()["topics"]}
            assert {"cooking", "baking"} <= names
    assert not any(s == "building" for _, _, s in build_rows(pg_database))


def test_replicas_starting_together_on_an_empty_database_migrate_and_seed_once(
    tmp_path: Path, pg_database: str
) -> None:
    """Different homes share no file lock: the database's advisory lock orders their migrations and seeding."""
    start = threading.Barrier(3)
    contexts: list[ServiceContext] = []
    errors: list[BaseException] = []

    def open_one(name: str) -> None:
        settings = make_settings(tmp_path / name, database_url=pg_database)
        start.wait()
        try:
            contexts.append(open_context(settings, HashingEncoder()))
        except BaseException as exc:  # reported below, with the others
            errors.append(exc)

    threads = [threading.Thread(target=open_one, args=(name,)) for name in ("a", "b", "c")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    try:
        assert not errors, errors
        with contexts[0].sessions() as session:
            assert TopicRepository(session).count() == len(TopicRepository(session).find())
            names = [t.name for t in TopicRepository(session).find()]
        assert len(names) == len(set(names)) > 0
    finally:
        for ctx in contexts:
            ctx.close()
