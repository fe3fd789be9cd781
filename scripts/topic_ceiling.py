"""Can anything but a better encoder raise the few-shot topic ceiling? Valid-split probes (docs/topics.md).

Each probe changes one thing the topic score is built from and reports, over single-topic draws of K = 10 on the
valid split (the seeds of `bench_topics.py grid --split valid`), the shipped rule's accuracy and target false matches
and the `oracle @3%` ceiling (the best any threshold rule can do on those scores):

  post        post-process every vector with statistics of the shipped background only: centring, removing the top
              principal directions ("all-but-the-top"), shrunk whitening
  background  calibrate (and fit heads) against short texts too: the shipped safe exemplars of <= N words
  late        add a late-interaction score (mean over query tokens of the best cosine to an example's tokens, top-3
              examples; MiniLM token vectors from sentence-transformers) to the shipped score, oracle only
  finetune    fine-tune MiniLM on intent data from *other* sets (banking77 full, snips, chitchat train splits) and
              re-embed; hwu64 only, as the other sets are its training data
  layers      pool other transformer layers than the last: one layer, a mean of the upper layers, or a middle layer
              concatenated with the last (base MiniLM in torch, so the comparison is of the pooling alone)
  indomain    fine-tune MiniLM on the train rows of half of hwu64's intents and score topics drawn from the other
              half only (both encoders on the same held-out intents): would in-domain intent data of *other* intents,
              which an operator might have and this project does not, lift the ceiling?

Needs `scripts/topic_datasets.py --out var/topics`; `late`, `finetune`, `layers` and `indomain` import torch (training
extras).
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import sys
import time
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_topics as bt
from topic_datasets import SHARED, TopicRow, load_splits
from topic_rules import Background, Rule, default_rules, episode_metrics, fit_topics, oracle_thresholds
from topic_rules import score_matrix as rule_scores

from index import GuardConfig
from index.datasets import load_rows

REPO = bt.REPO
Vec = bt.Vec
TARGET_FMR = {"hwu64": "fmr_other", "banking77_oos": "fmr_ood"}
Transform = Callable[[Vec], Vec]


def _unit(v: Vec) -> Vec:
    return np.asarray(v / np.linalg.norm(v, axis=1, keepdims=True), dtype=np.float32)


def _rules() -> list[Rule]:
    return [r for r in default_rules(GuardConfig()) if r.name in ("lightguard", "oracle @3%")]


def evaluate(data: bt.Embedded, background: Background, draws: int) -> dict[str, dict[str, float]]:
    """Mean metrics per rule over `draws` single-topic K = 10 draws scored on valid (nan where a group is absent)."""
    negatives = background.head_negatives()
    per_rule: dict[str, list[dict[str, float]]] = {}
    for seed in range(draws):
        ep = bt.draw_episode(data, 1, 10, 100 + seed)
        assert ep is not None
        for rule, m in bt.run_episode(ep, background, negatives, _rules(), None, "valid").items():
            per_rule.setdefault(rule, []).append(m)
    return {rule: {k: _mean([m[k] for m in ms]) for k in ms[0]} for rule, ms in per_rule.items()}


def _mean(values: list[float]) -> float:
    finite = [v for v in values if not np.isnan(v)]
    return float(np.mean(finite)) if finite else float("nan")


def line(probe: str, dataset: str, rule: str, m: dict[str, float]) -> str:
    return (
        f"| {probe} | {dataset} | {rule} | {100 * m['accuracy']:.1f} | {100 * m[TARGET_FMR[dataset]]:.1f} "
        f"| {m['auroc']:.3f} |"
    )


HEADER = "| probe | dataset | rule | accuracy | target false matches | auroc |\n|---|---|---|---|---|---|"


# ------------------------------------------------------------------------------------------------ probes
def print_embedding(
    name: str,
    embed: Callable[[list[str]], Vec],
    datasets: Sequence[str],
    args: argparse.Namespace,
    labels: Collection[str] | None = None,
) -> None:
    """Rows of HEADER for vectors from `embed`: the background and every benchmark row embedded alike (the probes
    that swap the encoder or its pooling). `labels`, if given, keeps only the rows of those labels."""
    generic, safe = bt.background_texts()
    generic_v = embed(generic)
    background = Background(np.concatenate([generic_v, embed(safe)]), generic_v)
    for ds in datasets:
        splits = bt.benchmark_splits(args.data / ds)
        if labels is not None:
            splits = {s: [r for r in rs if r.label in labels] for s, rs in splits.items()}
        data = bt.Embedded(
            {s: embed([r.text for r in rs]) for s, rs in splits.items()},
            {s: [r.label for r in rs] for s, rs in splits.items()},
        )
        for rule, m in evaluate(data, background, args.draws).items():
            print(line(name, ds, rule, m), flush=True)


def transforms(stats: Vec) -> list[tuple[str, Transform]]:
    """Named vector maps whose statistics come from `stats` (the shipped background) only."""
    mu = stats.mean(axis=0)
    centred = stats - mu
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    eigval, eigvec = np.linalg.eigh(centred.T @ centred / len(centred))

    def drop(top: Vec) -> Transform:
        return lambda v: _unit((v - mu) - ((v - mu) @ top.T) @ top)

    def whiten(w: Vec) -> Transform:
        return lambda v: _unit((v - mu) @ w)

    out: list[tuple[str, Transform]] = [("none", lambda v: v), ("centre", lambda v: _unit(v - mu))]
    out += [(f"centre, drop top {d} PCs", drop(vt[:d])) for d in (1, 3, 10)]
    for alpha in (0.1, 1.0, 3.0):
        out.append((f"whiten, shrink {alpha}", whiten((eigvec / np.sqrt(eigval + alpha * eigval.mean())) @ eigvec.T)))
    return out


def probe_post(args: argparse.Namespace) -> None:
    encoder = bt.load_encoder("base")
    bg = bt.embed_background(encoder, args.cache)
    sets = {ds: bt.embed_dataset(encoder, args.data / ds, args.cache) for ds in args.datasets}
    print(HEADER)
    for name, f in transforms(bg.vectors):
        background = Background(f(bg.vectors), f(bg.generic))
        for ds, data in sets.items():
            moved = bt.Embedded({s: f(v) for s, v in data.vectors.items()}, data.labels)
            for rule, m in evaluate(moved, background, args.draws).items():
                print(line(name, ds, rule, m), flush=True)


def probe_background(args: argparse.Namespace) -> None:
    encoder = bt.load_encoder("base")
    bg = bt.embed_background(encoder, args.cache)
    safe = sorted({r.text for r in load_rows(splits={"train"}) if r.category == "safe"})
    safe_vectors = bt._embed_cached(encoder, safe, args.cache, "ceiling-safe")
    words = np.asarray([len(t.split()) for t in safe])
    sets = {ds: bt.embed_dataset(encoder, args.data / ds, args.cache) for ds in args.datasets}
    variants = [("shipped (generic + 1,000 safe)", bg)]
    for n in (12, 20):
        short = safe_vectors[words <= n]
        calib = np.concatenate([bg.vectors, short])
        variants.append((f"+ {len(short)} safe of <= {n} words", Background(calib, bg.generic)))
        variants.append(
            (f"+ {len(short)} safe of <= {n} words, heads too", Background(calib, np.concatenate([bg.generic, short])))
        )
    print(HEADER)
    for name, background in variants:
        for ds, data in sets.items():
            for rule, m in evaluate(data, background, args.draws).items():
                print(line(name, ds, rule, m), flush=True)


def _token_vectors(model_dir: Path, texts: list[str]) -> list[Vec]:
    """Unit token vectors of each text (CLS and SEP dropped), as the pooled MiniLM sees them before pooling."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(model_dir), device="cpu")
    out = []
    for t in model.encode(texts, output_value="token_embeddings", batch_size=64, convert_to_numpy=False):
        v = t[1:-1].numpy()
        out.append(_unit(v))
    return out


