"""Probe: fine-tune the encoder's top layers, held out per fold (issue 18, docs/ablation.md).

Every earlier fine-tune trained the whole encoder once, on every family, so only the prompt-injection fold could be
judged leakage-free. Here the lower 6 - `--layers` layers of all-MiniLM-L6-v2 stay frozen: their outputs for each
text's first 128 tokens are computed once (fp32 torch) and cached under var/cache, and for each out-of-source fold a
copy of the top `--layers` layers is trained (bf16 autocast) with the class-balanced softmax objective over the 18
labels on the mean-pooled, normalised output (plus, with `--distill W`, W x mean(1 - cosine) to the base vector), on
the train rows of the *other* families only. The fold's exemplars and query rows are then embedded by that fold's
encoder and scored by the product's kNN / centroid / linear head (the evaluation's `FoldScores`), first window only,
against the un-tuned encoder on the same cached states (the control: int8 is out of both arms). The random split
trains on every train row. Scores go to reports/top-layer-NAME.json; `--report` chooses each arm's fusion on the
mean out-of-source dev AUPRC (the evaluation's grid) and prints the issue-18 measures.

    .venv/bin/python -m benchmarks.evaluation.top_layer --epochs 2 --name top              # layer 6 only
    .venv/bin/python -m benchmarks.evaluation.top_layer --layers 3 --epochs 1 --name top3  # layers 4-6
    .venv/bin/python -m benchmarks.evaluation.top_layer --report reports/top-layer-top.json reports/top-layer-top3.json
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from torch import nn

from benchmarks.evaluation.decisions import candidate_fusions
from benchmarks.evaluation.evaluate import FOLDS
from benchmarks.evaluation.vectors import FoldScores, taxonomy_labels
from benchmarks.layout import DATA_DIR, REPO
from index import SAFE, Encoder, GuardConfig, Label, normalize_text
from index.datasets import DatasetRow, load_rows
from index.encoding.models import base_model_dir
from index.encoding.onnx import OnnxEncoder
from index.evaluation import binary_metrics
from index.taxonomy import load_taxonomy

TOKENS = 128
SHIPPED = {"head": 0.7, "knn k=32 T=0.05": 0.2, "centroid T=0.1": 0.1}


def load_bert() -> tuple[Any, Any]:
    """all-MiniLM-L6-v2 as a transformers BertModel (fp32, eval mode) and its tokenizer."""
    from transformers import AutoModel, AutoTokenizer

    path = base_model_dir()
    return AutoModel.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)


def lower_states(texts: list[str], cache: Path, below: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Layer `below`'s outputs of every token (fp16, concatenated), the offsets per row, and the base vectors (mean
    of layer 6, normalised), cached in `cache`."""
    if cache.exists():
        d = np.load(cache)
        return d["states"], d["offsets"], d["base"]
    bert, tok = load_bert()
    enc = tok([normalize_text(t) for t in texts], truncation=True, max_length=TOKENS)
    lengths = np.asarray([len(ids) for ids in enc["input_ids"]], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    states = np.empty((int(offsets[-1]), 384), dtype=np.float16)
    base = np.empty((len(texts), 384), dtype=np.float32)
    order = np.argsort(lengths)
    t0 = time.perf_counter()
    with torch.inference_mode():
        for start in range(0, len(order), 64):
            idx = order[start : start + 64]
            width = int(lengths[idx].max())
            ids = torch.zeros((len(idx), width), dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for n, i in enumerate(idx):
                ids[n, : lengths[i]] = torch.tensor(enc["input_ids"][i])
                mask[n, : lengths[i]] = 1
            out = bert(input_ids=ids, attention_mask=mask, output_hidden_states=True)
            h5, h6 = out.hidden_states[below], out.hidden_states[6]
            m = mask[:, :, None].float()
            pooled = nn.functional.normalize((h6 * m).sum(1) / m.sum(1), dim=1)
            for n, i in enumerate(idx):
                states[offsets[i] : offsets[i + 1]] = h5[n, : lengths[i]].numpy()
                base[i] = pooled[n].numpy()
            if start % 6400 == 0:
                print(f"  states {start}/{len(order)} {time.perf_counter() - t0:.0f}s", file=sys.stderr)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, states=states, offsets=offsets, base=base)
    return states, offsets, base


class Top(nn.Module):
    def __init__(self, layers: nn.ModuleList, labels: int) -> None:
        super().__init__()
        # `embed` passes a boolean mask (True = attend), which only the sdpa attention reads as a mask
        implementation = {getattr(layer.attention.self.config, "_attn_implementation", None) for layer in layers}  # type: ignore[union-attr]
        if implementation != {"sdpa"}:
            raise ValueError(f"the layers must use sdpa attention, not {implementation}")
        self.layers = layers
        self.classify = nn.Linear(384, labels)
        self.scale = 20.0

    def embed(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = x
        for layer in self.layers:
            h = layer(h, attention_mask=mask[:, None, None, :])  # sdpa: True = attend
            h = h[0] if isinstance(h, tuple) else h
        m = mask[:, :, None].to(h.dtype)
        return nn.functional.normalize((h * m).sum(1) / m.sum(1), dim=1)


def batch(states: np.ndarray, offsets: np.ndarray, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = offsets[idx + 1] - offsets[idx]
    width = int(lengths.max())
    x = np.zeros((len(idx), width, states.shape[1]), dtype=np.float32)
    for n, i in enumerate(idx):
        x[n, : lengths[n]] = states[offsets[i] : offsets[i + 1]]
    return torch.from_numpy(x), torch.from_numpy(np.arange(width)[None, :] < lengths[:, None])


def train_top(
    layers: nn.ModuleList,
    states: np.ndarray,
    offsets: np.ndarray,
    base: np.ndarray,
    y: np.ndarray,
    train: np.ndarray,
    n_labels: int,
    args: argparse.Namespace,
) -> Top:
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    model = Top(copy.deepcopy(layers), n_labels)
    counts = np.bincount(y[train], minlength=n_labels).astype(np.float64)
    weight = np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / n_labels, 0.0)
    loss_fn = nn.CrossEntropyLoss(weight=torch.tensor(weight, dtype=torch.float32))
    opt = torch.optim.AdamW(
        [{"params": model.layers.parameters(), "lr": args.lr}, {"params": model.classify.parameters(), "lr": 1e-2}],
        weight_decay=0.01,
    )
    steps = args.epochs * ((len(train) + args.batch - 1) // args.batch)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / (0.1 * steps)) * (1 - s / steps))
    model.train()
    t0, step = time.perf_counter(), 0
    for _ in range(args.epochs):
        # shuffled, then sorted by length inside chunks of 50 batches so each batch pads little
        order = train[rng.permutation(len(train))]
        chunks = [order[i : i + 50 * args.batch] for i in range(0, len(order), 50 * args.batch)]
        batches = []
        for c in chunks:
            c = c[np.argsort(offsets[c + 1] - offsets[c], kind="stable")]
            batches += [c[i : i + args.batch] for i in range(0, len(c), args.batch)]
        for b in (batches[i] for i in rng.permutation(len(batches))):
            x, mask = batch(states, offsets, b)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
                e = model.embed(x, mask).float()
            logits = model.scale * model.classify(e)
            loss = loss_fn(logits, torch.from_numpy(y[b]))
            if args.distill:
                loss = loss + args.distill * (1 - (e * torch.from_numpy(base[b])).sum(1)).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if step % 100 == 0:
                el = time.perf_counter() - t0
                print(
                    f"    step {step}/{steps} loss {loss.item():.3f} eta {el / step * (steps - step):.0f}s",
                    file=sys.stderr,
                )
    return model.eval()


def embed_rows(model: Top, states: np.ndarray, offsets: np.ndarray, rows: np.ndarray, bf16: bool) -> np.ndarray:
    out = np.empty((len(rows), 384), dtype=np.float32)
    order = np.argsort(offsets[rows + 1] - offsets[rows])
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        for start in range(0, len(order), 128):
            pos = order[start : start + 128]
            x, mask = batch(states, offsets, rows[pos])
            out[pos] = model.embed(x, mask).float().numpy()
    return out


def scores_for(
    vectors: np.ndarray,
    index_mask: np.ndarray,
    query_mask: np.ndarray,
    rows: list[DatasetRow],
    labels: list[Label],
    enc: Encoder,
) -> FoldScores:
    emb = SimpleNamespace(exemplars=vectors, windows=vectors, owners=np.arange(len(vectors)))
    return FoldScores(enc, labels, rows, emb, index_mask, query_mask, GuardConfig())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--distill", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--folds", default=",".join([*FOLDS, "random"]))
    ap.add_argument("--no-bf16", dest="bf16", action="store_false")
    ap.add_argument("--layers", type=int, default=1, help="how many top layers to train (the rest stay frozen)")
    ap.add_argument("--name", default="top")
    ap.add_argument("--report", nargs="*", type=Path, help="only report these runs' reports/top-layer-*.json")
    args = ap.parse_args()
    if args.report:
        report(args.report)
        return
    torch.set_num_threads(2)
    rows = load_rows(DATA_DIR / "safety.jsonl")
    states, offsets, base = lower_states(
        [r.text for r in rows], REPO / "var" / "cache" / f"layer{6 - args.layers}-{TOKENS}.npz", 6 - args.layers
    )
    taxonomy = load_taxonomy(DATA_DIR / "taxonomy.toml")
    labels = taxonomy_labels(taxonomy)
    names = [lab.name for lab in labels]
    y = np.asarray([names.index(r.category) for r in rows], dtype=np.int64)
    split = np.asarray([r.split for r in rows])
    family = np.asarray([r.family for r in rows])
    unsafe = np.asarray([r.category != SAFE for r in rows])
    enc = OnnxEncoder(REPO / "models" / "base", variant="int8")  # identity for Guard.from_vectors only
    bert, _ = load_bert()
    top = nn.ModuleList(bert.encoder.layer[6 - args.layers :])
    out: dict[str, dict[str, Any]] = {}
    for name in args.folds.split(","):
        t0 = time.perf_counter()
        held = np.isin(family, FOLDS[name]) if name != "random" else np.zeros(len(rows), dtype=bool)
        index_mask = (split == "train") & ~held
        query_mask = (held if name != "random" else np.ones(len(rows), dtype=bool)) & (split != "train")
        need = np.flatnonzero(index_mask | query_mask)
        model = train_top(top, states, offsets, base, y, np.flatnonzero(index_mask), len(names), args)
        tuned = base.copy()
        tuned[need] = embed_rows(model, states, offsets, need, args.bf16)
        res = {}
        for arm, vecs in (("base", base), (args.name, tuned)):
            fs = scores_for(vecs, index_mask, query_mask, rows, labels, enc)
            qs, qy, qf = split[query_mask], unsafe[query_mask], family[query_mask]
            res[arm] = {
                "scores": {k: v.tolist() for k, v in fs.windows.items()},
                "split": qs.tolist(),
                "y": qy.tolist(),
                "family": qf.tolist(),
            }
            for combo_name, combo in (
                ("shipped", SHIPPED),
                ("head", {"head": 1.0}),
                ("knn", {"knn k=32 T=0.05": 1.0}),
                ("centroid", {"centroid T=0.1": 1.0}),
            ):
                s = fs.fused(combo)
                msg = [f"{name} {arm} {combo_name}"]
                for which in ("dev", "test"):
                    k = qs == which
                    msg.append(f"{which} {binary_metrics(s[k], qy[k], 0.5).auprc:.3f}")
                print("  " + " ".join(msg), file=sys.stderr)
        out[name] = res
        print(f"fold {name}: {time.perf_counter() - t0:.0f}s", file=sys.stderr)
        path = REPO / "reports" / f"top-layer-{args.name}.json"
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps({"args": vars(args), "folds": out}))


def report(paths: list[Path]) -> list[dict[str, Any]]:
    """Per arm: the fusion with the best mean out-of-source dev AUPRC (the evaluation's grid), its dev / test mean and
    per-fold AUPRC, the held-out injection recall at <= 3 % look-alike FPR, and the random split's look-alike FPR and
    injection recall at the cut that keeps dev written-harmful recall 0.824."""
    arms: dict[str, dict[str, dict[str, Any]]] = {}
    for path in paths:
        folds = json.loads(path.read_text())["folds"]
        for fold, res in folds.items():
            for arm, data in res.items():
                arms.setdefault(arm if arm == "base" else f"{path.stem}:{arm}", {})[fold] = data
    rows: list[dict[str, Any]] = []
    for arm, folds in arms.items():
        oos = [f for f in folds if f != "random"]

        def fused(data: dict[str, Any], combo: dict[str, float]) -> np.ndarray:
            return np.clip(sum(w * np.asarray(data["scores"][k]) for k, w in combo.items()), 1e-6, 1 - 1e-6)

        def auprc(data: dict[str, Any], combo: dict[str, float], which: str) -> float:
            k = np.asarray(data["split"]) == which
            return binary_metrics(fused(data, combo)[k], np.asarray(data["y"])[k], 0.5).auprc

        first = folds[oos[0]]
        cands = candidate_fusions({k: np.asarray(v) for k, v in first["scores"].items()})
        dev = {json.dumps(c): np.mean([auprc(folds[f], c, "dev") for f in oos]) for c in cands}
        best = json.loads(max(dev, key=lambda c: dev[c]))
        line: dict[str, Any] = {"arm": arm, "fusion": best, "folds": len(oos)}
        for which in ("dev", "test"):
            per = {f: auprc(folds[f], best, which) for f in oos}
            line[f"oos {which}"] = float(np.mean(list(per.values())))
            line[f"per fold {which}"] = {f: round(v, 3) for f, v in per.items()}
            if "prompt-injection" in folds:
                d = folds["prompt-injection"]
                k = np.asarray(d["split"]) == which
                s, yy = fused(d, best)[k], np.asarray(d["y"])[k]
                line[f"inj held-out recall@3% {which}"] = float(np.mean(s[yy] > np.quantile(s[~yy], 0.97)))
        if "random" in folds:
            d = folds["random"]
            s, qs, qy, qf = fused(d, best), np.asarray(d["split"]), np.asarray(d["y"]), np.asarray(d["family"])
            instr = np.sort(s[(qs == "dev") & (qf == "harmful-instructions")])
            cut = float(instr[round((1 - 0.824) * len(instr))])
            for which in ("dev", "test"):
                k = qs == which
                line[f"random AUPRC {which}"] = binary_metrics(s[k], qy[k], 0.5).auprc
                line[f"look-alike FPR {which}"] = float(
                    np.mean(s[k & np.isin(qf, ("lookalike", "contrast")) & ~qy] >= cut)
                )
                line[f"injection recall {which}"] = float(np.mean(s[k & (qf == "prompt-injection") & qy] >= cut))
        rows.append(line)
        print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in line.items()}))
    return rows


if __name__ == "__main__":
    main()
