"""Session fixtures for tests that load the real MiniLM model (exported once per session, or reused)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from index.encoding.models import verify_model_dir
from index.errors import LightguardError
from tests.layout import MODELS_DIR


@pytest.fixture(scope="session")
def onnx_base_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A valid base model directory: `models/base` when it verifies and is the current export, else a fresh
    export (~40 s)."""
    from index.encoding.export import export_onnx, is_current_base_export

    existing = MODELS_DIR / "base"
    try:
        if is_current_base_export(verify_model_dir(existing)):
            return existing
    except LightguardError:
        pass
    from index.encoding.models import base_model_dir

    out = tmp_path_factory.mktemp("models") / "base"
    export_onnx(base_model_dir(), out, "base")
    return out


@pytest.fixture(scope="session")
def st_model() -> Iterator[Any]:
    """The sentence-transformers reference model (torch), loaded once."""
    from sentence_transformers import SentenceTransformer

    from index.encoding.models import base_model_dir

    yield SentenceTransformer(str(base_model_dir()), device="cpu")
