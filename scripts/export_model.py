"""Export a sentence-transformers model to an ONNX model directory (default: the bundled base model, if missing)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from rich.console import Console

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # runnable as `python scripts/export_model.py`
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the machine has no model hub; never try it

from index.errors import LightguardError
from index.export import BASE_NAME, DEFAULT_MAX_TOKENS, ensure_base_model, export_onnx
from index.models import base_model_dir, default_models_dir, verify_model_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--source", type=Path, help="sentence-transformers directory (default: bundled base model)")
    parser.add_argument("--out", type=Path, help="model directory to write (default: <models dir>/base)")
    parser.add_argument("--name", default=BASE_NAME, help="model name recorded in the manifest")
    parser.add_argument("--max-tokens", type=int, default=DEFAULT_MAX_TOKENS, help="truncation length")
    parser.add_argument("--if-missing", action="store_true", help="do nothing when --out already holds a valid model")
    args = parser.parse_args(argv)
    console = Console(stderr=True)

    def say(message: str) -> None:
        console.print(f"[cyan]•[/cyan] {message}")

    started = time.perf_counter()
    try:
        defaults = args.name == BASE_NAME and args.max_tokens == DEFAULT_MAX_TOKENS
        if args.source is None and args.out is None and defaults:
            out = ensure_base_model(default_models_dir(), progress=say)
        else:
            out = args.out or default_models_dir() / args.name
            if args.if_missing:
                try:
                    verify_model_dir(out)
                    say(f"{out} already holds a valid model; nothing to do")
                    return 0
                except LightguardError as exc:
                    say(f"(re)exporting: {exc}")
            export_onnx(args.source or base_model_dir(), out, args.name, args.max_tokens, progress=say)
        manifest = verify_model_dir(out)
    except (LightguardError, OSError) as exc:
        console.print(f"[bold red]export failed:[/bold red] {exc}")
        return 1
    console.print(
        f"[green]ok[/green] {out} ({manifest.name}, dim {manifest.dim}, max_tokens {manifest.max_tokens}) "
        f"in {time.perf_counter() - started:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
