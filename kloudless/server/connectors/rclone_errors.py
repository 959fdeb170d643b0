"""rclone's errors mapped to the API's error contract.

rclone reports a failed call as an HTTP status (404 for a missing file or folder, 400 for bad
parameters, 500 for everything else) and the backend's error text. The text is what tells the
kinds apart, across backends:

==============================================  =======  ==============================
rclone says                                     status   error_code
==============================================  =======  ==============================
object / directory not found, 404               404      ``not_found``
already exists, file exists                     409      ``naming_conflict``
401, unauthorized, invalid_grant, login         401      ``service_unauthorized``
incorrect, unable to authenticate, access key     (reconnect hint in the message)
403, forbidden, access denied, permission       403      ``service_forbidden``
429, rate limit, too many requests, slow down,  429      ``too_many_service_requests``
quota metric, queries per minute                           (``Retry-After``: the delay
                                                           the text names, else 5 s)
quota, insufficient storage, no space left,     507      ``insufficient_storage``
507, 552
connection refused, no such host, no route      503      ``service_not_available``
timeout, deadline exceeded                      504      ``gateway_timeout``
rclone itself stopped or could not start        503      ``service_not_available``
                                                           (``Retry-After: 1``)
anything else                                   502      ``bad_gateway``
==============================================  =======  ==============================

Messages carry rclone's text, already redacted of known secrets by the client (see
``rclone_process.Redactor``), cut to 300 characters.
"""

from __future__ import annotations

import re

from kloudless.server.connectors.rclone_rc import RcError
from kloudless.server.connectors.webdav_errors import (
    BadGateway,
    GatewayTimeout,
    InsufficientStorage,
    NamingConflict,
    NotFound,
    ServiceForbidden,
    ServiceNotAvailable,
    ServiceUnauthorized,
    TooManyServiceRequests,
    UpstreamError,
)

#: Seconds a rate-limited caller is asked to wait when rclone gives no delay.
DEFAULT_RETRY_AFTER = 5.0
_MAX_MESSAGE = 300

_KINDS: tuple[tuple[re.Pattern[str], type[UpstreamError]], ...] = (
    (re.compile(r"not found|no such file|doesn't exist|does not exist|\b404\b", re.I), NotFound),
    (re.compile(r"already exists|file exists|\b409\b", re.I), NamingConflict),
    # Rate limits before quotas: "Quota exceeded for quota metric 'Queries'" is a rate limit.
    (
        re.compile(
            r"\b429\b|rate.?limit|too many requests|slow ?down|throttl|quota metric|"
            r"(?:requests|queries) per (?:second|minute|100 seconds|day)",
            re.I,
        ),
        TooManyServiceRequests,
    ),
    (
        re.compile(
            r"quota|insufficient storage|no space left|disk full|\b507\b|\b552\b|"
            r"storage.?limit|not enough space",
            re.I,
        ),
        InsufficientStorage,
    ),
    (
        re.compile(
            r"\b401\b|unauthori[sz]ed|invalid_grant|invalid.?token|token.{0,20}expired|"
            r"login incorrect|\b530\b|unable to authenticate|authentication failed|"
            r"invalidaccesskeyid|signaturedoesnotmatch|wrong password|bad password|"
            r"permission denied \(password|couldn't connect ssh: ssh: handshake failed",
            re.I,
        ),
        ServiceUnauthorized,
    ),
    (
        re.compile(r"\b403\b|forbidden|access ?denied|permission denied|not permitted", re.I),
        ServiceForbidden,
    ),
    (
        re.compile(
            r"connection refused|no such host|no route to host|network is unreachable|"
            r"connection reset|broken pipe|\beof\b|rclone stopped|rclone could not|"
            r"server misbehaving|i/o timeout",
            re.I,
        ),
        ServiceNotAvailable,
    ),
    (re.compile(r"timeout|timed out|deadline exceeded", re.I), GatewayTimeout),
)


#: A delay named in a rate limit's text: ``retry after 30s``, ``"retry_after": 30``,
#: ``Retry-After: 30``, ``try again in 30 seconds``.
_DELAY = re.compile(
    r"(?:retry[_ -]?after|try again in|wait)[\"':= ]{0,4}(\d{1,6})(?:\.\d+)?\s*"
    r"(ms|milliseconds?|s\b|sec|seconds?|m\b|min|minutes?)?",
    re.I,
)
#: Longest Retry-After passed on (a bogus hour-long delay becomes this).
MAX_RETRY_AFTER = 3600.0


def retry_after(text: str) -> float:
    """:returns: the seconds a rate-limited caller should wait: the delay rclone's error text
    names, else :data:`DEFAULT_RETRY_AFTER`."""
    match = _DELAY.search(text)
    if match is None:
        return DEFAULT_RETRY_AFTER
    value, unit = float(match.group(1)), (match.group(2) or "s").lower()
    if unit.startswith(("ms", "milli")):
        value /= 1000.0
    elif unit.startswith("m"):  # m, min, minutes
        value *= 60.0
    return min(max(value, 1.0), MAX_RETRY_AFTER)


def _message(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."


def upstream_error(exc: RcError, connecting: bool = False) -> UpstreamError:
    """:returns: the API error for a failed rc call (not raised).

    :param connecting: the call checked a new remote (no account exists yet): a rejected
        credential says so instead of asking to reconnect.
    """
    text = exc.message
    if exc.status == 404:
        kind: type[UpstreamError] = NotFound
    elif exc.status == 504:
        kind = GatewayTimeout
    elif exc.status == 0:
        kind = ServiceNotAvailable
    else:
        kind = next((k for pattern, k in _KINDS if pattern.search(text)), BadGateway)
    if kind is ServiceUnauthorized:
        hint = (
            "the credentials were rejected"
            if connecting
            else "reconnect the account with valid credentials"
        )
        return kind(_message(f"The service refused the credentials ({hint}): {text}"), 401)
    if kind is TooManyServiceRequests:
        return kind(_message(f"The service is rate limiting: {text}"), 429, retry_after(text))
    if exc.status == 0 and text.startswith("rclone "):
        # The rcd itself stopped (it is started again by the next call).
        return ServiceNotAvailable(_message(f"{text} Try the request again."), None, 1.0)
    if kind is ServiceNotAvailable:
        return kind(_message(f"The service cannot be reached: {text}"))
    if kind is InsufficientStorage:
        return kind(_message(f"The service is out of space: {text}"), 507)
    return kind(_message(text), exc.status or None)


__all__ = ["DEFAULT_RETRY_AFTER", "retry_after", "upstream_error"]
