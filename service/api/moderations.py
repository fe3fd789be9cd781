"""POST /v1/moderations: OpenAI-compatible moderation (request, response and auth header)."""

from __future__ import annotations

from fastapi import APIRouter

from service.deps import ClassifyServiceDep
from service.exception_handlers import error_responses
from service.schemas import ModerationRequest, ModerationResponse

router = APIRouter(prefix="/v1", tags=["moderations"], responses=error_responses(400, 401, 403, 413, 422, 503))


@router.post("/moderations", response_model=ModerationResponse)
async def moderations(body: ModerationRequest, service: ClassifyServiceDep) -> ModerationResponse:
    """`input` is a string, a list of strings, or a list of `{"type": "text", "text": ...}` parts."""
    if isinstance(body.input, str):
        texts = [body.input]
    else:
        texts = [item if isinstance(item, str) else item.text for item in body.input]
    return await service.moderate(texts, body.model)
