"""The exceptions of the SDK.

Every exception has ``message`` (equal to ``str(e)``), ``status``, ``error_code``, ``request_id``,
``error_data`` (always a dict) and ``response`` attributes; those that do not apply are ``None``
(``{}`` for ``error_data``)::

    KloudlessException
    ├── InvalidParameter          bad argument, or a URL on a host other than the API's
    ├── TokenVerificationFailed
    ├── OauthFlowFailed
    ├── NoNextPage                (+ .cursor)
    ├── ConnectionException       also a requests.ConnectionError
    │   └── ConnectTimeoutException   also a requests.ConnectTimeout
    ├── TimeoutException          also a requests.Timeout
    └── APIException              an HTTP error status
        ├── AuthorizationException  401
        ├── ForbiddenException      403
        ├── NotFoundException       404
        ├── RateLimitException      429 (+ .retry_after in seconds)
        ├── ServerException         5xx
        └── JSONDecodeException     a JSON response that is not valid JSON (also a ValueError)

:func:`from_response` is the one place that maps an HTTP response to its exception class.
"""

from __future__ import annotations

import email.utils
import time
from typing import Any

import requests

from .redaction import redact

__all__ = [
    "APIException",
    "AuthorizationException",
    "ConnectTimeoutException",
    "ConnectionException",
    "ForbiddenException",
    "InsecureBaseURLWarning",
    "InvalidParameter",
    "JSONDecodeException",
    "KloudlessException",
    "NoNextPage",
    "NotFoundException",
    "OauthFlowFailed",
    "RateLimitException",
    "ServerException",
    "TimeoutException",
    "TokenVerificationFailed",
    "from_response",
    "parse_retry_after",
]

# Error bodies can be whole HTML pages; the message keeps their beginning only.
_MAX_BODY_IN_MESSAGE = 1000


class InsecureBaseURLWarning(UserWarning):
    """Warned when a client is created for a plain ``http://`` API URL on a non-loopback host."""


class KloudlessException(Exception):
    """Base class of every exception of the SDK.

    :ivar str message: the error message (``str(e)``).
    :ivar status: HTTP status code, or ``None``.
    :ivar error_code: the API's ``error_code``, or ``None``.
    :ivar request_id: the API's request id, or ``None``.
    :ivar dict error_data: the parsed error body (``{}`` when there is none).
    :ivar response: the ``requests.Response``, or ``None``.
    """

    default_message = "An error occurred in the Kloudless SDK."
    status: int | None = None
    error_code: str | None = None
    request_id: str | None = None
    response: requests.Response | None = None

    def __init__(self, message: str = "") -> None:
        """:param message: the message; the class's ``default_message`` when empty."""
        self.message: str = message or self.default_message
        self.error_data: dict[str, Any] = {}
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message

    @property
    def summary(self) -> str:
        """One line for people (:attr:`APIException.summary`); here the message itself."""
        return self.message


class InvalidParameter(KloudlessException):
    """The parameters are invalid in a function call or class instantiation."""

    default_message = "The parameter is not valid."


class TokenVerificationFailed(KloudlessException):
    """The token belongs to another application."""

    default_message = "The token does not belong to your application."


class OauthFlowFailed(KloudlessException):
    """The OAuth authorization flow failed (error returned, state mismatch, no code)."""

    default_message = "Oauth authorization flow failed."


class NoNextPage(KloudlessException):
    """There is no further page. ``cursor`` is the last cursor seen (event lists)."""

    default_message = "There's no next page."

    def __init__(self, cursor: Any = None, *args: Any, **kwargs: Any) -> None:
        """:param cursor: the last cursor (event lists); the first positional argument (2.x)."""
        super().__init__(*args, **kwargs)
        self.cursor = cursor


class _NetworkException(KloudlessException):
    """Common initialisation of the network exceptions (which are also requests exceptions)."""

    def __init__(
        self,
        message: str = "",
        request: Any = None,
        response: requests.Response | None = None,
    ) -> None:
        """:param message: the message.
        :param request: the ``requests.PreparedRequest``, if known.
        :param response: the ``requests.Response``, if any.
        """
        KloudlessException.__init__(self, message)
        # requests' own initialisation sets .request/.response and the exception args.
        requests.RequestException.__init__(
            self,  # type: ignore[arg-type]
            self.message,
            request=request,
            response=response,
        )

    def __str__(self) -> str:
        return self.message


class ConnectionException(_NetworkException, requests.ConnectionError):
    """The connection failed (refused, reset, dropped) after all retries."""

    default_message = "Could not connect to the Kloudless API."


class TimeoutException(_NetworkException, requests.Timeout):
    """The server did not answer within the timeout, after all retries."""

    default_message = "The request to the Kloudless API timed out."


class ConnectTimeoutException(ConnectionException, TimeoutException, requests.ConnectTimeout):
    """Connecting timed out after all retries (both a connection error and a timeout)."""

    default_message = "Connecting to the Kloudless API timed out."


