"""The row contract of bulk classification, shared by every engine: what a good input row is, and what comes out.

In: `{id, text}` (other fields ignored). Out: `{id, flagged, score, category, categories, action, threshold}` for a
good row (plus `evidence` when asked), `{id, error}` for a bad one; a bad row never stops the job.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from index import Guard, normalize_text
from service.verdicts import verdict_to_dict

Row = dict[str, Any]


def jsonl_lines(text: str) -> list[str]:
    """The lines of a JSONL document: split at "\n" alone (a "\r" before it dropped), never at the other breaks
    `str.splitlines` knows — U+2028, U+2029, U+0085, \\v, \\f… are legal inside a JSON string, and json.dumps with
    ensure_ascii=False writes U+2028 as is, so splitting there cut good rows into invalid halves and lost their ids.
    A final newline ends the last line; it does not start an empty one."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def parse_line(line: str, where: str) -> Row:
    """One JSONL line → a row to classify, or an error row. `where`: how the error names the line ("line 3")."""
    try:
        obj = json.loads(line)
    except ValueError:
        return {"id": None, "error": f"{where}: not valid JSON"}
    if not isinstance(obj, dict):
        return {"id": None, "error": f"{where}: expected a JSON object"}
    return parse_record(obj, where)


def parse_record(obj: dict[str, Any], where: str) -> Row:
    """A decoded record (a JSON object, a Parquet row) → `{id, text}`, or `{id, error}` when its text is unusable."""
    text = obj.get("text")
    if not isinstance(text, str):
        return {"id": obj.get("id"), "error": f"{where}: field 'text' is missing or not a string"}
    if not text.strip() or not normalize_text(text):
        return {"id": obj.get("id"), "error": f"{where}: field 'text' is empty"}
    return {"id": obj.get("id"), "text": text}


def classify_rows(guard: Guard, rows: Sequence[Row], evidence: bool = False) -> list[Row]:
    """The output rows of parsed `rows`, in order: good ones classified in one guard call, bad ones passed through.

    Should the batch call fail (a text the guard rejects), the rows are classified one by one so that only the row
    that fails gets an `error` and the others their verdicts.
    """
    good = [pos for pos, row in enumerate(rows) if "error" not in row]
    results: list[Row] = [{"id": row.get("id"), "error": row["error"]} if "error" in row else {} for row in rows]
    try:
        verdicts = guard.classify([rows[pos]["text"] for pos in good]) if good else []
    except Exception:
        for pos in good:
            results[pos] = _classify_one(guard, rows[pos], evidence)
        return results
    for pos, verdict in zip(good, verdicts, strict=True):
        results[pos] = _verdict_row(rows[pos].get("id"), verdict_to_dict(verdict), evidence)
    return results


def _classify_one(guard: Guard, row: Row, evidence: bool) -> Row:
    try:
        verdict = guard.classify([row["text"]])[0]
    except Exception as exc:  # one bad row is reported, not fatal: the job goes on
        return {"id": row.get("id"), "error": f"classification failed: {type(exc).__name__}: {exc}"}
    return _verdict_row(row.get("id"), verdict_to_dict(verdict), evidence)


def _verdict_row(row_id: Any, body: Row, evidence: bool) -> Row:
    if not evidence:
        body.pop("evidence", None)
    return {"id": row_id} | body
