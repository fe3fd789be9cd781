"""Would an AVX2 CPU clip this int8 model's sums? An emulation on the model's own activations, on any CPU.

    .venv/bin/python -m benchmarks.evaluation.int8_saturation [--rows 200] [--model-dir models/base] [--also DIR ...]

ONNX Runtime's int8 products multiply u8 activations by s8 weights. VNNI and AMX sum the products exactly in 32 bits;
the AVX2 kernel (`vpmaddubsw`) first adds each pair of adjacent products in 16 bits with saturation, so a pair above
32,767 in size is clipped and the CPU computes another vector than a VNNI one would. For a seeded sample of dev
prompts this captures the u8 input of every quantised product (MatMulInteger, QAttention) from the int8 graph, forms
the pair sums against the weights as `vpmaddubsw` pairs them (inputs 2i and 2i+1), and prints per model directory:
the weights' range, the share of pair sums and of outputs (one row times one weight column) with a clipped pair,
and the worst relative error of such an output. A model whose weights lie in [-64, 64] (7-bit, the export since the
twenty-first session) cannot clip: 2 x 255 x 64 = 32,640.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from benchmarks.layout import DATA_DIR, REPO

INT16_MAX = 32767


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", type=Path, default=REPO / "models" / "base")
    ap.add_argument("--also", type=Path, nargs="*", default=[], help="other model directories (their int8 graph)")
    ap.add_argument("--rows", type=int, default=200)
    args = ap.parse_args()

    from index.datasets import load_rows

    dev = load_rows(DATA_DIR / "safety.jsonl", splits={"dev"})
    pick = np.random.default_rng(0).choice(len(dev), min(args.rows, len(dev)), replace=False)
    texts = [dev[i].text for i in pick]
    print(f"{len(texts)} dev prompts, pair sums as AVX2's vpmaddubsw forms them\n")
    print("| model | int8 weights | pair sums clipped | outputs with a clipped pair | worst relative error |")
    print("|---|---|---|---|---|")
    for model_dir in [args.model_dir, *args.also]:
        print(_row(model_dir, texts))


def _row(model_dir: Path, texts: list[str]) -> str:
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper
    from tokenizers import Tokenizer

    from index.encoding.models import ONNX_FILES, TOKENIZER_FILE

    model = onnx.load(str(model_dir / ONNX_FILES["int8"]))
    weights = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    products = [  # (u8 input, s8 weight matrix K x N) of every quantised product with a constant weight
        (node.input[0], weights[node.input[1]].astype(np.int32))
        for node in model.graph.node
        if node.op_type in {"MatMulInteger", "QAttention"} and node.input[1] in weights
    ]
    for name in sorted({a for a, _ in products}):
        model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.UINT8, None))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    inputs = {i.name for i in session.get_inputs()}
    tokenizer = Tokenizer.from_file(str(model_dir / TOKENIZER_FILE))
    low = min(int(w.min()) for _, w in products)
    high = max(int(w.max()) for _, w in products)

    clipped = pairs = clipped_outputs = outputs = 0
    worst = 0.0
    for text in texts:
        enc = tokenizer.encode(text)
        feed = {
            "input_ids": np.asarray([enc.ids], np.int64),
            "attention_mask": np.asarray([enc.attention_mask], np.int64),
            "token_type_ids": np.asarray([enc.type_ids], np.int64),
        }
        values = session.run(None, {k: feed[k] for k in inputs})
        got = dict(zip([o.name for o in session.get_outputs()], values, strict=True))
        for name, w in products:
            a = got[name].reshape(-1, got[name].shape[-1]).astype(np.int32)  # M x K
            k = a.shape[1] - a.shape[1] % 2
            pair = a[:, 0:k:2, None] * w[None, 0:k:2, :] + a[:, 1:k:2, None] * w[None, 1:k:2, :]  # M x K/2 x N
            over = np.abs(pair) > INT16_MAX
            clipped += int(over.sum())
            pairs += pair.size
            outputs += a.shape[0] * w.shape[1]
            hit = over.any(axis=1)
            clipped_outputs += int(hit.sum())
            if hit.any():
                exact = pair.sum(axis=1)
                avx2 = np.clip(pair, -INT16_MAX - 1, INT16_MAX).sum(axis=1)
                worst = max(worst, float(np.max(np.abs(exact - avx2)[hit] / (np.abs(exact[hit]) + 1))))
    return (
        f"| {model_dir} | [{low}, {high}] | {clipped:,} of {pairs:,} ({clipped / pairs:.1e}) "
        f"| {clipped_outputs:,} of {outputs:,} ({clipped_outputs / outputs:.2%}) | {worst:.3g} |"
    )


if __name__ == "__main__":
    main()
