"""Which int8 schemes make a text's vector independent of its batch-mates, and what each costs (issue 19).

    .venv/bin/python -m benchmarks.evaluation.batch_invariance [--model-dir DIR] [--texts 200] [--calibration 300]

The shipped int8 graph quantises activations dynamically with one scale per run, so a text's vector depends on the
texts it runs beside; `OnnxEncoder` therefore runs int8 texts one at a time. This probe builds the batch-invariant
alternatives from the same fp32 export and prints, per scheme: cosine of each dev text's vector to its fp32 vector
(mean, min), the largest difference between a text encoded alone and inside a padded batch of 16 (0 = invariant),
and the CPU time per text (one thread) alone and in length-sorted batches of 4 and 16.

- `dynamic` — the shipped graph (fused; per-channel weights, per-run activation scale);
- `static` — `quantize_static`, QDQ, per-channel int8 weights, activation scales calibrated (MinMax) on train rows;
- `static, FFN down fp32` — the same with the six FFN down-projections (GELU outputs, the outliers) kept fp32;
- `int8 blocks (MatMulNBits)` — 8-bit weights in blocks of 32, activations quantised per row and block at run time
  (accuracy level 4): row-wise, so invariant by construction.

CPU time (not wall time) is reported so that a shared machine distorts it less; compare rows of one run only.
Needs the dev extra (onnx-ir, for MatMulNBits).
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from onnxruntime import InferenceSession

from benchmarks.layout import DATA_DIR, REPO
from benchmarks.machine import machine
from benchmarks.tables import markdown_table

FFN_DOWN = r"layer\.\d+/output/dense/MatMul$"
BATCH = 16


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", type=Path, default=REPO / "models" / "base")
    ap.add_argument("--texts", type=int, default=200, help="dev texts scored")
    ap.add_argument("--calibration", type=int, default=300, help="train texts for the static activation scales")
    args = ap.parse_args()

    from index import load_rows

    rows = load_rows(DATA_DIR / "safety.jsonl", splits={"train", "dev"})
    rng = np.random.default_rng(0)
    train = [r.text for r in rows if r.split == "train"]
    dev = [r.text for r in rows if r.split == "dev"]
    calibration = [train[i] for i in rng.choice(len(train), args.calibration, replace=False)]
    texts = [dev[i] for i in rng.choice(len(dev), args.texts, replace=False)]
    runner = _Runner(args.model_dir)
    fp32 = args.model_dir / "model.onnx"
    with tempfile.TemporaryDirectory(prefix="lightguard-quant-") as tmp:
        work = Path(tmp)
        schemes: list[tuple[str, Path]] = [("dynamic (shipped)", args.model_dir / "model.int8.onnx")]
        schemes.append(("static", _static(fp32, work / "static.onnx", runner, calibration, exclude=None)))
        no_ffn = _static(fp32, work / "static-ffn.onnx", runner, calibration, exclude=FFN_DOWN)
        schemes.append(("static, FFN down fp32", no_ffn))
        schemes.append(("int8 blocks (MatMulNBits)", _nbits(fp32, work / "nbits.onnx")))
        reference = runner.alone(fp32, texts)
        table = []
        for name, path in schemes:
            alone = runner.alone(path, texts)
            cosine = (alone * reference).sum(axis=1)
            batched = np.concatenate([runner.batch(path, texts[i : i + BATCH]) for i in range(0, len(texts), BATCH)])
            cpu = {size: runner.cpu_ms_per_text(path, texts, size) for size in (1, 4, BATCH)}
            table.append(
                [
                    name,
                    f"{cosine.mean():.4f}",
                    f"{cosine.min():.4f}",
                    f"{np.abs(batched - alone).max():.1e}",
                    *(f"{cpu[size]:.2f}" for size in (1, 4, BATCH)),
                ]
            )
    print(f"{len(texts)} dev texts, {len(calibration)} train texts for calibration; {machine()}")
    print(
        markdown_table(
            [
                "scheme",
                "mean cos to fp32",
                "min cos",
                f"max |alone - in batch of {BATCH}|",
                "CPU ms/text alone",
                "in batches of 4",
                f"in batches of {BATCH}",
            ],
            table,
        )
    )


class _Runner:
    """One-thread sessions on the export's tokenizer, mean pooling + L2 as `OnnxEncoder` does."""

    def __init__(self, model_dir: Path) -> None:
        from tokenizers import Tokenizer

        self._tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self._tokenizer.no_padding()
        self._sessions: dict[Path, InferenceSession] = {}

    def feeds(self, texts: list[str]) -> dict[str, NDArray[np.int64]]:
        encodings = self._tokenizer.encode_batch(texts)
        width = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(texts), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        for row, enc in enumerate(encodings):
            ids[row, : len(enc.ids)] = enc.ids
            mask[row, : len(enc.ids)] = 1
        return {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}

    def calibration_reader(self, texts: list[str]) -> object:
        from onnxruntime.quantization import CalibrationDataReader

        runner = self

        class Reader(CalibrationDataReader):  # type: ignore[misc]
            def __init__(self) -> None:
                self._feeds: Iterator[dict[str, NDArray[np.int64]]] = (runner.feeds([t]) for t in texts)

            def get_next(self) -> dict[str, NDArray[np.int64]] | None:
                return next(self._feeds, None)

        return Reader()

    def batch(self, path: Path, texts: list[str]) -> NDArray[np.float32]:
        from index.encoding.onnx import _mean_pool

        feeds = self.feeds(texts)
        hidden = np.asarray(self._session(path).run(None, feeds)[0], dtype=np.float32)
        return _mean_pool(hidden, feeds["attention_mask"][:, :, None].astype(np.float32))

    def alone(self, path: Path, texts: list[str]) -> NDArray[np.float32]:
        return np.concatenate([self.batch(path, [t]) for t in texts])

    def cpu_ms_per_text(self, path: Path, texts: list[str], size: int) -> float:
        ordered = sorted(texts, key=len)
        batches = [self.feeds(ordered[i : i + size]) for i in range(0, len(ordered), size)]
        session = self._session(path)
        best = float("inf")
        for _ in range(3):
            start = time.process_time()
            for feeds in batches:
                session.run(None, feeds)
            best = min(best, (time.process_time() - start) / len(texts) * 1e3)
        return best

    def _session(self, path: Path) -> InferenceSession:
        from index.encoding.onnx import _session

        if path not in self._sessions:
            self._sessions[path] = _session(path, 1)
        return self._sessions[path]


