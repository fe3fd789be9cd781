"""`lightguard classify` and `lightguard evaluate` on a real SQLite file with the hashing encoder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from service.cli.main import app
from tests.service.support import FIXTURES


@pytest.fixture(autouse=True)
def _env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIGHTGUARD_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LIGHTGUARD_DATA_DIR", str(FIXTURES))
    monkeypatch.setenv("LIGHTGUARD_ENCODER", "hashing")


def test_classify_one_text_prints_a_verdict() -> None:
    result = CliRunner().invoke(app, ["classify", "hello there, how are you?"])
    assert result.exit_code == 0, result.output
    verdict = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(verdict) >= {"flagged", "category", "score", "categories", "evidence"}
    assert 0.0 <= verdict["score"] <= 1.0


def test_classify_file_keeps_order_and_reports_bad_lines(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    lines = [
        json.dumps({"id": "a", "text": "hello there", "extra": 1}),
        "this is not json",
        json.dumps({"id": "c"}),
        json.dumps({"id": "d", "text": "   \u200b "}),
        json.dumps({"id": 5, "text": "what is the capital of france"}),
        json.dumps(["not", "an", "object"]),
    ]
    src.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(app, ["classify", "--input", str(src), "--output", str(out), "--batch-size", "2"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r.get("id") for r in rows] == ["a", None, "c", "d", 5, None]
    assert [("error" in r) for r in rows] == [False, True, True, True, False, True]
    assert "line 2" in rows[1]["error"] and "text" in rows[2]["error"] and "empty" in rows[3]["error"]
    for row in (rows[0], rows[4]):
        assert isinstance(row["flagged"], bool) and 0.0 <= row["score"] <= 1.0
        assert isinstance(row["categories"], dict) and (row["category"] is None or isinstance(row["category"], str))
        assert "text" not in row


def test_classify_unreadable_input_exits_non_zero(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["classify", "--input", str(tmp_path / "missing.jsonl")])
    assert result.exit_code == 2
    assert CliRunner().invoke(app, ["classify"]).exit_code != 0, "neither text nor --input is a usage error"


def test_evaluate_writes_report_and_curve(tmp_path: Path) -> None:
    src = tmp_path / "labelled.jsonl"
    items = [
        ("what is the capital of france", "safe"),
        ("write a poem about spring", 0),
        ("those people are vermin", "unsafe"),
        ("I will kill you", 1),
    ]
    src.write_text("\n".join(json.dumps({"text": t, "label": lab}) for t, lab in items) + "\n")
    report_dir = tmp_path / "reports"
    result = CliRunner().invoke(app, ["evaluate", "--input", str(src), "--report-dir", str(report_dir)])
    assert result.exit_code == 0, result.output
    for key in ("accuracy", "precision", "recall", "f1", "auprc", "roc_auc", "fpr"):
        assert key in result.stdout
    report = json.loads((report_dir / "labelled.json").read_text())
    assert report["metrics"]["n"] == 4 and report["metrics"]["positives"] == 2
    assert (report_dir / "labelled-pr.png").read_bytes()[:4] == b"\x89PNG"


def test_evaluate_bad_file_names_the_line(tmp_path: Path) -> None:
    src = tmp_path / "bad.jsonl"
    src.write_text(json.dumps({"text": "ok", "label": "safe"}) + "\n" + json.dumps({"text": "x", "label": "maybe"}))
    result = CliRunner().invoke(app, ["evaluate", "--input", str(src)])
    assert result.exit_code == 2
    # rich wraps the message at the runner's 80 columns, wherever the temporary path's length puts the break
    assert "line 2" in " ".join(result.output.split())
