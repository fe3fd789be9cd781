"""POST /v1/classify: lightguard's native verdicts for one text or a batch."""

from __future__ import annotations

from fastapi import APIRouter

from index import Verdict
from service.deps import ClassifyServiceDep
from service.exception_handlers import error_responses
from service.schemas import ClassifyBatchResult, ClassifyRequest, ClassifyResult, EvidenceRead, VerdictRead

router = APIRouter(prefix="/v1", tags=["classify"], responses=error_responses(400, 401, 403, 413, 422, 503))


def verdict_read(v: Verdict) -> VerdictRead:
    return VerdictRead(
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
    )


@router.post("/classify", response_model=ClassifyResult | ClassifyBatchResult)
async def classify(body: ClassifyRequest, service: ClassifyServiceDep) -> ClassifyResult | ClassifyBatchResult:
    """Classify `text` (→ one verdict) or `texts` (→ `results`, in order)."""
    if body.texts is not None:
        out = await service.classify("texts", body.texts)
        return ClassifyBatchResult(
            results=[verdict_read(v) for v in out.verdicts], index_version=out.index_version, latency_ms=out.latency_ms
        )
    assert body.text is not None
    out = await service.classify("text", [body.text])
    verdict = verdict_read(out.verdicts[0])
    return ClassifyResult(**verdict.model_dump(), index_version=out.index_version, latency_ms=out.latency_ms)
