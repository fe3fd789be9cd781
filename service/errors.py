"""The service's error tree. Only exception_handlers.py turns these into HTTP status codes."""

from __future__ import annotations


class ServiceError(Exception):
    """Base of every error the service raises on purpose; `detail` says what was wrong and how to fix it."""

    code = "error"

    def __init__(self, detail: str, field: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field


class InvalidRequestError(ServiceError):
    """The request is well-formed JSON but breaks a rule or a configured limit."""

    code = "invalid_request"


class PayloadTooLargeError(ServiceError):
    code = "payload_too_large"


class NotFoundError(ServiceError):
    code = "not_found"


class ConflictError(ServiceError):
    code = "conflict"


class RebuildRunningError(ConflictError):
    """A full build of the index is already running (in this process or another); `build_id` names it."""

    code = "rebuild_running"

    def __init__(self, detail: str, build_id: int) -> None:
        super().__init__(detail)
        self.build_id = build_id


class AuthenticationError(ServiceError):
    """No API key was sent although keys are configured."""

    code = "unauthenticated"


class PermissionDeniedError(ServiceError):
    """The key is unknown, revoked, or its role does not allow the operation."""

    code = "forbidden"


class IndexNotReadyError(ServiceError):
    """The index is still loading or building at start-up."""

    code = "index_not_ready"


class DatabaseUnavailableError(ServiceError):
    """The database cannot be reached (at start-up, or mid-run): nothing is answered from a guess."""

    code = "database_unavailable"


class IndexBuildError(ServiceError):
    """A rebuild failed; the previous index keeps serving."""

    code = "index_build_failed"


class RateLimitedError(ServiceError):
    """The caller's key is over its rate or concurrency limit; `retry_after_s` says when to try again."""

    code = "rate_limited"

    def __init__(self, detail: str, retry_after_s: int) -> None:
        super().__init__(detail)
        self.retry_after_s = max(1, retry_after_s)


class DeadlineExceededError(ServiceError):
    """The server's deadline (LIGHTGUARD_REQUEST_TIMEOUT_S) passed before the work was done; the rest was dropped."""

    code = "deadline_exceeded"


class ClientDeadlineExceededError(DeadlineExceededError):
    """The deadline the request set itself (`timeout`, X-Request-Timeout) passed first: the client's choice (a
    4xx), not a server fault like the server's own deadline."""


class ClientDisconnectedError(ServiceError):
    """The client closed the connection before the answer was ready; its remaining work was dropped."""

    code = "client_disconnected"
