"""GET /v1/decisions (paging, filters, auth, empty log), /counts, /export, GET /v1/me, and `lightguard decisions`."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from index import HashingEncoder
from service.app import create_app
from service.db.repositories import DecisionRepository
from service.usecases.decisions import DecisionFilter, export_decisions
from tests.service.support import make_settings, wait_ready

NOW = datetime.now(UTC)


@pytest.fixture(autouse=True)
def _now(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows are placed relative to the test's own start (a module-level time went stale in a long suite run)."""
    monkeypatch.setitem(globals(), "NOW", datetime.now(UTC))


ADMIN = "lg_decisions_admin_key_for_tests"


def row(minutes_ago: float, category: str | None = None, text: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "created_at": NOW - timedelta(minutes=minutes_ago),
        "endpoint": "classify",
        "text_digest": f"{minutes_ago:064.3f}"[-64:],
        "text": text,
        "flagged": category is not None,
        "category": category,
        "score": 0.9 if category else 0.1,
        "action": "block" if category else None,
        "index_version": 1,
        "api_key_id": None,
    } | extra


def insert(client: TestClient, rows: list[dict[str, Any]]) -> None:
    with client.app.state.ctx.sessions() as session:  # type: ignore[attr-defined]
        DecisionRepository(session).add_many(rows)
        session.commit()


@pytest.fixture
def logged(client: TestClient) -> TestClient:
    """Seven decisions, oldest first: ids 1..7 (2 days, 5 h, 50 min, 30 min, 20 min, 10 min and 1 min ago)."""
    insert(
        client,
        [
            row(2 * 24 * 60, "violence", "old violent"),
            row(5 * 60, "hate", "hateful"),
            row(50),
            row(30, "violence", "violent"),
            row(20, "cooking"),
            row(10),
            row(1, "violence", "new violent"),
        ],
    )
    return client


def ids(body: dict[str, Any]) -> list[int]:
    return [d["id"] for d in body["decisions"]]


def test_empty_log(client: TestClient) -> None:
    body = client.get("/v1/decisions").json()
    assert body == {"decisions": [], "next_before_id": None, "text_logged": False}
    counts = client.get("/v1/decisions/counts").json()
    assert [(w["window"], w["total"], w["flagged"], w["categories"]) for w in counts["windows"]] == [
        ("hour", 0, 0, {}),
        ("day", 0, 0, {}),
    ]
    assert client.get("/v1/decisions/export").text == ""
    assert client.get("/v1/decisions/export?format=csv").text.splitlines() == [
        "id,created_at,endpoint,text_digest,text,flagged,category,score,action,index_version,api_key_id"
    ]


def test_pages_newest_first_by_cursor(logged: TestClient) -> None:
    first = logged.get("/v1/decisions?limit=3").json()
    assert ids(first) == [7, 6, 5] and first["next_before_id"] == 5
    second = logged.get(f"/v1/decisions?limit=3&before_id={first['next_before_id']}").json()
    assert ids(second) == [4, 3, 2] and second["next_before_id"] == 2
    last = logged.get("/v1/decisions?limit=3&before_id=2").json()
    assert ids(last) == [1] and last["next_before_id"] is None
    exact = logged.get("/v1/decisions?limit=7").json()
    assert len(ids(exact)) == 7 and exact["next_before_id"] is None
    newest = exact["decisions"][0]
    assert newest["text"] == "new violent" and newest["category"] == "violence" and newest["flagged"] is True
    assert datetime.fromisoformat(newest["created_at"]).tzinfo is not None


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("category=violence", [7, 4, 1]),
        ("flagged=true", [7, 5, 4, 2, 1]),
        ("flagged=false", [6, 3]),
        ("category=violence&flagged=true", [7, 4, 1]),
        ("category=nothing", []),
    ],
)
def test_filters(logged: TestClient, query: str, expected: list[int]) -> None:
    assert ids(logged.get(f"/v1/decisions?{query}").json()) == expected


def test_time_filters_take_offsets_and_read_naive_times_as_utc(logged: TestClient) -> None:
    since = (NOW - timedelta(minutes=40)).astimezone(timezone_plus_two())
    until = NOW - timedelta(minutes=5)
    query = {"since": since.isoformat(), "until": until.replace(tzinfo=None).isoformat()}
    assert ids(logged.get("/v1/decisions", params=query).json()) == [6, 5, 4]
    assert ids(logged.get("/v1/decisions", params={**query, "category": "violence"}).json()) == [4]


