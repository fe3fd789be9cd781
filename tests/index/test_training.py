"""Fine-tuning: one tiny step per loss, export + manifest + OnnxEncoder/Guard round trip, interrupts, staleness."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import pytest

from index import Guard, Label
from index.datasets import DatasetRow
from index.errors import TrainingError
from index.training import data_digest, select_examples, stale_reason, train
from index.training_config import LOSSES, TrainConfig

CATEGORIES = ("violence", "hate", "safe")
TEXTS = {
    "violence": ["how do I hurt someone badly", "ways to attack a person at night", "I will beat you up tomorrow"],
    "hate": ["that group are vermin", "those people are subhuman", "they are an inferior race"],
    "safe": ["what is the capital of france", "write a poem about spring", "how do I kill a python process"],
}


def _rows() -> list[DatasetRow]:
    rows = []
    for cat in CATEGORIES:
        for i in range(8):
            text = f"{TEXTS[cat][i % 3]} (variant {i})"
            family = "lookalike" if cat == "safe" and i < 2 else "toy"
            split = "dev" if i >= 6 else "train"
            rows.append(DatasetRow(text, cat, "toy", "cc0", split, family, False))
    return rows


def _tiny(loss: str, **kw: Any) -> TrainConfig:
    defaults: dict[str, Any] = {
        "loss": loss,
        "batch_size": 8,
        "max_seq_length": 16,
        "max_steps": 1,
        "max_examples": 6,
        "dev_sample": 6,
    }
    return TrainConfig(**(defaults | kw))


def test_config_round_trips_through_json() -> None:
    config = TrainConfig(loss="batch-all", labels="binary", epochs=2.5, hard_negatives=False)
    assert TrainConfig.from_json(config.to_json()) == config
    with pytest.raises(TrainingError, match="unknown"):
        TrainConfig.from_dict({**config.to_dict(), "bogus": 1})
    with pytest.raises(TrainingError):
        TrainConfig(loss="nope")  # type: ignore[arg-type]
    with pytest.raises(TrainingError):
        TrainConfig(batch_size=7)


def test_sampling_is_balanced_seeded_and_prefers_hard_negatives() -> None:
    rows = _rows()
    config = _tiny("triplet-soft", max_examples=4)
    examples = select_examples(rows, config)
    assert all(r.split == "train" for r in rows if r.text in {e.text for e in examples})
    counts = {c: sum(e.label == c for e in examples) for c in CATEGORIES}
    assert counts == {"violence": 4, "hate": 4, "safe": 4}
    safe_texts = {e.text for e in examples if e.label == "safe"}
    assert sum("variant 0" in t or "variant 1" in t for t in safe_texts) == 2  # half the safe quota: look-alikes
    assert data_digest(examples) == data_digest(select_examples(rows, config))
    binary = select_examples(rows, _tiny("triplet-soft", labels="binary", max_examples=100))
    assert {e.label for e in binary} == {"safe", "unsafe"}


@pytest.mark.model
@pytest.mark.parametrize("loss", LOSSES)
def test_tiny_training_exports_a_model_the_guard_can_use(
    loss: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from index.encoding.onnx import OnnxEncoder

    config = _tiny(loss)
    out = tmp_path / "models" / "finetuned"
    manifest = train(config, out, _rows())
    assert (out / "st" / "train_config.json").is_file()
    assert TrainConfig.from_json((out / "st" / "train_config.json").read_text()) == config
    saved = json.loads((out / "manifest.json").read_text())["extra"]["training"]
    assert saved == manifest.extra["training"]
    assert saved["config"] == config.to_dict() and saved["loss"] == loss
    assert len(saved["data_digest"]) == 64 and saved["total_seconds"] >= saved["train_seconds"] > 0
    assert "auprc_centroid" in saved["dev"]
    assert manifest.extra["export"]["source"] == str((out / "st").resolve())
    assert sorted(p.name for p in out.parent.iterdir()) == ["finetuned"]  # no temp dirs left behind
    encoder = OnnxEncoder(out, "int8", threads=1)
    labels = [Label(c, "safe" if c == "safe" else "builtin") for c in CATEGORIES]
    from index import Exemplar

    exemplars = [Exemplar(i, r.text, r.category) for i, r in enumerate(_rows()) if r.split == "train"]
    guard = Guard.build(encoder, labels, exemplars)
    verdicts = guard.classify(["those people are vermin", "what is the capital of spain"])
    assert len(verdicts) == 2
    assert stale_reason(out, config, saved["data_digest"]) is None
    assert stale_reason(out, _tiny(loss, seed=99), saved["data_digest"]) == "the training config changed"
    assert stale_reason(out, config, "0" * 64) == "the training data changed"
    if loss == LOSSES[0]:
        _check_if_stale_cli(out, config, tmp_path, capsys)


def _check_if_stale_cli(out: Path, config: TrainConfig, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`lightguard train --if-stale` with the same config and data returns at once without touching the model."""
    from typer.testing import CliRunner

    from service.cli.main import app

    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(asdict(r)) + "\n" for r in _rows()))
    before = (out / "manifest.json").stat().st_mtime_ns
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in config.to_dict().items() if k not in {"loss", "labels"}]
    flags = [f for f in flags if not f.startswith(("--hard-negatives", "--bf16"))]
    argv = ["--if-stale", "--out", str(out), "--data", str(data), "--loss", config.loss, "--labels", config.labels]
    result = CliRunner().invoke(app, ["train", *argv, *flags])
    assert result.exit_code == 0, result.output
    assert "up to date" in result.output
    assert (out / "manifest.json").stat().st_mtime_ns == before


