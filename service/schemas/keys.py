"""Request and response bodies of /v1/keys (API keys and their per-key limits)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from service.schemas.common import REQUEST

RATE_LIMIT_DOC = (
    "Texts per period in the `limits` notation (`100/second`, `5000/minute;100000/day`), or `none` for unlimited;"
    " null or left out: the service default (LIGHTGUARD_RATE_LIMIT)"
)
_ONE_RATE = "[1-9][0-9]{0,8} ?(/|per) ?([1-9][0-9]{0,5} ?)?(second|minute|hour|day|month|year)s?"
RATE_LIMIT_PATTERN = f"^(none|unlimited|{_ONE_RATE}( ?; ?{_ONE_RATE})*)$"
"""What `service.usecases.quotas.parse_rate` accepts (a test checks the two agree), stated in the schema."""
CONCURRENCY_DOC = "Requests in flight at most; null or left out: the service default (LIGHTGUARD_MAX_CONCURRENCY)"


class KeyRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    prefix: str = Field(description="The first characters of the token, to tell keys apart")
    role: Literal["admin", "classify"]
    rate_limit: str | None = Field(description=RATE_LIMIT_DOC)
    max_concurrency: int | None = Field(description=CONCURRENCY_DOC)
    created_at: datetime
    revoked_at: datetime | None


class KeyCreated(KeyRead):
    token: str = Field(description="The key itself: shown once, only its hash is stored")


class KeyList(BaseModel):
    keys: list[KeyRead]


class KeyCreate(BaseModel):
    model_config = REQUEST

    role: Literal["admin", "classify"] = "classify"
    name: str = Field(default="", max_length=100, pattern="^[^\\x00]*$")
    rate_limit: str | None = Field(default=None, max_length=200, pattern=RATE_LIMIT_PATTERN, description=RATE_LIMIT_DOC)
    max_concurrency: int | None = Field(default=None, ge=1, le=100_000, description=CONCURRENCY_DOC)


class KeyUpdate(BaseModel):
    """Fields left out stay as they are; null sets a field back to the service default. At least one field."""

    # `{}` changes nothing and is refused (422): minProperties says so in the schema (schemathesis sent `{}`)
    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"minProperties": 1})

    rate_limit: str | None = Field(default=None, max_length=200, pattern=RATE_LIMIT_PATTERN, description=RATE_LIMIT_DOC)
    max_concurrency: int | None = Field(default=None, ge=1, le=100_000, description=CONCURRENCY_DOC)

    @model_validator(mode="after")
    def _something(self) -> KeyUpdate:
        if not self.model_fields_set:
            raise ValueError("send `rate_limit` and/or `max_concurrency` (null: back to the service default)")
        return self