def probe_late(args: argparse.Namespace) -> None:
    from index.models import base_model_dir

    encoder = bt.load_encoder("base")
    bg = bt.embed_background(encoder, args.cache)
    negatives = bg.head_negatives()
    shipped = _rules()[0]
    print("| probe | dataset | late-interaction weight | oracle @3% accuracy | target false matches | auroc |")
    print("|---|---|---|---|---|---|")
    for ds in args.datasets:
        data = bt.embed_dataset(encoder, args.data / ds, args.cache)
        splits = bt.benchmark_splits(args.data / ds)  # the rows embed_dataset embedded, in its order
        train_tokens = _token_vectors(base_model_dir(), [r.text for r in splits["train"]])
        valid_tokens = _token_vectors(base_model_dir(), [r.text for r in splits["valid"]])
        width = max(len(t) for t in valid_tokens)
        queries = np.zeros((len(valid_tokens), width, valid_tokens[0].shape[1]), dtype=np.float32)
        mask = np.zeros((len(valid_tokens), width), dtype=bool)
        for i, t in enumerate(valid_tokens):
            queries[i, : len(t)], mask[i, : len(t)] = t, True
        lengths = mask.sum(axis=1)
        weights = (0.0, 0.5, 1.0, 2.0)
        metrics: dict[float, list[dict[str, float]]] = {w: [] for w in weights}
        for seed in range(args.draws):
            ep = bt.draw_episode(data, 1, 10, 100 + seed)
            assert ep is not None
            late = np.stack(
                [((queries @ train_tokens[r].T).max(axis=2) * mask).sum(axis=1) / lengths for r in ep.example_rows[0]],
                axis=1,
            )
            late = np.sort(late, axis=1)[:, -shipped.top_m :].mean(axis=1)
            base = rule_scores(ep.valid_queries, fit_topics(ep, negatives, shipped), shipped)[:, 0]
            for w in weights:
                s = (base + w * late)[:, None].astype(np.float32)
                th = oracle_thresholds(s, ep.valid_group, 0.03)
                metrics[w].append(episode_metrics(s, th, ep.valid_truth, ep.valid_group))
        for w, ms in metrics.items():
            m = {k: float(np.mean([x[k] for x in ms])) for k in ("accuracy", TARGET_FMR[ds], "auroc")}
            acc, fmr = 100 * m["accuracy"], 100 * m[TARGET_FMR[ds]]
            print(f"| late | {ds} | {w} | {acc:.1f} | {fmr:.1f} | {m['auroc']:.3f} |")


