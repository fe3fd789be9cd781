"""POST /v1/moderations: OpenAI-compatible moderation (request, response and auth header)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from service.api.disconnect import cancel_on_disconnect
from service.deps import ClassifyServiceDep, RequestTimeoutHeader
from service.exception_handlers import error_responses
from service.schemas.classify import ModerationRequest, ModerationResponse

router = APIRouter(
    prefix="/v1", tags=["moderations"], responses=error_responses(400, 401, 403, 408, 413, 422, 429, 503, 504)
)


@router.post("/moderations", response_model=ModerationResponse)
async def moderations(
    body: ModerationRequest, service: ClassifyServiceDep, request: Request, request_timeout: RequestTimeoutHeader = None
) -> ModerationResponse:
    """`input` is a string, a list of strings, or a list of `{"type": "text", "text": ...}` parts. The
    `X-Request-Timeout` header (seconds) may shorten the server's deadline."""
    if isinstance(body.input, str):
        texts = [body.input]
    else:
        texts = [item if isinstance(item, str) else item.text for item in body.input]
    moderation = await cancel_on_disconnect(request, service.moderate(texts, body.model, request_timeout))
    return ModerationResponse.model_validate(moderation, from_attributes=True)
