"""POST /v1/topics/{id}/evaluate and `lightguard topics suggest-threshold`: metrics on labelled texts, no change."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from index import HashingEncoder, fmr_threshold
from service.app import create_app
from service.cli.admin import register
from service.usecases.evaluation import suggest_thresholds, threshold_metrics
from tests.service.support import COOKING, COOKING_PARAPHRASE, FIXTURES, create_cooking, make_settings, wait_ready

MATCHES = [COOKING_PARAPHRASE, "how do I bake a chocolate cake in the oven"]
OTHERS = ["what is the capital of france", "reset my router password", "who won the football match yesterday"]


def test_threshold_metrics_counts() -> None:
    m = threshold_metrics([0.9, 0.6, 0.5, 0.1], [True, False, True, False], 0.5)
    assert (m.precision, m.recall, m.false_match_rate) == (pytest.approx(2 / 3), 1.0, 0.5)
    assert m.f1 == pytest.approx(0.8)
    empty = threshold_metrics([0.2], [False], 0.5)
    assert (empty.precision, empty.recall, empty.f1, empty.false_match_rate) == (0.0, 0.0, 0.0, 0.0)


def test_fmr_threshold_is_the_lowest_meeting_the_target() -> None:
    scores = [0.9, 0.8] + [i / 100 for i in range(100)]  # 100 negatives scored 0.00 .. 0.99
    labels = [True, True] + [False] * 100
    t = fmr_threshold(scores, labels, 0.05)
    assert threshold_metrics(scores, labels, t).false_match_rate <= 0.05
    assert threshold_metrics(scores, labels, t - 0.011).false_match_rate > 0.05
    assert fmr_threshold([0.3, 0.4], [True, True], 0.01) == pytest.approx(0.3)


def test_suggestions_separate_perfectly_separable_scores() -> None:
    scores, labels = [0.8, 0.7, 0.3, 0.2], [True, True, False, False]
    s = suggest_thresholds(scores, labels, 0.0)
    assert s.best_f1.f1 == 1.0 and s.target_fmr.false_match_rate == 0.0 and s.target_fmr.recall == 1.0


def test_suggestions_never_go_below_the_topic_floor() -> None:
    """Every negative scoring 0 (topic scores are clipped at 0): "just above the highest negative" was 0.000001."""
    scores, labels = [0.6, 0.4, 0.0, 0.0, 0.0], [True, True, False, False, False]
    s = suggest_thresholds(scores, labels, 0.01, floor=0.05)
    assert s.target_fmr.threshold == 0.05 and s.target_fmr.recall == 1.0 and s.target_fmr.false_match_rate == 0.0
    assert s.best_f1.threshold >= 0.05
    assert suggest_thresholds(scores, labels, 0.01).target_fmr.threshold == pytest.approx(1e-6)


def test_evaluate_route_reports_and_changes_nothing(client: TestClient) -> None:
    topic = create_cooking(client)
    url = f"/v1/topics/{topic['id']}/evaluate"
    version = client.get("/v1/index").json()["version"]
    texts = MATCHES + OTHERS
    labels = [True] * len(MATCHES) + [False] * len(OTHERS)
    body = client.post(url, json={"texts": texts, "labels": labels})
    assert body.status_code == 200, body.text
    report = body.json()
    assert (report["items"], report["positives"], report["negatives"]) == (5, 2, 3)
    assert report["current"]["threshold"] == pytest.approx(topic["threshold"], abs=1e-6)
    assert len(report["scores"]) == 5 and report["scores"][0] > max(report["scores"][2:])
    assert report["current"]["recall"] >= 0.5 and report["current"]["false_match_rate"] == 0.0
    assert report["suggested"]["best_f1"]["f1"] == 1.0
    assert report["suggested"]["target_fmr"]["false_match_rate"] <= report["target_fmr"]
    assert report["target_fmr"] == pytest.approx(0.01)

    same = client.post(url, json={"examples": [{"text": t, "match": y} for t, y in zip(texts, labels, strict=True)]})
    assert same.status_code == 200 and same.json()["scores"] == report["scores"]
    # the operator's own target: one of the three negatives may match, so the suggestion can only move down
    looser = client.post(url, json={"texts": texts, "labels": labels, "target_fmr": 0.34}).json()
    assert looser["target_fmr"] == 0.34 and looser["scores"] == report["scores"]
    assert looser["suggested"]["target_fmr"]["false_match_rate"] == pytest.approx(1 / 3)
    assert looser["suggested"]["target_fmr"]["threshold"] < report["suggested"]["target_fmr"]["threshold"]
    after = client.get(f"/v1/topics/{topic['id']}").json()
    assert after["threshold"] == topic["threshold"] and after["threshold_source"] == "calibrated"
    assert client.get("/v1/index").json()["version"] == version


@pytest.mark.parametrize(
    "body",
    [
        {"texts": ["a"], "labels": [True, False]},
        {"texts": ["a"]},
        {"texts": ["a"], "labels": [True], "examples": [{"text": "a", "match": True}]},
        {},
        {"examples": [{"text": "a"}]},
        {"texts": ["a"], "labels": [True], "target_fmr": 0},
        {"texts": ["a"], "labels": [True], "target_fmr": 1},
        {"texts": ["a"], "labels": [True], "target_fmr": None},
        {"texts": ["a"], "labels": [True], "target_fmr": "0.1"},
        {"texts": ["a"], "labels": [True], "target_fmr": True},
    ],
)
def test_evaluate_rejects_malformed_bodies(client: TestClient, body: dict[str, object]) -> None:
    topic = create_cooking(client)
    assert client.post(f"/v1/topics/{topic['id']}/evaluate", json=body).status_code == 422


def test_evaluate_errors(client: TestClient) -> None:
    topic = create_cooking(client)
    assert client.post("/v1/topics/9999/evaluate", json={"texts": ["a"], "labels": [True]}).status_code == 404
    empty = client.post(f"/v1/topics/{topic['id']}/evaluate", json={"texts": [], "labels": []})
    assert empty.status_code == 422 and "labelled" in empty.json()["detail"]
    blank = client.post(f"/v1/topics/{topic['id']}/evaluate", json={"texts": ["  "], "labels": [True]})
    assert blank.status_code == 422
    builtin = next(t for t in client.get("/v1/topics").json()["topics"] if t["kind"] == "builtin")
    one = {"texts": ["a"], "labels": [True]}
    assert client.post(f"/v1/topics/{builtin['id']}/evaluate", json=one).status_code == 409
    client.patch(f"/v1/topics/{topic['id']}", json={"enabled": False})
    disabled = client.post(f"/v1/topics/{topic['id']}/evaluate", json={"texts": ["a"], "labels": [True]})
    assert disabled.status_code == 409 and "enable" in disabled.json()["detail"]


def test_evaluate_needs_an_admin_key(tmp_path: Path) -> None:
    admin = "lg_test_admin_key_0123456789"
    with TestClient(create_app(make_settings(tmp_path, admin_key=admin), HashingEncoder())) as client:
        wait_ready(client)
        headers = {"Authorization": f"Bearer {admin}"}
        created = client.post("/v1/topics", json={"name": "cooking", "examples": COOKING}, headers=headers)
        assert created.status_code == 201, created.text
        url = f"/v1/topics/{created.json()['id']}/evaluate"
        body = {"texts": MATCHES, "labels": [True, True]}
        assert client.post(url, json=body).status_code == 401
        assert client.post(url, json=body, headers=headers).status_code == 200


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> typer.Typer:
    monkeypatch.setenv("LIGHTGUARD_HOME", str(tmp_path))
    monkeypatch.setenv("LIGHTGUARD_DATA_DIR", str(FIXTURES))
    monkeypatch.setenv("LIGHTGUARD_ENCODER", "hashing")
    app = typer.Typer()
    register(app)
    return app


def test_cli_suggest_threshold(cli: typer.Typer, tmp_path: Path) -> None:
    runner = CliRunner()
    added = runner.invoke(cli, ["topics", "add", "cooking", *[a for t in COOKING for a in ("--example", t)]])
    assert added.exit_code == 0, added.output
    labelled = tmp_path / "labelled.jsonl"
    lines = [{"text": t, "match": True} for t in MATCHES] + [{"text": t, "label": "weather"} for t in OTHERS]
    labelled.write_text("\n".join(json.dumps(x) for x in lines) + "\n", encoding="utf-8")

    shown = runner.invoke(cli, ["topics", "suggest-threshold", "cooking", "--input", str(labelled)])
    assert shown.exit_code == 0, shown.output
    assert "max-F1" in shown.stdout and "target-FMR" in shown.stdout and "5 items" in shown.stdout
    as_json = runner.invoke(cli, ["topics", "suggest-threshold", "cooking", "--input", str(labelled), "--json"])
    report = json.loads(as_json.stdout)
    assert (report["positives"], report["negatives"]) == (2, 3) and report["suggested"]["best_f1"]["f1"] == 1.0
    args = ["topics", "suggest-threshold", "cooking", "--input", str(labelled), "--json", "--target-fmr", "0.34"]
    looser = json.loads(runner.invoke(cli, args).stdout)
    assert looser["target_fmr"] == 0.34
    assert looser["suggested"]["target_fmr"]["false_match_rate"] == pytest.approx(1 / 3)
    out_of_range = runner.invoke(cli, [*args[:-1], "1.5"])  # the API's bound, checked by the same schema
    assert out_of_range.exit_code == 2 and "target_fmr" in out_of_range.output and "less than 1" in out_of_range.output
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n", encoding="utf-8")
    no_items = runner.invoke(cli, ["topics", "suggest-threshold", "cooking", "--input", str(empty)])
    assert no_items.exit_code == 1 and "at least one labelled text" in no_items.output, no_items.output

    assert runner.invoke(cli, ["topics", "suggest-threshold", "nope", "--input", str(labelled)]).exit_code != 0
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "x"}\n', encoding="utf-8")
    assert runner.invoke(cli, ["topics", "suggest-threshold", "cooking", "--input", str(bad)]).exit_code != 0
