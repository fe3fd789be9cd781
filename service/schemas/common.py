"""What the HTTP schemas share: text types and their OpenAPI components, strict requests, timeouts, errors,
health. One module per resource family beside it: topics, classify, index, keys, decisions (*Create / *Read)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema

from service.usecases.limits import content_character_class

TOPIC_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$"


def storable(text: str) -> str:
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
StoredText = Annotated[str, AfterValidator(storable), Field(json_schema_extra={"pattern": "^[^\\x00]*$"})]
# in allOf: pydantic resolves a field's top-level $ref against its own definitions, which do not hold these
CONTENT_TEXT = {"allOf": [{"$ref": "#/components/schemas/ContentText"}]}
InputText = Annotated[str, WithJsonSchema(CONTENT_TEXT)]
StoredInputText = Annotated[
    str, AfterValidator(storable), WithJsonSchema({"allOf": [{"$ref": "#/components/schemas/StoredContentText"}]})
]
TEXTS_SCHEMA = {"type": "array", "items": CONTENT_TEXT, "minItems": 1}


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


def absent_or(schema: dict[str, object]) -> WithJsonSchema:
    """An optional request field that may be left out but not sent as null: the schema shows it without null."""
    return WithJsonSchema(schema)


# Request bodies are validated strictly: `false` is not a threshold and `1` is not `true` (schemathesis found
# `{"threshold": false}` accepted as 0.0).
REQUEST = ConfigDict(extra="forbid", strict=True)


def no_nulls(model: BaseModel, *names: str) -> None:
    """Optional request fields may be left out, not sent as null (the schema types them without null)."""
    sent_null = [n for n in names if n in model.model_fields_set and getattr(model, n) is None]
    if sent_null:
        raise ValueError(f"`{sent_null[0]}` is null; leave the field out instead")


# ---------------------------------------------------------------------- timeouts (a body field and a header)
MAX_TIMEOUT_S = 3600
TIMEOUT_SCHEMA = {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_TIMEOUT_S}
TIMEOUT_DOC = (
    "Seconds this request may take at most (never more than LIGHTGUARD_REQUEST_TIMEOUT_S); past it the work left is"
    " dropped and the answer is 408"
)


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
