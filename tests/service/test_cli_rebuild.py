"""`lightguard index rebuild`: in this process or against a server, with a progress bar; refused (exit 1, the
running build named) while another build runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from service.cli.admin import register
from service.db.engine import create_db_engine, make_sessionmaker, session_scope
from service.db.models import utcnow
from tests.service.support import FIXTURES, insert_running_build, lightguard_server

ADMIN = "lg_cli_rebuild_admin_key_for_tests"


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> typer.Typer:
    monkeypatch.setenv("LIGHTGUARD_HOME", str(tmp_path))
    monkeypatch.setenv("LIGHTGUARD_DATA_DIR", str(FIXTURES))
    monkeypatch.setenv("LIGHTGUARD_ENCODER", "hashing")
    monkeypatch.setenv("COLUMNS", "200")  # one line per bar refresh, whatever the terminal
    app = typer.Typer()
    register(app)
    return app


def test_rebuild_in_process_shows_progress_and_prints_the_version(cli: typer.Typer) -> None:
    done = CliRunner().invoke(cli, ["index", "rebuild"])
    assert done.exit_code == 0, done.output
    assert done.stdout.startswith("index v") and "exemplars, checksum" in done.stdout
    assert "embedding exemplars" in done.stderr
    assert re.search(r"\b(\d+)/\1\b", done.stderr), done.stderr  # embedded/total, complete


def test_rebuild_in_process_is_refused_while_another_build_runs(cli: typer.Typer, tmp_path: Path) -> None:
    assert CliRunner().invoke(cli, ["index", "verify"]).exit_code in (0, 1)  # migrates the database
    engine = create_db_engine(f"sqlite:///{tmp_path / 'lightguard.db'}")
    try:
        with session_scope(make_sessionmaker(engine)) as session:
            # alive: a fresh heartbeat
            build_id = insert_running_build(session, "another-host:4242", utcnow(), embedded=1, total=9)
    finally:
        engine.dispose()
    refused = CliRunner().invoke(cli, ["index", "rebuild", "--quiet"])
    assert refused.exit_code == 1, refused.output
    assert f"build {build_id}" in refused.stderr and f"/v1/index/builds/{build_id}" in refused.stderr


@pytest.mark.server
def test_rebuild_against_a_server_polls_its_job(cli: typer.Typer, tmp_path: Path) -> None:
    home = tmp_path / "server"
    home.mkdir()
    with lightguard_server(home, ADMIN) as srv:
        done = CliRunner().invoke(cli, ["index", "rebuild", "--server", srv.base, "--key", ADMIN])
        assert done.exit_code == 0, done.output
        assert done.stdout.startswith("index v") and "exemplars, checksum" in done.stdout
        assert "embedding exemplars" in done.stderr
        denied = CliRunner().invoke(cli, ["index", "rebuild", "--server", srv.base, "--key", "lg_wrong"])
        assert denied.exit_code == 1 and "403" in denied.stderr
