"""`lightguard train`: fine-tune the encoder (index.training) and export it next to the base model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from index import TrainConfig

err = Console(stderr=True)
_DEFAULT = TrainConfig()  # one source of truth for the defaults: scripts/train.py and --if-stale use the same


def train_command(
    out: Annotated[Path | None, typer.Option(help="Model directory (default models/finetuned).")] = None,
    loss: Annotated[
        str, typer.Option(help="triplet-soft, batch-hard, batch-semi-hard, batch-all, contrastive, mnrl")
    ] = _DEFAULT.loss,
    labels: Annotated[str, typer.Option(help="Training labels: binary (safe/unsafe) or multiclass.")] = _DEFAULT.labels,
    epochs: Annotated[float, typer.Option(min=0.01)] = _DEFAULT.epochs,
    max_examples: Annotated[int, typer.Option(min=2, help="Balanced sampling cap per label.")] = _DEFAULT.max_examples,
    max_seq_length: Annotated[int, typer.Option(min=8, max=256)] = _DEFAULT.max_seq_length,
    batch_size: Annotated[int, typer.Option(min=4)] = _DEFAULT.batch_size,
    learning_rate: Annotated[float, typer.Option()] = _DEFAULT.learning_rate,
    seed: Annotated[int, typer.Option()] = _DEFAULT.seed,
    hard_negatives: Annotated[
        bool, typer.Option(help="Seed the safe class with look-alike/role-play texts.")
    ] = _DEFAULT.hard_negatives,
    if_stale: Annotated[bool, typer.Option("--if-stale", help="Do nothing when the model is current.")] = False,
) -> None:
    """Fine-tune all-MiniLM-L6-v2 on the train split and export fp32 + int8 ONNX (see docs/ablation.md)."""
    from index import (
        FINETUNED_NAME,
        LightguardError,
        data_digest,
        default_models_dir,
        load_rows,
        select_examples,
        stale_reason,
        train,
    )

    target = out or default_models_dir() / FINETUNED_NAME
    try:
        config = TrainConfig(
            loss=loss,  # type: ignore[arg-type]  # validated by TrainConfig
            labels=labels,  # type: ignore[arg-type]
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            max_seq_length=max_seq_length,
            max_examples=max_examples,
            seed=seed,
            hard_negatives=hard_negatives,
        )
        rows = load_rows()
        if if_stale:
            reason = stale_reason(target, config, data_digest(select_examples(rows, config)))
            if reason is None:
                err.print(f"{target} is up to date")
                return
            err.print(f"rebuilding {target}: {reason}")
        manifest = train(config, target, rows, show_progress=True, say=err.print)
    except LightguardError as exc:
        err.print(f"[red]{exc}")
        raise typer.Exit(2) from exc
    info = manifest.extra["training"]
    err.print(f"wrote {target}: {info['examples']} examples in {info['total_seconds']}s, dev {info['dev']}")


def register(app: typer.Typer) -> None:
    """Mount `lightguard train` on the main CLI."""
    app.command("train")(train_command)
