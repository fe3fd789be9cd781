"""The data builder's pipeline: collect every source, drop role-play jailbreaks and held-out texts, deduplicate,
cap, split; and the open-set background sample."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from benchmarks.data.labels import JAILBREAK_PHRASES
from benchmarks.data.readers import READERS, Reader
from benchmarks.data.sources import (
    BACKGROUND_SIZE,
    BACKGROUND_SOURCES,
    CAPS,
    DEFAULT_CAP,
    DEV_ONLY_SOURCES,
    SOURCE_SPECS,
    SPLIT_FRACTIONS,
    Candidate,
    Src,
)
from index import SAFE

SOURCES: tuple[tuple[Src, Reader], ...] = tuple((src, READERS[reader]) for src, reader in SOURCE_SPECS)


@dataclass
class Report:
    """Counts printed by the builder and written to data/README.md."""

    loaded: Counter[str]
    excluded: Counter[str]
    duplicates: Counter[str]
    conflicts: Counter[str]
    roleplay_dropped: int = 0
    capped: Counter[str] | None = None


def collect(datasets: Path, sources: Iterable[tuple[Src, Reader]] = SOURCES) -> list[Candidate]:
    """Map every source under `datasets/safety` to candidates, in SOURCES (dedup priority) order."""
    out: list[Candidate] = []
    for src, loader in sources:
        out.extend(c for c in loader(datasets / "safety" / src.source, src) if c is not None)
    return out


def drop_jailbreak_roleplay(cands: list[Candidate]) -> tuple[list[Candidate], int]:
    """Drop role-play prompts that are also jailbreak texts or contain jailbreak phrases."""
    jailbreaks = {c.digest for c in cands if c.category == "jailbreak"}
    kept = [
        c
        for c in cands
        if not c.source.startswith("awesome-chatgpt-prompts")
        or (c.digest not in jailbreaks and not JAILBREAK_PHRASES.search(c.text))
    ]
    return kept, len(cands) - len(kept)


def load_exclude(path: Path) -> frozenset[str]:
    """Digests listed in an EXCLUDE.sha256 file (one 16-hex digest per line; blank and # lines ignored)."""
    lines = (line.strip().lower() for line in path.read_text(encoding="utf-8").splitlines())
    return frozenset(line for line in lines if line and not line.startswith("#"))


def exclude(cands: Iterable[Candidate], digests: frozenset[str]) -> tuple[list[Candidate], Counter[str]]:
    """Drop candidates whose digest is held out; returns the kept ones and drop counts per source."""
    kept: list[Candidate] = []
    dropped: Counter[str] = Counter()
    for c in cands:
        if c.digest in digests:
            dropped[c.source] += 1
        else:
            kept.append(c)
    return kept, dropped


def dedup(cands: list[Candidate]) -> tuple[list[Candidate], Counter[str], Counter[str]]:
    """Keep the first candidate per digest; texts labelled both safe and unsafe anywhere are dropped everywhere.

    Returns:
        kept candidates, duplicate drops per source, conflict drops per source.
    """
    labels: dict[str, set[bool]] = defaultdict(set)
    for c in cands:
        labels[c.digest].add(c.category == SAFE)
    kept: list[Candidate] = []
    seen: set[str] = set()
    duplicates: Counter[str] = Counter()
    conflicts: Counter[str] = Counter()
    for c in cands:
        if len(labels[c.digest]) > 1:
            conflicts[c.source] += 1
        elif c.digest in seen:
            duplicates[c.source] += 1
        else:
            seen.add(c.digest)
            kept.append(c)
    return kept, duplicates, conflicts


def cap_for(source: str, category: str) -> int:
    for (prefix, cat), cap in CAPS.items():
        if cat in (category, "*") and (source == prefix or source.startswith(prefix + "/")):
            return cap
    return DEFAULT_CAP


def cap(cands: list[Candidate]) -> tuple[list[Candidate], Counter[str]]:
    """Keep at most `cap_for` rows per (source, category): the smallest digests, so no random state is needed."""
    cells: dict[tuple[str, str], list[Candidate]] = defaultdict(list)
    for c in cands:
        cells[(c.source, c.category)].append(c)
    kept: list[Candidate] = []
    dropped: Counter[str] = Counter()
    for (source, category), cell in cells.items():
        cell.sort(key=lambda c: c.digest)
        limit = cap_for(source, category)
        kept.extend(cell[:limit])
        if len(cell) > limit:
            dropped[source] += len(cell) - limit
    return kept, dropped


def assign_splits(cands: list[Candidate]) -> list[tuple[Candidate, str]]:
    """Stratified split by (category, source): sorted by digest, the first ~70 % train, next ~15 % dev, rest test.

    Cells under 3 rows go to train; DEV_ONLY_SOURCES go to dev whole.
    """
    cells: dict[tuple[str, str], list[Candidate]] = defaultdict(list)
    for c in cands:
        cells[(c.category, c.source)].append(c)
    out: list[tuple[Candidate, str]] = []
    for (_, source), cell in sorted(cells.items()):
        cell.sort(key=lambda c: c.digest)
        n = len(cell)
        if source.split("/")[0] in DEV_ONLY_SOURCES:
            out.extend((c, "dev") for c in cell)
            continue
        n_dev = round(n * SPLIT_FRACTIONS[1]) if n >= 3 else 0
        n_test = round(n * SPLIT_FRACTIONS[2]) if n >= 3 else 0
        n_train = n - n_dev - n_test
        for i, c in enumerate(cell):
            out.append((c, "train" if i < n_train else "dev" if i < n_train + n_dev else "test"))
    return out


def to_json(c: Candidate, split: str) -> str:
    row = {
        "text": c.text,
        "category": c.category,
        "source": c.source,
        "license": c.license,
        "split": split,
        "family": c.family,
        "noncommercial": c.noncommercial,
    }
    return json.dumps(row, ensure_ascii=False, sort_keys=True)


def build_safety(
    datasets: Path, exclude_path: Path, sources: Iterable[tuple[Src, Reader]] = SOURCES
) -> tuple[list[tuple[Candidate, str]], Report]:
    """The whole pipeline for data/safety.jsonl: collect, filter role-play, exclude, dedup, cap, split, sort."""
    cands = collect(datasets, sources)
    loaded = Counter(c.source for c in cands)
    cands, roleplay_dropped = drop_jailbreak_roleplay(cands)
    cands, excluded = exclude(cands, load_exclude(exclude_path))
    cands, duplicates, conflicts = dedup(cands)
    cands, capped = cap(cands)
    rows = assign_splits(cands)
    rows.sort(key=lambda r: (r[1], r[0].category, r[0].source, r[0].digest))
    return rows, Report(loaded, excluded, duplicates, conflicts, roleplay_dropped, capped)


def build_background(
    datasets: Path, safety_rows: list[tuple[Candidate, str]], exclude_digests: frozenset[str]
) -> list[Candidate]:
    """~BACKGROUND_SIZE benign prompts for open-set calibration, none in safety's test split or labelled unsafe."""
    blocked = {c.digest for c, split in safety_rows if split == "test" or c.category != SAFE} | exclude_digests
    pool: list[Candidate] = []
    seen: set[str] = set()
    for src, loader in SOURCES:
        if src.source not in BACKGROUND_SOURCES:
            continue
        for c in loader(datasets / "safety" / src.source, src):
            if c is None or c.digest in blocked or c.digest in seen or JAILBREAK_PHRASES.search(c.text):
                continue
            seen.add(c.digest)
            pool.append(c)
    # Real-user and instruction prompts first (they are few); role-play set-ups fill the rest.
    primary = sorted((c for c in pool if c.family != "roleplay"), key=lambda c: c.digest)
    filler = sorted((c for c in pool if c.family == "roleplay"), key=lambda c: c.digest)
    chosen = (primary + filler)[:BACKGROUND_SIZE]
    return sorted(chosen, key=lambda c: (c.source, c.digest))