def _static(src: Path, dst: Path, runner: _Runner, texts: list[str], exclude: str | None) -> Path:
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    nodes = _matmuls(onnx.load(str(src)), exclude) if exclude else []
    quantize_static(
        str(src),
        str(dst),
        runner.calibration_reader(texts),
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=["MatMul"],
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        nodes_to_exclude=nodes,
        calibrate_method=CalibrationMethod.MinMax,
    )
    return dst


def _nbits(src: Path, dst: Path) -> Path:
    import onnx
    from onnxruntime.quantization import QuantFormat
    from onnxruntime.quantization.matmul_nbits_quantizer import DefaultWeightOnlyQuantConfig, MatMulNBitsQuantizer

    config = DefaultWeightOnlyQuantConfig(
        block_size=32, is_symmetric=True, accuracy_level=4, bits=8, quant_format=QuantFormat.QOperator
    )
    quantizer = MatMulNBitsQuantizer(
        onnx.load(str(src)), bits=8, block_size=32, is_symmetric=True, accuracy_level=4, algo_config=config
    )
    quantizer.process()
    quantizer.model.save_model_to_file(str(dst), use_external_data_format=False)
    return dst


def _matmuls(model: object, pattern: str) -> list[str]:
    match: Callable[[str], object] = re.compile(pattern).search
    return [n.name for n in model.graph.node if n.op_type == "MatMul" and match(n.name)]  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