def timezone_plus_two() -> Any:
    from datetime import timezone

    return timezone(timedelta(hours=2))


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("before_id=0", "before_id"),
        ("flagged=maybe", "flagged"),
        ("since=yesterday", "since"),
        ("since=0.5", "since"),
        ("until=1733500000", "until"),
        ("since=2026-02-30T00:00:00Z", "since"),
        ("flagged=1", "flagged"),
        ("category=a%00b", "category"),
        ("category=", "category"),
    ],
)
def test_malformed_queries_name_the_parameter(client: TestClient, query: str, field: str) -> None:
    response = client.get(f"/v1/decisions?{query}")
    assert response.status_code == 422, response.text
    assert response.json()["field"].endswith(field)
    assert response.json()["detail"]


def test_an_empty_or_extreme_range_is_no_error(logged: TestClient) -> None:
    reversed_range = {"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}
    assert logged.get("/v1/decisions", params=reversed_range).json()["decisions"] == []
    assert logged.get("/v1/decisions/export", params=reversed_range).text == ""
    # before year 1 once in UTC: the earliest time there is, so every row is after it
    assert len(ids(logged.get("/v1/decisions", params={"since": "0001-01-01T00:00:00+05:00"}).json())) == 7
    assert ids(logged.get("/v1/decisions", params={"until": "0001-01-01T00:00:00+05:00"}).json()) == []


def test_counts_per_category_over_the_last_hour_and_day(logged: TestClient) -> None:
    hour, day = logged.get("/v1/decisions/counts").json()["windows"]
    assert (hour["window"], hour["total"], hour["flagged"]) == ("hour", 5, 3)
    assert hour["categories"] == {"violence": 2, "cooking": 1}
    assert (day["window"], day["total"], day["flagged"]) == ("day", 6, 4)
    assert day["categories"] == {"violence": 2, "cooking": 1, "hate": 1}


def test_export_jsonl_and_csv_of_a_range(logged: TestClient) -> None:
    params = {"since": (NOW - timedelta(hours=6)).isoformat(), "until": (NOW - timedelta(minutes=15)).isoformat()}
    response = logged.get("/v1/decisions/export", params=params)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    disposition = response.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="decisions-') and disposition.endswith('.jsonl"')
    records = [json.loads(line) for line in response.text.splitlines()]
    assert [r["id"] for r in records] == [2, 3, 4, 5]  # oldest first
    assert records[0]["category"] == "hate" and records[0]["text"] == "hateful"
    flagged_csv = logged.get("/v1/decisions/export", params={**params, "format": "csv", "flagged": "true"})
    assert flagged_csv.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(flagged_csv.text)))
    assert [r["id"] for r in table] == ["2", "4", "5"]
    assert table[1]["text"] == "violent" and table[1]["flagged"] == "True" and table[0]["action"] == "block"
    assert logged.get("/v1/decisions/export?format=xml").status_code == 422


def test_csv_export_defuses_spreadsheet_formulas(client: TestClient) -> None:
    insert(client, [row(3, None, "plain"), row(2, None, "-1+2"), row(1, "violence", '=HYPERLINK("http://x","y")')])
    table = list(csv.DictReader(io.StringIO(client.get("/v1/decisions/export?format=csv").text)))
    assert [r["text"] for r in table] == ["plain", "'-1+2", '\'=HYPERLINK("http://x","y")']
    jsonl = [json.loads(line)["text"] for line in client.get("/v1/decisions/export").text.splitlines()]
    assert jsonl[-1] == '=HYPERLINK("http://x","y")'  # JSON lines keep the text as it was


def test_export_reads_in_chunks_without_skipping_or_repeating(logged: TestClient) -> None:
    sessions = logged.app.state.ctx.sessions  # type: ignore[attr-defined]
    sizes: list[int] = []
    chunks = list(export_decisions(sessions, DecisionFilter(), "jsonl", chunk_rows=3, on_rows=sizes.append))
    assert sizes == [3, 3, 1] and len(chunks) == 3
    assert [json.loads(line)["id"] for chunk in chunks for line in chunk.splitlines()] == [1, 2, 3, 4, 5, 6, 7]


def test_classified_texts_show_up_with_digest_and_without_text_by_default(client: TestClient) -> None:
    assert client.post("/v1/classify", json={"texts": ["how do I build a bomb to kill people", "hello"]}).is_success
    assert client.app.state.ctx.decision_log.flush()  # type: ignore[attr-defined]
    decisions = client.get("/v1/decisions").json()["decisions"]
    assert len(decisions) == 2 and all(d["text"] is None and len(d["text_digest"]) == 16 for d in decisions)
    assert {d["endpoint"] for d in decisions} == {"classify"}


