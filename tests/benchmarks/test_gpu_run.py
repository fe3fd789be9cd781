"""benchmarks.training's GPU device run: the FAISS stand-in against FAISS, the weight packing both ways, the verdict
rules, the candidates' recipes; the torch encoder against the fp32 ONNX export (marked model)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from benchmarks.evaluation.evaluate import BENIGN_FAMILIES, FOLDS
from benchmarks.training import flat_faiss, gpu_pack, gpu_run, gpu_verdict
from index.training_config import HARD_NEGATIVE_FAMILIES, LOSSES, TrainConfig


def test_flat_standin_finds_the_same_neighbours_as_faiss() -> None:
    import faiss

    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((500, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = np.arange(1000, 1500, dtype=np.int64)
    queries = vectors[:40] + 0.1 * rng.standard_normal((40, 16)).astype(np.float32)
    real = faiss.IndexIDMap2(faiss.IndexFlatIP(16))
    standin = flat_faiss.IndexIDMap2(flat_faiss.IndexFlatIP(16))
    for index in (real, standin):
        index.add_with_ids(vectors, ids)
    want_sims, want_ids = real.search(queries, 8)
    got_sims, got_ids = standin.search(queries, 8)
    assert np.array_equal(got_ids, want_ids)
    assert np.allclose(got_sims, want_sims, atol=1e-5)
    assert np.array_equal(standin.reconstruct(1003), vectors[3])
    # more neighbours asked than stored: FAISS's -1 ids
    small = flat_faiss.IndexIDMap2(flat_faiss.IndexFlatIP(16))
    small.add_with_ids(vectors[:3], ids[:3])
    sims, found = small.search(queries[:2], 5)
    assert (found[:, 3:] == -1).all() and np.isinf(sims[:, 3:]).all()
    with pytest.raises(NotImplementedError, match="IVF"):
        flat_faiss.IndexIVFFlat()
    assert flat_faiss.install() is False  # the real faiss is importable here: nothing is replaced


def test_weights_pack_keeps_fp16_values_and_only_the_kept_rows(tmp_path: Path, monkeypatch: Any) -> None:
    rng = np.random.default_rng(0)
    tensors = {
        gpu_pack.EMBEDDINGS: rng.standard_normal((10, 4)).astype(np.float32),
        "encoder.layer.0.weight": rng.standard_normal((4, 4)).astype(np.float32),
    }
    blob = gpu_pack.pack_weights(tensors, [1, 5, 7])
    full, kept = gpu_pack.unpack_weights(blob, vocab_size=10)
    assert kept.tolist() == [1, 5, 7]
    emb = tensors[gpu_pack.EMBEDDINGS].astype(np.float16).astype(np.float32)
    assert np.array_equal(full[gpu_pack.EMBEDDINGS][[1, 5, 7]], emb[[1, 5, 7]])
    assert not full[gpu_pack.EMBEDDINGS][[0, 2, 3, 4, 6, 8, 9]].any()  # rows no text reads stay zero
    layer = tensors["encoder.layer.0.weight"]
    assert np.array_equal(full["encoder.layer.0.weight"], layer.astype(np.float16).astype(np.float32))
    rows, _ = gpu_pack.unpack_weights(blob)
    assert rows[gpu_pack.EMBEDDINGS].shape == (3, 4)
    monkeypatch.setattr(gpu_pack, "PART_BYTES", 100)
    parts = gpu_pack.write_parts(blob, tmp_path, "weights")
    assert len(parts) == -(-len(blob) // 100) and all(p.stat().st_size <= 100 for p in parts)
    assert gpu_pack.read_parts(tmp_path, "weights") == blob
    with pytest.raises(FileNotFoundError):
        gpu_pack.read_parts(tmp_path, "other")


def _report(fused_dev: float, fused_test: float, lookalike: float, injection: float) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for scorer in gpu_verdict.SCORERS:
        for fold in ("prompt-injection", "toxicity"):
            for which, value in (("dev", fused_dev), ("test", fused_test)):
                auprc = injection if fold == "prompt-injection" and which == "test" else value
                results[f"{scorer}|oos:{fold}|{which}"] = {"auprc": auprc, "f1": 0.5, "recall": 0.5, "fpr": 0.1}
        results[f"{scorer}|random|test"] = {"auprc": 0.9, "f1": 0.8, "lookalike_fpr": lookalike}
    folds = {"prompt-injection": ["prompt-injection"], "toxicity": ["toxicity"]}
    return {"results": results, "folds": folds, "model_id": "m", "rows": 10, "config": {}, "threshold": 0.6}


def test_verdict_picks_the_winner_on_dev_and_needs_every_check(tmp_path: Path) -> None:
    reports = {
        "base": _report(0.80, 0.80, 0.20, 0.70),
        "a": _report(0.90, 0.82, 0.10, 0.75),  # best on dev: the winner, though "b" is better on test
        "b": _report(0.85, 0.95, 0.10, 0.75),
        "heldout-prompt-injection-a": _report(0.85, 0.85, 0.10, 0.72),
    }
    paths = {}
    for name, report in reports.items():
        paths[name] = tmp_path / f"{name}.json"
        paths[name].write_text(json.dumps(report))
    paths["c"] = tmp_path / "never-written.json"
    results = gpu_verdict.collect(paths, "prompt-injection")
    assert results["winner"] == "a" and results["missing"] == ["c"]
    assert results["verdict"]["earns_default"] is True
    markdown = gpu_verdict.verdict_markdown(results, "prompt-injection")
    assert "winner (best mean out-of-source dev AUPRC): a" in markdown and "not evaluated (time): c" in markdown
    # held out of fine-tuning, the winner loses the injection fold to base: no default
    paths["heldout-prompt-injection-a"].write_text(json.dumps(_report(0.85, 0.85, 0.10, 0.60)))
    assert gpu_verdict.collect(paths, "prompt-injection")["verdict"]["earns_default"] is False
    # more benign look-alikes flagged than base: no default either
    paths["heldout-prompt-injection-a"].write_text(json.dumps(_report(0.85, 0.85, 0.10, 0.72)))
    paths["a"].write_text(json.dumps(_report(0.90, 0.82, 0.30, 0.75)))
    assert gpu_verdict.collect(paths, "prompt-injection")["verdict"]["earns_default"] is False
    # the held-out fine-tune never ran: the check says so (not FAIL) and the default is not earned
    paths["a"].write_text(json.dumps(_report(0.90, 0.82, 0.10, 0.75)))
    del paths["heldout-prompt-injection-a"]
    results = gpu_verdict.collect(paths, "prompt-injection")
    assert results["verdict"]["earns_default"] is False
    markdown = gpu_verdict.verdict_markdown(results, "prompt-injection")
    assert "- NOT RUN: held out of fine-tuning" in markdown and "- PASS: beats base" in markdown


@pytest.mark.parametrize("stored", ["records", "markdown"])
def test_verdict_needs_every_look_alike_family_and_the_instruction_recall_of_base(tmp_path: Path, stored: str) -> None:
    """Issue 18's guard rails, from evaluate's family rates (records; reports written before them: the markdown
    family table): a candidate that wins out of source but flags more benign contrast prompts, or catches fewer
    written harmful requests, does not earn the default."""

    def with_family(report: dict[str, Any], contrast: float, instructions: float) -> dict[str, Any]:
        rows = [
            ("lookalike", "FPR", 0.15),
            ("contrast", "FPR", contrast),
            ("harmful-instructions", "recall", instructions),
        ]
        if stored == "records":
            report["family_rates"] = [
                {"scoring": "fused (chosen)", "split": "random dev", "family": fam, "kind": kind, "n": 81, "rate": rate}
                for fam, kind, rate in rows
            ] + [
                {
                    "scoring": "fused (chosen)",
                    "split": "random test",
                    "family": "contrast",
                    "kind": "FPR",
                    "n": 81,
                    "rate": 0.5,
                }
            ]
        else:
            report["family"] = ["| scoring | split | family | n | flagged |", "|---|---|---|---|---|"] + [
                f"| fused (chosen) | random dev | {fam} ({kind}) | 81 | {rate:.3f} |" for fam, kind, rate in rows
            ]
        return report

    paths = {n: tmp_path / f"{n}.json" for n in ("base", "a", "heldout-prompt-injection-a")}
    paths["base"].write_text(json.dumps(with_family(_report(0.80, 0.80, 0.20, 0.70), 0.09, 0.82)))
    paths["heldout-prompt-injection-a"].write_text(json.dumps(_report(0.85, 0.85, 0.10, 0.72)))
    for contrast, instructions, earns in ((0.09, 0.82, True), (0.12, 0.82, False), (0.08, 0.63, False)):
        paths["a"].write_text(json.dumps(with_family(_report(0.90, 0.82, 0.10, 0.75), contrast, instructions)))
        verdict = gpu_verdict.collect(paths, "prompt-injection")["verdict"]
        assert verdict["earns_default"] is earns, verdict["checks"]
    assert "- FAIL: harmful-instructions recall not lower than base's (random dev)" in gpu_verdict.verdict_markdown(
        gpu_verdict.collect(paths, "prompt-injection"), "prompt-injection"
    )


def test_verdict_command_prints_the_table_for_reports_made_anywhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, report in (("base", _report(0.80, 0.80, 0.20, 0.70)), ("cpu-a", _report(0.70, 0.70, 0.10, 0.60))):
        (tmp_path / f"{name}.json").write_text(json.dumps(report))
    argv = ["gpu_verdict", "--fold", "prompt-injection", f"base={tmp_path}/base.json", f"a={tmp_path}/cpu-a.json"]
    monkeypatch.setattr("sys.argv", argv)
    gpu_verdict.main()
    out = capsys.readouterr().out
    assert "| a | 0.700 / 0.650 |" in out and "- FAIL: beats base" in out and "earns the default" in out


def test_candidates_are_the_issues_recipes_and_hard_negatives_cover_the_lookalike_families() -> None:
    assert set(BENIGN_FAMILIES) <= set(HARD_NEGATIVE_FAMILIES)
    assert {"adversarial", "contrast", "injection-lookalike"} <= set(HARD_NEGATIVE_FAMILIES)
    assert gpu_run.HELDOUT_FOLD in FOLDS
    losses = {config.loss for config in gpu_run.CANDIDATES.values()}
    assert {"triplet-soft", "softmax"} <= losses <= set(LOSSES)
    for config in gpu_run.CANDIDATES.values():
        assert config.epochs >= 2 and config.max_seq_length >= 128 and config.max_steps == -1
    for name, config in gpu_run.plan(smoke=True).items():
        assert config.max_steps > 0 and config.loss == gpu_run.CANDIDATES[name].loss
        assert TrainConfig.from_dict(config.to_dict()) == config


@pytest.mark.model
def test_torch_encoder_matches_the_fp32_onnx_export() -> None:
    from benchmarks.layout import MODELS_DIR
    from benchmarks.training.torch_encoder import TorchEncoder
    from index import OnnxEncoder, base_model_dir
    from index.encoding.export import _PARITY_TEXTS

    texts = [*_PARITY_TEXTS, "how do I kill a python process"]
    onnx = OnnxEncoder(MODELS_DIR / "base", "fp32", threads=1)
    torch_encoder = TorchEncoder(base_model_dir(), "base")
    assert torch_encoder.dim == onnx.dim and torch_encoder.max_tokens == onnx.max_tokens
    assert torch_encoder.token_spans(texts) == onnx.token_spans(texts)
    cosine = (torch_encoder.encode(texts) * onnx.encode(texts)).sum(axis=1)
    assert cosine.min() > 0.9999
    narrow = TorchEncoder(base_model_dir(), "base", known_ids=[101, 102])
    with pytest.raises(Exception, match="not in the packed base"):
        narrow.encode(["hello"])


def test_cpu_candidates_train_what_is_stale_hold_the_fold_out_and_judge(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The CPU runner trains the GPU recipes at 64 tokens, skips a current model and an existing report, leaves the
    injection fold's families out of the held-out training, and prints the verdict over every report."""
    from benchmarks.evaluation import evaluate
    from benchmarks.training import cpu_candidates
    from index.datasets import DatasetRow

    rows = [
        DatasetRow(f"text {i}", cat, source="s", license="MIT", split="train", family=fam, noncommercial=False)
        for i, (cat, fam) in enumerate([("safe", "benign"), ("prompt_injection", "prompt-injection"), ("safe", "x")])
    ]
    trained: dict[str, tuple[TrainConfig, set[str]]] = {}
    evaluated: list[str] = []
    monkeypatch.setattr(cpu_candidates, "MODELS_DIR", tmp_path / "models")
    monkeypatch.setattr(evaluate, "REPORTS_DIR", tmp_path)
    monkeypatch.setattr(cpu_candidates, "load_rows", lambda _path: rows)
    monkeypatch.setattr(cpu_candidates, "data_digest", lambda examples: str(len(examples)))
    monkeypatch.setattr(cpu_candidates, "select_examples", lambda rows, _config: rows)
    # triplet-hn's model is current: not retrained
    monkeypatch.setattr(
        cpu_candidates, "stale_reason", lambda out, _c, _d: None if out.name == "cpu-triplet-hn" else "missing"
    )
    monkeypatch.setattr(
        cpu_candidates,
        "train",
        lambda config, out, rows, say: trained.__setitem__(out.name, (config, {r.family for r in rows})),
    )

    def fake_run(command: list[str], check: bool, cwd: Path) -> None:
        name = command[command.index("--name") + 1]
        evaluated.append(name)
        (tmp_path / f"evaluate-{name}-int8.json").write_text(json.dumps(_report(0.8, 0.8, 0.2, 0.7)))

    monkeypatch.setattr(evaluate.subprocess, "run", fake_run)
    (tmp_path / "evaluate-base-cpu-int8.json").write_text(json.dumps(_report(0.8, 0.8, 0.2, 0.7)))  # kept
    monkeypatch.setattr(
        "sys.argv", ["cpu_candidates", "--only", "softmax", "--only", "triplet-hn", "--heldout", "softmax"]
    )
    cpu_candidates.main()
    assert sorted(trained) == ["cpu-heldout-softmax", "cpu-softmax"]
    config, families = trained["cpu-softmax"]
    assert config == replace(gpu_run.CANDIDATES["softmax"], max_seq_length=64)
    assert families == {"benign", "prompt-injection", "x"}
    assert trained["cpu-heldout-softmax"][1].isdisjoint(FOLDS[gpu_run.HELDOUT_FOLD])
    assert evaluated == ["cpu-softmax", "cpu-triplet-hn", "cpu-heldout-softmax"]
    assert evaluate.report_path("base") == tmp_path / "evaluate.json"  # where the default run writes its report
    out = capsys.readouterr().out
    assert "| softmax |" in out and "| triplet-hn |" in out and "earns the default" in out


def test_drift_table_is_the_cosine_to_base_per_family_and_overall() -> None:
    from benchmarks.training.drift import drift_table

    base = np.eye(4, dtype=np.float32)
    turned = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0.6, 0.8], [0, 0, 0.8, -0.6]], dtype=np.float32)
    table = drift_table(base, turned, ["a", "a", "b", "b"])
    assert [(name, n) for name, n, _, _ in table] == [("a", 2), ("b", 2), ("all", 4)]
    assert table[0][2:] == pytest.approx((1.0, 1.0))
    assert table[1][2] == pytest.approx(0.0)  # 0.6 and -0.6
    assert table[2][2] == pytest.approx(0.5) and table[2][3] < 0
