"""A small typed client of Microsoft Graph's REST API (v1.0), for the Outlook calendar
connector.

Plain ``requests`` through the server's outbound policy session rather than the official
``msgraph-sdk``: the SDK is a generated, asynchronous (kiota/httpx) client covering all of
Graph, a large install its own documentation warns about, with its own authentication
providers (azure-identity). The calendar connector needs about a dozen calls, synchronous
like every other connector, with the token the server already keeps (:class:`~.provider
.TokenKeeper`) and the outbound policy's pinned, redirect-free session; two hundred lines
of client are easier to audit than adapting the SDK's transport and auth layers to both.

What it does for every call:

* ``Authorization: Bearer`` with the account's current token; a 401 refreshes the token once
  (``tokens(rejected)``) and repeats the call (Graph checks the token before it acts, so
  repeating even a create is safe);
* ``Prefer: outlook.timezone="UTC"`` so that every ``dateTimeTimeZone`` comes back in UTC
  (the mapping turns it into the event's own zone), plus any ``Prefer`` the caller adds
  (``odata.maxpagesize``);
* ``@odata.nextLink`` and ``@odata.deltaLink`` URLs are followed only on the API base's own
  origin (an answer cannot send the token elsewhere);
* an error answer (Graph's ``{"error": {"code", "message"}}``) raises :class:`GraphError`,
  whose :meth:`~GraphError.api_error` is the server's JSON error
  (:func:`~.provider_calendar_base.upstream_error`): throttling (429, and 503/509 with a
  ``Retry-After``) is 429 ``too_many_requests`` with Graph's ``Retry-After``; a 403
  ``ErrorAccessDenied`` names the permission to grant (:data:`CALENDAR_SCOPE`); 404, 409, 412
  and 400 keep their meaning; other 5xx are 503/502. Transport failures are 502/504.

Nothing here logs or puts a token into an error message.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests

from ..errors import ApiError
from ..outbound import OutboundPolicy
from .provider_calendar_base import upstream_error

#: (connect, read) timeouts of a Graph call, in seconds.
TIMEOUTS = (15, 60)
#: Largest Graph answer read (calendar pages are small; this bounds a hostile upstream).
MAX_ANSWER = 16 * 1024 * 1024
#: Most pages one :meth:`GraphClient.pages` call follows (a bounded loop).
MAX_PAGES = 1000
#: The delegated permission the calendar connector needs.
CALENDAR_SCOPE = "Calendars.ReadWrite"
#: Graph's codes for a token without the permission (Exchange's and Azure AD's spelling).
ACCESS_DENIED = frozenset({"ErrorAccessDenied", "Authorization_RequestDenied", "AccessDenied"})


class GraphError(Exception):
    """An error answer of Microsoft Graph.

    :param status: Graph's HTTP status. :param code: Graph's error code
        (``ErrorItemNotFound``...). :param message: Graph's message, shortened (Graph never
        echoes tokens). :param retry_after: its ``Retry-After`` header, if any.
    """

    def __init__(
        self, status: int, code: str, message: str, retry_after: str | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after

    def api_error(self) -> ApiError:
        """:returns: the server's JSON error for this answer (see the module docstring)."""
        throttled = self.status in (429, 509) or (
            self.status == 503 and self.retry_after is not None
        )
        denied = self.status == 403 and self.code in ACCESS_DENIED
        return upstream_error(
            "Microsoft Graph",
            429 if throttled else self.status,
            self.code if self.code != "unknown" else "",
            retry_after=self.retry_after,
            rate_limited=throttled,
            missing_scope=CALENDAR_SCOPE if denied else None,
        )


