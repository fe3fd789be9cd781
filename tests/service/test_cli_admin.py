"""The operator commands (keys, topics, index) on a real SQLite file, through Typer's runner."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from service.cli.admin import register
from tests.service.support import COOKING, FIXTURES


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> typer.Typer:
    monkeypatch.setenv("LIGHTGUARD_HOME", str(tmp_path))
    monkeypatch.setenv("LIGHTGUARD_DATA_DIR", str(FIXTURES))
    monkeypatch.setenv("LIGHTGUARD_ENCODER", "hashing")
    app = typer.Typer()
    register(app)
    return app


def test_keys(cli: typer.Typer) -> None:
    runner = CliRunner()
    created = runner.invoke(cli, ["keys", "create", "--role", "admin", "--name", "ops"])
    assert created.exit_code == 0, created.output
    assert created.stdout.strip().splitlines()[0].startswith("lg_")
    listed = runner.invoke(cli, ["keys", "list"])
    assert "admin" in listed.stdout and "ops" in listed.stdout
    assert runner.invoke(cli, ["keys", "revoke", "1"]).exit_code == 0
    assert runner.invoke(cli, ["keys", "revoke", "99"]).exit_code == 1
    assert runner.invoke(cli, ["keys", "create", "--role", "root"]).exit_code != 0


def test_topics_and_index(cli: typer.Typer) -> None:
    runner = CliRunner()
    args = ["topics", "add", "cooking", *[a for text in COOKING for a in ("--example", text)]]
    added = runner.invoke(cli, args)
    assert added.exit_code == 0, added.output
    assert "cooking" in runner.invoke(cli, ["topics", "list"]).stdout
    assert runner.invoke(cli, ["index", "verify"]).exit_code == 0
    assert runner.invoke(cli, ["topics", "add", "cooking", "--example", "x y"]).exit_code == 1  # name taken
    rejected = runner.invoke(cli, ["topics", "add", "baking", "--example", "x y", "--action", "nuke"])
    assert rejected.exit_code == 2 and "action" in rejected.output
    assert "baking" not in runner.invoke(cli, ["topics", "list", "--json"]).stdout
    assert runner.invoke(cli, ["topics", "remove", "baking"]).exit_code == 2  # usage error: no such topic
    rebuilt = runner.invoke(cli, ["index", "rebuild"])
    assert rebuilt.exit_code == 0 and "exemplars" in rebuilt.stdout
    assert runner.invoke(cli, ["topics", "remove", "cooking"]).exit_code == 0
    assert runner.invoke(cli, ["index", "verify"]).exit_code == 0
    assert "cooking" not in runner.invoke(cli, ["topics", "list", "--json"]).stdout
