"""Probe: does a learned attention pooling over the frozen encoder's token outputs separate intent from topic
better than mean pooling? (issue 18, docs/results.md "What was tried")

The look-alikes differ from their unsafe twins by a few intent words ("illegally", "ignore previous instructions")
that mean pooling averages away. Here each text's first 128 token outputs of the int8 model are pooled by softmax
attention with a learned scorer (per head of 96 dimensions; a zero scorer is exactly mean pooling), and a
class-balanced softmax classifier over the 18 labels is trained with it on the same train rows as the evaluation's
index — per out-of-source fold without the fold's families, so the pooling never sees a held-out family. Arms:

- `mean`:   the scorer frozen at zero (= mean pooling), classifier trained the same way — the control;
- `query`:  one learned query vector per head (384 parameters);
- `mlp`:    a token scorer 384 -> 64 -> heads (tanh), i.e. a small learned attention.

Head-only scores (unsafe = 1 - p(safe)), first window only, so all arms sit a little below the fused evaluation:

    .venv/bin/python -m benchmarks.evaluation.attention_pooling            # ~10 min embedding, then ~1 min per arm
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from benchmarks.evaluation.evaluate import FOLDS
from benchmarks.layout import DATA_DIR, REPO
from index import SAFE, normalize_text
from index.datasets import load_rows
from index.encoding.onnx import OnnxEncoder
from index.evaluation import binary_metrics

TOKENS = 128
HEADS = 4


def token_states(rows: list, model_dir: Path, cache: Path) -> tuple[np.ndarray, np.ndarray]:
    """(states of every token, fp16, concatenated; offsets per row) of the rows' first TOKENS tokens."""
    if cache.exists():
        data = np.load(cache)
        return data["states"], data["offsets"]
    enc = OnnxEncoder(model_dir, variant="int8")
    tok = enc._tokenizer
    tok.enable_truncation(max_length=TOKENS)
    texts = [normalize_text(r.text) for r in rows]
    encodings = tok.encode_batch(texts)
    lengths = np.asarray([len(e.ids) for e in encodings], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    states = np.empty((int(offsets[-1]), enc.dim), dtype=np.float16)
    t0 = time.perf_counter()
    for i, e in enumerate(encodings):
        hidden, _ = enc._run([e])
        states[offsets[i] : offsets[i + 1]] = hidden[0]
        if i % 2000 == 0:
            print(f"  {i}/{len(rows)} {time.perf_counter() - t0:.0f}s", file=sys.stderr)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, states=states, offsets=offsets)
    return states, offsets