def intent_rows(per_label: int, seed: int = 0) -> list[tuple[str, str]]:
    """(text, label) from banking77 (all 77 intents, its train.csv), snips and chitchat train splits; none of hwu64."""
    rows = []
    with (SHARED / "banking77" / "train.csv").open(encoding="utf-8") as f:
        rows += [TopicRow(r["text"], "banking77:" + r["category"]) for r in csv.DictReader(f)]
    for ds in ("snips", "chitchat_smalltalk"):
        rows += [TopicRow(r.text, f"{ds}:{r.label}") for r in load_splits(REPO / "var" / "topics" / ds)["train"]]
    return [(r.text, r.label) for r in bt.cap_per_label(rows, per_label, seed)]


def fine_tune(out: Path, rows: list[tuple[str, str]], loss_name: str, epochs: float) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer
    from sentence_transformers.base.sampler import BatchSamplers
    from sentence_transformers.sentence_transformer import losses
    from sentence_transformers.sentence_transformer.training_args import SentenceTransformerTrainingArguments

    from index.models import base_model_dir

    torch.manual_seed(13)
    loss: Any
    model = SentenceTransformer(str(base_model_dir()), device="cpu")
    model.max_seq_length = 32
    if loss_name == "mnrl":
        by_label: dict[str, list[str]] = {}
        for text, label in rows:
            by_label.setdefault(label, []).append(text)
        rng = random.Random(1)
        pairs = [(t, rng.choice([u for u in by_label[lab] if u != t])) for t, lab in rows if len(by_label[lab]) > 1]
        dataset = Dataset.from_dict({"anchor": [a for a, _ in pairs], "positive": [b for _, b in pairs]})
        loss = losses.MultipleNegativesRankingLoss(model)
        sampler = BatchSamplers.NO_DUPLICATES
    else:
        ids = {lab: i for i, lab in enumerate(sorted({lab for _, lab in rows}))}
        dataset = Dataset.from_dict({"text": [t for t, _ in rows], "label": [ids[lab] for _, lab in rows]})
        loss = losses.BatchHardSoftMarginTripletLoss(model)
        sampler = BatchSamplers.GROUP_BY_LABEL
    args = SentenceTransformerTrainingArguments(
        output_dir=str(out / "checkpoints"),
        num_train_epochs=epochs,
        per_device_train_batch_size=32,
        learning_rate=5e-5,
        warmup_steps=0.1,
        batch_sampler=sampler,
        seed=13,
        data_seed=13,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
    )
    t0 = time.perf_counter()
    SentenceTransformerTrainer(model=model, args=args, train_dataset=dataset, loss=loss).train()
    print(f"  fine-tuned on {len(dataset)} rows in {time.perf_counter() - t0:.0f}s", file=sys.stderr)
    model.save(str(out))


def print_base_and_tuned(
    out: Path, rows: list[tuple[str, str]], args: argparse.Namespace, labels: Collection[str] | None = None
) -> None:
    """Fine-tune into `out` (once; reused while it exists) and print hwu64 rows for the base model and the tuned one,
    both in torch, so the comparison is of the weights alone (the served int8 model differs slightly)."""
    from sentence_transformers import SentenceTransformer

    from index.models import base_model_dir

    if not (out / "config.json").exists():
        fine_tune(out, rows, args.loss, args.epochs)
    print(HEADER)
    for name, model_dir in (("base (torch)", base_model_dir()), (f"tuned {args.loss}, {len(rows)} rows", out)):
        model = SentenceTransformer(str(model_dir), device="cpu")

        def embed(texts: list[str], m: SentenceTransformer = model) -> Vec:
            return np.asarray(m.encode(texts, batch_size=64, normalize_embeddings=True), dtype=np.float32)

        print_embedding(name, embed, ["hwu64"], args, labels)


