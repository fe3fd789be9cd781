"""Classification: native verdicts (/v1/classify) and OpenAI-compatible moderations (/v1/moderations)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from service.schemas.common import (
    CONTENT_TEXT,
    MAX_TIMEOUT_S,
    TEXTS_SCHEMA,
    TIMEOUT_DOC,
    TIMEOUT_SCHEMA,
    InputText,
    absent_or,
    no_nulls,
)


class ClassifyRequest(BaseModel):
    """Exactly one of `text` or `texts`."""

    # the schema states "exactly one" (oneOf) and no nulls, as the validator below enforces
    model_config = ConfigDict(
        extra="forbid", strict=True, json_schema_extra={"oneOf": [{"required": ["text"]}, {"required": ["texts"]}]}
    )

    text: Annotated[str | None, absent_or(CONTENT_TEXT)] = None
    texts: Annotated[list[str] | None, absent_or(TEXTS_SCHEMA)] = None
    timeout: Annotated[
        float | None,
        absent_or(TIMEOUT_SCHEMA),
        Field(gt=0, le=MAX_TIMEOUT_S, description=TIMEOUT_DOC + ". Also accepted as the X-Request-Timeout header"),
    ] = None

    @model_validator(mode="after")
    def _one_of(self) -> ClassifyRequest:
        no_nulls(self, "text", "texts", "timeout")
        if (self.text is None) == (self.texts is None):
            raise ValueError("send exactly one of `text` (a string) or `texts` (a list of strings)")
        return self


class EvidenceRead(BaseModel):
    id: int
    text: str
    label: str
    similarity: float = Field(description="Cosine similarity in [-1, 1]")
    role: Literal["positive", "allow"]


class VerdictRead(BaseModel):
    flagged: bool
    category: str | None
    score: float = Field(description="Unsafe score in [0, 1]")
    categories: dict[str, float]
    evidence: list[EvidenceRead]
    action: Literal["block", "flag"] | None
    threshold: float | None
    windows: int = Field(description="The text's own 128-token windows (sentence units and variants not counted)")
    language: str | None = Field(
        default=None,
        description="Detected ISO 639-1 language code; null when the text is too short or too coded to tell. "
        "The encoder is English-only: scores of other languages are not reliable",
    )
    warnings: list[Literal["non_english", "deobfuscated"]] = Field(
        default_factory=list,
        description="non_english: confidently not English (route it elsewhere rather than trust the score); "
        "deobfuscated: an obfuscated form (spaced letters, leetspeak, base64/hex/URL/ROT13/reversed) was undone "
        "and scored as an extra unit",
    )


class ClassifyResult(VerdictRead):
    index_version: int
    latency_ms: float


class ClassifyBatchResult(BaseModel):
    results: list[VerdictRead]
    index_version: int
    latency_ms: float


# OpenAI moderations
class ModerationTextPart(BaseModel):
    model_config = ConfigDict(strict=True)

    type: Literal["text"]
    text: InputText


class ModerationRequest(BaseModel):
    model_config = ConfigDict(strict=True)

    input: (
        InputText
        | Annotated[list[InputText], Field(json_schema_extra={"minItems": 1})]
        | Annotated[list[ModerationTextPart], Field(json_schema_extra={"minItems": 1})]
    )
    model: str | None = None


class ModerationResult(BaseModel):
    flagged: bool
    categories: dict[str, bool]
    category_scores: dict[str, float]
    category_applied_input_types: dict[str, list[str]]


class ModerationResponse(BaseModel):
    id: str
    model: str
    results: list[ModerationResult]
