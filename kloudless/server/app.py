"""The WSGI application: request ids, host checks, authentication, rate limits, routing and
the JSON error contract, around the handlers of :mod:`kloudless.server.api`.

The layers import downwards only: this module (HTTP) → ``api/`` (handlers: parse, validate,
shape the JSON) → services (:mod:`~kloudless.server.core`, ``sweep``, ``webhooks``, ...) →
``connectors/`` → the store (``store.py``, ``activity.py``). See ``HACKING.md``.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import IO, TYPE_CHECKING, Any, Callable, cast

from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.sansio.utils import get_host
from werkzeug.wrappers import Request, Response

from . import cors, idempotency, imported, provider_rejection, request_log, scopes
from .api import ROUTES
from .api.storage import (
    SMALL_ANSWER,
    SmallBody,
    file_contents,
    file_headers,
    is_object_id,
    is_plain_download,
)
from .auth import Auth, authenticate
from .connectors.local import LocalConnector
from .connectors.local_storage import open_inline_contents
from .context import HandlerWrapper, RequestContext
from .core import Core
from .diskspace import Reserve, check_room, insufficient_storage, is_disk_full
from .errors import ApiError, forbidden, not_found, too_large, too_many_requests
from .hosts import HostCheck
from .params import check_no_nul
from .ratelimit import AuthGuard, RateLimiter
from .responses import check_header_values, error_response, new_request_id
from .routing import (
    AFTER_RESPONSE,
    AUTH_APP,
    AUTH_DEVELOPER,
    AUTH_META,
    AUTH_NONE,
    BODY_UPLOAD,
    PREFLIGHTED,
    WRITE_METHODS,
    Route,
    url_map,
)
from .settings import Settings
from .transfer_limits import DOWNLOAD, SLOT_HELD, UPLOAD, Releasing, credential_key

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

log = logging.getLogger("kloudless.server")

#: An answer the HTTP server sends as is: ``(status line, headers, body)``.
WsgiAnswer = tuple[str, list[tuple[str, str]], bytes]

__all__ = ["HANDOVER_SECONDS", "ServerApp"]

#: Seconds after its preflight during which a request's dispatch takes the route and the
#: credentials the preflight found instead of routing and authenticating it again. Past that
#: (a large or slow body) it authenticates anew, so a credential revoked while a long upload
#: arrives is refused as before.
HANDOVER_SECONDS = 1.0


@dataclass(frozen=True)
class _Preflighted:
    """What a request's preflight found, for the dispatch of the same request
    (``environ[PREFLIGHTED]``, carried by the HTTP server)."""

    route: Route
    args: Mapping[str, Any]
    #: The credentials as authenticated, before the precheck took the account rows.
    auth: Auth | None
    #: What identifies the request (:func:`_identity`): the dispatch checks it is the same.
    request: tuple[str, ...]
    #: ``time.monotonic()`` when the checks passed.
    at: float


#: What werkzeug's ``Map.bind_to_environ()`` and ``MapAdapter.match()`` read of a request to
#: find its route (host and port for the adapter, the upgrade headers for WebSocket rules).
MATCH_INPUTS = (
    "REQUEST_METHOD",
    "PATH_INFO",
    "SCRIPT_NAME",
    "HTTP_HOST",
    "SERVER_NAME",
    "SERVER_PORT",
    "wsgi.url_scheme",
    "HTTP_CONNECTION",
    "HTTP_UPGRADE",
)
#: Routing answers remembered per app (see :meth:`ServerApp._match`) ...
MATCH_CACHE = 1024
#: ... for paths up to this many characters.
MATCH_PATH_MAX = 512


class ServerApp(Core):
    """The WSGI application: a :class:`~kloudless.server.core.Core` served over HTTP. Build it
    with :func:`kloudless.server.create_app`.

    :param settings: the server settings; the data dir is created if missing.
    """

    def __init__(self, settings: Settings) -> None:
        self.check_host = HostCheck(settings)
        #: Wrappers run around every authenticated handler call, outermost first
        #: (the idempotency-key layer plugs in here).
        self.handler_wrappers: list[HandlerWrapper] = []
        self.routes: list[Route] = list(ROUTES)
        self.url_map = url_map(self.routes)
        #: werkzeug's answers for the routing inputs of recent requests (see :meth:`_match`).
        self._matched = functools.lru_cache(maxsize=MATCH_CACHE)(self._match_inputs)
        super().__init__(settings)
        # Several processes share their counts through the database.
        shared = self.store if settings.shared_state else None
        self.rate_limiter = RateLimiter(settings.rate_limit_per_minute, shared, "requests:")
        #: Failed authentications per client address (brute-force guard).
        self.auth_guard = AuthGuard(settings.auth_failures_per_minute, shared)
        #: Room kept on the disk for deletes (see :mod:`kloudless.server.diskspace`).
        self.disk_reserve = Reserve(settings.data_dir, settings.min_free_bytes)
        idempotency.install(self)
        # Inside the idempotency layer: a replayed answer is the judged one.
        self.handler_wrappers.append(imported.judge_rejection)
        self.handler_wrappers.append(provider_rejection.refresh_on_rejection)
        #: The wrappers with which :meth:`_plain_download` may answer (these do nothing for a
        #: local read); with any other list, every download takes the generic path.
        self._plain_wrappers = list(self.handler_wrappers)
        #: Whether small downloads may take :meth:`_plain_download` (the tests turn it off to
        #: compare the two paths).
        self.plain_downloads = True

    # -- WSGI --------------------------------------------------------------------------------
    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Any:
        if environ["REQUEST_METHOD"] == "GET" and self.plain_downloads:
            answer = self._plain_download(environ, start_response)
            if answer is not None:
                return answer
        request = Request(environ)
        request_id = new_request_id()
        started = time.monotonic()
        response = self.dispatch(request, request_id)
        return self._answer(request, response, request_id, started, start_response)

    def _answer(
        self,
        request: Request,
        response: Response,
        request_id: str,
        started: float,
        start_response: StartResponse,
    ) -> Any:
        """Send ``response`` with its request id, and log its line."""
        environ = request.environ
        response.headers["X-Request-Id"] = request_id
        _log_when_sent(environ, _request_line(request, response, started, request_id))
        headers = _as_is(response, environ)
        if headers is not None:
            # What werkzeug would send for it, without copying and checking every header again.
            start_response(response.status, headers)
            return response.response
        return response(environ, start_response)

    def _plain_download(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes] | None:
        """Answer a plain download of a small file kept in the database without werkzeug's
        request and response, the request context, the handler wrappers and a storage backend:
        the same checks, in the same order, as :meth:`_route`, :meth:`_dispatch` and
        :func:`~kloudless.server.api.storage.file_contents`, and the same answer (status,
        headers, body, log line). They cost most of a 4 KiB download's server time, which
        stayed short of the issue's goal against a bare waitress (docs/performance.rst).

        Only a ``GET`` of a file's contents with one Bearer token for a ``local`` account, no
        query, no ``Range`` or conditional, no ``Origin``, ``X-Kloudless-As-User`` or
        ``Idempotency-Key``, whose bytes (at most :data:`~.api.storage.SMALL_ANSWER`) are in
        the database, and with the default handler wrappers (a local read can raise nothing
        they act on). Up to the rate limit, anything else, or any check that refuses, and it
        returns None: the generic path then runs (and refuses, and counts a failed
        authentication) as for any request. ``tests/server/test_plain_download.py`` runs
        every case both ways.

        :returns: the body, ``start_response`` called; or None.
        """
        authorization = environ.get("HTTP_AUTHORIZATION", "")
        host = environ.get("HTTP_HOST")
        path = environ.get("PATH_INFO", "")
        if (
            host is None
            or environ.get("QUERY_STRING")
            or "," in authorization
            or not path.isascii()
            or not is_plain_download(environ)
            or not _PLAIN_EXCLUDED.isdisjoint(environ)
            or self.handler_wrappers != self._plain_wrappers
        ):
            return None
        started = time.monotonic()
        address = environ.get("REMOTE_ADDR")
        try:
            self.sweeper.maybe_run()
            self.disk_reserve.maybe_restore()
            # request.host is werkzeug's get_host() of these (the Host header is there).
            self.check_host(get_host(environ.get("wsgi.url_scheme", "http"), host))
            index, args = self._match(environ)
            route = self.routes[index]
            if route.handler is not file_contents:
                return None
            self.auth_guard.check(address)
            auth = authenticate(self.store, authorization)
            _check_auth_level(auth, route.auth)
            scopes.check(auth, route.family)
        except Exception:  # a refusal, a database error: the generic path raises it, once
            return None
        account_ref, file_id = args["account_id"], args["object_id"]
        if not (account_ref.isascii() and account_ref.isdigit() and len(account_ref) <= 18):
            return None  # "me", or what RequestContext.account refuses
        account_id = int(account_ref)
        account = auth.account_rows.get(account_id)
        if (
            account is None
            or account["app_id"] != auth.app_id
            or not auth.may_access(account_id)
            or account["service"] != "local"  # before get_connector(), which may raise 501
            or type(self.connector(account)) is not LocalConnector
            or not is_object_id(file_id)
        ):
            return None
        try:
            opened = open_inline_contents(self.store, account_id, file_id)
            if opened is None or opened.size > SMALL_ANSWER:
                return None
            headers = file_headers(
                opened.mime_type, opened.size, opened.etag, opened.name, False, True
            )
            check_header_values(headers)
        except Exception:  # a database error, a bad header value: the generic path reports it
            return None
        # The request is this path's from here: a refusal is answered as the generic path
        # answers it.
        request_id = new_request_id()
        try:
            limited = self.rate_limiter.check(_rate_key(auth, address))
            if limited is not None:
                raise too_many_requests("requests", limited)
            release = self.transfer_limits.acquire(DOWNLOAD, credential_key(authorization), address)
        except Exception as exc:  # a 429, or a failure: the generic path's JSON error
            return self._refuse(environ, exc, request_id, started, start_response)
        try:
            body = SmallBody(cast(IO[bytes], Releasing(opened.stream, release)), opened.size)
        except Exception as exc:  # SmallBody closed the stream, which freed the slot
            return self._refuse(environ, exc, request_id, started, start_response)
        try:
            self.store.settle()
            headers.append(("X-Request-Id", request_id))
            log_line = functools.partial(
                request_log.write,
                "GET",
                "/" + path.lstrip("/"),  # werkzeug's request.path of an ASCII path
                200,
                (time.monotonic() - started) * 1000,
                request_id,
            )
            _log_when_sent(environ, log_line)
            start_response("200 OK", headers)
        except BaseException:
            body.close()  # the server never gets the body to close: free its slot here
            raise
        return body

    def _refuse(
        self,
        environ: WSGIEnvironment,
        exc: Exception,
        request_id: str,
        started: float,
        start_response: StartResponse,
    ) -> Any:
        """Answer ``exc`` as :meth:`dispatch` answers what a request raised."""
        request = Request(environ)
        response = _error_response(exc, request, request_id)
        self.store.settle()
        return self._answer(request, response, request_id, started, start_response)

    def dispatch(self, request: Request, request_id: str) -> Response:
        """Route and run one request; every failure becomes a JSON error."""
        ctx = RequestContext(self, request, request_id, self.auth_guard)
        try:
            response = self._dispatch(ctx)
        except Exception as exc:
            response = _error_response(exc, request, request_id)
        # Before the answer: a credential change committed past the store's own calls.
        self.store.settle()
        for key, value in ctx.response_headers.items():
            response.headers.setdefault(key, value)
        cors.apply(ctx.request, ctx.store, ctx.auth, response)
        return response

    def preflight(self, environ: WSGIEnvironment) -> tuple[WsgiAnswer | None, int]:
        """The checks that need only a request's headers, run by the HTTP server
        (:mod:`~kloudless.server.serving`) before it reads the body: host, route, credentials,
        the body's size limit and the route's ``precheck`` (account, quota). A refused request
        never has its body stored. An accepted one leaves its route and credentials to
        :meth:`dispatch` (``environ[PREFLIGHTED]``, used within :data:`HANDOVER_SECONDS` and
        for the same request only, else it routes and authenticates again); the handler
        checks everything else again.

        :returns: ``(answer, most body bytes accepted)``; ``answer`` is None to go on, else
            ``(status line, headers, body)`` to send instead of running the request.
        """
        request = Request(environ)
        request_id = new_request_id()
        started = time.monotonic()
        ctx = RequestContext(self, request, request_id, self.auth_guard)
        limit = self.settings.max_json_bytes
        try:
            route, args = self._route(ctx)
            checked = time.monotonic()
            auth = None if ctx.auth is None else _copy_auth(ctx.auth)
            if route.body == BODY_UPLOAD:
                limit = self.settings.max_upload_bytes
            if request.content_length is not None and request.content_length > limit:
                raise too_large(f"The request body exceeds {limit} bytes.")
            if route.precheck is not None:
                route.precheck(ctx, **args)
            if route.body == BODY_UPLOAD:
                # Held while the body arrives and the request runs: the HTTP server releases
                # it when the request ends.
                environ[SLOT_HELD] = self._upload_slot(ctx)
            if not cors.is_preflight(request):
                # For the dispatch of this request: no second routing and authentication.
                environ[PREFLIGHTED] = _Preflighted(route, args, auth, _identity(environ), checked)
        except Exception as exc:
            response = _error_response(exc, request, request_id)
            response.headers["X-Request-Id"] = request_id
            _request_line(request, response, started, request_id)()
            answer = (response.status, list(response.headers.to_wsgi_list()), response.get_data())
            return answer, 0
        return None, limit

    def _authenticate(self, ctx: RequestContext) -> Auth:
        """:func:`~kloudless.server.auth.authenticate` behind the failed-login guard; 401s
        are counted."""
        ctx.check_auth_failures()
        try:
            return authenticate(self.store, ctx.request.environ.get("HTTP_AUTHORIZATION", ""))
        except ApiError as exc:
            if exc.status == 401:
                ctx.note_auth_failure()
            raise

    def _dispatch(self, ctx: RequestContext) -> Response:
        self.sweeper.maybe_run()
        self.disk_reserve.maybe_restore()
        route, args = self._handed_over(ctx) or self._route(ctx)
        if ctx.request.method == "DELETE":
            self.disk_reserve.release_if_low()  # so that a delete can commit on a full disk
        limited = self.rate_limiter.check(_rate_key(ctx.auth, ctx.request.remote_addr))
        if limited is not None:
            raise too_many_requests("requests", limited)

        if route.body == BODY_UPLOAD and SLOT_HELD not in ctx.request.environ:
            # Not preflighted (a small body, received in full first; another WSGI server; the
            # test client): the room on the disk the preflight would have checked, then the
            # upload slot, held while it runs.
            length = ctx.request.content_length
            if length:
                check_room(self.settings.data_dir, length, self.settings.min_free_bytes)
            release = self._upload_slot(ctx)
            try:
                return self._run(ctx, route, args)
            finally:
                release()
        return self._run(ctx, route, args)

    @staticmethod
    def _handed_over(ctx: RequestContext) -> tuple[Route, Mapping[str, Any]] | None:
        """The route, URL variables and credentials this request's preflight found (every
        check of :meth:`_route` passed), while they are fresh (:data:`HANDOVER_SECONDS`) and
        for this very request; else None (route and authenticate it)."""
        handed = ctx.request.environ.pop(PREFLIGHTED, None)
        if (
            not isinstance(handed, _Preflighted)
            or time.monotonic() - handed.at > HANDOVER_SECONDS
            or handed.request != _identity(ctx.request.environ)
        ):
            return None
        ctx.auth = None if handed.auth is None else _copy_auth(handed.auth)
        return handed.route, handed.args

    def _upload_slot(self, ctx: RequestContext) -> Callable[[], None]:
        """Take the request's upload slot. :raises ApiError: 429 past a limit."""
        return self.transfer_limits.acquire(
            UPLOAD,
            credential_key(ctx.request.headers.get("Authorization")),
            ctx.request.remote_addr,
        )

    def _run(self, ctx: RequestContext, route: Route, args: Mapping[str, Any]) -> Response:
        ctx.atomic = route.auth != AUTH_NONE and ctx.request.method in WRITE_METHODS
        if ctx.atomic and callable(route.atomic):
            ctx.atomic = route.atomic(ctx, **args)
        elif not route.atomic:
            ctx.atomic = False

        def call() -> Response:
            if not ctx.atomic:
                return route.handler(ctx, **args)
            # The change, its activity events and (joining the idempotency layer's unit)
            # the stored answer commit together; see Store.unit_of_work.
            with self.store.unit_of_work():
                return route.handler(ctx, **args)

        if route.auth == AUTH_NONE or not self.handler_wrappers:
            return call()
        chain: Callable[[], Response] = call
        for wrapper in reversed(self.handler_wrappers):
            chain = functools.partial(wrapper, ctx, chain)
        return chain()

    def _route(self, ctx: RequestContext) -> tuple[Route, Mapping[str, Any]]:
        """Check the host, find the route and authenticate the caller as the route requires.

        :returns: the route and its URL variables. :raises ApiError: 400, 401, 403, 404, 405.
        """
        self.check_host(ctx.request.host)
        if cors.is_preflight(ctx.request):
            # Answered before any credential is looked at (browsers send none with it).
            adapter = self.url_map.bind_to_environ(ctx.request.environ)
            answer = cors.preflight(ctx.request, self.store, adapter)
            return Route(ctx.request.path, ("OPTIONS",), lambda _ctx: answer, AUTH_NONE), {}
        index, args = self._match(ctx.request.environ)
        route = self.routes[index]
        if route.auth != AUTH_NONE:
            ctx.auth = self._authenticate(ctx)
            _check_auth_level(ctx.auth, route.auth)
            scopes.check(ctx.auth, route.family)  # 403 when the token's scope lacks it
        for value in args.values():
            if isinstance(value, str) and "\x00" in value:
                # No id or name holds a NUL (PostgreSQL text cannot): nothing is there.
                raise not_found()
        query = ctx.request.environ.get("QUERY_STRING", "")
        if "%00" in query or "\x00" in query:  # what decodes to a NUL: else none to look for
            check_no_nul([*ctx.request.args.keys(), *ctx.request.args.values()])
        return route, args

    def _match(self, environ: WSGIEnvironment) -> tuple[int, dict[str, Any]]:
        """werkzeug's ``url_map.bind_to_environ(environ).match()``, remembered for the inputs
        it reads (the ``environ`` values of :data:`MATCH_INPUTS`; not the query string, which
        only a redirect would use): a repeated path (a file downloaded again, the pages of a
        listing) is not matched again. Only matches are remembered; a 404 or 405 is raised
        anew by werkzeug each time.

        :returns: the route's index and its URL variables (a new dict).
        """
        inputs = tuple(map(environ.get, MATCH_INPUTS))
        if len(environ.get("PATH_INFO", "")) > MATCH_PATH_MAX:
            index, args = self._match_inputs(inputs)
        else:
            index, args = self._matched(inputs)
        return index, dict(args)

    def _match_inputs(self, inputs: tuple[Any, ...]) -> tuple[int, Mapping[str, Any]]:
        environ = {name: value for name, value in zip(MATCH_INPUTS, inputs) if value is not None}
        index, args = self.url_map.bind_to_environ(environ).match()
        return index, args


