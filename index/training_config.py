"""What determines a fine-tuned model besides its data: the training configuration (saved with the model as JSON),
the losses, and the families whose safe rows are the hard negatives."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal, get_args

from index.errors import TrainingError

LossName = Literal["triplet-soft", "batch-hard", "batch-semi-hard", "batch-all", "contrastive", "mnrl", "softmax"]
Granularity = Literal["binary", "multiclass"]

LOSSES: tuple[str, ...] = get_args(LossName)
BATCH_LOSSES = frozenset({"triplet-soft", "batch-hard", "batch-semi-hard", "batch-all"})
# Losses trained on (text, label id) rows: the batch triplet losses and the softmax head (index/training_head.py).
LABELLED_LOSSES = BATCH_LOSSES | {"softmax"}
# Safe families that look unsafe on the surface: benign questions about dangerous topics, role-play set-ups, safe
# twins of unsafe prompts (contrast), prompts with injection trigger words (injection-lookalike) and jailbreak-wrapped
# benign requests (adversarial). Their safe rows are the hard negatives the base encoder confuses most.
HARD_NEGATIVE_FAMILIES: tuple[str, ...] = ("lookalike", "roleplay", "contrast", "injection-lookalike", "adversarial")
FINETUNED_NAME = "finetuned"
TRAIN_CONFIG_FILE = "train_config.json"
EXPORT_MAX_TOKENS = 256  # same truncation as models/base, so both encoders meet identical windows in evaluation


@dataclass(frozen=True, slots=True)
class TrainConfig:
    """Everything that determines a fine-tuned model besides the data file; saved with the model as JSON."""

    loss: LossName = "triplet-soft"
    labels: Granularity = "multiclass"
    epochs: float = 1.0
    batch_size: int = 32
    learning_rate: float = 5e-5
    warmup: float = 0.1  # fraction of the steps
    # 32 tokens covers the median train text (~20 tokens) and trains ~2x faster than 64 on this 2-core machine;
    # the defaults fit the default run in the 20-minute budget (docs/ablation.md).
    max_seq_length: int = 32
    max_examples: int = 500  # balanced sampling cap per label
    seed: int = 13
    hard_negatives: bool = True
    max_steps: int = -1  # > 0 overrides epochs (tests, smoke runs)
    # bf16 autocast. CUDA always trains in bf16; on a CPU with avx512_bf16 it is ~1.7x faster than fp32 at 128
    # tokens (emulated, i.e. slower, on CPUs without it). Neither is bit-identical to the fp32 CPU run.
    bf16: bool = False
    # softmax only: weight of the term that keeps each embedding near the starting encoder's (index/training_head.py)
    distill: float = 0.0
    dev_sample: int = 1000  # dev rows for the quick dev AUPRC recorded in the manifest

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise TrainingError(f"loss {self.loss!r} is not one of {list(LOSSES)}")
        if self.labels not in get_args(Granularity):
            raise TrainingError(f"labels {self.labels!r} must be 'binary' or 'multiclass'")
        if self.batch_size < 4 or self.batch_size % 2:
            raise TrainingError(f"batch_size {self.batch_size} must be even and >= 4 (label-grouped batches)")
        if not 8 <= self.max_seq_length <= EXPORT_MAX_TOKENS:
            raise TrainingError(f"max_seq_length {self.max_seq_length} must be in 8..{EXPORT_MAX_TOKENS}")
        if self.max_examples < 2 or self.epochs <= 0 or self.learning_rate <= 0 or not 0 <= self.warmup < 1:
            raise TrainingError("max_examples >= 2, epochs > 0, learning_rate > 0 and 0 <= warmup < 1 are required")
        if self.distill < 0 or (self.distill and self.loss != "softmax"):
            raise TrainingError(f"distill {self.distill} must be >= 0, and > 0 only with the softmax loss")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Inverse of `to_dict`; unknown keys are an error (a config from a newer version must not half-apply)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise TrainingError(f"unknown training config keys {unknown}; known: {sorted(known)}")
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TrainConfig:
        return cls.from_dict(json.loads(text))
