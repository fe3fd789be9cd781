"""Readers for the shipped safety dataset (data/safety.jsonl) and for labelled JSONL evaluation files."""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from index.errors import DatasetError

ROW_KEYS: frozenset[str] = frozenset({"text", "category", "source", "license", "split", "family", "noncommercial"})
SPLITS: tuple[str, ...] = ("train", "dev", "test")

_TRUE_LABELS = frozenset({"unsafe", "1", "true"})
_FALSE_LABELS = frozenset({"safe", "0", "false"})


@dataclass(frozen=True, slots=True)
class DatasetRow:
    """One row of data/safety.jsonl: a text, its taxonomy category (or `safe`) and its provenance."""

    text: str
    category: str
    source: str
    license: str
    split: str
    family: str
    noncommercial: bool


@dataclass(frozen=True, slots=True)
class LabelledText:
    """A text with a binary unsafe label and an optional category, as read by the evaluate CLI."""

    text: str
    unsafe: bool
    category: str | None = None


def load_rows(
    path: Path,
    splits: Collection[str] | None = None,
    exclude_noncommercial: bool = False,
) -> list[DatasetRow]:
    """Read data/safety.jsonl (or another file with the same schema).

    Args:
        path: the JSONL file (the project's is data/safety.jsonl).
        splits: keep only these splits (e.g. {"train"}); None keeps all.
        exclude_noncommercial: drop rows whose source licence forbids commercial use (CC-BY-NC and similar).

    Returns:
        The rows in file order.

    Raises:
        DatasetError: the file is missing, a line is not JSON, or a row has the wrong keys or types.
    """
    if splits is not None:
        unknown = sorted(set(splits) - set(SPLITS))
        if unknown:
            raise DatasetError(f"unknown splits {unknown}; choose from {list(SPLITS)}")
    rows: list[DatasetRow] = []
    for lineno, obj in _read_jsonl(path):
        keys = set(obj)
        if keys != ROW_KEYS:
            raise DatasetError(f"{path}, line {lineno}: keys {sorted(keys)} differ from the schema {sorted(ROW_KEYS)}")
        if not isinstance(obj["noncommercial"], bool):
            raise DatasetError(f"{path}, line {lineno}: 'noncommercial' must be true or false")
        fields = {k: obj[k] for k in ROW_KEYS - {"noncommercial"}}
        bad = sorted(k for k, v in fields.items() if not isinstance(v, str) or not v)
        if bad:
            raise DatasetError(f"{path}, line {lineno}: {bad} must be non-empty strings")
        if obj["split"] not in SPLITS:
            raise DatasetError(f"{path}, line {lineno}: split {obj['split']!r} is not one of {list(SPLITS)}")
        row = DatasetRow(noncommercial=obj["noncommercial"], **fields)
        if splits is not None and row.split not in splits:
            continue
        if exclude_noncommercial and row.noncommercial:
            continue
        rows.append(row)
    return rows


def load_labelled_jsonl(path: Path) -> list[LabelledText]:
    """Read a labelled evaluation file: one `{"text", "label"[, "category"]}` object per line.

    `label` may be "safe"/"unsafe", 0/1, "0"/"1" or true/false (true = unsafe). Blank lines are skipped.

    Args:
        path: the JSONL file.

    Returns:
        The labelled texts in file order.

    Raises:
        DatasetError: the file is missing, or a line is not JSON or lacks a usable text/label (the message names
            the line number).
    """
    out: list[LabelledText] = []
    for lineno, obj in _read_jsonl(path):
        text = obj.get("text")
        if not isinstance(text, str) or not text.strip():
            raise DatasetError(f"{path}, line {lineno}: 'text' must be a non-empty string")
        category = obj.get("category")
        if category is not None and not isinstance(category, str):
            raise DatasetError(f"{path}, line {lineno}: 'category' must be a string or absent")
        out.append(LabelledText(text=text, unsafe=_parse_label(path, lineno, obj.get("label")), category=category))
    return out


def _parse_label(path: Path, lineno: int, label: object) -> bool:
    # bool is checked before int because True/False are ints too; 2 or 0.5 must fail, not coerce.
    if isinstance(label, bool):
        return label
    if isinstance(label, int) and label in (0, 1):
        return label == 1
    if isinstance(label, str):
        key = label.strip().lower()
        if key in _TRUE_LABELS:
            return True
        if key in _FALSE_LABELS:
            return False
    raise DatasetError(f"{path}, line {lineno}: label {label!r} is not one of 'safe'/'unsafe', 0/1 or true/false")


def _read_jsonl(path: Path) -> list[tuple[int, dict[str, Any]]]:
    try:
        # split on "\n" only: str.splitlines() also breaks on U+2028 and friends, which JSON strings may hold raw.
        lines = path.read_text(encoding="utf-8").split("\n")
    except FileNotFoundError as exc:
        raise DatasetError(f"dataset file {path} not found; build it with `make data`") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read {path} as UTF-8 text: {exc}") from exc
    out: list[tuple[int, dict[str, Any]]] = []
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path}, line {lineno}: not valid JSON ({exc.msg})") from exc
        if not isinstance(obj, dict):
            raise DatasetError(f"{path}, line {lineno}: expected a JSON object, got {type(obj).__name__}")
        out.append((lineno, obj))
    return out
