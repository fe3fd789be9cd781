"""API keys: random `lg_...` tokens stored as SHA-256 (plus a display prefix), checked with compare_digest."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from sqlalchemy.orm import Session, sessionmaker

from service.db.models import ApiKey
from service.db.repositories import ApiKeyRepository
from service.errors import AuthenticationError, InvalidRequestError, NotFoundError, PermissionDeniedError
from service.usecases.quotas import KeyLimits, parse_rate

log = logging.getLogger(__name__)
KeyRole = Literal["admin", "classify"]
PREFIX_CHARS = 11  # "lg_" + 8 characters: enough to tell keys apart in a listing, useless to an attacker
CREATE_HINT = "create one with `lightguard keys create --role admin`"
UNKNOWN_KEY = "the API key is unknown or revoked; check it with `lightguard keys list`"


def hash_key(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    return "lg_" + secrets.token_urlsafe(32)


class KeyService:
    def __init__(self, session: Session) -> None:
        self.session = session
        self.keys = ApiKeyRepository(session)

    def create(
        self, role: KeyRole, name: str = "", token: str | None = None, limits: KeyLimits | None = None
    ) -> tuple[ApiKey, str]:
        """A new key and its token (shown once: only the hash is stored); `limits` None: the service defaults."""
        token = token or new_token()
        limits = checked_limits(limits or KeyLimits())
        key = self.keys.add(
            ApiKey(
                name=name,
                prefix=token[:PREFIX_CHARS],
                key_hash=hash_key(token),
                role=role,
                rate_limit=limits.rate_limit,
                max_concurrency=limits.max_concurrency,
            )
        )
        return key, token

    def get(self, key_id: int) -> ApiKey:
        key = self.keys.get(key_id)
        if key is None:
            raise NotFoundError(f"no API key with id {key_id}; see `lightguard keys list`", "key_id")
        return key

    def set_limits(self, key_id: int, limits: KeyLimits) -> ApiKey:
        """Replace a key's own limits (None in a field: back to the service default). Takes effect within
        LIGHTGUARD_KEY_CACHE_TTL_S on every process."""
        key = self.get(key_id)
        limits = checked_limits(limits)
        self.keys.set_limits(key, limits.rate_limit, limits.max_concurrency)
        return key

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
        key = self.get(key_id)
        if key.revoked_at is None:
            self.keys.revoke(key)
        return key

    def open_mode(self) -> bool:
        return self.keys.count_active() == 0

    def authenticate(self, authorization: str | None, role: KeyRole) -> ApiKey | None:
        """The caller's key, or None in open mode (no keys configured). Raises 401/403-mapped errors."""
        if self.open_mode():
            return None
        token = bearer_token(authorization)
        digest = hash_key(token)
        match = next(
            (k for k in self.keys.active_by_prefix(token[:PREFIX_CHARS]) if hmac.compare_digest(k.key_hash, digest)),
            None,
        )
        if match is None:
            raise PermissionDeniedError(UNKNOWN_KEY)
        check_role(match.role, role)
        return match


def checked_limits(limits: KeyLimits) -> KeyLimits:
    """`limits` with a valid rate (InvalidRequestError otherwise) and a positive concurrency."""
    if limits.rate_limit is not None:
        parse_rate(limits.rate_limit)
    if limits.max_concurrency is not None and limits.max_concurrency < 1:
        raise InvalidRequestError(
            f"max_concurrency must be at least 1, got {limits.max_concurrency} (null: the service default)",
            "max_concurrency",
        )
    return limits


@dataclass(frozen=True, slots=True)
class KeyIdentity:
    """Who called: enough for the decision log, the role check and the key's limits, without a database row."""

    id: int
    role: str
    limits: KeyLimits = field(default_factory=KeyLimits)


class KeyCache:
    """The active keys in memory, so the classify path makes no database round trip per request.

    The snapshot is reloaded when it is older than `ttl_s`: a key revoked with `lightguard keys revoke` (another
    process) stops working within `ttl_s`. An unknown token forces a reload, at most once per `miss_refresh_s`, so a
    key created a moment ago works at once and a flood of bad tokens cannot hammer the database. A reload that cannot
    reach the database raises, and the request gets the 503 it got when every request queried the database.
    Admin routes do not use the cache: they check the database on every request.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        ttl_s: float = 1.0,
        miss_refresh_s: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessions = sessions
        self.ttl_s = ttl_s
        self.miss_refresh_s = miss_refresh_s
        self._clock = clock
        self._by_prefix: dict[str, list[tuple[str, KeyIdentity]]] = {}
        self._loaded_at: float | None = None

    def invalidate(self) -> None:
        self._loaded_at = None

    def refresh(self) -> None:
        """Reload the active keys (blocking database I/O: call it off the event loop)."""
        loaded_at = self._clock()
        with self._sessions() as session:
            keys = [k for k in ApiKeyRepository(session).find_all() if k.revoked_at is None]
        by_prefix: dict[str, list[tuple[str, KeyIdentity]]] = {}
        for key in keys:
            limits = KeyLimits(key.rate_limit, key.max_concurrency)
            by_prefix.setdefault(key.prefix, []).append((key.key_hash, KeyIdentity(key.id, key.role, limits)))
        self._by_prefix, self._loaded_at = by_prefix, loaded_at  # one assignment: readers see old or new

    async def authenticate(self, authorization: str | None, role: KeyRole) -> KeyIdentity | None:
        """Like `KeyService.authenticate`, from the snapshot; None in open mode."""
        if self._age() > self.ttl_s:
            await asyncio.to_thread(self.refresh)
        if authorization and self._age() > self.miss_refresh_s:
            token = authorization.strip().partition(" ")[2].strip()
            if self._lookup(token) is None:  # perhaps a key created since the last load (or the first key)
                await asyncio.to_thread(self.refresh)
        if not self._by_prefix:
            return None
        match = self._lookup(bearer_token(authorization))
        if match is None:
            raise PermissionDeniedError(UNKNOWN_KEY)
        check_role(match.role, role)
        return match

    def _age(self) -> float:
        return float("inf") if self._loaded_at is None else self._clock() - self._loaded_at

    def _lookup(self, token: str) -> KeyIdentity | None:
        digest = hash_key(token)
        candidates = self._by_prefix.get(token[:PREFIX_CHARS], [])
        return next((ident for key_hash, ident in candidates if hmac.compare_digest(key_hash, digest)), None)


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer <key>` header (401-mapped errors when missing or malformed)."""
    if not authorization:
        raise AuthenticationError(f"missing API key: send `Authorization: Bearer <key>`; {CREATE_HINT}")
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise AuthenticationError("malformed Authorization header: expected `Authorization: Bearer <key>`")
    return token


def check_role(have: str, need: KeyRole) -> None:
    if need == "admin" and have != "admin":
        raise PermissionDeniedError(f"this key has role {have!r}; the operation needs an 'admin' key")
