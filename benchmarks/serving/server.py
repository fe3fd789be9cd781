"""Start a lightguard server for a benchmark and wait until it answers GET /readyz; the one launcher every job uses."""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

from benchmarks.layout import MODELS_DIR, REPO, VAR_DIR

FIXTURE_ADMIN_KEY = "lg_soak_admin_key_0123456789"
READY_POLL_S = 0.02  # polling the port, not waiting a fixed time
# `-c` puts the working directory (this checkout, the servers' cwd) first on sys.path, ahead of PYTHONPATH: an A/B
# arm's older revision would then import this tree's service and be measured as this build. Drop it first.
_SERVE_MAIN = """
import sys
if sys.path and sys.path[0] == "":
    del sys.path[0]
try:
    from service.cli.main import main
except ModuleNotFoundError:
    from service.cli import main
main()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(port: int, path: str) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()


def serve_cmd(port: int, *extra: str) -> list[str]:
    """`lightguard serve` on loopback `port` with this interpreter, quiet logs. The CLI module is looked up where the
    build on PYTHONPATH keeps it (service.cli.main since the service moved into folders, service.cli before), so an
    A/B arm may be an older revision."""
    cli = [sys.executable, "-c", _SERVE_MAIN]
    return [*cli, "serve", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", *extra]


def start_server(
    cmd: list[str],
    port: int,
    env: dict[str, str],
    *,
    log: Path | None = None,
    timeout_s: float | None = None,
    new_session: bool = False,
) -> subprocess.Popen[bytes]:
    """Start `cmd` and return once GET /readyz on `port` answers 200; raises RuntimeError (and stops the server) if
    it exits first or is not ready within `timeout_s` (None: no deadline, a first run may build the index for
    minutes). Output goes to `log`, else stderr is kept for the error message."""
    sink: IO[bytes] | int = log.open("wb") if log is not None else subprocess.PIPE
    stderr = subprocess.STDOUT if log is not None else subprocess.PIPE
    out = sink if log is not None else subprocess.DEVNULL
    proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=out, stderr=stderr, start_new_session=new_session)
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    try:
        while deadline is None or time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited: {_tail(proc, log)}")
            try:
                if http_get(port, "/readyz")[0] == 200:
                    return proc
            except OSError:
                pass
            time.sleep(READY_POLL_S)
        raise RuntimeError(f"server not ready in {timeout_s:.0f} s")
    except BaseException:
        stop_server(proc)
        raise
    finally:
        if log is not None and not isinstance(sink, int):
            sink.close()  # the child holds its own descriptor


def start_fixture_server(home: Path, database_url: str | None, workers: int) -> tuple[subprocess.Popen[bytes], str]:
    """A server on the hashing encoder and the small fixture data (tests/service/fixtures), its own home and log."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIGHTGUARD_")}
    env |= {
        "LIGHTGUARD_HOME": str(home),
        # the caller's cache setting (tests: off), else the checkout's cache would collect the hashing model's rows
        "LIGHTGUARD_EMBEDDING_CACHE": os.environ.get("LIGHTGUARD_EMBEDDING_CACHE", "off"),
        "LIGHTGUARD_ENCODER": "hashing",
        "LIGHTGUARD_ADMIN_KEY": FIXTURE_ADMIN_KEY,
        "LIGHTGUARD_DATA_DIR": str(REPO / "tests" / "service" / "fixtures"),
    }
    if database_url:
        env["LIGHTGUARD_DATABASE_URL"] = database_url
    cmd = serve_cmd(port, "--workers", str(workers))
    try:
        proc = start_server(cmd, port, env, log=home / "server.log", timeout_s=120, new_session=True)
    except RuntimeError as exc:
        raise SystemExit(str(exc)) from exc
    return proc, f"http://127.0.0.1:{port}"


def checkout(rev: str) -> Path | None:
    """None for the working tree (`.`); else a detached worktree of `rev` under var/ab/, kept for the next run."""
    if rev == ".":
        return None
    sha = subprocess.run(
        ["git", "rev-parse", "--verify", f"{rev}^{{commit}}"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()
    path = VAR_DIR / "ab" / sha[:12]
    if not path.exists():
        add = ["git", "worktree", "add", "--detach", str(path), sha]
        subprocess.run(add, cwd=REPO, check=True, capture_output=True)
    return path


def build_env(tree: Path | None, home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment that serves `tree` (None: this working tree) from `home`: another revision is imported ahead
    of the installed package and serves this tree's base model."""
    env = os.environ | {"LIGHTGUARD_HOME": str(home)} | (extra or {})
    if tree is not None:
        env |= {"PYTHONPATH": str(tree), "LIGHTGUARD_MODEL_DIR": str(MODELS_DIR / "base")}
    return env


def stop_server(proc: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
    proc.terminate()
    proc.wait(timeout_s)


def _tail(proc: subprocess.Popen[bytes], log: Path | None) -> str:
    if log is not None:
        return log.read_text(errors="replace")[-2000:]
    return proc.stderr.read().decode(errors="replace")[-2000:] if proc.stderr else ""