class Pooled(nn.Module):
    def __init__(self, kind: str, dim: int, labels: int) -> None:
        super().__init__()
        self.kind = kind
        self.query = nn.Parameter(torch.zeros(HEADS, dim // HEADS), requires_grad=kind == "query")
        if kind == "mlp":
            self.scorer = nn.Sequential(nn.Linear(dim, 64), nn.Tanh(), nn.Linear(64, HEADS))
            nn.init.zeros_(self.scorer[2].weight)
            nn.init.zeros_(self.scorer[2].bias)
        self.classify = nn.Linear(dim, labels)
        self.scale = nn.Parameter(torch.tensor(10.0))

    def pool(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        heads = x.view(b, t, HEADS, d // HEADS)
        if self.kind == "mlp":
            scores = self.scorer(x)  # b t h
        else:
            scores = torch.einsum("bthd,hd->bth", heads, self.query) / (d // HEADS) ** 0.5
        scores = scores.masked_fill(~mask[:, :, None], -1e9)
        weights = torch.softmax(scores, dim=1)
        pooled = torch.einsum("bth,bthd->bhd", weights, heads).reshape(b, d)
        return nn.functional.normalize(pooled, dim=1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.scale * self.classify(self.pool(x, mask))


def batch(states: np.ndarray, offsets: np.ndarray, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = offsets[idx + 1] - offsets[idx]
    width = int(lengths.max())
    x = np.zeros((len(idx), width, states.shape[1]), dtype=np.float32)
    for n, i in enumerate(idx):
        x[n, : lengths[n]] = states[offsets[i] : offsets[i + 1]]
    mask = np.arange(width)[None, :] < lengths[:, None]
    return torch.from_numpy(x), torch.from_numpy(mask)


def train_and_score(
    kind: str,
    states: np.ndarray,
    offsets: np.ndarray,
    y: np.ndarray,
    train: np.ndarray,
    score: np.ndarray,
    n_labels: int,
    epochs: int,
    seed: int,
) -> np.ndarray:
    """p(safe)-based unsafe scores of `score` rows after training on `train` rows."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = Pooled(kind, states.shape[1], n_labels)
    counts = np.bincount(y[train], minlength=n_labels).astype(np.float64)
    weight = torch.tensor(
        np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / n_labels, 0.0), dtype=torch.float32
    )
    loss_fn = nn.CrossEntropyLoss(weight=weight)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    # sort by length inside shuffled chunks so batches pad little
    for _ in range(epochs):
        order = rng.permutation(train)
        for start in range(0, len(order), 256):
            idx = order[start : start + 256]
            x, mask = batch(states, offsets, idx)
            loss = loss_fn(model(x, mask), torch.from_numpy(y[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
    out = np.empty(len(score), dtype=np.float64)
    model.eval()
    with torch.no_grad():
        by_len = score[np.argsort(offsets[score + 1] - offsets[score])]
        where = {int(i): n for n, i in enumerate(score)}
        for start in range(0, len(by_len), 512):
            idx = by_len[start : start + 512]
            x, mask = batch(states, offsets, idx)
            p = torch.softmax(model(x, mask), dim=1)[:, 0].numpy()
            for i, v in zip(idx, p, strict=True):
                out[where[int(i)]] = 1.0 - v
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", default=str(REPO / "models" / "base"))
    ap.add_argument("--arms", default="mean,query,mlp")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(2)
    rows = load_rows(DATA_DIR / "safety.jsonl")
    states, offsets = token_states(rows, Path(args.model_dir), REPO / "var" / "cache" / f"tokens-{TOKENS}.npz")
    names = [SAFE, *sorted({r.category for r in rows} - {SAFE})]
    y = np.asarray([names.index(r.category) for r in rows], dtype=np.int64)
    split = np.asarray([r.split for r in rows])
    family = np.asarray([r.family for r in rows])
    unsafe = y != 0
    results: dict[str, dict[str, float]] = {}
    for kind in args.arms.split(","):
        t0 = time.perf_counter()
        res: dict[str, float] = {}
        aup: dict[str, list[float]] = {"dev": [], "test": []}
        for name, fams in FOLDS.items():
            held = np.isin(family, fams)
            q = np.flatnonzero(held & (split != "train"))
            s = train_and_score(
                kind,
                states,
                offsets,
                y,
                np.flatnonzero(~held & (split == "train")),
                q,
                len(names),
                args.epochs,
                args.seed,
            )
            for which in ("dev", "test"):
                k = split[q] == which
                auprc = binary_metrics(s[k], unsafe[q][k], 0.5).auprc
                aup[which].append(auprc)
                res[f"{name}/{which}"] = auprc
                if name == "prompt-injection":
                    benign = s[k][~unsafe[q][k]]
                    cut = float(np.quantile(benign, 0.97))
                    res[f"inj-heldout-recall@3%/{which}"] = float(np.mean(s[k][unsafe[q][k]] > cut))
        res["oos/dev"], res["oos/test"] = float(np.mean(aup["dev"])), float(np.mean(aup["test"]))
        q = np.flatnonzero(split != "train")
        s = train_and_score(
            kind, states, offsets, y, np.flatnonzero(split == "train"), q, len(names), args.epochs, args.seed
        )
        qs, qf, qy = split[q], family[q], unsafe[q]
        instr_dev = np.sort(s[(qs == "dev") & (qf == "harmful-instructions")])
        cut = float(instr_dev[round((1 - 0.824) * len(instr_dev))])  # keeps dev recall ~0.824
        for which in ("dev", "test"):
            k = qs == which
            res[f"random/{which}"] = binary_metrics(s[k], qy[k], 0.5).auprc
            look = k & np.isin(qf, ("lookalike", "contrast")) & ~qy
            res[f"lookalike-fpr@instr0.824/{which}"] = float(np.mean(s[look] >= cut))
            inj = k & (qf == "prompt-injection") & qy
            res[f"inj-recall@instr0.824/{which}"] = float(np.mean(s[inj] >= cut))
        results[kind] = res
        print(
            f"{kind}: {time.perf_counter() - t0:.0f}s " + json.dumps({k: round(v, 3) for k, v in res.items()}),
            file=sys.stderr,
        )
    keys = list(next(iter(results.values())))
    print("| measure | " + " | ".join(results) + " |")
    print("|---|" + "---|" * len(results))
    for k in keys:
        print(f"| {k} | " + " | ".join(f"{results[a][k]:.3f}" for a in results) + " |")


if __name__ == "__main__":
    main()