@pytest.fixture
def keyed(tmp_path: Path) -> Iterator[tuple[TestClient, str]]:
    """A server with an admin key (LIGHTGUARD_ADMIN_KEY) and a classify key, which it yields."""
    settings = make_settings(tmp_path, admin_key=ADMIN, log_text=True)
    with TestClient(create_app(settings, HashingEncoder())) as c:
        wait_ready(c)
        made = c.post("/v1/keys", json={"role": "classify"}, headers={"Authorization": f"Bearer {ADMIN}"})
        yield c, made.json()["token"]


@pytest.mark.parametrize("path", ["/v1/decisions", "/v1/decisions/counts", "/v1/decisions/export"])
def test_the_decision_log_is_for_admin_keys_only(keyed: tuple[TestClient, str], path: str) -> None:
    client, classify_key = keyed
    assert client.get(path).status_code == 401
    assert client.get(path, headers={"Authorization": "Bearer lg_unknown_key_0000"}).status_code == 403
    denied = client.get(path, headers={"Authorization": f"Bearer {classify_key}"})
    assert denied.status_code == 403 and "admin" in denied.json()["detail"]
    assert client.get(path, headers={"Authorization": f"Bearer {ADMIN}"}).status_code == 200


def test_text_is_listed_where_the_deployment_logs_it(keyed: tuple[TestClient, str]) -> None:
    client, classify_key = keyed
    assert client.post(
        "/v1/classify", json={"text": "hello there"}, headers={"Authorization": f"Bearer {classify_key}"}
    )
    assert client.app.state.ctx.decision_log.flush()  # type: ignore[attr-defined]
    body = client.get("/v1/decisions", headers={"Authorization": f"Bearer {ADMIN}"}).json()
    assert body["text_logged"] is True and body["decisions"][0]["text"] == "hello there"
    assert body["decisions"][0]["api_key_id"] is not None


def test_me_on_an_open_server(client: TestClient) -> None:
    assert client.get("/v1/me").json() == {"open": True, "role": "admin", "key_id": None}


def test_me_says_who_is_calling(keyed: tuple[TestClient, str]) -> None:
    keyed_client, classify_key = keyed
    assert keyed_client.get("/v1/me").status_code == 401
    wrong = keyed_client.get("/v1/me", headers={"Authorization": "Bearer lg_unknown_key_0000"})
    assert wrong.status_code == 403 and "unknown or revoked" in wrong.json()["detail"]
    me = keyed_client.get("/v1/me", headers={"Authorization": f"Bearer {classify_key}"}).json()
    assert me["open"] is False and me["role"] == "classify" and me["key_id"] > 0
    assert keyed_client.get("/v1/me", headers={"Authorization": f"Bearer {ADMIN}"}).json()["role"] == "admin"


def test_the_console_is_served_by_the_app(client: TestClient) -> None:
    redirect = client.get("/console", follow_redirects=False)
    assert redirect.status_code == 307 and redirect.headers["location"] == "/console/"
    page = client.get("/console/")
    assert page.status_code == 200 and "lightguard console" in page.text
    script = client.get("/console/js/main.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    # every asset is the app's own: nothing loaded from another host
    for name in ("index.html", "console.css", *[f"js/{p.name}" for p in (ROOT_CONSOLE / "js").glob("*.js")]):
        text = client.get(f"/console/{name}").text
        assert "http://" not in text and "https://" not in text, name


ROOT_CONSOLE = Path(__file__).resolve().parents[2] / "service" / "console"


def test_cli_export_writes_a_range(logged: TestClient, settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from service.cli.main import app as cli

    monkeypatch.setenv("LIGHTGUARD_HOME", str(settings.home))
    out = settings.home / "export.csv"
    since = (NOW - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S")
    result = CliRunner().invoke(cli, ["decisions", "export", "--since", since, "--format", "csv", "-o", str(out)])
    assert result.exit_code == 0, result.output
    with out.open() as exported:
        assert [r["id"] for r in csv.DictReader(exported)] == ["3", "4", "5", "6", "7"]
    flagged = CliRunner().invoke(cli, ["decisions", "export", "--flagged", "--category", "violence"])
    assert flagged.exit_code == 0, flagged.output
    assert [json.loads(line)["id"] for line in flagged.stdout.splitlines() if line.startswith("{")] == [1, 4, 7]
    bad = CliRunner().invoke(cli, ["decisions", "export", "--since", "2026-02-01", "--until", "2026-01-01"])
    assert bad.exit_code == 2 and "before" in bad.output
