"""Request and response bodies of the HTTP API (one family per resource: *Create / *Update / *Read)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema, model_validator

from service.usecases.limits import content_character_class

TOPIC_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$"


def _storable(text: str) -> str:
    if "\x00" in text:
        raise ValueError("contains a NUL character (U+0000), which the database cannot store; remove it")
    return text


# Text the database stores (descriptions, examples): PostgreSQL refuses NUL in text columns, which reached the
# driver as a data error; it is a malformed request (422). Texts that are scored must hold content: at least one
# character that normalisation keeps (the use cases refuse a text that is blank once normalised). The schema
# states both with the components `ContentText` and `StoredContentText` (`text_schemas`, added to the OpenAPI
# document by service.api.contract): their pattern is built from the normaliser itself, since control, invisible,
# unassigned, private-use and surrogate code points cannot be listed by hand (schemathesis found texts of such
# characters only, schema-valid under the hand-written pattern, refused with 422).
StoredText = Annotated[str, AfterValidator(_storable), Field(json_schema_extra={"pattern": "^[^\\x00]*$"})]
# in allOf: pydantic resolves a field's top-level $ref against its own definitions, which do not hold these
CONTENT_TEXT = {"allOf": [{"$ref": "#/components/schemas/ContentText"}]}
InputText = Annotated[str, WithJsonSchema(CONTENT_TEXT)]
StoredInputText = Annotated[
    str, AfterValidator(_storable), WithJsonSchema({"allOf": [{"$ref": "#/components/schemas/StoredContentText"}]})
]
_TEXTS_SCHEMA = {"type": "array", "items": CONTENT_TEXT, "minItems": 1}


def text_schemas() -> dict[str, dict[str, object]]:
    """The OpenAPI components of scored texts (built once per process, ~0.8 s, when the document is first built)."""
    content = content_character_class()
    rule = (
        "holds at least one character that is not whitespace, a control or invisible format character, nor an "
        "unassigned, private-use or surrogate code point (a text that normalises to nothing is refused)"
    )
    return {
        "ContentText": {"type": "string", "pattern": content, "description": f"Text that {rule}"},
        "StoredContentText": {
            "type": "string",
            "pattern": f"^[^\\x00]*{content}[^\\x00]*$",
            "description": f"Text that {rule}, without NUL (U+0000), which the database cannot store",
        },
    }


def _absent_or(schema: dict[str, object]) -> WithJsonSchema:
    """An optional request field that may be left out but not sent as null: the schema shows it without null."""
    return WithJsonSchema(schema)


# Request bodies are validated strictly: `false` is not a threshold and `1` is not `true` (schemathesis found
# `{"threshold": false}` accepted as 0.0).
REQUEST = ConfigDict(extra="forbid", strict=True)


def _no_nulls(model: BaseModel, *names: str) -> None:
    """Optional request fields may be left out, not sent as null (the schema types them without null)."""
    sent_null = [n for n in names if n in model.model_fields_set and getattr(model, n) is None]
    if sent_null:
        raise ValueError(f"`{sent_null[0]}` is null; leave the field out instead")


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

    texts: Annotated[list[str] | None, _absent_or(_TEXTS_SCHEMA)] = None
    labels: Annotated[list[bool] | None, _absent_or({"type": "array", "items": {"type": "boolean"}, "minItems": 1})] = (
        None
    )
    examples: Annotated[
        list[LabelledExample] | None,
        _absent_or({"type": "array", "items": {"$ref": "#/components/schemas/LabelledExample"}, "minItems": 1}),
    ] = None
    target_fmr: Annotated[
        float | None,
        _absent_or({"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1}),
        Field(
            gt=0.0,
            lt=1.0,
            description="The false-match rate the `suggested.target_fmr` threshold keeps to on these items; left out: "
            "the index's topic_target_fmr",
        ),
    ] = None

    @model_validator(mode="after")
    def _one_form(self) -> TopicEvaluate:
        _no_nulls(self, "texts", "labels", "examples", "target_fmr")
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


# ---------------------------------------------------------------------- classify
MAX_TIMEOUT_S = 3600
TIMEOUT_SCHEMA = {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_TIMEOUT_S}
TIMEOUT_DOC = (
    "Seconds this request may take at most (never more than LIGHTGUARD_REQUEST_TIMEOUT_S); past it the work left is"
    " dropped and the answer is 408"
)


class ClassifyRequest(BaseModel):
    """Exactly one of `text` or `texts`."""

    # the schema states "exactly one" (oneOf) and no nulls, as the validator below enforces
    model_config = ConfigDict(
        extra="forbid", strict=True, json_schema_extra={"oneOf": [{"required": ["text"]}, {"required": ["texts"]}]}
    )

    text: Annotated[str | None, _absent_or(CONTENT_TEXT)] = None
    texts: Annotated[list[str] | None, _absent_or(_TEXTS_SCHEMA)] = None
    timeout: Annotated[
        float | None,
        _absent_or(TIMEOUT_SCHEMA),
        Field(gt=0, le=MAX_TIMEOUT_S, description=TIMEOUT_DOC + ". Also accepted as the X-Request-Timeout header"),
    ] = None

    @model_validator(mode="after")
    def _one_of(self) -> ClassifyRequest:
        _no_nulls(self, "text", "texts", "timeout")
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


# ---------------------------------------------------------------------- OpenAI moderations
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
    topic: str | None = Field(default=None, description="The topic an edit changed; null for a full build")


class BuildProgress(BaseModel):
    done: int = Field(description="Texts embedded so far")
    total: int = Field(description="Texts the build embeds")


class IndexRead(BaseModel):
    status: Literal["loading", "building", "ready", "failed"]
    rebuilding: bool
    progress: BuildProgress | None = Field(
        default=None, description="While a rebuild asked for with POST /v1/index/rebuild embeds: how far it is"
    )
    version: int
    model: str
    count: int
    built_at: datetime | None
    error: str | None
    recent_builds: list[IndexBuildRead]
    worker: int = Field(description="Process id of the worker that answered (each of `--workers N` has its own index)")


class IndexVerifyRead(BaseModel):
    ok: bool
    problems: list[str]
    db_exemplars: int
    index_exemplars: int
    index_version: int
    worker: int = Field(description="Process id of the worker that answered")


class ErrorRead(BaseModel):
    """The body of every error response (docs/api.md lists the codes)."""

    error: str = Field(description="Machine-readable code: `validation_error`, `not_found`, `conflict`, ...")
    detail: str = Field(description="What was wrong and how to fix it")
    field: str | None = Field(default=None, description="Where: a body field, a query or path parameter")


class HealthRead(BaseModel):
    status: str
    index_version: int | None = None
    detail: str | None = None
    worker: int | None = Field(default=None, description="Process id of the worker that answered (`/readyz`)")
