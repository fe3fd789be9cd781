"""Converters from the shared intent datasets to the generic topic-benchmark JSONL (one `{text, label}` per line).

Each dataset becomes `<out>/<name>/{train,valid,test}.jsonl`. Labels are intent names, except the out-of-scope ones:
`oos` (out of domain: unrelated requests) and `oos_in_domain` (same domain, none of the intents: near misses).
banking77_oos also gets `allow.jsonl`: in-domain out-of-scope *train* rows, a pool of hard negatives an operator
could add as allow-examples.

    .venv/bin/python -m benchmarks.data.topics --out var/topics
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

SHARED = Path("/work/shared/datasets/topics")
OOS = "oos"
OOS_IN_DOMAIN = "oos_in_domain"
OOS_LABELS = frozenset({OOS, OOS_IN_DOMAIN})
SPLITS = ("train", "valid", "test")
DATASETS = ("banking77_oos", "hwu64", "snips", "chitchat_smalltalk", "semantic_router_healthcare")


@dataclass(frozen=True, slots=True)
class TopicRow:
    text: str
    label: str


def read_seq_dir(folder: Path, label_file: str = "label") -> list[TopicRow]:
    """Rows of a `seq.in` + `label` folder (one text and one intent per line, same order)."""
    texts = (folder / "seq.in").read_text(encoding="utf-8").splitlines()
    labels = (folder / label_file).read_text(encoding="utf-8").splitlines()
    if len(texts) != len(labels):
        raise ValueError(f"{folder}: {len(texts)} texts but {len(labels)} labels")
    return [TopicRow(t.strip(), lab.strip()) for t, lab in zip(texts, labels, strict=True) if t.strip()]


def _relabel(rows: Iterable[TopicRow], label: str) -> list[TopicRow]:
    return [TopicRow(r.text, label) for r in rows]


def convert_banking77_oos(root: Path) -> dict[str, list[TopicRow]]:
    """50 in-scope intents; `id-oos` (27 held-out banking intents) is in-domain, `ood-oos` out of domain."""
    out: dict[str, list[TopicRow]] = {}
    for split in SPLITS:
        rows = read_seq_dir(root / split)
        rows += _relabel(read_seq_dir(root / "id-oos" / split), OOS_IN_DOMAIN)
        if (root / "ood-oos" / split).is_dir():
            rows += _relabel(read_seq_dir(root / "ood-oos" / split), OOS)
        out[split] = [r for r in rows if not (split == "train" and r.label == OOS_IN_DOMAIN)]
        if split == "train":
            out["allow"] = [r for r in rows if r.label == OOS_IN_DOMAIN]
    return out


def convert_seq_splits(root: Path) -> dict[str, list[TopicRow]]:
    """hwu64 and snips: train/valid/test folders, every row in scope."""
    return {split: read_seq_dir(root / split) for split in SPLITS}


def hash_split(key: str, valid: float = 0.2, test: float = 0.2) -> str:
    """A deterministic split from a text's hash (stable across runs and machines)."""
    u = int(hashlib.sha256(key.encode("utf-8")).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "test" if u < test else "valid" if u < test + valid else "train"


def parse_rasa_nlu(text: str) -> list[TopicRow]:
    """`## intent:NAME` headers followed by `- example` lines (Rasa markdown NLU); entity markup is stripped."""
    rows: list[TopicRow] = []
    intent: str | None = None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("## "):
            intent = line[3:].split(":", 1)[1].strip() if line[3:].startswith("intent:") else None
        elif line.startswith("- ") and intent is not None:
            example = re.sub(r"\[([^\]]+)\]\([^)]+\)", r"\1", line[2:]).strip()
            if example:
                rows.append(TopicRow(example, intent))
    return rows


def convert_chitchat(root: Path) -> dict[str, list[TopicRow]]:
    """87 small-talk intents; no official split, so a 60/20/20 hash split of each text."""
    out: dict[str, list[TopicRow]] = {s: [] for s in SPLITS}
    seen: set[str] = set()
    for row in parse_rasa_nlu((root / "nlu.md").read_text(encoding="utf-8")):
        key = row.text.lower()
        if key in seen:
            continue
        seen.add(key)
        out[hash_split(key)].append(row)
    return out


def convert_healthcare(root: Path) -> dict[str, list[TopicRow]]:
    """semantic-router's synthetic healthcare routes; rows with no expected route are in-domain near misses."""
    names = {"train": "train", "validation": "valid", "test": "test"}
    out: dict[str, list[TopicRow]] = {s: [] for s in SPLITS}
    with (root / "healthcare-routing-evaluation.csv").open(encoding="utf-8", newline="") as fh:
        for rec in csv.DictReader(fh):
            route = (rec.get("expected_route") or "").strip()
            out[names[rec["split"]]].append(TopicRow(rec["utterance"].strip(), route or OOS_IN_DOMAIN))
    return out


def convert(name: str, shared: Path = SHARED) -> dict[str, list[TopicRow]]:
    root = shared / name
    if name == "banking77_oos":
        return convert_banking77_oos(root)
    if name in ("hwu64", "snips"):
        return convert_seq_splits(root)
    if name == "chitchat_smalltalk":
        return convert_chitchat(root)
    if name == "semantic_router_healthcare":
        return convert_healthcare(root)
    raise ValueError(f"unknown dataset {name!r}; choose from {DATASETS}")


def write_jsonl(path: Path, rows: Iterable[TopicRow]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps({"text": r.text, "label": r.label}, ensure_ascii=False) + "\n")
            n += 1
    return n


def read_jsonl(path: Path) -> Iterator[TopicRow]:
    """Generic input: `{text, label}` lines (any other key is ignored)."""
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            obj = json.loads(line)
            if not isinstance(obj.get("text"), str) or not isinstance(obj.get("label"), str):
                raise ValueError(f"{path}, line {n}: need string `text` and `label`")
            yield TopicRow(obj["text"], obj["label"])


def load_splits(folder: Path) -> dict[str, list[TopicRow]]:
    """The splits of a converted dataset folder (train/valid/test required; allow optional)."""
    out = {s: list(read_jsonl(folder / f"{s}.jsonl")) for s in SPLITS}
    if (folder / "allow.jsonl").is_file():
        out["allow"] = list(read_jsonl(folder / "allow.jsonl"))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("var/topics"))
    parser.add_argument("--shared", type=Path, default=SHARED)
    parser.add_argument("--datasets", nargs="*", default=list(DATASETS))
    args = parser.parse_args()
    for name in args.datasets:
        splits = convert(name, args.shared)
        counts = {s: write_jsonl(args.out / name / f"{s}.jsonl", rows) for s, rows in splits.items()}
        labels = {r.label for r in splits["train"]} - OOS_LABELS
        print(f"{name}: {len(labels)} intents, " + ", ".join(f"{s} {n}" for s, n in counts.items()))


if __name__ == "__main__":
    main()
