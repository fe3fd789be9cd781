"""Plain-dict form of a verdict, shared by the CLI and the HTTP schemas."""

from __future__ import annotations

from typing import Any

from index import Verdict


def verdict_to_dict(verdict: Verdict) -> dict[str, Any]:
    return {
        "flagged": verdict.flagged,
        "category": verdict.category,
        "score": verdict.score,
        "categories": verdict.categories,
        "action": verdict.action,
        "threshold": verdict.threshold,
        "evidence": [
            {"id": e.id, "text": e.text, "label": e.label, "similarity": e.similarity, "role": e.role}
            for e in verdict.evidence
        ],
    }
