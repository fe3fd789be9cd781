"""Maps errors to HTTP responses shaped `{"error": ..., "detail": ..., "field"?: ...}`."""

from __future__ import annotations

import functools
import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from index import InvalidInputError, LightguardError, UnknownExemplarError, UnknownLabelError
from service.errors import (
    AuthenticationError,
    ClientDeadlineExceededError,
    ClientDisconnectedError,
    ConflictError,
    DatabaseUnavailableError,
    DeadlineExceededError,
    IndexBuildError,
    IndexNotReadyError,
    InvalidRequestError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitedError,
    RebuildRunningError,
    ServiceError,
)
from service.schemas.common import ErrorRead

log = logging.getLogger(__name__)

STATUS: dict[type[ServiceError], int] = {
    InvalidRequestError: 422,
    PayloadTooLargeError: 413,
    NotFoundError: 404,
    ConflictError: 409,
    AuthenticationError: 401,
    PermissionDeniedError: 403,
    IndexNotReadyError: 503,
    DatabaseUnavailableError: 503,
    IndexBuildError: 500,
    RateLimitedError: 429,
    ClientDeadlineExceededError: 408,  # before its base class: the first match wins
    DeadlineExceededError: 504,
    ClientDisconnectedError: 499,  # nginx's "client closed request": no one reads it, the metrics and log do
}

_HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}

_MEANINGS = {
    400: "The body is not valid JSON (`invalid_json`)",
    401: "No API key, or a malformed Authorization header, while keys are configured (`unauthenticated`)",
    403: "Unknown or revoked key, or a `classify` key on an admin route (`forbidden`)",
    404: "No such topic or example (`not_found`)",
    409: "A duplicate topic name, a built-in category, or a topic's last positive example (`conflict`)",
    413: "Body above LIGHTGUARD_MAX_BODY_BYTES, refused before parsing, or a request that needs more model runs"
    " than LIGHTGUARD_MAX_REQUEST_COST (`payload_too_large`)",
    422: "Malformed or out-of-limit request (`validation_error`, `invalid_request`, `invalid_input`)",
    429: "The key is over its rate or concurrency limit; retry after `Retry-After` seconds (`rate_limited`)",
    408: "The request passed its own `timeout` / X-Request-Timeout; its work was dropped (`deadline_exceeded`)",
    504: "The request passed its deadline (LIGHTGUARD_REQUEST_TIMEOUT_S or its `timeout`); its work was dropped"
    " (`deadline_exceeded`)",
    503: "The database is unreachable, or the index is not loaded yet (`database_unavailable`, `index_not_ready`)",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error statuses a route answers with; every error body is `ErrorRead`."""
    return {code: {"model": ErrorRead, "description": _MEANINGS[code]} for code in codes}


def error_body(error: str, detail: str, field: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"error": error, "detail": detail}
    if field is not None:
        body["field"] = field
    return body


def _location(loc: Any) -> str:
    parts = [str(p) for p in loc if p != "body"]
    return ".".join(parts) or "body"


async def _service_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    status = next((code for kind, code in STATUS.items() if isinstance(exc, kind)), 400)
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, AuthenticationError) else None
    body = error_body(exc.code, exc.detail, exc.field)
    if isinstance(exc, RateLimitedError):
        headers = {"Retry-After": str(exc.retry_after_s)}
    if isinstance(exc, RebuildRunningError):  # names the running build: where to poll it instead
        body["build_id"] = exc.build_id
        headers = {"Location": f"/v1/index/builds/{exc.build_id}"}
    return JSONResponse(body, status_code=status, headers=headers)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        msg = next(str(e.get("ctx", {}).get("error", e.get("msg"))) for e in errors if e.get("type") == "json_invalid")
        return JSONResponse(error_body("invalid_json", f"the request body is not valid JSON: {msg}"), status_code=400)
    first = errors[0] if errors else {"loc": ("body",), "msg": "invalid request"}
    field = _location(first.get("loc", ("body",)))
    details = "; ".join(f"{_location(e.get('loc', ()))}: {e.get('msg')}" for e in errors[:10])
    return JSONResponse(error_body("validation_error", details, field), status_code=422)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    headers = getattr(exc, "headers", None)
    allowed = _allowed_methods(request) if exc.status_code == 405 else None
    if allowed:
        # Starlette's Allow names only the first route matching the path (GET for /v1/topics/{id}, which also takes
        # PATCH and DELETE); a 405 must list every method of the resource (RFC 9110; found by schemathesis).
        headers = {**(headers or {}), "Allow": ", ".join(allowed)}
    return JSONResponse(error_body(code, str(exc.detail)), status_code=exc.status_code, headers=headers)


def _allowed_methods(request: Request) -> list[str] | None:
    """The methods the OpenAPI document lists for the request's path (None for an undocumented path)."""
    for template, item in request.app.openapi()["paths"].items():
        if _path_pattern(template).fullmatch(request.scope["path"]):
            methods = {m.upper() for m in item}
            return sorted(methods | ({"HEAD"} if "GET" in methods else set()))
    return None


@functools.cache
def _path_pattern(template: str) -> re.Pattern[str]:
    return re.compile(re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)))


async def _index_error(_request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, InvalidInputError):
        return JSONResponse(error_body("invalid_input", str(exc)), status_code=422)
    if isinstance(exc, UnknownLabelError | UnknownExemplarError):
        return JSONResponse(error_body("not_found", str(exc)), status_code=404)
    log.exception("index error", exc_info=exc)
    return JSONResponse(error_body("index_error", str(exc)), status_code=500)


async def _database_error(_request: Request, exc: Exception) -> JSONResponse:
    # Keys are checked against the database, so without it no request can be authorised: 503, never a guess. The
    # driver's message may carry the URL (and a password): it goes to the log, not to the client.
    log.error("database error: %s", exc.__class__.__name__, exc_info=exc)
    detail = "the database is unavailable; retry later (operators: check LIGHTGUARD_DATABASE_URL and the server log)"
    body = error_body(DatabaseUnavailableError.code, detail)
    return JSONResponse(body, status_code=503, headers={"Retry-After": "5"})


async def _internal_error(_request: Request, exc: Exception) -> JSONResponse:
    # Starlette re-raises after this handler, so the traceback still reaches the server log (and test clients).
    detail = "an unexpected server error (a bug); the server log has the details"
    return JSONResponse(error_body("internal_error", detail), status_code=500)


def add_exception_handlers(app: FastAPI) -> None:
    """Install the handlers that give every error the `{"error", "detail"}` shape."""
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(LightguardError, _index_error)
    # Only a failure to reach or use the connection means "the database is unavailable". Any other driver error
    # (bad data, a violated constraint) is a bug of ours: a 503 with Retry-After hid such bugs as outages.
    for unavailable in (OperationalError, InterfaceError):
        app.add_exception_handler(unavailable, _database_error)
    app.add_exception_handler(Exception, _internal_error)
