"""Retry policy: a urllib3 ``Retry`` subclass and the ``HTTPAdapter`` that picks it per request.

What is retried (up to ``max_retries`` times, after the first attempt):

* connection failures before the request was sent (refused, DNS, connect timeout): every method;
* ``429``: every method (the server did not process the request);
* connection dropped after sending, read timeouts, ``502``, ``503``, ``504``: ``GET``, ``HEAD``,
  ``PUT``, ``DELETE``, ``OPTIONS``, and ``POST``/``PATCH`` that carry an ``Idempotency-Key``
  (the server then runs them at most once);
* ``409`` with ``Retry-After`` (the server's ``idempotency_key_in_use``: an earlier attempt with
  the same key is still running): only calls that carry an ``Idempotency-Key``;
* a response body that breaks after the headers arrived (cut, undecodable, timed out;
  ``stream=False`` calls only): the same methods as a dropped connection, by
  :meth:`KloudlessAdapter.send` (urllib3's ``Retry`` ends with the headers);
* nothing at all when the request body cannot be rewound (a generator or a non-seekable stream):
  it could not be sent again.

Waits: ``Retry-After`` (seconds or HTTP date) capped at ``retry_after_max``; otherwise exponential
backoff ``backoff_factor * 2 ** (n - 1)`` plus a random ``0..backoff_jitter``, capped at
``backoff_max``. Each retry is logged at INFO on the ``kloudless`` logger (attempt, delay, cause).

urllib3 cannot express some of these rules, hence the subclass: 429 for methods outside
``allowed_methods``; 409 for keyed requests only; a cap on ``Retry-After`` and jitter that work on
urllib3 1.26 as well as 2.x; and a per-request policy (per-call ``max_retries``, idempotency keys,
rewindable bodies), which needs the adapter to choose the ``Retry`` for each request
(``HTTPAdapter.max_retries`` is per adapter). Nor can it retry once the response headers have
arrived: the adapter's small loop for broken bodies does that, with the same ``Retry``.
"""

from __future__ import annotations

import contextvars
import io
import random
import time
from dataclasses import dataclass
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from requests.exceptions import ChunkedEncodingError, ContentDecodingError, UnrewindableBodyError
from requests.utils import rewind_body
from urllib3.exceptions import MaxRetryError, ProtocolError, ReadTimeoutError
from urllib3.util.retry import Retry

from .exceptions import parse_retry_after
from .util import logger

__all__ = [
    "BODY_ERRORS",
    "IDEMPOTENT_METHODS",
    "RETRY_STATUSES",
    "CallPolicy",
    "KloudlessAdapter",
    "KloudlessRetry",
    "body_is_rewindable",
    "call_policy",
]

#: Methods that may be repeated without changing the result.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"})
#: Statuses that are retried.
RETRY_STATUSES = frozenset({429, 502, 503, 504})
#: What requests raises when a response body breaks while it is read (after the headers).
BODY_ERRORS = (ChunkedEncodingError, ContentDecodingError, requests.ConnectionError)


