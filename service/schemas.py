"""Request and response bodies of the HTTP API (one family per resource: *Create / *Update / *Read)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

TOPIC_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$"


class ExemplarRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    text: str
    role: Literal["positive", "allow"]
    source: str
    created_at: datetime


class TopicCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=TOPIC_NAME, description="Unique; letters, digits, `_.-`; reported as `category`")
    description: str = Field(default="", max_length=2000)
    action: Literal["block", "flag"] = "block"
    examples: list[str] = Field(min_length=1, description="Prompts that should trigger the topic (5 or more is best)")
    allow_examples: list[str] = Field(default_factory=list, description="Hard negatives that must not trigger it")
    threshold: float | None = Field(default=None, ge=0.0, le=1.0, description="None = calibrate from the examples")
    enabled: bool = True


class TopicUpdate(BaseModel):
    """Fields left out stay as they are; `threshold: null` recalibrates (custom) or restores the default (built-in)."""

    model_config = ConfigDict(extra="forbid")

    description: str | None = Field(default=None, max_length=2000)
    action: Literal["block", "flag"] | None = None
    enabled: bool | None = None
    threshold: float | None = Field(default=None, ge=0.0, le=1.0)


class ExamplesCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    examples: list[str] = Field(default_factory=list)
    allow_examples: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _not_empty(self) -> ExamplesCreate:
        if not self.examples and not self.allow_examples:
            raise ValueError("send at least one of `examples` or `allow_examples`")
        return self


class TopicRead(BaseModel):
    id: int
    name: str
    title: str
    description: str
    kind: Literal["builtin", "custom", "safe"]
    action: Literal["block", "flag"]
    enabled: bool
    threshold: float | None
    threshold_source: Literal["calibrated", "manual"]
    openai_keys: list[str]
    example_count: int
    created_at: datetime
    updated_at: datetime
    index_version: int


class TopicDetail(TopicRead):
    examples: list[ExemplarRead]


class TopicList(BaseModel):
    topics: list[TopicRead]
    index_version: int


class ExamplesAdded(BaseModel):
    topic: TopicRead
    added: list[ExemplarRead]


class LabelledExample(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str
    match: bool = Field(description="True when the text belongs to the topic")


class TopicEvaluate(BaseModel):
    """Labelled texts: either `texts` + `labels` (same length) or `examples` of `{text, match}`."""

    model_config = ConfigDict(extra="forbid")

    texts: list[str] | None = None
    labels: list[bool] | None = None
    examples: list[LabelledExample] | None = None

    @model_validator(mode="after")
    def _one_form(self) -> TopicEvaluate:
        if (self.examples is None) == (self.texts is None):
            raise ValueError("send either `texts` with `labels`, or `examples` as [{text, match}]")
        if self.texts is not None and (self.labels is None or len(self.labels) != len(self.texts)):
            raise ValueError("`labels` must be a list of true/false with one entry per item of `texts`")
        if self.examples is not None and self.labels is not None:
            raise ValueError("`labels` goes with `texts`; `examples` carry their own `match`")
        return self

    def pairs(self) -> tuple[list[str], list[bool]]:
        if self.examples is not None:
            return [e.text for e in self.examples], [e.match for e in self.examples]
        return list(self.texts or []), list(self.labels or [])


class ThresholdMetrics(BaseModel):
    threshold: float
    precision: float
    recall: float
    f1: float
    false_match_rate: float = Field(description="Share of the non-matching items scored at or above the threshold")


class ThresholdSuggestion(BaseModel):
    best_f1: ThresholdMetrics = Field(description="The threshold with the highest F1 on the given items")
    target_fmr: ThresholdMetrics = Field(
        description="The lowest threshold whose false-match rate on the given items is <= `target_fmr`"
    )


class TopicEvaluation(BaseModel):
    topic_id: int
    name: str
    items: int
    positives: int
    negatives: int
    target_fmr: float = Field(description="The index's topic_target_fmr (GuardConfig)")
    current: ThresholdMetrics = Field(description="Metrics at the topic's current threshold")
    suggested: ThresholdSuggestion
    scores: list[float] = Field(description="The topic score of each item, in request order (cosine units)")
    index_version: int


# ---------------------------------------------------------------------- classify
class ClassifyRequest(BaseModel):
    """Exactly one of `text` or `texts`."""

    model_config = ConfigDict(extra="forbid")

    text: str | None = None
    texts: list[str] | None = None

    @model_validator(mode="after")
    def _one_of(self) -> ClassifyRequest:
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
    windows: int


class ClassifyResult(VerdictRead):
    index_version: int
    latency_ms: float


class ClassifyBatchResult(BaseModel):
    results: list[VerdictRead]
    index_version: int
    latency_ms: float


# ---------------------------------------------------------------------- OpenAI moderations
class ModerationTextPart(BaseModel):
    type: Literal["text"]
    text: str


class ModerationRequest(BaseModel):
    input: str | list[str] | list[ModerationTextPart]
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


# ---------------------------------------------------------------------- index, health
class IndexBuildRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    version: int
    trigger: str
    model_id: str
    status: str
    exemplar_count: int
    checksum: str | None
    error: str | None
    started_at: datetime
    finished_at: datetime | None


class IndexRead(BaseModel):
    status: Literal["loading", "building", "ready", "failed"]
    rebuilding: bool
    version: int
    model: str
    count: int
    built_at: datetime | None
    error: str | None
    recent_builds: list[IndexBuildRead]


class IndexVerifyRead(BaseModel):
    ok: bool
    problems: list[str]
    db_exemplars: int
    index_exemplars: int
    index_version: int


class HealthRead(BaseModel):
    status: str
    index_version: int | None = None
    detail: str | None = None
