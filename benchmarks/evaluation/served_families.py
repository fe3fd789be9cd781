"""What the *served* guard flags per source family: benign look-alikes (FPR) and attacks (recall), dev and test.

    .venv/bin/python -m benchmarks.evaluation.served_families [--home var/bench-home]     # ~2 min on 2 cores
    .venv/bin/python -m benchmarks.evaluation.served_families --by-source prompt-injection   # one family per source

`benchmarks.evaluation.evaluate` scores rows as 128-token windows, the worst window decides; the service also reads
the suspect sentences of long texts alone and decodes obfuscated ones (base64, leetspeak, spaced letters). This
classifies the random split's dev and test rows of each family in `FAMILIES` with the guard the service would serve
(LIGHTGUARD_HOME; its index holds every train row, as shipped), at its threshold, so the per-family numbers in
docs/results.md can be read as what a user's traffic of that kind gets. Attacks also report the share whose verdict
names the family's own category (an injection flagged as `jailbreak` still stops it, but mislabels it).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.evaluation.evaluate import BENIGN_FAMILIES, UNSAFE_FAMILIES
from benchmarks.layout import DATA_DIR, REPO
from index import SAFE, Guard
from index.datasets import DatasetRow, load_rows

FAMILIES = BENIGN_FAMILIES + UNSAFE_FAMILIES
# the category an attack family is meant to be reported under (families spanning many categories have none)
OWN_CATEGORY = {"prompt-injection": "prompt_injection", "jailbreak": "jailbreak"}
BATCH = 64


@dataclass(frozen=True, slots=True)
class FamilyRate:
    split: str
    family: str  # a family of FAMILIES, or one source of it (--by-source)
    kind: str  # "FPR" (benign rows flagged) or "recall" (unsafe rows flagged)
    n: int
    rate: float
    own_category: float | None  # attacks: share of rows flagged under the family's own category


def served_rates(
    guard: Guard, rows: Sequence[DatasetRow], splits: Sequence[str] = ("dev", "test"), by_source: str | None = None
) -> list[FamilyRate]:
    """Flag rate of the served guard per (split, family): benign rows of `BENIGN_FAMILIES`, unsafe rows of
    `UNSAFE_FAMILIES` (the other class of a family is not what it is there to measure). `by_source`: only that
    family, one rate per source."""
    out = []
    families = FAMILIES if by_source is None else (by_source,)
    for split in splits:
        for family in families:
            unsafe = family in UNSAFE_FAMILIES
            measured = [r for r in rows if r.split == split and r.family == family and (r.category != SAFE) == unsafe]
            groups = {family: measured} if by_source is None else _by_source(measured)
            for name, group in groups.items():
                if group:
                    out.append(_rate(guard, split, name, [r.text for r in group], unsafe, OWN_CATEGORY.get(family)))
    return out


def _by_source(rows: Sequence[DatasetRow]) -> dict[str, list[DatasetRow]]:
    groups: dict[str, list[DatasetRow]] = {}
    for r in rows:
        groups.setdefault(r.source, []).append(r)
    return dict(sorted(groups.items()))


def _rate(guard: Guard, split: str, name: str, texts: list[str], unsafe: bool, own: str | None) -> FamilyRate:
    verdicts = [v for i in range(0, len(texts), BATCH) for v in guard.classify(texts[i : i + BATCH])]
    flagged = [v for v in verdicts if v.flagged]
    own_share = sum(v.category == own for v in flagged) / len(texts) if unsafe and own else None
    return FamilyRate(split, name, "recall" if unsafe else "FPR", len(texts), len(flagged) / len(texts), own_share)


def markdown(rates: Sequence[FamilyRate]) -> list[str]:
    lines = ["| split | family (source) | n | flagged | flagged under its own category |", "|---|---|---|---|---|"]
    for r in rates:
        own = "" if r.own_category is None else f"{r.own_category:.3f}"
        lines.append(f"| random {r.split} | {r.family} ({r.kind}) | {r.n} | {r.rate:.3f} | {own} |")
    return lines


def main() -> None:
    from service.context import open_guard
    from service.settings import Settings

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", type=Path, default=Path(os.environ.get("LIGHTGUARD_HOME", REPO / "var" / "bench-home")))
    ap.add_argument("--by-source", choices=FAMILIES, help="one family's rates per source instead")
    args = ap.parse_args()
    guard = open_guard(Settings(home=args.home))
    rows = load_rows(DATA_DIR / "safety.jsonl", splits={"dev", "test"})
    print(f"served guard: {guard.encoder.model_id}, threshold {guard.config.threshold}, {len(guard)} exemplars")
    print("\n".join(markdown(served_rates(guard, rows, by_source=args.by_source))))


if __name__ == "__main__":
    main()
