"""What the OpenAPI document states beyond the routes' own schemas: the components of scored texts."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from service.schemas.common import text_schemas


def document_texts(app: FastAPI) -> None:
    """Add `ContentText` and `StoredContentText` (referenced by the request schemas) when the document is built."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = build()
            document.setdefault("components", {}).setdefault("schemas", {}).update(text_schemas())
        return app.openapi_schema or {}

    app.openapi = openapi  # type: ignore[method-assign]
