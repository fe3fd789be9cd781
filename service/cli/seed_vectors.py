"""`lightguard export-seed-vectors` (`make seed-vectors`): write the seed-vector pack (index.encoding.seed_pack) that a
fresh clone's first build takes instead of embedding every seed text, from builds of new empty homes exactly as the
service makes them."""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from service.settings import Settings

if TYPE_CHECKING:  # imported when the command runs: `lightguard --help` stays quick
    from index import SeededEmbeddingCache, SeedPackManifest, SeedPackRecorder

err = Console(stderr=True)


def _build_new_home(settings: Settings, home: Path, cache: SeedPackRecorder | SeededEmbeddingCache) -> None:
    """Seed a new SQLite home and build its index through the service's lifecycle, reading vectors through `cache`."""
    from service.context import open_context

    values = {"home": home, "database_url": None, "seed": True, "auto_migrate": True, "follow_interval_s": 0.0}
    ctx = open_context(settings.model_copy(update=values), embedding_cache=cache)
    try:
        asyncio.run(ctx.lifecycle.load_or_build())
    finally:
        ctx.close()


def export_seed_vectors(settings: Settings, out: Path) -> SeedPackManifest:
    """Write the pack of `settings`' encoder and data to `out` (a manifest, and a .bin beside it).

    Two new homes are built: the first through the settings' embedding cache (a warm one embeds nothing), recording
    every seed text's vector; the pack is written; the second build reads only the pack, as a fresh clone does, and
    records the fits it computes (head, IVF centroids), which the pack then ships too.
    """
    from index import SeededEmbeddingCache, SeedPackRecorder, SeedVectorPack, write_seed_pack
    from service.serving.encoders import build_embedding_cache

    plain = settings.model_copy(update={"seed_vectors": "off"})
    with tempfile.TemporaryDirectory(prefix="lightguard-seed-vectors-") as tmp:
        first = SeedPackRecorder(build_embedding_cache(plain))
        _build_new_home(plain, Path(tmp) / "a", first)
        if len(first.model_keys) != 1:
            raise RuntimeError(f"expected one encoder key, got {sorted(first.model_keys)}")
        (key,) = first.model_keys
        draft = Path(tmp) / out.name  # `out` is written once the pack has its fits: a failed run leaves it as it was
        write_seed_pack(draft, key, first.vectors)
        fits = SeedPackRecorder()
        _build_new_home(plain, Path(tmp) / "b", SeededEmbeddingCache(fits, SeedVectorPack(draft)))
        return write_seed_pack(out, key, first.vectors, fits.fits)


def export_seed_vectors_command(
    out: Annotated[
        Path | None,
        typer.Option(help="Manifest to write, a .bin beside it (default: LIGHTGUARD_SEED_VECTORS, else data/)."),
    ] = None,
) -> None:
    """Write the seed-vector pack: the vectors of every seed text under the current model (a fresh clone's first
    start then embeds none of them), and the fits a build on them computes."""
    settings = Settings()
    target = out or settings.resolved_seed_vectors or settings.resolved_data_dir / "seed-vectors.json"
    started = time.perf_counter()
    manifest = export_seed_vectors(settings, target)
    size = (target.parent / manifest.blob).stat().st_size
    err.print(
        f"[green]ok[/green] {target}: {manifest.count} vectors ({manifest.dtype}, dim {manifest.dim}), "
        f"{len(manifest.fits)} fits, {size / 1e6:.1f} MB, encoder {manifest.encoder_key!r}, "
        f"in {time.perf_counter() - started:.1f} s"
    )


def register(app: typer.Typer) -> None:
    """Mount `lightguard export-seed-vectors` on the main CLI."""
    app.command("export-seed-vectors")(export_seed_vectors_command)