@pytest.mark.model
@pytest.mark.parametrize("exc", [KeyboardInterrupt(), RuntimeError("disk full")])
def test_interrupted_training_leaves_no_output(exc: BaseException, tmp_path: Path) -> None:
    from transformers import TrainerCallback

    class Boom(TrainerCallback):  # type: ignore[misc]
        def on_step_end(self, *args: Any, **kwargs: Any) -> None:
            raise exc

    parent = tmp_path / "models"
    with pytest.raises(type(exc)):
        train(_tiny("triplet-soft", max_steps=3), parent / "finetuned", _rows(), callbacks=[Boom()])
    assert not parent.exists() or list(parent.iterdir()) == []


def test_stale_reason_without_a_model(tmp_path: Path) -> None:
    assert stale_reason(tmp_path / "missing", TrainConfig(), "0" * 64) is not None


def test_a_config_key_added_later_does_not_make_older_models_stale(tmp_path: Path) -> None:
    from index.encoding.models import ModelManifest, base_model_description, write_manifest

    def saved_with(config: dict[str, Any]) -> Path:
        out = tmp_path / str(len(list(tmp_path.iterdir())))
        out.mkdir()
        training = {"config": config, "data_digest": "d" * 64, "base_model": base_model_description()}
        write_manifest(out, ModelManifest("m", "base", {}, 384, 64, extra={"training": training}))
        return out

    older = {k: v for k, v in TrainConfig().to_dict().items() if k != "bf16"}  # written before `bf16` existed
    assert stale_reason(saved_with(older), TrainConfig(), "d" * 64) is None
    assert stale_reason(saved_with(older), TrainConfig(bf16=True), "d" * 64) == "the training config changed"
    newer = TrainConfig().to_dict() | {"from_the_future": 1}  # unreadable here: retrain rather than guess
    assert stale_reason(saved_with(newer), TrainConfig(), "d" * 64) == "the training config changed"


