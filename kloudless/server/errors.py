"""The one JSON error type of the server and its error codes (spec §2.4)."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An API error answered as ``{status_code, error_code, message, id}`` JSON.

    Raise it from any handler or backend; the application turns it into the response.

    :param status: HTTP status code.
    :param error_code: one of the documented error codes (``not_found``, ...).
    :param message: human-readable message; never include secrets.
    :param headers: extra response headers (e.g. ``Retry-After``).
    :param extra: extra JSON keys (e.g. ``conflicting_resource_id``).
    """

    def __init__(
        self,
        status: int,
        error_code: str,
        message: str,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.message = message
        self.headers = headers or {}
        self.extra = extra


def bad_request(message: str) -> ApiError:
    """:returns: a 400 ``bad_request`` error (malformed request)."""
    return ApiError(400, "bad_request", message)


def invalid_parameters(message: str) -> ApiError:
    """:returns: a 400 ``invalid_parameters`` error."""
    return ApiError(400, "invalid_parameters", message)


def not_found(message: str = "Resource not found.") -> ApiError:
    """:returns: a 404 ``not_found`` error."""
    return ApiError(404, "not_found", message)


def forbidden(message: str) -> ApiError:
    """:returns: a 403 ``forbidden`` error."""
    return ApiError(403, "forbidden", message)


def naming_conflict(message: str, conflicting_id: str | None) -> ApiError:
    """:returns: a 409 ``naming_conflict`` error carrying ``conflicting_resource_id``."""
    return ApiError(409, "naming_conflict", message, conflicting_resource_id=conflicting_id)


def not_implemented(message: str) -> ApiError:
    """:returns: a 501 ``not_implemented`` error."""
    return ApiError(501, "not_implemented", message)


def too_large(message: str) -> ApiError:
    """:returns: a 413 ``request_too_large`` error (body, upload or header over a limit)."""
    return ApiError(413, "request_too_large", message)


def too_many_requests(what: str, wait: int) -> ApiError:
    """:param what: what there were too many of (``requests``, ``failed authentications``).
    :param wait: seconds to wait, sent as ``Retry-After``.
    :returns: a 429 ``too_many_requests`` error.
    """
    return ApiError(
        429,
        "too_many_requests",
        f"Too many {what}; retry after {wait} seconds.",
        headers={"Retry-After": str(wait)},
    )


def error_body(exc: ApiError, request_id: str) -> dict[str, Any]:
    """:returns: the JSON error ``{status_code, error_code, message, id}`` (+ extra keys)."""
    body: dict[str, Any] = {
        "status_code": exc.status,
        "error_code": exc.error_code,
        "message": exc.message,
        "id": request_id,
    }
    body.update(exc.extra)
    return body
