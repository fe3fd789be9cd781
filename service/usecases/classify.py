"""Classification use cases: native verdicts, the OpenAI-compatible moderation mapping, the decision log."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from index import OPENAI_KEYS, Verdict, text_digest
from service.db.decision_log import DecisionLog
from service.db.models import utcnow
from service.errors import ClientDeadlineExceededError, DeadlineExceededError, PayloadTooLargeError
from service.metrics import Metrics
from service.serving.runtime import GuardRuntime
from service.usecases.keys import KeyIdentity
from service.usecases.limits import Limits
from service.usecases.quotas import Quotas

# Clients parse OpenAI's keys by name, so every response carries all of them (false / 0.0 where none maps).
EXTENSION_KEYS: dict[str, str] = {"prompt_injection": "prompt_injection"}
"""Built-in categories that no OpenAI key covers, reported under a key of their own (category id -> key) after
OpenAI's keys in every result (docs/api.md); clients that read OpenAI's keys by name are not affected."""


@dataclass(frozen=True, slots=True)
class ModerationResult:
    """One text's moderation in OpenAI's shape: every key, flagged or not, with its score."""

    flagged: bool
    categories: dict[str, bool]
    category_scores: dict[str, float]
    category_applied_input_types: dict[str, list[str]]


@dataclass(frozen=True, slots=True)
class Moderation:
    id: str
    model: str
    results: list[ModerationResult]


@dataclass(frozen=True, slots=True)
class Classified:
    verdicts: list[Verdict]
    index_version: int
    latency_ms: float


class ClassifyService:
    def __init__(
        self,
        runtime: GuardRuntime,
        limits: Limits,
        metrics: Metrics,
        decision_log: DecisionLog | None,
        quotas: Quotas,
        timeout_s: float,
        store_text: bool = False,
        key: KeyIdentity | None = None,
    ) -> None:
        """`decision_log` None: nothing is logged; `store_text`: log raw prompts, not only their digests;
        `timeout_s`: the server's deadline per request; `key`: the caller (None: open mode)."""
        self.runtime = runtime
        self.limits = limits
        self.metrics = metrics
        self.decision_log = decision_log
        self.quotas = quotas
        self.timeout_s = timeout_s
        self.store_text = store_text
        self.key = key
        self.api_key_id = key.id if key is not None else None

    async def classify(
        self, field: str, texts: Sequence[str], endpoint: str = "classify", timeout_s: float | None = None
    ) -> Classified:
        """Verdicts for `texts` within the caller's quotas, by a deadline (`timeout_s` may shorten the server's).

        Raises:
            InvalidRequestError, PayloadTooLargeError: the request breaks a limit (nothing was run).
            RateLimitedError: the caller is over its rate or concurrency limit.
            DeadlineExceededError: the deadline passed first (the rest of the work was dropped).
        """
        self.limits.check_batch(field, texts)
        by_client = timeout_s is not None and timeout_s < self.timeout_s
        timeout = timeout_s if timeout_s is not None and by_client else self.timeout_s
        start = time.perf_counter()
        with self.quotas.admit(self.api_key_id, self.key.limits if self.key else None, len(texts)):
            deadline = asyncio.get_running_loop().time() + timeout
            try:
                verdicts, version = await self.runtime.classify(texts, deadline)
            except PayloadTooLargeError:
                self.metrics.over_budget.inc()
                raise
            except DeadlineExceededError as exc:
                raise _deadline_error(timeout, by_client) from exc
        latency = (time.perf_counter() - start) * 1000
        flagged = [v.category or "unknown" for v in verdicts if v.flagged]
        self.metrics.verdicts(endpoint, len(verdicts), flagged)
        if self.decision_log is not None:
            created = utcnow()
            self.decision_log.record(
                [
                    {
                        "created_at": created,
                        "endpoint": endpoint,
                        "text_digest": text_digest(text),
                        "text": text if self.store_text else None,
                        "flagged": v.flagged,
                        "category": v.category,
                        "score": v.score,
                        "action": v.action,
                        "index_version": version,
                        "api_key_id": self.api_key_id,
                    }
                    for text, v in zip(texts, verdicts, strict=True)
                ]
            )
        return Classified(verdicts, version, round(latency, 3))

    async def moderate(self, texts: Sequence[str], model: str | None, timeout_s: float | None = None) -> Moderation:
        classified = await self.classify("input", texts, endpoint="moderations", timeout_s=timeout_s)
        mapping = self.runtime.status.openai_keys
        results = [moderation_result(v, mapping) for v in classified.verdicts]
        return Moderation(id=f"modr-{uuid.uuid4().hex}", model=model or "lightguard", results=results)


def _deadline_error(timeout: float, by_client: bool) -> DeadlineExceededError:
    if by_client:
        return ClientDeadlineExceededError(
            f"the request did not finish within its own timeout of {timeout:g} s (`timeout` or X-Request-Timeout);"
            " its remaining work was dropped: allow more time, or send fewer or shorter texts"
        )
    return DeadlineExceededError(
        f"the request did not finish within the server's deadline of {timeout:g} s (LIGHTGUARD_REQUEST_TIMEOUT_S);"
        " its remaining work was dropped: send fewer or shorter texts per request, or retry when the server is less"
        " busy"
    )


def moderation_result(verdict: Verdict, mapping: dict[str, tuple[str, ...]]) -> ModerationResult:
    """OpenAI keys from taxonomy categories: a key's score is the max over categories mapping to it; a key is true
    when the flagged verdict's category maps to it. EXTENSION_KEYS follow, scored and flagged by their category."""
    scores = dict.fromkeys(OPENAI_KEYS, 0.0)
    for category, score in verdict.categories.items():
        for key in mapping.get(category, ()):
            scores[key] = max(scores.get(key, 0.0), float(score))
    flagged_keys = set(mapping.get(verdict.category, ())) if verdict.flagged and verdict.category else set()
    for category, key in EXTENSION_KEYS.items():
        scores[key] = float(verdict.categories.get(category, 0.0))
        if verdict.flagged and verdict.category == category:
            flagged_keys.add(key)
    return ModerationResult(
        flagged=verdict.flagged,
        categories={key: key in flagged_keys for key in scores},
        category_scores=scores,
        category_applied_input_types={key: ["text"] for key in scores},
    )
