"""`lightguard index rebuild`: a full rebuild in this process, or on a running server (`--server`), with a progress
bar of the texts embedded and the time left; both refuse (exit 1) while another build runs and name it."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

from service.cli.admin import OFFLINE_NOTE
from service.settings import Settings

err = Console(stderr=True)
out = Console()

POLL_S = 0.5  # how often the server's build is polled; it writes progress about once a second


class _Bar:
    """The progress bar: indeterminate while queued, then embedded/total with the time left."""

    def __init__(self, quiet: bool) -> None:
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=err,
            disable=quiet,
        )
        self.task: TaskID = self.progress.add_task("queued: waiting for the build lock", total=None)

    def update(self, embedded: int | None, total: int | None) -> None:
        if embedded is None:
            return
        self.progress.update(self.task, completed=embedded, total=total, description="embedding exemplars")

    def __enter__(self) -> _Bar:
        self.progress.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.progress.stop()


def rebuild(server: str | None, key: str | None, quiet: bool) -> None:
    """Run the command (see the module docstring); prints `index vN: M exemplars, checksum C` when done."""
    build = _on_server(server.rstrip("/"), key, quiet) if server else _in_process(quiet)
    out.print(f"index v{build['version']}: {build['exemplar_count']} exemplars, checksum {build['checksum']}")
    if not server:
        err.print(OFFLINE_NOTE)


def _in_process(quiet: bool) -> dict[str, Any]:
    from service.context import open_context
    from service.errors import IndexBuildError, RebuildRunningError

    ctx = open_context(Settings())

    async def run(bar: _Bar) -> dict[str, Any]:
        job = await ctx.rebuilds.start("cli", progress=bar.update)
        done = await job.wait()
        return {"version": done.version, "exemplar_count": done.exemplar_count, "checksum": done.checksum}

    try:
        with _Bar(quiet) as bar:
            return asyncio.run(run(bar))
    except (RebuildRunningError, IndexBuildError) as exc:
        err.print(f"[red]{exc.detail}")
        raise typer.Exit(1) from exc
    finally:
        ctx.close()


def _on_server(base: str, key: str | None, quiet: bool) -> dict[str, Any]:
    status, headers, started = _call("POST", f"{base}/v1/index/rebuild", key)
    if status != 202:
        err.print(f"[red]{base}: {status} {started.get('error', '')}: {started.get('detail', started)}")
        raise typer.Exit(1)
    location = f"{base}{headers['location']}"
    with _Bar(quiet) as bar:
        while True:
            status, _, build = _call("GET", location, key)
            if status != 200:
                err.print(f"[red]{location}: {status} {build.get('detail', build)}")
                raise typer.Exit(1)
            progress = build.get("progress") or {}
            bar.update(progress.get("embedded"), progress.get("total"))
            if build["status"] in ("succeeded", "failed"):
                break
            time.sleep(POLL_S)  # polling interval of a remote job
    if build["status"] == "failed":
        err.print(f"[red]build {build['id']} failed: {build['error']}")
        raise typer.Exit(1)
    return build


def _call(method: str, url: str, key: str | None) -> tuple[int, dict[str, str], dict[str, Any]]:
    """One JSON request (the standard library's client: the server's install carries no HTTP client)."""
    request = urllib.request.Request(url, method=method, headers={"Accept": "application/json"})
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, _lower(response.headers.items()), json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        body = exc.read()
        try:
            return exc.code, _lower(exc.headers.items()), json.loads(body)
        except ValueError:
            return exc.code, _lower(exc.headers.items()), {"detail": body.decode(errors="replace")[:500]}
    except urllib.error.URLError as exc:
        err.print(f"[red]cannot reach {url}: {exc.reason}; check --server and that the server is up")
        raise typer.Exit(1) from exc


def _lower(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers}