def _log_when_sent(environ: WSGIEnvironment, log_line: Callable[[], None]) -> None:
    """Write a request's log line once its answer is on its way (the HTTP server runs
    :data:`AFTER_RESPONSE` work: the client reads its answer meanwhile); now without it."""
    after = environ.get(AFTER_RESPONSE)
    if after is None:
        log_line()
    else:
        after.append(log_line)


def _rate_key(auth: Auth | None, address: str | None) -> str:
    """:returns: what the request rate limit counts for: the credential, else the address."""
    if auth is not None:
        return f"{auth.kind}:{auth.app_id}:{auth.account_id}"
    return f"addr:{address}"


#: Request headers that take a download off the plain path (:meth:`ServerApp._plain_download`).
_PLAIN_EXCLUDED = frozenset(("HTTP_ORIGIN", "HTTP_X_KLOUDLESS_AS_USER", "HTTP_IDEMPOTENCY_KEY"))


def _identity(environ: WSGIEnvironment) -> tuple[str, ...]:
    """:returns: what :meth:`ServerApp._route` reads of a request: method, scheme, host, path,
    query, credentials and client address."""
    return tuple(
        str(environ.get(key, ""))
        for key in (
            "REQUEST_METHOD",
            "wsgi.url_scheme",
            "HTTP_HOST",
            "SERVER_NAME",
            "SCRIPT_NAME",
            "PATH_INFO",
            "QUERY_STRING",
            "HTTP_AUTHORIZATION",
            "REMOTE_ADDR",
        )
    )


