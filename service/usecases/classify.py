"""Classification use cases: native verdicts, the OpenAI-compatible moderation mapping, the decision log."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from index import OPENAI_KEYS, Verdict, text_digest
from service.metrics import Metrics
from service.models import Decision
from service.repositories import DecisionRepository
from service.runtime import GuardRuntime
from service.schemas import ModerationResponse, ModerationResult
from service.usecases.limits import Limits

# Clients parse OpenAI's keys by name, so every response carries all of them (false / 0.0 where none maps).
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Classified:
    verdicts: list[Verdict]
    index_version: int
    latency_ms: float


@dataclass(frozen=True, slots=True)
class DecisionLogPolicy:
    enabled: bool
    store_text: bool


class ClassifyService:
    def __init__(
        self,
        session: Session,
        runtime: GuardRuntime,
        limits: Limits,
        metrics: Metrics,
        log_policy: DecisionLogPolicy,
        api_key_id: int | None = None,
    ) -> None:
        self.session = session
        self.runtime = runtime
        self.limits = limits
        self.metrics = metrics
        self.log_policy = log_policy
        self.api_key_id = api_key_id

    async def classify(self, field: str, texts: Sequence[str], endpoint: str = "classify") -> Classified:
        self.limits.check_batch(field, texts)
        start = time.perf_counter()
        verdicts, version = await self.runtime.classify(texts)
        latency = (time.perf_counter() - start) * 1000
        for verdict in verdicts:
            if verdict.flagged:
                self.metrics.flagged.labels(category=verdict.category or "unknown").inc()
        self.metrics.classified.labels(endpoint=endpoint).inc(len(verdicts))
        if self.log_policy.enabled:
            # The flush is blocking database I/O: on the event loop it deadlocked concurrent requests on SQLite (the
            # loop waited, up to the 30 s busy timeout, for a write lock that only a commit it had to schedule frees).
            decisions = [
                Decision(
                    endpoint=endpoint,
                    text_digest=text_digest(text),
                    text=text if self.log_policy.store_text else None,
                    flagged=v.flagged,
                    category=v.category,
                    score=v.score,
                    action=v.action,
                    index_version=version,
                    api_key_id=self.api_key_id,
                )
                for text, v in zip(texts, verdicts, strict=True)
            ]
            try:
                loop = asyncio.get_running_loop()
                await loop.run_in_executor(self.runtime.log_executor, self._write_decisions, decisions)
            except SQLAlchemyError as exc:
                # The log is an audit trail, not the answer: a full disk or a locked table must not turn verdicts
                # the index already computed into a 500. Counted (lightguard_decision_log_failures_total) and logged.
                self.metrics.decision_log_failures.inc(len(decisions))
                log.warning("decision log write failed (%s); verdicts returned unlogged", exc.__class__.__name__)
        return Classified(verdicts, version, round(latency, 3))

    def _write_decisions(self, decisions: list[Decision]) -> None:
        """Insert and commit in a session of its own, in the log thread.

        In the request's session the SQLite write lock was held until the request's commit, which the event loop
        schedules; a topic edit flushing on the event loop then blocked the loop on that lock: every request stalled
        for the 30 s busy timeout (found by scripts/soak.py). Committed here, the lock is held only for the insert.
        """
        with Session(self.session.get_bind(), expire_on_commit=False) as session:
            DecisionRepository(session).add_many(decisions)
            session.commit()

    async def moderate(self, texts: Sequence[str], model: str | None) -> ModerationResponse:
        classified = await self.classify("input", texts, endpoint="moderations")
        mapping = self.runtime.status.openai_keys
        results = [moderation_result(v, mapping) for v in classified.verdicts]
        return ModerationResponse(id=f"modr-{uuid.uuid4().hex}", model=model or "lightguard", results=results)


def moderation_result(verdict: Verdict, mapping: dict[str, tuple[str, ...]]) -> ModerationResult:
    """OpenAI keys from taxonomy categories: a key's score is the max over categories mapping to it; a key is true
    when the flagged verdict's category maps to it."""
    scores = dict.fromkeys(OPENAI_KEYS, 0.0)
    for category, score in verdict.categories.items():
        for key in mapping.get(category, ()):
            scores[key] = max(scores.get(key, 0.0), float(score))
    flagged_keys = set(mapping.get(verdict.category, ())) if verdict.flagged and verdict.category else set()
    return ModerationResult(
        flagged=verdict.flagged,
        categories={key: key in flagged_keys for key in scores},
        category_scores=scores,
        category_applied_input_types={key: ["text"] for key in scores},
    )
