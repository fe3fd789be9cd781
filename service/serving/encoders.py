"""The one place that picks the encoder from the settings (tests inject their own into create_app instead)."""

from __future__ import annotations

from index import Encoder, HashingEncoder, ModelNotFoundError, OnnxEncoder
from service.settings import Settings


def build_encoder(settings: Settings, threads: int | None = None) -> Encoder:
    """`hashing` → the deterministic test encoder; `onnx` → the ONNX Runtime encoder on LIGHTGUARD_MODEL_DIR, on
    `threads` threads (default LIGHTGUARD_THREADS, else the CPU count)."""
    if settings.encoder == "hashing":
        return HashingEncoder()
    model_dir = settings.resolved_model_dir
    if not model_dir.is_dir():
        raise ModelNotFoundError(
            f"no model directory at {model_dir}; export the model first (see README) or set LIGHTGUARD_MODEL_DIR"
        )
    return OnnxEncoder(
        model_dir, variant=settings.onnx_variant, threads=settings.threads if threads is None else threads
    )