class KloudlessRetry(Retry):
    """urllib3 ``Retry`` with a capped ``Retry-After``, jitter, 429 for every method, logging.

    :param args: passed to ``Retry``.
    :param max_backoff: the longest backoff in seconds.
    :param jitter: random seconds (``0..jitter``) added to each backoff.
    :param retry_after_cap: the longest ``Retry-After`` honoured, in seconds.
    :param kwargs: passed to ``Retry``.
    """

    def __init__(
        self,
        *args: Any,
        max_backoff: float = 30.0,
        jitter: float = 0.0,
        retry_after_cap: float = 60.0,
        keyed: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.max_backoff = max_backoff
        self.jitter = jitter
        self.retry_after_cap = retry_after_cap
        #: The request carries an ``Idempotency-Key``: a 409 with ``Retry-After`` is retried.
        self.keyed = keyed
        # The wait chosen (and logged) by increment(), used by sleep().
        self.planned_delay: float | None = None

    def new(self, **kw: Any) -> KloudlessRetry:
        """Copy with changes (``Retry.new`` does not know this class's extra settings).

        :param kw: ``Retry`` parameters to change.
        :returns: the new object.
        """
        new = super().new(**kw)
        new.max_backoff = self.max_backoff
        new.jitter = self.jitter
        new.retry_after_cap = self.retry_after_cap
        new.keyed = self.keyed
        return new

    def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
        """Like ``Retry.is_retry``, but a 429 is retryable for every method, and a 409 with
        ``Retry-After`` for keyed requests (the same key's first attempt is still running: the
        server will replay its response once it is done).

        :param method: the HTTP method.
        :param status_code: the response status.
        :param has_retry_after: whether the response has ``Retry-After``.
        :returns: whether to retry.
        """
        if status_code == 429 and self.status_forcelist and 429 in self.status_forcelist:
            return True
        if status_code == 409 and has_retry_after and self.keyed:
            return bool(self.respect_retry_after_header)
        return bool(super().is_retry(method, status_code, has_retry_after))

    def get_retry_after(self, response: Any) -> float | None:
        """``Retry-After`` in seconds (number or HTTP date), capped; ``None`` if absent or invalid.

        :param response: the urllib3 response.
        :returns: seconds, or ``None``.
        """
        seconds = parse_retry_after(response.headers.get("Retry-After"))
        return None if seconds is None else min(seconds, self.retry_after_cap)

    def get_backoff_time(self) -> float:
        """Exponential backoff for the coming retry, with jitter, capped at ``max_backoff``.

        :returns: seconds.
        """
        retries_done = len(self.history)
        if retries_done == 0:
            return 0.0
        delay = self.backoff_factor * (2 ** (retries_done - 1))
        if self.jitter:
            delay += random.uniform(0, self.jitter)
        return float(min(self.max_backoff, delay))

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: Any = None,
        error: Exception | None = None,
        _pool: Any = None,
        _stacktrace: Any = None,
    ) -> KloudlessRetry:
        """Count one retry (raises ``MaxRetryError`` when exhausted), choose and log its delay.

        :returns: the new ``Retry`` state.
        """
        new: KloudlessRetry = super().increment(method, url, response, error, _pool, _stacktrace)
        delay = None
        if response is not None and self.respect_retry_after_header:
            delay = new.get_retry_after(response)
        if delay is None:
            delay = new.get_backoff_time()
        new.planned_delay = delay
        if response is not None and getattr(response, "status", None):
            cause = f"status {response.status}"
        else:
            cause = type(error).__name__ if error is not None else "unknown error"
        logger.info(
            "Retrying %s %s (retry %d of %s) in %.2f s after %s",
            method,
            url,
            len(new.history),
            _planned_total(new),
            delay,
            cause,
            extra=retry_record_fields(delay, len(new.history), _planned_total(new), cause),
        )
        return new

    def sleep(self, response: Any = None) -> None:
        """Wait the delay chosen by :meth:`increment`.

        :param response: unused (the delay was computed from it already).
        """
        delay = self.planned_delay
        if delay is None:
            delay = self.get_backoff_time()
        if delay > 0:
            time.sleep(delay)


def retry_record_fields(delay: float, attempt: int, total: Any, cause: str) -> dict[str, Any]:
    """The fields every "retrying" log record of the SDK carries, for programs that show them.

    A handler on the ``kloudless`` logger finds them as attributes of the record:
    ``retry_delay`` (seconds until the next attempt), ``retry_attempt`` (which retry this is,
    from 1), ``retry_total`` (the retry budget, or ``"?"``) and ``retry_cause`` (e.g.
    ``"status 503"`` or ``"ConnectionError"``). The command line shows them on its progress bar.

    :returns: the ``extra=`` mapping of the log call.
    """
    return {
        "retry_delay": float(delay),
        "retry_attempt": int(attempt),
        "retry_total": total,
        "retry_cause": cause,
    }


