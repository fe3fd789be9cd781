"""schemathesis hooks for lightguard's API (loaded by benchmarks.serving.fuzz_api through SCHEMATHESIS_HOOKS).

Two rules of the API are beyond JSON Schema, which cannot relate one field to another: `POST
/v1/topics/{topic_id}/evaluate` takes `labels` with one entry per item of `texts`, and the decision log's `since`
must be before its `until`. The descriptions and the 422s say so; these hooks make the generated requests keep
the rules, so that every other request the schema allows must be accepted.
"""

from __future__ import annotations

from typing import Any

import schemathesis

EVALUATE = "/v1/topics/{topic_id}/evaluate"
DECISIONS = ("/v1/decisions", "/v1/decisions/export")


@schemathesis.hook("map_body")
def pair_labels_with_texts(ctx: Any, body: Any) -> Any:
    operation = getattr(ctx, "operation", None)
    if operation is None or operation.path != EVALUATE or not isinstance(body, dict):
        return body
    texts, labels = body.get("texts"), body.get("labels")
    if isinstance(texts, list) and texts and isinstance(labels, list) and labels and len(labels) != len(texts):
        body = dict(body)
        body["labels"] = (labels * len(texts))[: len(texts)]
    return body


@schemathesis.hook("map_query")
def since_before_until(ctx: Any, query: Any) -> Any:
    operation = getattr(ctx, "operation", None)
    if operation is None or operation.path not in DECISIONS or not isinstance(query, dict):
        return query
    since, until = query.get("since"), query.get("until")
    if isinstance(since, str) and isinstance(until, str) and since >= until:
        query = {k: v for k, v in query.items() if k != "until"}
    return query
