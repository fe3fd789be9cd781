"""Tests for the built-in taxonomy file and its loader."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from index.errors import DatasetError
from index.taxonomy import OPENAI_KEYS, Taxonomy, load_taxonomy
from tests.layout import DATA_DIR

REQUIRED_IDS = {
    "hate", "harassment", "threat", "violence", "sexual", "sexual_minors", "self_harm", "weapons",
    "controlled_substances", "criminal_planning", "pii_privacy", "profanity", "fraud_deception", "malware_cyber",
    "jailbreak", "prompt_injection", "other_unsafe", "safe",
}  # fmt: skip


@pytest.fixture(scope="module")
def taxonomy() -> Taxonomy:
    return load_taxonomy(DATA_DIR / "taxonomy.toml")


def test_required_ids_present(taxonomy: Taxonomy) -> None:
    assert set(taxonomy.ids()) >= REQUIRED_IDS
    assert "safe" not in taxonomy.unsafe_ids()
    assert set(taxonomy.unsafe_ids()) == set(taxonomy.ids()) - {"safe"}
    assert taxonomy.version


def test_category_fields_are_valid(taxonomy: Taxonomy) -> None:
    for category in taxonomy.categories:
        assert category.action in ("block", "flag")
        assert category.mlcommons is None or re.fullmatch(r"S\d+", category.mlcommons)
        assert set(category.openai) <= set(OPENAI_KEYS)
        assert category.name and category.description


def test_lookup_and_openai_keys(taxonomy: Taxonomy) -> None:
    assert taxonomy.get("sexual_minors").openai == ("sexual/minors",)
    assert "self-harm/intent" in taxonomy.openai_keys()
    assert taxonomy.openai_keys() <= set(OPENAI_KEYS)
    assert "weapons" in taxonomy
    with pytest.raises(KeyError, match="unknown category"):
        taxonomy.get("nope")


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "taxonomy.toml"
    path.write_text(body, encoding="utf-8")
    return path


SAFE_TABLE = '[[category]]\nid = "safe"\nname = "Safe"\ndescription = "benign"\naction = "flag"\n'


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("not = [toml", "not valid TOML"),
        ("[meta]\nversion = '1'\n", "no \\[\\[category\\]\\]"),
        (SAFE_TABLE.replace('"flag"', '"allow"'), "action must be"),
        (SAFE_TABLE + 'mlcommons = "X9"\n', "mlcommons"),
        (SAFE_TABLE + 'openai = ["nudity"]\n', "unknown OpenAI"),
        (SAFE_TABLE + SAFE_TABLE, "duplicate category ids"),
        (SAFE_TABLE.replace('id = "safe"', 'id = "hate"'), "'safe' category is missing"),
        (SAFE_TABLE.replace('id = "safe"', 'id = "Bad Id"'), "snake_case"),
        (SAFE_TABLE.replace('name = "Safe"\n', ""), "'name' must be"),
    ],
)
def test_bad_files_raise_dataset_error(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        load_taxonomy(_write(tmp_path, body))


def test_missing_file_raises_dataset_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not found"):
        load_taxonomy(tmp_path / "absent.toml")


def test_minimal_file_loads(tmp_path: Path) -> None:
    taxonomy = load_taxonomy(_write(tmp_path, SAFE_TABLE))
    assert taxonomy.ids() == ("safe",)
    assert taxonomy.get("safe").aegis2 is None
