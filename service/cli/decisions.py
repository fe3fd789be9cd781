"""`lightguard decisions ...`: export a time range of the decision log, apply the retention settings once."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from service.cli.database import migrated_sessions
from service.settings import Settings

err = Console(stderr=True)
decisions_app = typer.Typer(help="The decision log: export a time range, apply retention.", no_args_is_help=True)
TIME_FORMATS = ["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S%z"]


def register(app: typer.Typer) -> None:
    app.add_typer(decisions_app, name="decisions")


@decisions_app.command("export")
def export(
    since: Annotated[
        datetime | None, typer.Option(formats=TIME_FORMATS, help="From this time (inclusive; no offset: UTC).")
    ] = None,
    until: Annotated[
        datetime | None, typer.Option(formats=TIME_FORMATS, help="Until this time (exclusive; no offset: UTC).")
    ] = None,
    export_format: Annotated[str, typer.Option("--format", help="jsonl or csv.")] = "jsonl",
    category: Annotated[str | None, typer.Option(help="Only decisions flagged as this category or topic.")] = None,
    flagged: Annotated[
        bool | None, typer.Option("--flagged/--not-flagged", help="Only flagged / only not flagged decisions.")
    ] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write (default: stdout).")] = None,
) -> None:
    """Write the decisions of a time range, oldest first, as JSON lines or CSV (what GET /v1/decisions/export
    answers)."""
    from service.usecases.decisions import DecisionFilter, ExportFormat, export_decisions

    if export_format not in ("jsonl", "csv"):
        raise typer.BadParameter("--format is jsonl or csv")
    filters = DecisionFilter(category, flagged, since, until).checked()
    if filters.since is not None and filters.until is not None and filters.since >= filters.until:
        raise typer.BadParameter(f"--since ({filters.since}) must be before --until ({filters.until}); swap them")
    rows = [0]

    def count(n: int) -> None:
        rows[0] += n

    with migrated_sessions(Settings()) as sessions:
        target = open(output, "w", encoding="utf-8", newline="") if output else sys.stdout  # noqa: SIM115
        try:
            fmt: ExportFormat = "csv" if export_format == "csv" else "jsonl"
            for chunk in export_decisions(sessions, filters, fmt, on_rows=count):
                target.write(chunk)
        finally:
            if output:
                target.close()
    err.print(f"{rows[0]} decisions written" + (f" to {output}" if output else ""))


@decisions_app.command("prune")
def prune() -> None:
    """Apply LIGHTGUARD_DECISION_RETENTION_DAYS / _ROWS once, now (a running server does it every interval)."""
    from service.usecases.retention import RetentionPolicy, prune_decisions

    settings = Settings()
    policy = RetentionPolicy.from_settings(settings)
    if not policy.active:
        err.print("[yellow]no retention set: LIGHTGUARD_DECISION_RETENTION_DAYS and _ROWS are both unset; nothing done")
        raise typer.Exit(1)
    with migrated_sessions(settings) as sessions:
        report = prune_decisions(sessions, policy)
    err.print(
        f"{report.deleted} decisions deleted in {report.batches} batches of at most {policy.batch_rows},"
        f" {report.seconds:.2f} s (longest batch {1000 * report.longest_batch_s:.1f} ms)"
    )
