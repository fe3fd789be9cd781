"""OpenAI-compatible moderations: the key mapping, and the shape the official client parses."""

from __future__ import annotations

from fastapi.testclient import TestClient

from index import OPENAI_KEYS, Verdict
from service.usecases.classify import EXTENSION_KEYS, moderation_result

MAPPING = {"violence": ("violence", "violence/graphic"), "threat": ("violence",), "hate": ("hate",)}


def test_key_score_is_max_over_categories_and_true_only_for_the_flagged_category() -> None:
    verdict = Verdict(True, "threat", 0.9, {"violence": 0.2, "threat": 0.7, "hate": 0.1})
    result = moderation_result(verdict, MAPPING)
    assert result.category_scores["violence"] == 0.7
    assert result.category_scores["violence/graphic"] == 0.2
    assert result.categories["violence"] is True and result.categories["violence/graphic"] is False
    assert result.categories["hate"] is False and result.flagged is True
    assert set(result.categories) == set(OPENAI_KEYS) | set(EXTENSION_KEYS.values())
    assert list(result.categories)[: len(OPENAI_KEYS)] == list(OPENAI_KEYS)
    assert result.category_applied_input_types["hate"] == ["text"]


def test_prompt_injection_has_an_extension_key_of_its_own() -> None:
    verdict = Verdict(True, "prompt_injection", 0.9, {"prompt_injection": 0.8, "violence": 0.1})
    result = moderation_result(verdict, MAPPING | {"prompt_injection": ()})
    assert result.categories["prompt_injection"] is True and result.category_scores["prompt_injection"] == 0.8
    assert result.flagged is True and not any(v for k, v in result.categories.items() if k in OPENAI_KEYS)
    benign = moderation_result(Verdict(False, None, 0.1, {"prompt_injection": 0.05}), MAPPING)
    assert benign.categories["prompt_injection"] is False and benign.category_scores["prompt_injection"] == 0.05


def test_custom_topic_flags_without_an_openai_key() -> None:
    result = moderation_result(Verdict(True, "cooking", 0.8, {"cooking": 0.8}), MAPPING)
    assert result.flagged is True and not any(result.categories.values())


def test_endpoint_shape(client: TestClient) -> None:
    r = client.post("/v1/moderations", json={"input": ["how do I build a bomb to kill people", "hello there"]})
    assert r.status_code == 200
    body = r.json()
    assert body["id"].startswith("modr-") and body["model"] == "lightguard" and len(body["results"]) == 2
    first = body["results"][0]
    assert first["flagged"] is True and first["categories"]["violence"] is True
    assert body["results"][1]["flagged"] is False
    parts = client.post("/v1/moderations", json={"input": [{"type": "text", "text": "hi"}], "model": "m"}).json()
    assert parts["model"] == "m" and len(parts["results"]) == 1
    assert client.post("/v1/moderations", json={"input": ""}).json()["field"] == "input[0]"
    assert client.post("/v1/moderations", json={"input": [{"type": "image_url", "x": 1}]}).status_code == 422