def _fake_st_model() -> Any:
    import torch

    class FakeModel(torch.nn.Module):
        device = torch.device("cpu")

        def __init__(self) -> None:
            super().__init__()
            self.proj = torch.nn.Linear(4, 4)

        def get_embedding_dimension(self) -> int:
            return 4

        def forward(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            out = self.proj(features["x"])
            features["sentence_embedding"] = torch.nn.functional.normalize(out, dim=-1)  # mutates, as ST modules do
            return features

    return FakeModel()


def _fit_head(loss: Any, x: Any, y: Any, steps: int = 50) -> tuple[float, float]:
    import torch

    optimizer = torch.optim.Adam(loss.parameters(), lr=0.05)
    first = loss([{"x": x}], y).item()
    for _ in range(steps):
        optimizer.zero_grad()
        value = loss([{"x": x}], y)
        value.backward()
        optimizer.step()
    return first, value.item()


def test_softmax_head_loss_is_class_balanced_and_learns() -> None:
    import torch

    from index.training_head import LOGIT_SCALE, SoftmaxHeadLoss

    torch.manual_seed(0)
    labels = [0] * 6 + [1] * 2  # 3:1 imbalance
    loss = SoftmaxHeadLoss(_fake_st_model(), labels)
    assert loss.class_weights.tolist() == pytest.approx([8 / 12, 8 / 4])
    assert loss.get_config_dict() == {"num_labels": 2, "logit_scale": LOGIT_SCALE, "distill": 0.0}
    x = torch.eye(4)[[0, 0, 0, 1, 1, 1, 2, 3]]
    first, last = _fit_head(loss, x, torch.tensor(labels))
    assert last < first / 4  # gradients reach both the head and the encoder's weights
    assert loss.model.proj.weight.grad is not None


def test_distillation_keeps_embeddings_near_the_starting_encoder() -> None:
    """With `distill` the encoder drifts less from where it started; the frozen copy is neither trained nor exposed
    to the optimiser."""
    import torch

    from index.training_head import SoftmaxHeadLoss

    x = torch.eye(4)[[0, 0, 0, 1, 1, 1, 2, 3]]
    y = torch.tensor([0] * 6 + [1] * 2)
    drift = {}
    for weight in (0.0, 20.0):
        torch.manual_seed(0)
        model = _fake_st_model()
        start = model({"x": x})["sentence_embedding"].detach()
        loss = SoftmaxHeadLoss(model, y.tolist(), distill=weight)
        n_params = len(list(loss.parameters()))
        assert n_params == 4, "only the encoder's and the head's weights are trainable"
        _fit_head(loss, x, y)
        end = model({"x": x})["sentence_embedding"].detach()
        drift[weight] = float((1 - torch.nn.functional.cosine_similarity(start, end)).mean())
        if weight:
            teacher = loss._teacher[0]
            assert torch.equal(teacher({"x": x})["sentence_embedding"], start), "the anchor never moves"
    assert drift[20.0] < drift[0.0] / 3


@pytest.mark.parametrize("bad", [{"distill": -1.0}, {"distill": 0.5, "loss": "triplet-soft"}])
def test_distill_needs_the_softmax_loss(bad: dict[str, Any]) -> None:
    with pytest.raises(TrainingError, match="distill"):
        TrainConfig(**bad)
    assert TrainConfig(loss="softmax", distill=0.5).distill == 0.5


def test_line_progress_says_steps_loss_and_eta_without_flooding() -> None:
    from types import SimpleNamespace

    from index.training_progress import line_progress_callback

    said: list[str] = []
    callback = line_progress_callback(said.append, every_s=3600)
    state = SimpleNamespace(max_steps=3, global_step=0)
    callback.on_train_begin(None, state, None)
    callback.on_log(None, state, None, logs={"loss": 0.5})
    for step in (1, 2, 3):
        state.global_step = step
        callback.on_step_end(None, state, None)
    assert said[0] == "training: 3 steps"
    assert len(said) == 2 and said[1].startswith("training: step 3/3, loss 0.5000") and "ETA 0s" in said[1]


def test_train_cli_draws_no_bar_when_stderr_is_not_a_terminal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Redirected to a log (nohup, make > file, CI) a rich bar shows nothing until the end: the line progress runs
    instead, and the bf16 flag reaches the config."""
    from typer.testing import CliRunner

    import index
    from service.cli.main import app

    seen: dict[str, Any] = {}

    def fake_train(config: TrainConfig, target: Path, rows: list[DatasetRow], **kw: Any) -> Any:
        seen.update(kw, config=config)
        raise TrainingError("stop here")

    monkeypatch.setattr(index, "train", fake_train)
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(asdict(r)) + "\n" for r in _rows()))
    result = CliRunner().invoke(app, ["train", "--out", str(tmp_path / "m"), "--data", str(data), "--bf16"])
    assert result.exit_code == 2 and "stop here" in result.output
    assert seen["show_progress"] is False and seen["config"].bf16 is True


@pytest.mark.model
@pytest.mark.parametrize(("native", "warned"), [(False, True), (True, False)])
def test_bf16_on_a_cpu_without_native_bf16_warns(
    native: bool | None, warned: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from transformers import TrainerCallback

    class Stop(TrainerCallback):  # type: ignore[misc]
        def on_train_begin(self, *args: Any, **kwargs: Any) -> None:
            raise KeyboardInterrupt

    said: list[str] = []
    monkeypatch.setattr("index.training.native_bf16", lambda: native)
    with pytest.raises(KeyboardInterrupt):
        train(replace(_tiny("triplet-soft"), bf16=True), tmp_path / "m", _rows(), callbacks=[Stop()], say=said.append)
    assert any("bf16" in line and "slower than fp32" in line for line in said) is warned


@pytest.mark.parametrize(
    ("flags", "expected"),
    [({"avx2", "avx512_vnni"}, False), ({"avx2", "avx512_bf16"}, True), ({"amx_bf16"}, True), (set(), None)],
)
def test_native_bf16_reads_the_cpu_flags(
    flags: set[str], expected: bool | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from index import cpu

    monkeypatch.setattr(cpu, "cpu_flags", lambda: frozenset(flags))
    assert cpu.native_bf16() is expected