@dataclass(frozen=True)
class Answer:
    """A successful Graph answer: status, decoded JSON (``{}`` for 204) and headers."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str]


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or (443 if scheme == "https" else 80)


def _graph_error(body: bytes) -> tuple[str, str]:
    try:
        value = json.loads(body.decode("utf-8", "replace"))
        error = value.get("error") if isinstance(value, dict) else None
        if isinstance(error, dict):
            return str(error.get("code") or "unknown")[:100], str(error.get("message") or "")[:300]
    except ValueError:
        pass
    return "unknown", ""


class GraphClient:
    """Calls Microsoft Graph for one account.

    :param api_base: the provider's API base (``https://graph.microsoft.com`` or an override);
        paths are relative to ``{api_base}/v1.0``.
    :param tokens: ``tokens(rejected)`` returns a current access token; given the token Graph
        just answered 401 to, a refreshed one (``TokenKeeper.access_token``).
    :param policy: the outbound policy every connection goes through.
    """

    def __init__(
        self,
        api_base: str,
        tokens: Callable[[str | None], str],
        policy: OutboundPolicy,
    ) -> None:
        self.root = api_base.rstrip("/") + "/v1.0"
        self.tokens = tokens
        self.policy = policy
        self._origin = _origin(self.root)

    def url(self, path: str) -> str:
        """:returns: the absolute URL of ``path`` (relative to ``/v1.0``)."""
        return self.root + ("" if path.startswith("/") else "/") + path

    def _check_link(self, url: str) -> str:
        try:
            origin = _origin(url)
        except ValueError:
            origin = None
        if origin != self._origin or not urlsplit(url).path.startswith(
            urlsplit(self.root).path + "/"
        ):
            raise ApiError(502, "bad_gateway", "Microsoft Graph gave a paging link elsewhere.")
        return url

    def call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
        prefer: tuple[str, ...] = (),
        if_match: str | None = None,
        absolute: bool = False,
    ) -> Answer:
        """Make one Graph call (see the module docstring for what is added and mapped).

        :param path: relative to ``/v1.0``, or (``absolute=True``) a link Graph gave.
        :raises GraphError: 400/404/409/412/422 from Graph.
        :raises ApiError: throttling, missing permission, authentication and transport errors.
        """
        url = self._check_link(path) if absolute else self.url(path)
        headers = {
            "Accept": "application/json",
            "Prefer": ", ".join(('outlook.timezone="UTC"', *prefer)),
        }
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(body).encode()
        if if_match:
            headers["If-Match"] = if_match
        token = self.tokens(None)
        for attempt in (1, 2):
            status, answer_headers, raw = self._send(method, url, params, headers, data, token)
            if status != 401 or attempt == 2:
                break
            token = self.tokens(token)
        return self._answer(status, answer_headers, raw)

    def _send(
        self,
        method: str,
        url: str,
        params: dict[str, str] | None,
        headers: dict[str, str],
        data: bytes | None,
        token: str,
    ) -> tuple[int, Any, bytes]:
        try:
            with self.policy.session() as session:
                answer = session.request(
                    method,
                    url,
                    params=params,
                    headers=dict(headers, Authorization=f"Bearer {token}"),
                    data=data,
                    timeout=TIMEOUTS,
                    stream=True,
                )
                raw = answer.raw.read(MAX_ANSWER + 1, decode_content=True)
                answer.close()
        except requests.Timeout:
            raise ApiError(
                504, "gateway_timeout", "Microsoft Graph did not answer in time."
            ) from None
        except (requests.RequestException, OSError) as exc:
            # OutboundRefused (a refused address) is a requests ConnectionError.
            raise ApiError(
                502, "bad_gateway", f"Microsoft Graph could not be reached ({type(exc).__name__})."
            ) from None
        if len(raw) > MAX_ANSWER:
            raise ApiError(502, "bad_gateway", "Microsoft Graph's answer is too long.")
        return answer.status_code, answer.headers, raw

    def _answer(self, status: int, headers: Any, raw: bytes) -> Answer:
        if status >= 400:
            code, message = _graph_error(raw)
            raise GraphError(status, code, message, headers.get("Retry-After"))
        if status == 204 or not raw.strip():
            return Answer(status, {}, dict(headers))
        try:
            value = json.loads(raw.decode("utf-8"))
        except ValueError:
            value = None
        if not isinstance(value, dict):
            raise ApiError(502, "bad_gateway", "Microsoft Graph gave an unreadable answer.")
        return Answer(status, value, dict(headers))

    def pages(
        self,
        path: str,
        *,
        params: dict[str, str] | None = None,
        prefer: tuple[str, ...] = (),
        max_pages: int = MAX_PAGES,
    ) -> Iterator[Answer]:
        """Yield the pages of a collection, following ``@odata.nextLink`` (at most
        ``max_pages``); the last page is the one without a next link (a delta round's last
        page carries ``@odata.deltaLink`` instead)."""
        answer = self.call("GET", path, params=params, prefer=prefer, absolute="://" in path)
        for _ in range(max_pages):
            yield answer
            link = answer.body.get("@odata.nextLink")
            if not isinstance(link, str):
                return
            answer = self.call("GET", link, prefer=prefer, absolute=True)
        raise ApiError(502, "bad_gateway", "Microsoft Graph's list has too many pages.")