def _planned_total(policy: Retry) -> Any:
    """The retry budget of the call: retries done plus retries left."""
    if isinstance(policy.total, bool) or not isinstance(policy.total, int):
        return "?"
    return policy.total + len(policy.history)


@dataclass(frozen=True)
class CallPolicy:
    """Per-call retry options, set by ``Session.request`` for the duration of one call.

    :ivar max_retries: overrides the client's count (``0`` disables retries), or ``None``.
    :ivar retry: ``True`` retries even non-idempotent requests on every condition, ``False``
        disables retries, ``None`` applies the default rules.
    :ivar key_allows_retry: whether an ``Idempotency-Key`` makes a POST/PATCH fully retryable
        (``False`` for pass-through calls to unsafe upstream methods).
    """

    max_retries: int | None = None
    retry: bool | None = None
    key_allows_retry: bool = True


#: The policy of the call running in this thread (or task), read by :class:`KloudlessAdapter`.
call_policy: contextvars.ContextVar[CallPolicy | None] = contextvars.ContextVar(
    "kloudless_call_policy", default=None
)


def body_is_rewindable(body: Any) -> bool:
    """Tell whether a request body can be sent again (bytes, str, or a seekable file).

    :param body: ``PreparedRequest.body``.
    :returns: ``True`` when urllib3 can replay it.
    """
    if body is None or isinstance(body, (bytes, bytearray, str)):
        return True
    if not (hasattr(body, "seek") and hasattr(body, "tell")):
        return False
    seekable = getattr(body, "seekable", None)
    if seekable is None:
        return True
    try:
        return bool(seekable())
    except (OSError, ValueError, io.UnsupportedOperation):
        return False


class KloudlessAdapter(HTTPAdapter):
    """``HTTPAdapter`` that sends each request with the ``Retry`` its call allows.

    :param retry: the client's default policy.
    :param kwargs: passed to ``HTTPAdapter``.
    """

    def __init__(self, retry: KloudlessRetry, **kwargs: Any) -> None:
        super().__init__(max_retries=retry, **kwargs)
        self.default_retry = retry
        # Retry objects are never changed once built (urllib3 makes a new one per attempt), so
        # the few (total, methods, keyed) variants a client uses are built once and shared.
        self._variants: dict[tuple[int | None, frozenset[str], bool], KloudlessRetry] = {}
        self._variants_of: KloudlessRetry = retry

    def retry_for(self, request: requests.PreparedRequest) -> KloudlessRetry:
        """Choose the ``Retry`` for ``request`` from the call policy and the request itself.

        :param request: the prepared request.
        :returns: the ``Retry`` to use.
        """
        policy = call_policy.get() or CallPolicy()
        method = (request.method or "GET").upper()
        total = self.default_retry.total
        if policy.max_retries is not None:
            total = policy.max_retries
        if policy.retry is False or not body_is_rewindable(request.body):
            total = 0
        keyed = request.headers.get("Idempotency-Key") is not None
        allowed = IDEMPOTENT_METHODS
        if method not in allowed and (
            policy.retry or (policy.key_allows_retry and method in ("POST", "PATCH") and keyed)
        ):
            allowed = allowed | {method}
        default = self.default_retry
        if self._variants_of is not default:  # default_retry was replaced: start afresh
            self._variants, self._variants_of = {}, default
        key = (total, allowed, keyed)
        retry = self._variants.get(key)
        if retry is None:
            if len(self._variants) >= 64:
                self._variants.clear()
            retry = default.new(total=total, allowed_methods=allowed)
            retry.keyed = keyed
            self._variants[key] = retry
        return retry

    def send(
        self, request: requests.PreparedRequest, *args: Any, **kwargs: Any
    ) -> requests.Response:
        """Send ``request`` with its own ``Retry`` (see :meth:`retry_for`).

        Unless ``stream`` is true, the body is read here (``requests`` would read it next), and
        when it breaks (cut, undecodable, timed out) the request is sent again if its ``Retry``
        allows it. Streamed responses (downloads) are left to the caller, who resumes with
        ``Range``.

        :param request: the prepared request.
        :param args: ``HTTPAdapter.send``'s (``stream``, ``timeout``...).
        :param kwargs: ``HTTPAdapter.send``'s.
        :returns: the response.
        :raises requests.RequestException: a body error, once no retry is left.
        """
        stream = kwargs.get("stream", args[0] if args else False)
        retry = self.retry_for(request)
        # The one hand-written retry loop of the SDK: urllib3 cannot retry once the response
        # headers have arrived. The Retry still decides (methods, keys, rewindable bodies,
        # max_retries), waits (its backoff) and logs, and the next send continues from its
        # state, so body breaks and urllib3's own retries share the call's one budget.
        while True:
            token = _adapter_retry.set(retry)
            try:
                response = super().send(request, *args, **kwargs)
            finally:
                _adapter_retry.reset(token)
            if stream:
                return response
            try:
                response.content  # noqa: B018 - reads the body
            except BODY_ERRORS as error:
                response.close()
                retry = _retry_broken_body(request, response, retry, error)
                continue
            return response

    # ``HTTPAdapter.send`` reads ``self.max_retries``; make it the per-request value while sending
    # (a context variable, so concurrent sends through one adapter do not see each other's).
    @property
    def max_retries(self) -> Retry:
        """The ``Retry`` of the request being sent, else the adapter's default."""
        current = _adapter_retry.get()
        return current if current is not None else self._default_max_retries

    @max_retries.setter
    def max_retries(self, value: Retry) -> None:
        self._default_max_retries = value


