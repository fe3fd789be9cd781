"""Response bodies of /v1/decisions (the decision log, its counts) and /v1/me (who is calling)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class DecisionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    created_at: datetime
    endpoint: str = Field(description="`classify` or `moderations`")
    text_digest: str = Field(description="First 16 hex digits of the SHA-256 of the normalised text (NFKC, lower case)")
    text: str | None = Field(description="The raw text, only when the deployment stores it (LIGHTGUARD_LOG_TEXT)")
    flagged: bool
    category: str | None = Field(description="The flagged category or topic; null when not flagged")
    score: float = Field(description="The verdict's score in [0, 1]")
    action: Literal["block", "flag"] | None
    index_version: int
    api_key_id: int | None = Field(description="The key that asked; null without keys (or after the key was deleted)")


class DecisionPage(BaseModel):
    decisions: list[DecisionRead] = Field(description="Newest first")
    next_before_id: int | None = Field(
        description="Pass as `before_id` for the next (older) page; null on the last page"
    )
    text_logged: bool = Field(description="Whether this deployment stores raw texts (LIGHTGUARD_LOG_TEXT)")


class CategoryCounts(BaseModel):
    window: Literal["hour", "day"]
    since: datetime
    total: int = Field(description="Decisions in the window")
    flagged: int
    categories: dict[str, int] = Field(description="Flagged decisions per category or topic")


class DecisionCounts(BaseModel):
    now: datetime
    windows: list[CategoryCounts] = Field(description="The last hour, then the last day")


class IdentityRead(BaseModel):
    open: bool = Field(description="True when no API key exists: every endpoint is open to every caller")
    role: Literal["admin", "classify"] = Field(description="What the caller may do (`admin` on an open server)")
    key_id: int | None = Field(description="The caller's key id; null on an open server")
