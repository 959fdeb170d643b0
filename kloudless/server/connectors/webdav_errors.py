"""Typed errors for the DAV connectors: an upstream failure mapped to the API's error codes.

The WebDAV and CalDAV connectors raise :class:`UpstreamError` subclasses; each carries the HTTP
status and ``error_code`` the local server answers with (spec §2.4), the upstream's own status
when there was a response, and a message that never contains credentials.

Mapping (upstream → API):

==============================  =======  ============================
upstream                        status   error_code
==============================  =======  ============================
401                             401      ``service_unauthorized``
403                             403      ``service_forbidden``
404 / 410                       404      ``not_found``
405 on MKCOL, 412 (Overwrite)   409      ``naming_conflict``
409 (missing parent)            400      ``invalid_parent_folder``
416                             416      ``invalid_parameters``
423 (locked)                    403      ``service_forbidden``
429                             429      ``too_many_service_requests``
507                             507      ``insufficient_storage``
other 4xx                       400      ``request_failed``
503                             503      ``service_not_available``
other 5xx / malformed reply     502      ``bad_gateway``
timeout (connect or read)       504      ``gateway_timeout``
connection refused / DNS / TLS  503      ``service_not_available``
address refused by the policy   403      ``forbidden``
==============================  =======  ============================

The last row is the server's own outbound policy (:mod:`kloudless.server.outbound`): the
account's address is loopback, private, link-local, ... and not allowlisted; nothing was sent.

A refused connection means nothing answers at the configured URL, i.e. the upstream is
unavailable (503) rather than answering badly (502).
"""

from __future__ import annotations

from kloudless.server.errors import ApiError


class UpstreamError(ApiError):
    """An upstream DAV server failed or refused a request.

    It is an :class:`~kloudless.server.errors.ApiError`, so the application answers it as the
    JSON error ``{status_code, error_code, message, id}`` (with ``Retry-After`` when known).

    :param message: human-readable text (never contains credentials).
    :param upstream_status: the upstream's HTTP status, or ``None`` without a response.
    :param retry_after: seconds from the upstream's ``Retry-After`` header, if any.
    """

    status_code = 502
    error_code = "bad_gateway"

    def __init__(
        self,
        message: str,
        upstream_status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        headers = {} if retry_after is None else {"Retry-After": str(int(retry_after + 0.999))}
        super().__init__(self.status_code, self.error_code, message, headers=headers)
        self.upstream_status = upstream_status
        self.retry_after = retry_after

    def to_dict(self) -> dict[str, object]:
        """:returns: the ``status_code``/``error_code``/``message`` part of an API error body."""
        return {
            "status_code": self.status_code,
            "error_code": self.error_code,
            "message": self.message,
        }


class ServiceUnauthorized(UpstreamError):
    """The upstream rejected the stored credentials (401)."""

    status_code = 401
    error_code = "service_unauthorized"


class ServiceForbidden(UpstreamError):
    """The upstream forbids the operation (403, or 423 locked)."""

    status_code = 403
    error_code = "service_forbidden"


class NotFound(UpstreamError):
    """The resource does not exist upstream (404/410)."""

    status_code = 404
    error_code = "not_found"


class NamingConflict(UpstreamError):
    """The destination name is already taken upstream."""

    status_code = 409
    error_code = "naming_conflict"


class InvalidParentFolder(UpstreamError):
    """The parent collection of the target does not exist upstream (409 on PUT/MKCOL/MOVE)."""

    status_code = 400
    error_code = "invalid_parent_folder"


class RangeNotSatisfiable(UpstreamError):
    """The requested byte range lies outside the resource (416)."""

    status_code = 416
    error_code = "invalid_parameters"


class RequestFailed(UpstreamError):
    """The upstream refused the request with another 4xx status."""

    status_code = 400
    error_code = "request_failed"


class TooManyServiceRequests(UpstreamError):
    """The upstream throttles us (429); ``retry_after`` carries its delay."""

    status_code = 429
    error_code = "too_many_service_requests"


class InsufficientStorage(UpstreamError):
    """The upstream has no space left (507)."""

    status_code = 507
    error_code = "insufficient_storage"


class BadGateway(UpstreamError):
    """The upstream answered with a server error or a reply we cannot parse."""

    status_code = 502
    error_code = "bad_gateway"


class ServiceNotAvailable(UpstreamError):
    """The upstream cannot be reached or says it is unavailable (503)."""

    status_code = 503
    error_code = "service_not_available"


class GatewayTimeout(UpstreamError):
    """The upstream did not answer in time."""

    status_code = 504
    error_code = "gateway_timeout"


class AddressRefused(UpstreamError):
    """The server's outbound policy refuses the upstream's address (nothing was sent)."""

    status_code = 403
    error_code = "forbidden"


_BY_STATUS: dict[int, type[UpstreamError]] = {
    401: ServiceUnauthorized,
    403: ServiceForbidden,
    404: NotFound,
    410: NotFound,
    409: InvalidParentFolder,
    412: NamingConflict,
    416: RangeNotSatisfiable,
    423: ServiceForbidden,
    429: TooManyServiceRequests,
    503: ServiceNotAvailable,
    507: InsufficientStorage,
}


def error_for_status(status: int, message: str, retry_after: float | None = None) -> UpstreamError:
    """Build the typed error for an upstream HTTP error status.

    :param status: the upstream's HTTP status (>= 400).
    :param message: text for the API error (no credentials).
    :param retry_after: the upstream's ``Retry-After`` in seconds, if any.
    :returns: an :class:`UpstreamError` subclass instance (not raised).
    """
    cls = _BY_STATUS.get(status)
    if cls is None:
        cls = BadGateway if status >= 500 else RequestFailed
    return cls(message, upstream_status=status, retry_after=retry_after)
