"""lightguard's pure library: encoders, FAISS exemplar store, scoring, calibration and the Guard that ties them."""

from __future__ import annotations

from index.artifact import GuardImage, capture_guard, load_guard, read_guard_metadata, save_guard, write_guard_image
from index.calibration import Platt, best_f1_threshold, fit_platt, fmr_threshold
from index.config import GuardConfig, load_guard_config
from index.datasets import DatasetRow, LabelledText, load_labelled_jsonl, load_rows
from index.encoding import (
    EmbeddingCache,
    Encoder,
    HashingEncoder,
    OnnxEncoder,
    SeededEmbeddingCache,
    SeedPackManifest,
    SeedPackRecorder,
    SeedVectorPack,
    SqliteEmbeddingCache,
    encoder_key,
    split_windows,
    write_seed_pack,
)
from index.encoding.export import BASE_NAME, DEFAULT_MAX_TOKENS, ensure_base_model, export_onnx
from index.encoding.models import ModelManifest, base_model_dir, read_manifest, verify_model_dir
from index.errors import (
    CostLimitError,
    DatasetError,
    DuplicateExemplarError,
    ExportError,
    IndexArtifactError,
    InvalidInputError,
    LightguardError,
    ModelIntegrityError,
    ModelNotFoundError,
    TrainingError,
    UnknownExemplarError,
    UnknownLabelError,
)
from index.evaluation import BinaryMetrics, binary_metrics, plot_pr_curves
from index.guard import Guard
from index.job import ClassifyJob
from index.scoring import Scorer, Scores
from index.store import (
    FaissBackend,
    FaissStore,
    StoreBackend,
    VectorStore,
    set_flat_search_blas_from,
    set_search_threads,
)
from index.taxonomy import OPENAI_KEYS, Category, Taxonomy, load_taxonomy
from index.text import normalize_text, text_digest
from index.training import (
    FINETUNED_NAME,
    TrainConfig,
    data_digest,
    select_examples,
    stale_reason,
    train,
)
from index.types import SAFE, Action, Evidence, Exemplar, Label, LabelKind, Role, Verdict
from index.units import ClassifyPlan, warm_up

__all__ = [
    "BASE_NAME",
    "DEFAULT_MAX_TOKENS",
    "FINETUNED_NAME",
    "OPENAI_KEYS",
    "SAFE",
    "Action",
    "BinaryMetrics",
    "Category",
    "ClassifyJob",
    "ClassifyPlan",
    "CostLimitError",
    "DatasetError",
    "DatasetRow",
    "DuplicateExemplarError",
    "EmbeddingCache",
    "Encoder",
    "Evidence",
    "Exemplar",
    "ExportError",
    "FaissBackend",
    "FaissStore",
    "Guard",
    "GuardConfig",
    "GuardImage",
    "HashingEncoder",
    "IndexArtifactError",
    "InvalidInputError",
    "Label",
    "LabelKind",
    "LabelledText",
    "LightguardError",
    "ModelIntegrityError",
    "ModelManifest",
    "ModelNotFoundError",
    "OnnxEncoder",
    "Platt",
    "Role",
    "Scorer",
    "Scores",
    "SeedPackManifest",
    "SeedPackRecorder",
    "SeedVectorPack",
    "SeededEmbeddingCache",
    "SqliteEmbeddingCache",
    "StoreBackend",
    "Taxonomy",
    "TrainConfig",
    "TrainingError",
    "UnknownExemplarError",
    "UnknownLabelError",
    "VectorStore",
    "Verdict",
    "base_model_dir",
    "best_f1_threshold",
    "binary_metrics",
    "capture_guard",
    "data_digest",
    "encoder_key",
    "ensure_base_model",
    "export_onnx",
    "fit_platt",
    "fmr_threshold",
    "load_guard",
    "load_guard_config",
    "load_labelled_jsonl",
    "load_rows",
    "load_taxonomy",
    "normalize_text",
    "plot_pr_curves",
    "read_guard_metadata",
    "read_manifest",
    "save_guard",
    "select_examples",
    "set_flat_search_blas_from",
    "set_search_threads",
    "split_windows",
    "stale_reason",
    "text_digest",
    "train",
    "verify_model_dir",
    "warm_up",
    "write_guard_image",
    "write_seed_pack",
]
