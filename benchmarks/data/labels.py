"""The data builder's label tables (labels.toml): keyword rules, mapping targets and the per-source label maps."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LABELS_FILE = Path(__file__).with_name("labels.toml")
DROP = "drop"  # the target (or keyword-rule fallback) that leaves a row out


@dataclass(frozen=True, slots=True)
class ByKeyword:
    """Label by the ordered keyword rule; `allowed` restricts which rules may fire (None = all).

    When no rule fires: `how_to` for instruction-style requests ("how to", "steps to", ...), else `fallback`;
    a None result drops the row.
    """

    fallback: str | None
    allowed: frozenset[str] | None = None
    how_to: str | None = None


Target = str | ByKeyword | None  # a category id, a keyword rule, or None = drop the row


def keyword_rule(fallback: str | None, *allowed: str, how_to: str | None = None) -> ByKeyword:
    return ByKeyword(fallback, frozenset(allowed) if allowed else None, how_to)


def _pattern(pieces: list[str]) -> str:
    return "".join(pieces)  # the file splits long patterns into pieces, one a line


def _rule(table: dict[str, Any]) -> ByKeyword:
    fallback = table.get("fallback", DROP)
    allowed = table.get("allowed")
    return ByKeyword(
        None if fallback == DROP else fallback, None if allowed is None else frozenset(allowed), table.get("how_to")
    )


_TABLES: dict[str, Any] = tomllib.loads(LABELS_FILE.read_text(encoding="utf-8"))
_NAMED = {f"@{name}": _rule(table) for name, table in _TABLES["named_rules"].items()}


def _target(value: str | dict[str, Any]) -> Target:
    if isinstance(value, dict):
        return _rule(value)
    if value == DROP:
        return None
    return _NAMED[value] if value.startswith("@") else value


KEYWORD_RULES: tuple[tuple[str, str], ...] = tuple(
    (rule["category"], _pattern(rule["pattern"])) for rule in _TABLES["keyword_rules"]
)
_RULES = tuple((category, re.compile(pattern, re.IGNORECASE)) for category, pattern in KEYWORD_RULES)
HOW_TO = re.compile(_pattern(_TABLES["patterns"]["how_to"]), re.IGNORECASE)
MINOR = re.compile(_pattern(_TABLES["patterns"]["minor"]), re.IGNORECASE)
JAILBREAK_PHRASES = re.compile(_pattern(_TABLES["patterns"]["jailbreak_phrases"]), re.IGNORECASE)
HARMFUL = _NAMED["@harmful"]  # uncategorised harmful requests
TOXIC = _NAMED["@toxic"]  # uncategorised toxic chat / web text
RTP_LEXICON = frozenset(_TABLES["keyword_lexicons"]["rtp"])  # rules that mark a prefix as toxic

AART: dict[str, tuple[str, ...]] = {category: tuple(crimes) for category, crimes in _TABLES["aart_crimes"].items()}
AART_CRIMES = {crime: category for category, crimes in AART.items() for crime in crimes}
JIGSAW_FLAGS: dict[str, str] = dict(_TABLES["jigsaw_flags"])
COCONOT_UNSAFE: dict[str, Target] = {sub: _target(v) for sub, v in _TABLES["coconot_safety_concerns"].items()}


def _label_map() -> dict[str, dict[str, Target]]:
    out: dict[str, dict[str, Target]] = {}
    for source, labels in _TABLES["label_map"].items():
        out[source] = {label: _target(value) for label, value in labels.items()}
        if source == "aart":
            out[source] = {", ".join(crimes): category for category, crimes in AART.items()}
        elif source == "coconot":
            out[source] |= {f"coconot_eval, safety concerns / {sub}": t for sub, t in COCONOT_UNSAFE.items()}
    return out


# Documented in data/README.md verbatim (rendered from these tables), so the README cannot drift from the code.
LABEL_MAP = _label_map()


def label_map(key: str) -> dict[str, Target]:
    """LABEL_MAP entry whose key starts with `key` (README keys carry notes after the folder name)."""
    return next(v for k, v in LABEL_MAP.items() if k.split(" ")[0].rstrip(",") == key)


def keyword_category(text: str, allowed: frozenset[str] | None = None) -> str | None:
    """The first keyword rule (in KEYWORD_RULES order) matching `text`, among `allowed` ones; None if none match."""
    for category, pattern in _RULES:
        if (allowed is None or category in allowed) and pattern.search(text):
            return category
    return None


def resolve(target: Target, text: str) -> str | None:
    """The category for `text` under a mapping target; None means drop the row."""
    if not isinstance(target, ByKeyword):
        return target
    found = keyword_category(text, target.allowed)
    if found is None:
        found = target.how_to if target.how_to is not None and HOW_TO.search(text) else target.fallback
    if found == "sexual" and MINOR.search(text):
        return "sexual_minors"
    return found
