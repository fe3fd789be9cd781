"""API keys: random `lg_...` tokens stored as SHA-256 (plus a display prefix), checked with compare_digest."""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from typing import Literal

from sqlalchemy.orm import Session

from service.errors import AuthenticationError, NotFoundError, PermissionDeniedError
from service.models import ApiKey
from service.repositories import ApiKeyRepository

log = logging.getLogger(__name__)
KeyRole = Literal["admin", "classify"]
PREFIX_CHARS = 11  # "lg_" + 8 characters: enough to tell keys apart in a listing, useless to an attacker
CREATE_HINT = "create one with `lightguard keys create --role admin`"


def hash_key(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    return "lg_" + secrets.token_urlsafe(32)


class KeyService:
    def __init__(self, session: Session) -> None:
        self.session = session
        self.keys = ApiKeyRepository(session)

    def create(self, role: KeyRole, name: str = "", token: str | None = None) -> tuple[ApiKey, str]:
        """A new key and its token (shown once: only the hash is stored)."""
        token = token or new_token()
        key = self.keys.add(ApiKey(name=name, prefix=token[:PREFIX_CHARS], key_hash=hash_key(token), role=role))
        return key, token

    def ensure(self, token: str, role: KeyRole, name: str) -> ApiKey | None:
        """Register `token` unless it is already known (a revoked one stays revoked); returns the new key."""
        existing = self.keys.by_hash(hash_key(token))
        if existing is not None:
            if existing.revoked_at is not None:
                log.warning("LIGHTGUARD_ADMIN_KEY was revoked (key id %d); it stays revoked", existing.id)
            return None
        return self.create(role, name, token)[0]

    def all_keys(self) -> list[ApiKey]:
        return self.keys.find_all()

    def revoke(self, key_id: int) -> ApiKey:
        key = self.keys.get(key_id)
        if key is None:
            raise NotFoundError(f"no API key with id {key_id}; see `lightguard keys list`", "key_id")
        if key.revoked_at is None:
            self.keys.revoke(key)
        return key

    def open_mode(self) -> bool:
        return self.keys.count_active() == 0

    def authenticate(self, authorization: str | None, role: KeyRole) -> ApiKey | None:
        """The caller's key, or None in open mode (no keys configured). Raises 401/403-mapped errors."""
        if self.open_mode():
            return None
        if not authorization:
            raise AuthenticationError(f"missing API key: send `Authorization: Bearer <key>`; {CREATE_HINT}")
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise AuthenticationError("malformed Authorization header: expected `Authorization: Bearer <key>`")
        digest = hash_key(token)
        match = next(
            (k for k in self.keys.active_by_prefix(token[:PREFIX_CHARS]) if hmac.compare_digest(k.key_hash, digest)),
            None,
        )
        if match is None:
            raise PermissionDeniedError("the API key is unknown or revoked; check it with `lightguard keys list`")
        if role == "admin" and match.role != "admin":
            raise PermissionDeniedError(f"this key has role {match.role!r}; the operation needs an 'admin' key")
        return match