def _request_id(response: requests.Response, error_data: dict[str, Any]) -> str | None:
    rid = error_data.get("id")
    if rid is None:
        rid = response.headers.get("X-Request-Id")
    return None if rid is None else str(rid)


class APIException(KloudlessException):
    """Base class of API errors (an HTTP error status, or an unusable response).

    :ivar response: ``requests.Response``.
    :ivar int status: ``response.status_code``.
    :ivar dict error_data: the parsed JSON error body (``{}`` when absent or not an object).
    :ivar error_code: ``error_data['error_code']`` when present.
    :ivar request_id: ``error_data['id']`` or the ``X-Request-Id`` header.
    """

    default_message = "Request failed."

    def __init__(self, response: requests.Response, message: str = "") -> None:
        """:param response: the failed response.
        :param message: the message; the class's ``default_message`` when empty.
        """
        error_data: dict[str, Any] = {}
        try:
            parsed = response.json()
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            error_data = parsed
        # An error body may echo what was sent (a token, a code): redact before it is kept.
        text = redact(response.text or "")
        if len(text) > _MAX_BODY_IN_MESSAGE:
            text = text[:_MAX_BODY_IN_MESSAGE] + "..."
        request_id = _request_id(response, error_data)
        msg = message or self.default_message
        if text:
            msg += " Error data: " + text
        if request_id:
            msg += f" [Request ID: {request_id}]"
        super().__init__(msg)
        self.error_data = error_data
        self.response = response
        self.status = response.status_code
        code = error_data.get("error_code")
        self.error_code = None if code is None else str(code)
        self.request_id = request_id
        api_message = error_data.get("message")
        #: The server's own ``message`` (from the JSON error body), or None.
        self.api_message: str | None = redact(str(api_message)) if api_message else None
        # Tracebacks (Python 3.11+) show the readable line under the 2.x-format message.
        add_note = getattr(self, "add_note", None)
        if add_note is not None:
            add_note(self.summary)

    @property
    def summary(self) -> str:
        """The error in one readable line: status, the API's error code and message, request id.

        For example ``404 not_found: File not found: x (request 8d78...)``. The message is the
        server's (:attr:`api_message`), or the class's default when the body has none.
        ``str(e)`` keeps the 2.x format, which existing code parses; this is the line to show
        people: the command line prints it, the SDK's log uses it, and on Python 3.11+ it is the
        exception's note, so tracebacks show it too.
        """
        head = f"{self.status} {self.error_code}" if self.error_code else str(self.status)
        tail = f" (request {self.request_id})" if self.request_id else ""
        return f"{head}: {self.api_message or self.default_message}{tail}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status!r}, error_code={self.error_code!r}, "
            f"request_id={self.request_id!r})"
        )


class AuthorizationException(APIException):
    """Exception class for ``401`` status code."""

    default_message = (
        "Authorization failed. Please double check that the API Key or Token being used is correct."
    )


class ForbiddenException(APIException):
    """Exception class for ``403`` status code."""

    default_message = "Request forbidden. The action is not allowed."


class NotFoundException(APIException):
    """Exception class for ``404`` status code."""

    default_message = "Not found. Please make sure the url is correct."


def parse_retry_after(value: str | None) -> float | None:
    """Parse a ``Retry-After`` value: seconds (``"2.5"``) or an HTTP date.

    :param value: the header value, or ``None``.
    :returns: seconds to wait (never negative), or ``None`` when absent or unparsable.
    """
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:  # pragma: no cover - older Pythons return None instead of raising
            return None
        seconds = when.timestamp() - time.time()
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        return None
    return max(0.0, seconds)


class RateLimitException(APIException):
    """Exception class for ``429`` status code.

    :ivar retry_after: seconds to wait before the next request (from ``Retry-After``, in seconds or
        HTTP-date form), or ``None``.
    """

    default_message = "Rate limiting encountered. Please try again later."

    def __init__(self, response: requests.Response, message: str = "") -> None:
        """:param response: the 429 response.
        :param message: the message.
        """
        super().__init__(response, message)
        self.retry_after: float | None = parse_retry_after(response.headers.get("Retry-After"))


class ServerException(APIException):
    """Exception class for ``5xx`` status code."""

    default_message = (
        "An unknown error occurred! Please contact support@kloudless.com with the Request ID for "
        "more details."
    )


class JSONDecodeException(APIException, ValueError):
    """A response declared as JSON is not valid JSON (also a ``ValueError``, as in 2.x)."""

    default_message = "The response is not valid JSON."


def from_response(response: requests.Response) -> APIException:
    """Build the exception matching an error response's status code.

    :param response: a response whose status is 400 or more.
    :returns: the exception (not raised).
    """
    status = response.status_code
    cls: type[APIException]
    if status == 401:
        cls = AuthorizationException
    elif status == 403:
        cls = ForbiddenException
    elif status == 404:
        cls = NotFoundException
    elif status == 429:
        cls = RateLimitException
    elif status >= 500:
        cls = ServerException
    else:
        cls = APIException
    return cls(response)
