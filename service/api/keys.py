"""API keys: list, create, change a key's limits, revoke (admin only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, status

from service.api.topics import DB_ID_MAX
from service.deps import AdminKeyDep, ContextDep, SessionDep
from service.exception_handlers import error_responses
from service.schemas.keys import KeyCreate, KeyCreated, KeyList, KeyRead, KeyUpdate
from service.usecases.keys import KeyService
from service.usecases.quotas import KeyLimits

router = APIRouter(prefix="/v1/keys", tags=["keys"], responses=error_responses(400, 401, 403, 422, 503))
KeyId = Annotated[int, Path(ge=1, le=DB_ID_MAX, description="Key id (GET /v1/keys lists them)")]


@router.get("", response_model=KeyList)
def list_keys(session: SessionDep, _key: AdminKeyDep) -> KeyList:
    """Every key, revoked ones included (never the tokens: only their hashes are stored)."""
    return KeyList(keys=[KeyRead.model_validate(k) for k in KeyService(session).all_keys()])


@router.post("", response_model=KeyCreated, status_code=status.HTTP_201_CREATED)
def create_key(body: KeyCreate, ctx: ContextDep, session: SessionDep, _key: AdminKeyDep) -> KeyCreated:
    """A new key; its `token` is in this answer only. Creating the first key turns authentication on."""
    key, token = KeyService(session).create(
        body.role, body.name, limits=KeyLimits(body.rate_limit, body.max_concurrency)
    )
    ctx.key_cache.invalidate()
    return KeyCreated(**KeyRead.model_validate(key).model_dump(), token=token)


@router.patch("/{key_id}", response_model=KeyRead, responses=error_responses(404))
def update_key(key_id: KeyId, body: KeyUpdate, ctx: ContextDep, session: SessionDep, _key: AdminKeyDep) -> KeyRead:
    """Change a key's limits; every process applies them within LIGHTGUARD_KEY_CACHE_TTL_S."""
    keys = KeyService(session)
    current = keys.get(key_id)
    sent = body.model_fields_set
    limits = KeyLimits(
        body.rate_limit if "rate_limit" in sent else current.rate_limit,
        body.max_concurrency if "max_concurrency" in sent else current.max_concurrency,
    )
    key = keys.set_limits(key_id, limits)
    ctx.key_cache.invalidate()
    return KeyRead.model_validate(key)


@router.delete("/{key_id}", response_model=KeyRead, responses=error_responses(404))
def revoke_key(key_id: KeyId, ctx: ContextDep, session: SessionDep, _key: AdminKeyDep) -> KeyRead:
    """Revoke a key: admin routes refuse it at once, classify routes within LIGHTGUARD_KEY_CACHE_TTL_S."""
    key = KeyService(session).revoke(key_id)
    ctx.key_cache.invalidate()
    return KeyRead.model_validate(key)
