"""Provenance of the data builder's sources (sources.toml), the candidate row they map to, and the file formats of
the shared datasets."""

from __future__ import annotations

import csv
import io
import json
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from benchmarks.data.labels import Target, resolve
from index import text_digest

SOURCES_FILE = Path(__file__).with_name("sources.toml")
MIN_CHARS = 3
SPLIT_FRACTIONS = (0.70, 0.15, 0.15)

# Jailbreak templates and concatenated Reddit posts exceed csv's 128 KiB field default.
csv.field_size_limit(sys.maxsize)


@dataclass(frozen=True, slots=True)
class Candidate:
    """A mapped row before exclusion, dedup, capping and splitting."""

    text: str
    category: str
    source: str
    license: str
    family: str
    noncommercial: bool
    digest: str


@dataclass(frozen=True, slots=True)
class Src:
    """Provenance shared by the rows of one source (or sub-part); `row` maps and cleans one text."""

    source: str
    license: str
    family: str
    noncommercial: bool = False

    def part(self, name: str, **changes: str | bool) -> Src:
        return replace(self, source=f"{self.source.split('/')[0]}/{name}", **changes)  # type: ignore[arg-type]

    def row(self, text: object, target: Target) -> Candidate | None:
        if not isinstance(text, str):
            return None
        text = text.strip()
        category = resolve(target, text) if len(text) >= MIN_CHARS else None
        if category is None:
            return None
        return Candidate(text, category, self.source, self.license, self.family, self.noncommercial, text_digest(text))


Rows = Iterator[Candidate | None]


_TABLES: dict[str, Any] = tomllib.loads(SOURCES_FILE.read_text(encoding="utf-8"))
# (provenance, name of its reader in benchmarks.data.readers), in dedup priority order
SOURCE_SPECS: tuple[tuple[Src, str], ...] = tuple(
    (Src(s["name"], s["license"], s["family"], s.get("noncommercial", False)), s["reader"]) for s in _TABLES["sources"]
)
DEFAULT_CAP: int = _TABLES["default_cap"]
# Per (source, category) caps; a source prefix matches every sub-part. Anything else gets DEFAULT_CAP.
CAPS: dict[tuple[str, str], int] = {(c["source"], c["category"]): c["rows"] for c in _TABLES["caps"]}
DEV_ONLY_SOURCES: tuple[str, ...] = tuple(_TABLES["dev_only"])
BACKGROUND_SIZE: int = _TABLES["background_size"]
BACKGROUND_SOURCES: tuple[str, ...] = tuple(_TABLES["background"])
GUARDREASONER_PARTS: dict[str, tuple[str, str, bool]] = {  # per-row upstream: (sub-part, licence, non-commercial)
    name: (p["part"], p["license"], p["noncommercial"]) for name, p in _TABLES["guardreasoner_parts"].items()
}
INJECTION: dict[str, Any] = _TABLES["injection"]


def read_csv(path: Path, delimiter: str = ",") -> list[dict[str, str]]:
    # errors="replace": OLID has a few broken UTF-8 emoji bytes; losing them beats losing the rows.
    text = path.read_text(encoding="utf-8-sig", errors="replace")
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    return list(csv.DictReader(io.StringIO(text), delimiter=delimiter, quoting=quoting))  # type: ignore[call-overload]


def read_json(path: Path) -> Any:  # JSON of whatever shape the upstream chose
    return json.loads(path.read_text(encoding="utf-8"))


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    # "\n" only: str.splitlines() would also split on U+2028 inside JSON strings.
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]


def read_instructions(path: Path) -> list[str]:
    data = read_json(path)
    if isinstance(data, dict):
        return list(data["instructions"])
    return [item["instruction"] for item in data]
