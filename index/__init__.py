"""lightguard's pure library: encoders, FAISS exemplar store, scoring, calibration and the Guard that ties them."""

from __future__ import annotations

from index.artifact import load_guard, read_guard_metadata, save_guard
from index.calibration import Platt, best_f1_threshold, fit_platt
from index.encoder import Encoder, HashingEncoder, split_windows
from index.errors import (
    DatasetError,
    DuplicateExemplarError,
    IndexArtifactError,
    InvalidInputError,
    LightguardError,
    ModelIntegrityError,
    ModelNotFoundError,
    UnknownExemplarError,
    UnknownLabelError,
)
from index.guard import Guard, GuardConfig, load_guard_config
from index.store import VectorStore
from index.text import normalize_text, text_digest
from index.types import SAFE, Action, Evidence, Exemplar, Label, LabelKind, Role, Verdict

__all__ = [
    "SAFE",
    "Action",
    "DatasetError",
    "DuplicateExemplarError",
    "Encoder",
    "Evidence",
    "Exemplar",
    "Guard",
    "GuardConfig",
    "HashingEncoder",
    "IndexArtifactError",
    "InvalidInputError",
    "Label",
    "LabelKind",
    "LightguardError",
    "ModelIntegrityError",
    "ModelNotFoundError",
    "Platt",
    "Role",
    "UnknownExemplarError",
    "UnknownLabelError",
    "VectorStore",
    "Verdict",
    "best_f1_threshold",
    "fit_platt",
    "load_guard",
    "load_guard_config",
    "normalize_text",
    "read_guard_metadata",
    "save_guard",
    "split_windows",
    "text_digest",
]
