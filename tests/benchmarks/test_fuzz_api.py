"""benchmarks.serving.fuzz_api: a bounded schemathesis run against a live server (the full run is in
docs/reliability.md; the regression test per finding is tests/service/test_api_contract.py)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.layout import REPO
from tests.service.support import server_env


@pytest.mark.server
def test_schemathesis_finds_no_server_error_or_contract_violation(tmp_path: Path) -> None:
    """A bounded run (5 cases per operation and phase, all checks) of the script the docs report a full run of."""
    pytest.importorskip("schemathesis")  # a dev extra
    env = server_env()
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.serving.fuzz_api", "--max-examples", "5", "--seed", "3"],
        cwd=REPO,
        env=env | {"TMPDIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert re.search(r"operations: (\d+) tested of \1 ", done.stdout), done.stdout
    assert "contract / security violations (ST1xx, ST2xx, ST3xx): 0" in done.stdout
