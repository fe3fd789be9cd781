"""Topics: custom topics and built-in categories, their examples, evaluating a topic (*Create / *Update / *Read)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from service.schemas.common import (
    REQUEST,
    TEXTS_SCHEMA,
    TOPIC_NAME,
    InputText,
    StoredInputText,
    StoredText,
    absent_or,
    no_nulls,
)


class ExemplarRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    text: str
    role: Literal["positive", "allow"]
    source: str
    created_at: datetime


class TopicCreate(BaseModel):
    model_config = REQUEST

    name: str = Field(pattern=TOPIC_NAME, description="Unique; letters, digits, `_.-`; reported as `category`")
    description: StoredText = Field(default="", max_length=2000)
    action: Literal["block", "flag"] = "block"
    examples: list[StoredInputText] = Field(
        min_length=1, description="Prompts that should trigger the topic (5 or more is best)"
    )
    allow_examples: list[StoredInputText] = Field(
        default_factory=list, description="Hard negatives that must not trigger it"
    )
    threshold: float | None = Field(default=None, ge=0.0, le=1.0, description="None = calibrate from the examples")
    enabled: bool = True


class TopicUpdate(BaseModel):
    """Fields left out stay as they are; `threshold: null` recalibrates (custom) or restores the default (built-in)."""

    model_config = REQUEST

    description: StoredText | None = Field(default=None, max_length=2000)
    action: Literal["block", "flag"] | None = None
    enabled: bool | None = None
    threshold: float | None = Field(default=None, ge=0.0, le=1.0)


class ExamplesCreate(BaseModel):
    """At least one example in `examples` or `allow_examples` (stated in the schema as anyOf)."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "anyOf": [
                {"required": ["examples"], "properties": {"examples": {"minItems": 1}}},
                {"required": ["allow_examples"], "properties": {"allow_examples": {"minItems": 1}}},
            ]
        },
    )

    examples: list[StoredInputText] = Field(default_factory=list)
    allow_examples: list[StoredInputText] = Field(default_factory=list)

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
    model_config = REQUEST

    text: InputText
    match: bool = Field(description="True when the text belongs to the topic")


class TopicEvaluate(BaseModel):
    """Labelled texts: either `texts` + `labels` (same length) or `examples` of `{text, match}`."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "oneOf": [
                {"required": ["texts", "labels"], "not": {"required": ["examples"]}},
                {"required": ["examples"], "not": {"anyOf": [{"required": ["texts"]}, {"required": ["labels"]}]}},
            ]
        },
    )

    texts: Annotated[list[str] | None, absent_or(TEXTS_SCHEMA)] = None
    labels: Annotated[list[bool] | None, absent_or({"type": "array", "items": {"type": "boolean"}, "minItems": 1})] = (
        None
    )
    examples: Annotated[
        list[LabelledExample] | None,
        absent_or({"type": "array", "items": {"$ref": "#/components/schemas/LabelledExample"}, "minItems": 1}),
    ] = None
    target_fmr: Annotated[
        float | None,
        absent_or({"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1}),
        Field(
            gt=0.0,
            lt=1.0,
            description="The false-match rate the `suggested.target_fmr` threshold keeps to on these items; left out: "
            "the index's topic_target_fmr",
        ),
    ] = None

    @model_validator(mode="after")
    def _one_form(self) -> TopicEvaluate:
        no_nulls(self, "texts", "labels", "examples", "target_fmr")
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
    target_fmr: float = Field(description="The request's target_fmr, else the index's topic_target_fmr (GuardConfig)")
    current: ThresholdMetrics = Field(description="Metrics at the topic's current threshold")
    suggested: ThresholdSuggestion
    scores: list[float] = Field(description="The topic score of each item, in request order (cosine units)")
    index_version: int
