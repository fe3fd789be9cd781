"""The bulk row contract: a row that fails inside the guard gets an `error`, its batch neighbours their verdicts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import cast

from index import Guard, Verdict
from service.bulk.rows import classify_rows, jsonl_lines, parse_line


class FlakyGuard:
    """Delegates to a real guard but raises on any batch holding the text "boom" (as a bad row would)."""

    def __init__(self, guard: Guard) -> None:
        self.guard = guard

    def classify(self, texts: Sequence[str]) -> list[Verdict]:
        if "boom" in texts:
            raise ValueError("cannot classify this text")
        return self.guard.classify(texts)


def test_a_row_that_raises_gets_an_error_and_the_batch_goes_on(toy_guard: Guard) -> None:
    lines = ['{"id": 1, "text": "hello there"}', '{"id": 2, "text": "boom"}', "nope", '{"id": 3, "text": "I stab"}']
    parsed = [parse_line(line, f"line {n}") for n, line in enumerate(lines, 1)]
    rows = classify_rows(cast(Guard, FlakyGuard(toy_guard)), parsed)
    assert [r["id"] for r in rows] == [1, 2, None, 3]
    assert rows[1]["error"] == "classification failed: ValueError: cannot classify this text"
    assert rows[2]["error"] == "line 3: not valid JSON"
    assert rows[0] == {"id": 1} | _body(toy_guard, "hello there")
    assert rows[3] == {"id": 3} | _body(toy_guard, "I stab")


def _body(guard: Guard, text: str) -> dict[str, object]:
    from service.verdicts import verdict_to_dict

    body = verdict_to_dict(guard.classify([text])[0])
    body.pop("evidence")
    return body


def test_jsonl_lines_split_at_newlines_only() -> None:
    texts = ["a\u2028b", "c\u2029d", "e\x85f", "g\x0bh", "i\x0cj", "k\x1cl"]
    document = "".join(json.dumps({"id": n, "text": t}, ensure_ascii=False) + "\n" for n, t in enumerate(texts))
    assert len(document.splitlines()) > len(texts)  # what str.splitlines (and Ray's read_text) made of it
    assert [json.loads(line)["text"] for line in jsonl_lines(document)] == texts
    assert jsonl_lines('{"id": 1}\r\n\r\n{"id": 2}') == ['{"id": 1}', "", '{"id": 2}']  # an empty line is a (bad) row
    assert jsonl_lines("") == [] and jsonl_lines("\n") == [""]
