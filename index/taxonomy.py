"""The built-in safety taxonomy: categories, their crosswalk to AEGIS 2.0 / OpenAI / MLCommons, default actions."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

from index.errors import DatasetError
from index.types import SAFE

OPENAI_KEYS: tuple[str, ...] = (
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/intent",
    "self-harm/instructions",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
)
"""Every category key of the OpenAI moderation endpoint (omni-moderation), in its documented order."""

_ID = re.compile(r"^[a-z][a-z0-9_]*$")
_MLCOMMONS = re.compile(r"^S\d{1,2}$")
_ACTIONS = ("block", "flag")


@dataclass(frozen=True, slots=True)
class Category:
    """One category of the taxonomy; `action` is the default decision when it triggers."""

    id: str
    name: str
    description: str
    aegis2: str | None
    openai: tuple[str, ...]
    mlcommons: str | None
    action: Literal["block", "flag"]


@dataclass(frozen=True, slots=True)
class Taxonomy:
    """The ordered categories of the taxonomy (including `safe`) plus the file's version."""

    categories: tuple[Category, ...]
    version: str = ""
    note: str = ""

    def get(self, category_id: str) -> Category:
        """The category with this id; raises KeyError naming the known ids when absent."""
        for category in self.categories:
            if category.id == category_id:
                return category
        raise KeyError(f"unknown category {category_id!r}; known: {', '.join(self.ids())}")

    def ids(self) -> tuple[str, ...]:
        """All category ids in file order, `safe` included."""
        return tuple(c.id for c in self.categories)

    def unsafe_ids(self) -> tuple[str, ...]:
        """All category ids except `safe`, in file order."""
        return tuple(c.id for c in self.categories if c.id != SAFE)

    def openai_keys(self) -> frozenset[str]:
        """Every OpenAI moderation key used by at least one category."""
        return frozenset(key for c in self.categories for key in c.openai)

    def __contains__(self, category_id: object) -> bool:
        return any(c.id == category_id for c in self.categories)


def load_taxonomy(path: Path) -> Taxonomy:
    """Load and validate a taxonomy TOML file.

    Args:
        path: the file (the project's is data/taxonomy.toml).

    Returns:
        The validated taxonomy.

    Raises:
        DatasetError: the file is missing, not TOML, or a category is malformed.
    """
    try:
        with path.open("rb") as fh:
            raw = tomllib.load(fh)
    except FileNotFoundError as exc:
        raise DatasetError(f"taxonomy file {path} not found; pass the path of a taxonomy.toml") from exc
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise DatasetError(f"taxonomy file {path} is not valid TOML: {exc}") from exc

    entries = raw.get("category")
    if not isinstance(entries, list) or not entries:
        raise DatasetError(f"{path}: no [[category]] tables; add one table per category")
    categories = tuple(_parse_category(path, i, entry) for i, entry in enumerate(entries))
    ids = [c.id for c in categories]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise DatasetError(f"{path}: duplicate category ids {duplicates}; ids must be unique")
    if SAFE not in ids:
        raise DatasetError(f"{path}: the {SAFE!r} category is missing; it is the allow class and is required")
    meta = raw.get("meta", {})
    if not isinstance(meta, dict):
        raise DatasetError(f"{path}: [meta] must be a table")
    return Taxonomy(categories=categories, version=str(meta.get("version", "")), note=str(meta.get("note", "")))


def _parse_category(path: Path, index: int, entry: object) -> Category:
    if not isinstance(entry, dict):
        raise DatasetError(f"{path}: category #{index + 1} is not a table")
    table = cast(dict[str, Any], entry)
    where = f"{path}: category #{index + 1} ({table.get('id', '?')!r})"

    def text(key: str, required: bool = True) -> str | None:
        value = table.get(key)
        if value is None and not required:
            return None
        if not isinstance(value, str) or not value.strip():
            raise DatasetError(f"{where}: {key!r} must be a non-empty string")
        return value

    category_id = text("id")
    assert category_id is not None  # required=True guarantees it; narrows the type for mypy
    if not _ID.match(category_id):
        raise DatasetError(f"{where}: id must be snake_case ([a-z][a-z0-9_]*)")
    mlcommons = text("mlcommons", required=False)
    if mlcommons is not None and not _MLCOMMONS.match(mlcommons):
        raise DatasetError(f"{where}: mlcommons must look like 'S1'..'S14' or be omitted, got {mlcommons!r}")
    openai = table.get("openai", [])
    if not isinstance(openai, list) or not all(isinstance(k, str) for k in openai):
        raise DatasetError(f"{where}: openai must be a list of strings")
    unknown = sorted(set(openai) - set(OPENAI_KEYS))
    if unknown:
        raise DatasetError(f"{where}: unknown OpenAI moderation keys {unknown}; allowed: {sorted(OPENAI_KEYS)}")
    action = table.get("action")
    if action not in _ACTIONS:
        raise DatasetError(f"{where}: action must be 'block' or 'flag', got {action!r}")
    return Category(
        id=category_id,
        name=cast(str, text("name")),
        description=cast(str, text("description")),
        aegis2=text("aegis2", required=False),
        openai=tuple(openai),
        mlcommons=mlcommons,
        action=cast(Literal["block", "flag"], action),
    )
