"""`lightguard` command line: classify and evaluate (this module), serve/topics/index/keys (service.cli.admin)."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from service.bulk.local import classify_lines
from service.bulk.rows import jsonl_lines
from service.verdicts import verdict_to_dict

app = typer.Typer(
    help="lightguard: lightweight safety guardrail (MiniLM + FAISS exemplar index).", no_args_is_help=True
)
err = Console(stderr=True)

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=False,
    )


def _guard() -> Any:
    """The same guard the service serves (database + index artifact under LIGHTGUARD_HOME), built if needed."""
    from service.context import open_guard
    from service.settings import Settings

    with _progress() as progress:
        task = progress.add_task("loading index", total=None)

        def report(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total, description="building index (first run)")

        guard = open_guard(Settings(), progress=report)
        progress.update(task, completed=1, total=1, description="index ready")
    return guard


@app.command()
def classify(
    text: Annotated[str | None, typer.Argument(help="Text to classify (prints one verdict as JSON).")] = None,
    input_path: Annotated[Path | None, typer.Option("--input", "-i", help="JSONL with {id, text} per line.")] = None,
    output_path: Annotated[
        Path | None, typer.Option("--output", "-o", help="JSONL verdicts, one per input line.")
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, max=4096, help="Texts per encoder batch.")] = 64,
    evidence: Annotated[bool, typer.Option(help="Include nearest exemplars in batch output.")] = False,
    engine: Annotated[
        str, typer.Option(help="local: this process, JSONL, order kept; ray: Ray Data (pip install -e '.[ray]').")
    ] = "local",
    address: Annotated[str | None, typer.Option(help="Ray cluster to join (ray engine; default: a local Ray).")] = None,
    actors: Annotated[int, typer.Option(min=1, help="Guard actors, one CPU each (ray engine).")] = 1,
    task_retries: Annotated[
        int, typer.Option(min=-1, help="Runs of a batch again after its actor died (ray engine; -1: no limit).")
    ] = 3,
) -> None:
    """Classify one text, or a JSONL file (order kept; a bad line gets an `error` field and the run goes on).

    With `--engine ray`: a JSONL or Parquet file or a folder of them, into a folder of Parquet or JSONL part files
    (by the output's extension), every id once, in no particular order.
    """
    if (text is None) == (input_path is None):
        raise typer.BadParameter("give either a TEXT argument or --input FILE (not both)")
    if engine not in ("local", "ray"):
        raise typer.BadParameter("--engine is `local` or `ray`")
    if engine == "ray":
        if input_path is None or output_path is None or evidence:
            raise typer.BadParameter("--engine ray needs --input and --output (and has no --evidence)")
        _classify_on_ray(input_path, output_path, address, actors, batch_size, task_retries)
        return
    if text is not None:
        if not text.strip():
            raise typer.BadParameter("TEXT is empty")
        guard = _guard()
        typer.echo(json.dumps(verdict_to_dict(guard.classify([text])[0]), ensure_ascii=False))
        return
    assert input_path is not None
    try:
        lines = jsonl_lines(input_path.read_text(encoding="utf-8"))
    except OSError as exc:
        err.print(f"[red]cannot read {input_path}: {exc.strerror}")
        raise typer.Exit(2) from exc
    try:
        out = open(output_path, "w", encoding="utf-8") if output_path else sys.stdout  # noqa: SIM115
    except OSError as exc:
        err.print(f"[red]cannot write {output_path}: {exc.strerror}")
        raise typer.Exit(2) from exc
    guard = _guard()
    started = time.perf_counter()
    errors = 0
    with _progress() as progress, out:
        task = progress.add_task("classifying", total=len(lines))
        for results in classify_lines(guard, lines, batch_size, evidence):
            for res in results:
                errors += "error" in res
                out.write(json.dumps(res, ensure_ascii=False) + "\n")
            progress.advance(task, len(results))
    elapsed = time.perf_counter() - started
    err.print(f"{len(lines)} lines, {errors} errors, {len(lines) / max(elapsed, 1e-9):.0f} lines/s")


def _classify_on_ray(
    input_path: Path, output_path: Path, address: str | None, actors: int, batch_size: int, task_retries: int
) -> None:
    from service.bulk.ray_engine import BulkInputError, BulkJobError, RayJob, run
    from service.settings import Settings

    started = time.perf_counter()
    try:
        rows = run(Settings(), RayJob(input_path, output_path, address, actors, batch_size, task_retries))
    except BulkInputError as exc:
        err.print(f"[red]{exc}")
        raise typer.Exit(2) from exc
    except BulkJobError as exc:
        err.print(f"[red]{exc}")
        raise typer.Exit(1) from exc
    except ModuleNotFoundError as exc:
        err.print(f"[red]{exc.name} is not installed: pip install -e '.[ray]' (or make install-ray)")
        raise typer.Exit(2) from exc
    elapsed = time.perf_counter() - started
    err.print(f"{rows} rows into {output_path}/ in {elapsed:.1f} s, {rows / max(elapsed, 1e-9):.0f} rows/s")


@app.command()
def evaluate(
    input_path: Annotated[Path, typer.Option("--input", "-i", help="JSONL with {text, label[, category]} per line.")],
    report_dir: Annotated[Path, typer.Option(help="Where the JSON report and PR-curve PNG go.")] = Path("reports"),
    threshold: Annotated[float | None, typer.Option(help="Override the decision threshold on `score`.")] = None,
    batch_size: Annotated[int, typer.Option(min=1, max=4096)] = 64,
) -> None:
    """Score a labelled file: accuracy, precision, recall, F1, AUPRC, ROC-AUC, FPR, per-category recall."""
    from index import DatasetError, binary_metrics, load_labelled_jsonl, plot_pr_curves

    try:
        items = load_labelled_jsonl(input_path)
    except DatasetError as exc:
        err.print(f"[red]{exc}")
        raise typer.Exit(2) from exc
    guard = _guard()
    scores: list[float] = []
    flagged: list[bool] = []
    with _progress() as progress:
        task = progress.add_task("scoring", total=len(items))
        for start in range(0, len(items), batch_size):
            batch = items[start : start + batch_size]
            for verdict in guard.classify([it.text for it in batch]):
                scores.append(verdict.score)
                flagged.append(verdict.flagged)
            progress.advance(task, len(batch))
    import numpy as np

    y = np.asarray([it.unsafe for it in items])
    s = np.asarray(scores)
    if threshold is None:
        threshold = float(guard.config.threshold)
    metrics = binary_metrics(s, y, threshold, [it.category for it in items])
    report_dir.mkdir(parents=True, exist_ok=True)
    stem = input_path.stem
    report = {
        "input": str(input_path),
        "model_id": guard.encoder.model_id,
        "metrics": metrics.as_dict(),
        "flagged_rate": float(np.mean(flagged)) if flagged else 0.0,
    }
    (report_dir / f"{stem}.json").write_text(json.dumps(report, indent=2))
    png = plot_pr_curves({stem: (s, y)}, report_dir / f"{stem}-pr.png", f"lightguard on {stem}")
    for key in ("n", "positives", "threshold", "accuracy", "precision", "recall", "f1", "auprc", "roc_auc", "fpr"):
        value = getattr(metrics, key)
        typer.echo(f"{key:>10}: {value:.4f}" if isinstance(value, float) else f"{key:>10}: {value}")
    for cat, rec in metrics.per_category_recall.items():
        typer.echo(f"  recall[{cat}]: {rec:.4f}")
    err.print(f"report: {report_dir / f'{stem}.json'}  curve: {png}")


def _register_subcommands() -> None:
    from service.cli.admin import register as register_admin
    from service.cli.decisions import register as register_decisions
    from service.cli.seed_vectors import register as register_seed_vectors
    from service.cli.train import register as register_train

    register_admin(app)
    register_decisions(app)
    register_seed_vectors(app)
    register_train(app)


_register_subcommands()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