def probe_finetune(args: argparse.Namespace) -> None:
    out = REPO / "var" / f"intent-ft-{args.loss}-{args.per_label}"
    print_base_and_tuned(out, intent_rows(args.per_label), args)


def hwu64_halves(train: Sequence[TopicRow], seed: int = 0) -> tuple[list[str], list[str]]:
    """The intents of hwu64's train rows split at random into (tuned on, held out), 32 each."""
    intents = sorted({r.label for r in train})
    random.Random(seed).shuffle(intents)
    half = len(intents) // 2
    return sorted(intents[:half]), sorted(intents[half:])


def probe_indomain(args: argparse.Namespace) -> None:
    train = load_splits(args.data / "hwu64")["train"]
    tuned_on, held_out = hwu64_halves(train)
    rows = [(r.text, r.label) for r in bt.cap_per_label([r for r in train if r.label in tuned_on], args.per_label)]
    print(f"  tuned on {', '.join(tuned_on)}", file=sys.stderr)
    out = REPO / "var" / f"intent-ft-hwu64-half-{args.loss}-{args.per_label}"
    print_base_and_tuned(out, rows, args, held_out)


def _layer_vectors(model_dir: Path, texts: list[str], batch: int = 64) -> Vec:
    """Mean-pooled (attention mask) unit vectors of every hidden layer: (layers + 1, texts, dim), index 0 the
    embedding layer and the last the one sentence-transformers pools."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModel.from_pretrained(str(model_dir)).eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch):
            enc = tokenizer(
                texts[start : start + batch], padding=True, truncation=True, max_length=256, return_tensors="pt"
            )
            hidden = model(**enc, output_hidden_states=True).hidden_states
            mask = enc["attention_mask"][None, :, :, None].float()
            stacked = torch.stack(hidden)  # (layers + 1, batch, tokens, dim)
            pooled = (stacked * mask).sum(2) / mask.sum(2).clamp(min=1e-9)
            out.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
    return np.concatenate(out, axis=1).astype(np.float32)


def layer_poolings(layers: int) -> list[tuple[str, Callable[[Vec], Vec]]]:
    """Named maps from `_layer_vectors` output to one unit vector per text."""
    last = layers
    out: list[tuple[str, Callable[[Vec], Vec]]] = [(f"layer {last} (shipped pooling)", lambda v: v[last])]
    out += [(f"layer {k}", lambda v, k=k: v[k]) for k in (last - 1, last - 2)]
    out += [(f"mean of layers {k}-{last}", lambda v, k=k: _unit(v[k : last + 1].mean(axis=0))) for k in (4, 1)]
    out += [
        (f"layer {k} + layer {last} concatenated", lambda v, k=k: _unit(np.concatenate([v[k], v[last]], axis=1)))
        for k in (3, 4)
    ]
    return out


def probe_layers(args: argparse.Namespace) -> None:
    from index.models import base_model_dir

    generic, safe = bt.background_texts()
    rows = [r.text for ds in args.datasets for split in bt.benchmark_splits(args.data / ds).values() for r in split]
    texts = sorted(set(generic + safe + rows))
    at = {t: i for i, t in enumerate(texts)}
    t0 = time.perf_counter()
    every = _layer_vectors(base_model_dir(), texts)
    print(f"  {len(texts)} texts x {len(every)} layers in {time.perf_counter() - t0:.0f}s", file=sys.stderr)
    print(HEADER)
    for name, pool in layer_poolings(len(every) - 1):
        vectors = pool(every)
        print_embedding(name, lambda batch, v=vectors: v[[at[t] for t in batch]], args.datasets, args)


PROBES: dict[str, Callable[[argparse.Namespace], None]] = {
    "post": probe_post,
    "background": probe_background,
    "late": probe_late,
    "finetune": probe_finetune,
    "layers": probe_layers,
    "indomain": probe_indomain,
}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("probe", choices=sorted(PROBES))
    parser.add_argument("--data", type=Path, default=REPO / "var" / "topics")
    parser.add_argument("--cache", type=Path, default=REPO / "var" / "cache")
    parser.add_argument("--datasets", nargs="*", default=["hwu64", "banking77_oos"])
    parser.add_argument("--draws", type=int, default=100)
    parser.add_argument("--loss", choices=("triplet-soft", "mnrl"), default="triplet-soft", help="finetune, indomain")
    parser.add_argument("--per-label", type=int, default=60, help="finetune, indomain: training rows per intent")
    parser.add_argument("--epochs", type=float, default=1.0, help="finetune, indomain")
    args = parser.parse_args(argv)
    PROBES[args.probe](args)


if __name__ == "__main__":
    main()
