"""`lightguard train` and `lightguard export`: fine-tune the encoder (index.training) and export ONNX model folders."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from index import BASE_NAME, DEFAULT_MAX_TOKENS, TrainConfig
from service.settings import Settings

err = Console(stderr=True)
_DEFAULT = TrainConfig()  # one source of truth for the defaults: `lightguard train` and --if-stale use the same


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def train_command(
    out: Annotated[Path | None, typer.Option(help="Model directory (default models/finetuned).")] = None,
    data: Annotated[Path | None, typer.Option(help="Dataset JSONL (default data/safety.jsonl).")] = None,
    exclude_family: Annotated[
        list[str] | None,
        typer.Option(help="Leave this source family out of training and the dev check (repeatable; held-out check)."),
    ] = None,
    loss: Annotated[
        str,
        typer.Option(
            help="triplet-soft, batch-hard, batch-semi-hard, batch-all, contrastive, mnrl, or softmax (a class-balanced"
            " softmax head over the labels trained through the encoder, dropped after training)"
        ),
    ] = _DEFAULT.loss,
    labels: Annotated[str, typer.Option(help="Training labels: binary (safe/unsafe) or multiclass.")] = _DEFAULT.labels,
    epochs: Annotated[float, typer.Option(min=0.01)] = _DEFAULT.epochs,
    max_examples: Annotated[int, typer.Option(min=2, help="Balanced sampling cap per label.")] = _DEFAULT.max_examples,
    max_seq_length: Annotated[int, typer.Option(min=8, max=256)] = _DEFAULT.max_seq_length,
    batch_size: Annotated[int, typer.Option(min=4)] = _DEFAULT.batch_size,
    learning_rate: Annotated[float, typer.Option()] = _DEFAULT.learning_rate,
    warmup: Annotated[float, typer.Option(help="Warm-up share of the steps.")] = _DEFAULT.warmup,
    seed: Annotated[int, typer.Option()] = _DEFAULT.seed,
    hard_negatives: Annotated[
        bool,
        typer.Option(
            help="Fill half the safe quota with benign look-alikes (index.training_config.HARD_NEGATIVE_FAMILIES)."
        ),
    ] = _DEFAULT.hard_negatives,
    max_steps: Annotated[int, typer.Option(help="Stop after this many steps (-1: the epochs decide).")] = (
        _DEFAULT.max_steps
    ),
    dev_sample: Annotated[int, typer.Option(help="Dev rows for the check after training.")] = _DEFAULT.dev_sample,
    bf16: Annotated[
        bool, typer.Option("--bf16", help="bf16 autocast (~1.7x faster on CPUs with avx512_bf16; CUDA always uses it).")
    ] = _DEFAULT.bf16,
    distill: Annotated[
        float,
        typer.Option(
            min=0.0, help="softmax only: weight of keeping each embedding near the starting encoder's (1 - cosine)."
        ),
    ] = _DEFAULT.distill,
    if_stale: Annotated[bool, typer.Option("--if-stale", help="Do nothing when the model is current.")] = False,
    quiet: Annotated[
        bool,
        typer.Option(
            "--quiet", help="No progress bar: a progress line every 15 s (also when stderr is not a terminal)."
        ),
    ] = False,
) -> None:
    """Fine-tune all-MiniLM-L6-v2 on the train split and export fp32 + int8 ONNX (see docs/ablation.md)."""
    from index import (
        FINETUNED_NAME,
        LightguardError,
        data_digest,
        load_rows,
        select_examples,
        stale_reason,
        train,
    )

    # SIGTERM (kill, systemd, make being stopped) takes the same clean-up path as Ctrl-C: no temp dir is left behind.
    signal.signal(signal.SIGTERM, _interrupt)
    settings = Settings()
    target = out or settings.models_dir / FINETUNED_NAME
    excluded = set(exclude_family or ())
    try:
        config = TrainConfig(
            loss=loss,  # type: ignore[arg-type]  # validated by TrainConfig
            labels=labels,  # type: ignore[arg-type]
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            warmup=warmup,
            max_seq_length=max_seq_length,
            max_examples=max_examples,
            seed=seed,
            hard_negatives=hard_negatives,
            max_steps=max_steps,
            dev_sample=dev_sample,
            bf16=bf16,
            distill=distill,
        )
        rows = [r for r in load_rows(data or settings.resolved_data_dir / "safety.jsonl") if r.family not in excluded]
        if if_stale:
            reason = stale_reason(target, config, data_digest(select_examples(rows, config)))
            if reason is None:
                err.print(f"{target} is up to date")
                return
            err.print(f"rebuilding {target}: {reason}")
        manifest = train(config, target, rows, show_progress=not quiet and err.is_terminal, say=err.print)
    except LightguardError as exc:
        err.print(f"[red]{exc}")
        raise typer.Exit(2) from exc
    info = manifest.extra["training"]
    err.print(f"wrote {target}: {info['examples']} examples in {info['total_seconds']}s, dev {info['dev']}")


def export_command(
    source: Annotated[
        Path | None, typer.Option(help="sentence-transformers directory (default: the bundled base model).")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Model directory to write (default: <models dir>/<name>).")] = None,
    name: Annotated[str, typer.Option(help="Model name recorded in the manifest.")] = BASE_NAME,
    max_tokens: Annotated[int, typer.Option(min=8, help="Truncation length.")] = DEFAULT_MAX_TOKENS,
    if_missing: Annotated[
        bool, typer.Option("--if-missing", help="Do nothing when --out already holds a valid model.")
    ] = False,
) -> None:
    """Export a sentence-transformers model to an ONNX model directory (default: the bundled base model, if missing)."""
    from index import (
        LightguardError,
        base_model_dir,
        ensure_base_model,
        export_onnx,
        verify_model_dir,
    )

    def say(message: str) -> None:
        err.print(f"[cyan]•[/cyan] {message}")

    models_dir = Settings().models_dir

    started = time.perf_counter()
    try:
        if source is None and out is None and name == BASE_NAME and max_tokens == DEFAULT_MAX_TOKENS:
            target = ensure_base_model(models_dir, progress=say)
        else:
            target = out or models_dir / name
            if if_missing:
                try:
                    verify_model_dir(target)
                    say(f"{target} already holds a valid model; nothing to do")
                    return
                except LightguardError as exc:
                    say(f"(re)exporting: {exc}")
            export_onnx(source or base_model_dir(), target, name, max_tokens, progress=say)
        manifest = verify_model_dir(target)
    except (LightguardError, OSError) as exc:
        err.print(f"[bold red]export failed:[/bold red] {exc}")
        raise typer.Exit(1) from exc
    err.print(
        f"[green]ok[/green] {target} ({manifest.name}, dim {manifest.dim}, max_tokens {manifest.max_tokens}) "
        f"in {time.perf_counter() - started:.1f} s"
    )


def register(app: typer.Typer) -> None:
    """Mount `lightguard train` and `lightguard export` on the main CLI."""
    app.command("train")(train_command)
    app.command("export")(export_command)
