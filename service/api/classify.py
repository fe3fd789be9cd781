"""POST /v1/classify: lightguard's native verdicts for one text or a batch."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from index import Verdict
from service.api.disconnect import cancel_on_disconnect
from service.deps import ClassifyServiceDep, RequestTimeoutHeader
from service.exception_handlers import error_responses
from service.schemas.classify import ClassifyBatchResult, ClassifyRequest, ClassifyResult, EvidenceRead, VerdictRead

router = APIRouter(
    prefix="/v1", tags=["classify"], responses=error_responses(400, 401, 403, 408, 413, 422, 429, 503, 504)
)


def verdict_read(v: Verdict) -> VerdictRead:
    return VerdictRead(**_verdict_fields(v))


def _verdict_fields(v: Verdict) -> dict[str, Any]:
    return dict(
        flagged=v.flagged,
        category=v.category,
        score=v.score,
        categories=v.categories,
        evidence=[
            EvidenceRead(id=e.id, text=e.text, label=e.label, similarity=e.similarity, role=e.role) for e in v.evidence
        ],
        action=v.action,
        threshold=v.threshold,
        windows=v.windows,
        language=v.language,
        warnings=[w for w in v.warnings if w in ("non_english", "deobfuscated")],
    )


@router.post("/classify", response_model=ClassifyResult | ClassifyBatchResult)
async def classify(
    body: ClassifyRequest, service: ClassifyServiceDep, request: Request, request_timeout: RequestTimeoutHeader = None
) -> ClassifyResult | ClassifyBatchResult:
    """Classify `text` (→ one verdict) or `texts` (→ `results`, in order).

    A request may shorten the server's deadline (LIGHTGUARD_REQUEST_TIMEOUT_S) with `timeout` in the body or the
    `X-Request-Timeout` header (seconds); if the client disconnects, the request's remaining work is dropped."""
    timeout = body.timeout if body.timeout is not None else request_timeout
    if body.texts is not None:
        out = await cancel_on_disconnect(request, service.classify("texts", body.texts, timeout_s=timeout))
        return ClassifyBatchResult(
            results=[verdict_read(v) for v in out.verdicts], index_version=out.index_version, latency_ms=out.latency_ms
        )
    assert body.text is not None
    out = await cancel_on_disconnect(request, service.classify("text", [body.text], timeout_s=timeout))
    # built once from the verdict (not a VerdictRead dumped and validated again)
    fields = _verdict_fields(out.verdicts[0])
    return ClassifyResult(**fields, index_version=out.index_version, latency_ms=out.latency_ms)
