"""LIGHTGUARD_SEED_VECTORS and `lightguard export-seed-vectors`: a new empty home built from a pack embeds nothing and
refits nothing, and the committed pack (data/seed-vectors.json) is current for the installed model and data."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import index.scoring.head as head_module
from index import SeedPackManifest, SeedVectorPack, encoder_key, load_rows
from index.encoding.encoder import normalized_texts
from service.app import create_app
from service.cli.seed_vectors import export_seed_vectors
from service.serving.encoders import build_encoder
from service.settings import Settings
from service.usecases.seed import load_background
from tests.conftest import CountingEncoder
from tests.layout import DATA_DIR
from tests.service.support import FIXTURES, make_settings, wait_ready

MIN_COVERAGE = 0.99


def test_seed_vectors_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert Settings().resolved_seed_vectors is None  # tests/conftest.py turns it off for every test
    monkeypatch.delenv("LIGHTGUARD_SEED_VECTORS")
    assert Settings().resolved_seed_vectors == DATA_DIR / "seed-vectors.json"  # beside the data it covers
    assert Settings(data_dir=tmp_path).resolved_seed_vectors == tmp_path / "seed-vectors.json"
    monkeypatch.setenv("LIGHTGUARD_SEED_VECTORS", str(tmp_path / "p.json"))
    assert Settings().resolved_seed_vectors == tmp_path / "p.json"
    monkeypatch.setenv("LIGHTGUARD_SEED_VECTORS", "OFF")
    assert Settings().resolved_seed_vectors is None


def test_a_new_home_built_from_an_exported_pack_embeds_and_fits_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pack = tmp_path / "seed-vectors.json"
    manifest = export_seed_vectors(make_settings(tmp_path / "export"), pack)
    assert manifest.count > 0 and manifest.fits, "the export shipped no fits"

    def no_fit(*args: object, **kwargs: object) -> None:
        raise AssertionError("a new home refitted the head the pack ships")

    monkeypatch.setattr(head_module, "fit_linear_head", no_fit)
    encoder = CountingEncoder()
    with TestClient(create_app(make_settings(tmp_path / "new", seed_vectors=str(pack)), encoder)) as client:
        wait_ready(client)
    assert encoder.texts == 0


def test_pack_off_embeds_every_seed_text(tmp_path: Path) -> None:
    pack = tmp_path / "seed-vectors.json"
    export_seed_vectors(make_settings(tmp_path / "export"), pack)
    encoder = CountingEncoder()
    with TestClient(create_app(make_settings(tmp_path / "new", seed_vectors="off"), encoder)) as client:
        wait_ready(client)
    assert encoder.texts >= SeedPackManifest.read(pack).count


def seed_texts(data_dir: Path) -> list[str]:
    """What a new home's build embeds: the train rows (the seeded exemplars) and the background texts."""
    rows = load_rows(data_dir / "safety.jsonl", splits={"train"})
    return sorted(set(normalized_texts([r.text for r in rows] + load_background(data_dir))))


def test_fixture_seed_texts_are_what_the_export_packs(tmp_path: Path) -> None:
    manifest = export_seed_vectors(make_settings(tmp_path / "export"), tmp_path / "p.json")
    assert manifest.count == len(seed_texts(FIXTURES))


@pytest.mark.model
def test_committed_pack_is_current_for_the_installed_model_and_data() -> None:
    regenerate = "regenerate it with `make seed-vectors` (lightguard export-seed-vectors) and commit both files"
    path = DATA_DIR / "seed-vectors.json"
    assert path.is_file(), f"no {path}: {regenerate}"
    manifest = SeedPackManifest.read(path)
    encoder = build_encoder(Settings(encoder="onnx"), threads=1)  # models/base, as `make run` serves it
    key = encoder_key(encoder)
    assert manifest.encoder_key == key, (
        f"data/seed-vectors.json was made for {manifest.encoder_key!r}, the installed model is {key!r}: a fresh clone"
        f" would embed every seed text again; {regenerate}"
    )
    texts = seed_texts(DATA_DIR)
    pack = SeedVectorPack(path)
    _, hit = pack.get(key, texts, encoder.dim)
    assert pack.broken is None, f"{pack.broken}; {regenerate}"
    coverage = float(hit.mean())
    assert coverage >= MIN_COVERAGE, (
        f"data/seed-vectors.json covers {coverage:.1%} of the {len(texts)} seed texts (data/ changed since it was"
        f" made): {regenerate}"
    )