def _copy_auth(auth: Auth) -> Auth:
    """:returns: ``auth`` with its own account rows (:meth:`RequestContext.account` takes
    them)."""
    return replace(auth, account_rows=dict(auth.account_rows))


def _check_auth_level(auth: Auth, level: str) -> None:
    """Refuse credentials the route's ``auth`` level does not take (see :class:`Route`).

    :raises ApiError: 403 ``forbidden``."""
    developer = auth.kind == "developer"
    application = auth.kind == "apikey" or (auth.kind == "bearer" and auth.account_id is None)
    if level == AUTH_DEVELOPER and not developer:
        raise forbidden("This endpoint of the management API needs the developer key.")
    if developer and level not in (AUTH_DEVELOPER, AUTH_META):
        # The operator's key manages applications; it never reaches an account's data.
        raise forbidden("A developer key reaches the management API only.")
    if level in (AUTH_APP, AUTH_META) and not (application or developer):
        raise forbidden("This endpoint needs an API key or an application-level token.")


def _error_response(exc: Exception, request: Request, request_id: str) -> Response:
    """:returns: the JSON error answering ``exc`` (the one mapping of what a request raised)."""
    if isinstance(exc, ApiError):
        error = exc
    elif isinstance(exc, MethodNotAllowed):
        allowed = ", ".join(sorted(exc.valid_methods or ()))  # RFC 9110: a 405 names them
        error = ApiError(
            405,
            "method_not_allowed",
            f"Method {request.method} is not allowed here.",
            headers={"Allow": allowed},
        )
    elif isinstance(exc, NotFound):
        error = not_found(f"No such endpoint: {request.path}")
    elif is_disk_full(exc):
        log.warning("disk full, request_id=%s: %s", request_id, exc)
        error = insufficient_storage()
    elif isinstance(exc, HTTPException):
        code = exc.code or 400
        error = ApiError(
            code, "bad_request" if code < 500 else "internal_error", exc.description or exc.name
        )
    else:
        log.error("unhandled error, request_id=%s", request_id, exc_info=exc)
        error = ApiError(500, "internal_error", "An internal error occurred; see the server log.")
    return error_response(error, request_id)


def _as_is(response: Response, environ: WSGIEnvironment) -> list[tuple[str, str]] | None:
    """:returns: the headers of a response werkzeug would send with its headers unchanged and
    its body as it is (a file answer: ``direct_passthrough``, 200 or 206, not ``HEAD``, with a
    ``Content-Length`` and no ``Location``/``Content-Location`` to rewrite), else None."""
    if not response.direct_passthrough or response.status_code not in (200, 206):
        return None
    if environ["REQUEST_METHOD"] == "HEAD":
        return None
    headers = response.headers.to_wsgi_list()
    names = [name.lower() for name, _ in headers]
    if "content-length" not in names or "location" in names or "content-location" in names:
        return None
    return headers


def _request_line(
    request: Request, response: Response, started: float, request_id: str
) -> Callable[[], None]:
    """:returns: what logs the request's line when called: its method, path (redacted),
    status, duration and id, the duration and status as they are now."""
    return functools.partial(
        request_log.write,
        request.method,
        request.path,
        response.status_code,
        (time.monotonic() - started) * 1000,
        request_id,
    )
