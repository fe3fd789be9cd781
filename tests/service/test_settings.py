"""Settings carry what the library no longer looks up itself: where models live and how many threads to use."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from service.settings import Settings


def test_models_dir_and_threads_come_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LIGHTGUARD_MODELS_DIR", str(tmp_path))
    monkeypatch.setenv("LIGHTGUARD_THREADS", "1")
    settings = Settings()
    assert settings.models_dir == tmp_path and settings.resolved_model_dir == tmp_path / "base"
    assert settings.threads == 1
    monkeypatch.setenv("LIGHTGUARD_MODEL_DIR", str(tmp_path / "other"))
    assert Settings().resolved_model_dir == tmp_path / "other", "an explicit model folder wins"


def test_defaults_are_the_checkout_s_folders(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LIGHTGUARD_MODELS_DIR", "LIGHTGUARD_THREADS", "LIGHTGUARD_MODEL_DIR", "LIGHTGUARD_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    repo = Path(__file__).resolve().parents[2]
    assert settings.resolved_model_dir == repo / "models" / "base"
    assert settings.resolved_data_dir == repo / "data"
    assert settings.threads is None, "None: the encoder uses every CPU"


@pytest.mark.parametrize("value", ["0", "two"])
def test_a_bad_thread_count_is_refused_with_the_setting_named(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("LIGHTGUARD_THREADS", value)
    with pytest.raises(ValidationError, match="threads"):
        Settings()


@pytest.mark.model
def test_encoder_spin_reaches_the_onnx_session(monkeypatch: pytest.MonkeyPatch) -> None:
    from index import OnnxEncoder
    from service.serving.encoders import build_encoder

    monkeypatch.setenv("LIGHTGUARD_ENCODER_SPIN", "false")
    settings = Settings(encoder="onnx")
    assert settings.encoder_spin is False
    encoder = build_encoder(settings, threads=2)
    assert isinstance(encoder, OnnxEncoder)
    options = encoder._session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