_adapter_retry: contextvars.ContextVar[Retry | None] = contextvars.ContextVar(
    "kloudless_adapter_retry", default=None
)


def _retry_broken_body(
    request: requests.PreparedRequest,
    response: requests.Response,
    retry: KloudlessRetry,
    error: requests.RequestException,
) -> KloudlessRetry:
    """Count (and log) a retry of a request whose response body broke, rewind it, and wait.

    :param request: the request to send again.
    :param response: the broken response (``raw.retries``: the ``Retry`` state urllib3 reached).
    :param retry: the ``Retry`` the request was sent with.
    :param error: what reading the body raised.
    :returns: the ``Retry`` state to send the request with.
    :raises requests.RequestException: ``error``, when the request may not be sent again.
    """
    current = getattr(response.raw, "retries", None)
    if not isinstance(current, KloudlessRetry):
        current = retry
    cause = error.args[0] if error.args else None
    if not isinstance(cause, (ProtocolError, ReadTimeoutError)):
        # A read error for Retry: it then applies the method rules of a dropped connection.
        cause = ProtocolError(f"Response body broken: {type(error).__name__}", error)
    try:
        new: KloudlessRetry = current.increment(request.method, request.path_url, error=cause)
        if hasattr(request.body, "seek"):  # a file body: send it from its start again
            rewind_body(request)
    except (MaxRetryError, ProtocolError, ReadTimeoutError, UnrewindableBodyError):
        raise error from None
    new.sleep()
    return new


def build_retry(
    max_retries: int,
    backoff_factor: float,
    backoff_max: float,
    backoff_jitter: float,
    retry_after_max: float,
) -> KloudlessRetry:
    """Build a client's default :class:`KloudlessRetry`.

    :param max_retries: retries after the first attempt.
    :param backoff_factor: backoff base in seconds.
    :param backoff_max: backoff cap in seconds.
    :param backoff_jitter: random extra seconds per backoff.
    :param retry_after_max: ``Retry-After`` cap in seconds.
    :returns: the retry object.
    """
    return KloudlessRetry(
        total=max_retries,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=IDEMPOTENT_METHODS,
        backoff_factor=backoff_factor,
        raise_on_status=False,  # the final error response is mapped to a typed exception
        raise_on_redirect=False,
        respect_retry_after_header=True,
        max_backoff=backoff_max,
        jitter=backoff_jitter,
        retry_after_cap=retry_after_max,
    )
