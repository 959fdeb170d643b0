"""The WSGI application: routing table, request ids, authentication, JSON errors, paging.

Handlers live in :mod:`kloudless.server.api` modules; each exposes ``ROUTES`` (a list of
:class:`Route`). A handler receives a :class:`RequestContext` and the URL variables and returns a
werkzeug :class:`~werkzeug.wrappers.Response` (use :func:`json_response`). See ``HACKING.md``.
"""

from __future__ import annotations

import functools
import importlib
import ipaddress
import json
import logging
import math
import re
import sqlite3
import threading
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any, Callable
from urllib.parse import parse_qsl, urlsplit

from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from .errors import (
    ApiError,
    forbidden,
    invalid_parameters,
    not_found,
    not_implemented,
    too_large,
    too_many_requests,
)
from .settings import Settings
from .store import Store, hash_secret

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

    from .connectors.base import Connector, StorageBackend

log = logging.getLogger("kloudless.server")

Handler = Callable[..., Response]
#: A wrapper around handler execution: ``wrapper(ctx, call_next) -> Response``.
HandlerWrapper = Callable[["RequestContext", Callable[[], Response]], Response]
#: Called after each activity append: ``listener(account_id, cursor)``.
ActivityListener = Callable[[int, int], None]

#: Modules whose ``ROUTES`` are mounted under ``/v1``; optional ones may be absent.
API_MODULES = (
    "oauth",
    "accounts",
    "storage",
    "multipart",
    "links",
    "events",
    "raw",
    "meta",
    "tasks",
    "unsupported",
)
OPTIONAL_API_MODULES = ("calendar",)

#: Largest integer SQLite stores; larger ids and cursors are refused before they reach a query.
SQLITE_MAX_INT = 2**63 - 1

#: Credentials this server issues (``tok_...``, ``key_...``), should a client put one in a path.
_SECRET_IN_PATH = re.compile(r"\b(tok_|key_)[A-Za-z0-9_-]{16,}")
#: Public link ids (``/l/<id>``) are capabilities: whoever has one can download the file.
_LINK_IN_PATH = re.compile(r"^/l/[^/]+")

#: Host names every server accepts (loopback), besides the bound host.
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
#: Bind addresses meaning "every interface".
WILDCARD_HOSTS = ("", "0.0.0.0", "::")


def log_path(path: str) -> str:
    """:returns: ``path`` with credentials and public link ids replaced by ``[REDACTED]``."""
    return _LINK_IN_PATH.sub("/l/[REDACTED]", _SECRET_IN_PATH.sub(r"\1[REDACTED]", path))


def host_name(host: str) -> str:
    """:returns: the lower-case name of a ``Host`` header value, without port or brackets."""
    host = host.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        return host[1:end] if end > 0 else host
    if host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.rstrip(".")


AUTH_NONE = "none"  # no credentials needed (OAuth pages, public links)
AUTH_ANY = "any"  # Bearer token or API key
AUTH_APP = "app"  # API key or application-level bearer token


@dataclass(frozen=True)
class Route:
    """One routing rule.

    :param path: werkzeug rule under ``/v1`` (e.g. ``/accounts/<account_id>/storage/quota``);
        ``prefix=False`` mounts it at the site root instead.
    :param methods: accepted HTTP methods.
    :param handler: ``handler(ctx, **url_vars) -> Response``.
    :param auth: :data:`AUTH_ANY` (default), :data:`AUTH_APP` or :data:`AUTH_NONE`.
    """

    path: str
    methods: tuple[str, ...]
    handler: Handler
    auth: str = AUTH_ANY
    prefix: bool = True


@dataclass
class Auth:
    """Who is calling: ``kind`` is ``'bearer'`` (``account_id`` set, or None for an
    application-level token) or ``'apikey'``."""

    kind: str
    app_id: str
    account_id: int | None = None
    scope: str = "all"
    #: Every account reachable with this credential when several comma-separated Bearer tokens
    #: were sent (``Bearer t1,t2``); ``account_id`` is then the first one.
    account_ids: tuple[int, ...] = ()

    def may_access(self, account_id: int) -> bool:
        """:returns: whether a Bearer credential covers ``account_id`` (API keys: see app)."""
        if self.kind != "bearer":
            return True
        return account_id == self.account_id or account_id in self.account_ids


@dataclass
class RequestContext:
    """Everything a handler needs for one request."""

    app: ServerApp
    request: Request
    request_id: str
    auth: Auth | None = None
    response_headers: dict[str, str] = field(default_factory=dict)
    #: Replacement request body set by a wrapper that had to read it (e.g. to hash it for
    #: idempotency keys); handlers read the body only through :meth:`body_stream`.
    body_override: IO[bytes] | None = None

    def body_stream(self) -> IO[bytes]:
        """:returns: the request body stream (the override when a wrapper consumed it)."""
        if self.body_override is not None:
            return self.body_override
        stream: IO[bytes] = self.request.stream
        return stream

    @property
    def store(self) -> Store:
        """:returns: the server's :class:`~kloudless.server.store.Store`."""
        return self.app.store

    @property
    def settings(self) -> Settings:
        """:returns: the server's settings."""
        return self.app.settings

    # -- accounts ----------------------------------------------------------------------------
    def account(self, account_ref: str) -> sqlite3.Row:
        """Resolve ``me`` or a numeric id to an account the caller may access.

        :raises ApiError: 400 for a malformed id, 404 when missing or not the caller's.
        """
        auth = self.require_auth()
        if "," in account_ref:
            raise invalid_parameters("This endpoint takes a single account id.")
        if account_ref == "me":
            if auth.kind != "bearer" or auth.account_id is None:
                raise invalid_parameters(
                    "'me' needs an account Bearer token; "
                    "use the numeric account id with an API key."
                )
            account_id = auth.account_id
        else:
            if not (account_ref.isascii() and account_ref.isdigit()) or len(account_ref) > 18:
                raise invalid_parameters(f"Invalid account id: {account_ref[:40]!r}")
            account_id = int(account_ref)
        row = self.store.get_account(account_id)
        if row is None or row["app_id"] != auth.app_id or not auth.may_access(account_id):
            raise not_found(f"Account not found: {account_id}")
        return row

    def accounts(self, account_refs: str) -> list[sqlite3.Row]:
        """Resolve a comma-separated account list (``1,2,3``; a single ``me`` also works) for
        the list endpoints that accept several accounts (events, search, recent, links).

        :raises ApiError: like :meth:`account`, for any of them; 400 for more than 50.
        """
        refs = [ref.strip() for ref in account_refs.split(",")]
        if len(refs) > 50:
            raise invalid_parameters("At most 50 accounts can be queried at once.")
        rows: list[sqlite3.Row] = []
        seen: set[int] = set()
        for ref in refs:
            row = self.account(ref)
            if int(row["id"]) not in seen:
                seen.add(int(row["id"]))
                rows.append(row)
        return rows

    def require_auth(self) -> Auth:
        """:returns: the caller's credentials. :raises ApiError: 401 when unauthenticated."""
        if self.auth is None:
            raise ApiError(401, "authentication_required", "An Authorization header is required.")
        return self.auth

    def connector(self, account: sqlite3.Row) -> Connector:
        """:returns: the :class:`~kloudless.server.connectors.base.Connector` of the account."""
        from .connectors.base import get_connector

        return get_connector(str(account["service"]))

    def storage(self, account: sqlite3.Row) -> StorageBackend:
        """:returns: the account's storage backend. :raises ApiError: 501 if it has none."""
        backend = self.connector(account).storage(self, account)
        if backend is None:
            raise not_implemented(f"The {account['service']} service has no storage API.")
        return backend

    # -- request helpers ---------------------------------------------------------------------
    def href(self, path: str) -> str:
        """:returns: the absolute URL of an API path, e.g. ``accounts/1/storage/files/x``."""
        return self._api_base + path.lstrip("/")

    @functools.cached_property
    def _api_base(self) -> str:
        # Computed once per request: a listing builds an href for every object.
        base = self.settings.public_base_url or self.request.host_url
        return base.rstrip("/") + "/v1/"

    def site_url(self, path: str) -> str:
        """:returns: the absolute URL of a path at the site root (e.g. ``l/<link id>``)."""
        base = self.settings.public_base_url or self.request.host_url
        return base.rstrip("/") + "/" + path.lstrip("/")

    def json_body(self, required: bool = True) -> dict[str, Any]:
        """Parse the JSON object body (size-limited).

        :raises ApiError: 400 on malformed JSON or a non-object, 413 when too large.
        """
        data = read_limited(self.request, self.settings.max_json_bytes, self.body_stream())
        if not data.strip():
            if required:
                raise invalid_parameters("A JSON object body is required.")
            return {}
        try:
            # Strict UTF-8 first (json.loads on bytes would let lone surrogates through), and
            # no lone surrogates from \u escapes either: they cannot be stored or sent back.
            value = json.loads(data.decode("utf-8"))
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except (ValueError, UnicodeError, RecursionError) as exc:
            reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)[:200]
            raise ApiError(400, "bad_request", f"Malformed JSON body: {reason}") from None
        if not isinstance(value, dict):
            raise invalid_parameters("The JSON body must be an object.")
        return value

    def form_body(self) -> dict[str, str]:
        """Parse a form-encoded body, whatever its declared Content-Type (the 2.x SDK sends
        ``application/form-urlencoded``)."""
        data = read_limited(self.request, self.settings.max_json_bytes, self.body_stream())
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise invalid_parameters("The form body must be UTF-8.") from None
        return dict(parse_qsl(text, keep_blank_values=True))

    def arg_bool(self, name: str, default: bool = False) -> bool:
        """:returns: a boolean query parameter (``true/false/1/0``). :raises ApiError: 400."""
        return parse_bool(self.request.args.get(name), name, default)

    @functools.cached_property
    def wants_raw(self) -> bool:
        """True when the request asked for ``raw`` upstream data (``X-Kloudless-Raw-Data``)."""
        return self.request.headers.get("X-Kloudless-Raw-Data", "").strip().lower() == "true"

    @property
    def client_ip(self) -> str | None:
        """:returns: the caller's address."""
        return self.request.remote_addr

    def page_params(self) -> tuple[int, int]:
        """Read ``page`` (>= 1, default 1) and ``page_size`` (1..max, default setting).

        :raises ApiError: 400 ``invalid_parameters`` for bad values.
        """
        return (
            parse_int(self.request.args.get("page"), "page", 1, 1, None),
            parse_int(
                self.request.args.get("page_size"),
                "page_size",
                self.settings.default_page_size,
                1,
                self.settings.max_page_size,
            ),
        )

    def object_list(
        self, objects: Sequence[dict[str, Any]], api: str, *, with_total: bool = False
    ) -> dict[str, Any]:
        """Page a full list into the ``object_list`` envelope (``next_page`` null at the end).

        :raises ApiError: 404 when ``page`` is past the last page (page 1 always exists).
        """
        page, page_size = self.page_params()
        start = (page - 1) * page_size
        return self.page_envelope(
            objects[start : start + page_size],
            api,
            page,
            page_size,
            len(objects),
            with_total=with_total,
        )

    def page_envelope(
        self,
        chunk: Sequence[dict[str, Any]],
        api: str,
        page: int,
        page_size: int,
        total: int,
        *,
        with_total: bool = False,
    ) -> dict[str, Any]:
        """The ``object_list`` envelope of one page already cut out of ``total`` objects (by a
        backend that pages itself), with the same rules as :meth:`object_list`.

        :raises ApiError: 404 when ``page`` is past the last page (page 1 always exists).
        """
        start = (page - 1) * page_size
        if page > 1 and start >= total:
            raise not_found(f"Page {page} does not exist.")
        more = start + page_size < total
        return object_list(
            list(chunk), api, page, page + 1 if more else None, total=total if with_total else None
        )

    def record_activity(
        self, account_id: int, type_: str, metadata: dict[str, Any], object_id: str | None = None
    ) -> int:
        """Append to the account's activity log (see :func:`ServerApp.record_activity`)."""
        return self.app.record_activity(account_id, type_, metadata, object_id, self.client_ip)


def object_list(
    objects: Sequence[dict[str, Any]],
    api: str,
    page: Any,
    next_page: Any,
    total: int | None = None,
) -> dict[str, Any]:
    """Build the ``object_list`` envelope (the one paging envelope builder).

    :param page: this page's identifier; :param next_page: the next one, or None at the end.
    """
    envelope: dict[str, Any] = {
        "api": api,
        "type": "object_list",
        "page": page,
        "next_page": next_page,
        "count": len(objects),
        "objects": list(objects),
    }
    if total is not None:
        envelope["total"] = total
    return envelope


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """:returns: a JSON response (``application/json``)."""
    return Response(
        json.dumps(data, separators=(",", ":")),
        status=status,
        mimetype="application/json",
        headers=headers,
    )


def no_content() -> Response:
    """:returns: an empty 204 response."""
    return Response(status=204)


def parse_bool(value: str | None, name: str, default: bool) -> bool:
    """:returns: the boolean value of a query/header string. :raises ApiError: 400."""
    if value is None or value == "":
        return default
    low = value.strip().lower()
    if low in ("true", "1", "yes"):
        return True
    if low in ("false", "0", "no"):
        return False
    raise invalid_parameters(f"Parameter '{name}' must be true or false.")


def parse_int(
    value: str | None, name: str, default: int, minimum: int | None, maximum: int | None
) -> int:
    """:returns: an integer query value within bounds. :raises ApiError: 400."""
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise invalid_parameters(f"Parameter '{name}' must be an integer.") from None
    if minimum is not None and number < minimum:
        raise invalid_parameters(f"Parameter '{name}' must be at least {minimum}.")
    if maximum is not None and number > maximum:
        raise invalid_parameters(f"Parameter '{name}' must be at most {maximum}.")
    return number


def read_limited(request: Request, limit: int, stream: IO[bytes] | None = None) -> bytes:
    """Read a whole (small) body, refusing more than ``limit`` bytes with a 413."""
    length = request.content_length
    if length is None or length <= limit:  # a declared oversize body is not read at all
        data = (stream or request.stream).read(limit + 1)
        if len(data) <= limit:
            return data
    raise too_large(f"The request body exceeds {limit} bytes.")


class RateLimiter:
    """Fixed one-minute windows per client key; ``limit`` 0 disables it."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._windows: dict[str, tuple[int, int]] = {}

    def blocked(self, key: str) -> int | None:
        """Like :meth:`check` without counting. :returns: seconds to wait, or None."""
        if self.limit <= 0:
            return None
        with self._lock:
            start, count = self._windows.get(key, (0, 0))
        if count < self.limit:  # the common case reads no clock
            return None
        now = time.time()
        window = int(now // 60)
        if start == window:
            return max(1, math.ceil((window + 1) * 60 - now))
        return None

    def check(self, key: str) -> int | None:
        """:returns: None if allowed, else the seconds to wait (``Retry-After``)."""
        if self.limit <= 0:
            return None
        now = time.time()
        window = int(now // 60)
        with self._lock:
            if len(self._windows) > 10000:
                self._windows = {k: v for k, v in self._windows.items() if v[0] == window}
            start, count = self._windows.get(key, (window, 0))
            if start != window:
                start, count = window, 0
            if count >= self.limit:
                return max(1, math.ceil((window + 1) * 60 - now))
            self._windows[key] = (start, count + 1)
        return None


class ServerApp:
    """The WSGI application. Build it with :func:`kloudless.server.create_app`.

    :param settings: the server settings; the data dir is created if missing.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.rate_limiter = RateLimiter(settings.rate_limit_per_minute)
        #: Failed authentications per client address (brute-force guard).
        self.auth_failures = RateLimiter(settings.auth_failures_per_minute)
        self.allowed_hosts = self._allowed_hosts(settings)
        #: Wrappers run around every authenticated handler call, outermost first
        #: (the idempotency-key layer plugs in here).
        self.handler_wrappers: list[HandlerWrapper] = []
        #: Called after every activity append (webhook delivery plugs in here).
        self.activity_listeners: list[ActivityListener] = []
        self.executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="kloudless-task")
        self.routes: list[Route] = []
        for name in API_MODULES:
            self.routes.extend(importlib.import_module(f"{__package__}.api.{name}").ROUTES)
        for name in OPTIONAL_API_MODULES:
            try:
                module = importlib.import_module(f"{__package__}.api.{name}")
            except ModuleNotFoundError as exc:
                if exc.name != f"{__package__}.api.{name}":
                    raise
                log.warning("API module %s not available", name)
                continue
            self.routes.extend(module.ROUTES)
        # Connectors and API modules register their tables' migrations at import time, so the
        # store is opened only after everything is imported.
        from . import idempotency, webhooks  # both register their tables' migrations
        from .connectors.base import services

        services()
        self.store = Store(settings.db_path)
        idempotency.install(self)
        #: Webhook delivery (a background thread started on the first activity).
        self.webhooks = webhooks.attach(self)
        self.url_map = Map(strict_slashes=False, merge_slashes=False)
        for index, route in enumerate(self.routes):
            if not route.prefix:
                self.url_map.add(Rule(route.path, methods=list(route.methods), endpoint=index))
                continue
            # This server implements API v1; /v2 paths are served by the same handlers so
            # that 2.x SDK code pinning api_version=2 keeps working.
            for version in ("/v1", "/v2"):
                self.url_map.add(
                    Rule(version + route.path, methods=list(route.methods), endpoint=index)
                )
        from .sweep import Sweeper

        self.sweeper = Sweeper(self)
        self.sweeper.maybe_run()  # start-up sweep, in the background

    def close(self) -> None:
        """Stop background work, close pooled upstream (DAV) connections and the database."""
        self.webhooks.stop()
        self.executor.shutdown(wait=True)
        from .connectors import webdav_client

        webdav_client.close_clients()
        try:
            from .connectors import caldav
        except ImportError:  # pragma: no cover - the caldav extra's module is absent
            pass
        else:
            caldav.close_backends()
        self.store.close()

    # -- hooks -------------------------------------------------------------------------------
    def record_activity(
        self,
        account_id: int,
        type_: str,
        metadata: dict[str, Any],
        object_id: str | None = None,
        ip: str | None = None,
    ) -> int:
        """Append an event to the account's activity log and notify listeners. This is the one
        way every change is recorded (``add``, ``update``, ``delete``, ``rename``, ``move``,
        ``copy``).

        Called inside the change's own store transaction (as the ``local`` backend does), the
        event commits or rolls back with the change, and the listeners run only after the
        commit.

        :returns: the new cursor.
        """
        cursor = self.store.append_activity(
            account_id, type_, object_id or metadata.get("id"), metadata, ip
        )

        def notify() -> None:
            for listener in list(self.activity_listeners):
                try:
                    listener(account_id, cursor)
                except Exception:  # a listener must never break the request
                    log.exception("activity listener failed")

        self.store.after_commit(notify)
        return cursor

    # -- WSGI --------------------------------------------------------------------------------
    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Any:
        request = Request(environ)
        request_id = str(uuid.uuid4())
        started = time.monotonic()
        response = self.dispatch(request, request_id)
        response.headers["X-Request-Id"] = request_id
        log.info(
            "%s %s %s %.1fms request_id=%s",
            request.method,
            log_path(request.path),
            response.status_code,
            (time.monotonic() - started) * 1000,
            request_id,
        )
        return response(environ, start_response)

    def dispatch(self, request: Request, request_id: str) -> Response:
        """Route and run one request; every failure becomes a JSON error."""
        ctx = RequestContext(app=self, request=request, request_id=request_id)
        try:
            response = self._dispatch(ctx)
        except ApiError as exc:
            response = self.error_response(ctx, exc)
        except MethodNotAllowed:
            response = self.error_response(
                ctx,
                ApiError(
                    405, "method_not_allowed", f"Method {request.method} is not allowed here."
                ),
            )
        except NotFound:
            response = self.error_response(ctx, not_found(f"No such endpoint: {request.path}"))
        except HTTPException as exc:
            code = exc.code or 400
            response = self.error_response(
                ctx,
                ApiError(
                    code,
                    "bad_request" if code < 500 else "internal_error",
                    exc.description or exc.name,
                ),
            )
        except Exception:
            log.exception("unhandled error, request_id=%s", request_id)
            response = self.error_response(
                ctx,
                ApiError(500, "internal_error", "An internal error occurred; see the server log."),
            )
        for key, value in ctx.response_headers.items():
            response.headers.setdefault(key, value)
        return response

    def error_response(self, ctx: RequestContext, exc: ApiError) -> Response:
        """:returns: the JSON error response for ``exc``."""
        body = {
            "status_code": exc.status,
            "error_code": exc.error_code,
            "message": exc.message,
            "id": ctx.request_id,
        }
        body.update(exc.extra)
        return json_response(body, exc.status, exc.headers)

    @staticmethod
    def _allowed_hosts(settings: Settings) -> frozenset[str]:
        names = {host_name(settings.host), *LOOPBACK_HOSTS}
        if settings.public_base_url:
            names.add(host_name(urlsplit(settings.public_base_url).netloc))
        names.update(h if h == "*" else host_name(h) for h in settings.allowed_hosts)
        return frozenset(names)

    def check_host(self, request: Request) -> None:
        """Refuse ``Host`` names this server does not answer to (DNS rebinding: a web page
        whose name resolves to 127.0.0.1 must not reach the API). A server bound to every
        interface also answers IP-literal hosts (they cannot be rebound).

        :raises ApiError: 400 ``bad_request`` for an unknown host.
        """
        if "*" in self.allowed_hosts:
            return
        name = host_name(request.host)
        if name in self.allowed_hosts:
            return
        if self.settings.host in WILDCARD_HOSTS:
            try:
                ipaddress.ip_address(name)
                return
            except ValueError:
                pass
        raise ApiError(
            400,
            "bad_request",
            "Unknown host; add it to the server's allowed hosts (--allowed-host).",
        )

    def check_auth_failures(self, ctx: RequestContext) -> None:
        """Refuse a client address (``REMOTE_ADDR``) with too many recent failed
        authentications, before looking at its credentials.

        :raises ApiError: 429 ``too_many_requests`` with ``Retry-After``.
        """
        wait = self.auth_failures.blocked(f"addr:{ctx.request.remote_addr}")
        if wait is not None:
            raise too_many_requests("failed authentications", wait)

    def note_auth_failure(self, ctx: RequestContext) -> None:
        """Count one failed authentication of the client address."""
        self.auth_failures.check(f"addr:{ctx.request.remote_addr}")

    def _authenticate_limited(self, ctx: RequestContext) -> Auth:
        """:meth:`authenticate` behind :meth:`check_auth_failures`; 401s are counted."""
        self.check_auth_failures(ctx)
        try:
            return self.authenticate(ctx)
        except ApiError as exc:
            if exc.status == 401:
                self.note_auth_failure(ctx)
            raise

    def _dispatch(self, ctx: RequestContext) -> Response:
        self.check_host(ctx.request)
        self.sweeper.maybe_run()
        adapter = self.url_map.bind_to_environ(ctx.request.environ)
        index, args = adapter.match()
        route = self.routes[index]
        if route.auth != AUTH_NONE:
            ctx.auth = self._authenticate_limited(ctx)
            if route.auth == AUTH_APP and not (
                ctx.auth.kind == "apikey"
                or (ctx.auth.kind == "bearer" and ctx.auth.account_id is None)
            ):
                raise forbidden("This endpoint needs an API key or an application-level token.")
            if ctx.request.headers.get("X-Kloudless-As-User"):
                raise forbidden(
                    "X-Kloudless-As-User is not supported: this server has no admin "
                    "accounts to impersonate users of."
                )
        limited = self.rate_limiter.check(self._rate_key(ctx))
        if limited is not None:
            raise too_many_requests("requests", limited)

        def call() -> Response:
            return route.handler(ctx, **args)

        if route.auth == AUTH_NONE or not self.handler_wrappers:
            return call()
        chain = call
        for wrapper in reversed(self.handler_wrappers):
            chain = _bind(wrapper, ctx, chain)
        return chain()

    def _rate_key(self, ctx: RequestContext) -> str:
        if ctx.auth is not None:
            return f"{ctx.auth.kind}:{ctx.auth.app_id}:{ctx.auth.account_id}"
        return f"addr:{ctx.request.remote_addr}"

    def authenticate(self, ctx: RequestContext) -> Auth:
        """Parse ``Authorization``: ``Bearer <token>`` or ``APIKey <key>`` (case-insensitive).

        :raises ApiError: 401 when missing or invalid.
        """
        header = ctx.request.headers.get("Authorization", "")
        if not header.strip():
            raise ApiError(401, "authentication_required", "An Authorization header is required.")
        scheme, _, credential = header.strip().partition(" ")
        credential = credential.strip()
        scheme = scheme.lower()
        if scheme == "bearer" and credential:
            tokens = [t.strip() for t in credential.split(",")][:50]
            rows = [self.store.lookup_token(t) for t in tokens if t]
            if not rows or any(r is None for r in rows):
                raise ApiError(401, "invalid_token", "The Bearer token is invalid or revoked.")
            apps = {str(r["app_id"]) for r in rows if r is not None}
            if len(apps) != 1:
                raise ApiError(401, "invalid_token", "The Bearer tokens belong to different apps.")
            first = rows[0]
            assert first is not None
            account_id = first["account_id"]
            ids = tuple(int(r["account_id"]) for r in rows if r and r["account_id"] is not None)
            return Auth(
                "bearer",
                apps.pop(),
                None if account_id is None else int(account_id),
                str(first["scope"]),
                ids if len(rows) > 1 else (),
            )
        if scheme == "apikey" and credential:
            app_id = self.store.app_for_api_key(credential)
            if app_id is None:
                raise ApiError(401, "unauthorized", "The API key is invalid.")
            return Auth("apikey", app_id)
        raise ApiError(
            401,
            "unauthorized",
            "Unsupported Authorization header; use 'Bearer <token>' or 'APIKey <key>'.",
        )


def _bind(
    wrapper: HandlerWrapper, ctx: RequestContext, nxt: Callable[[], Response]
) -> Callable[[], Response]:
    return lambda: wrapper(ctx, nxt)


__all__ = [
    "AUTH_ANY",
    "AUTH_APP",
    "AUTH_NONE",
    "Auth",
    "RequestContext",
    "Route",
    "ServerApp",
    "hash_secret",
    "json_response",
    "no_content",
    "object_list",
    "parse_bool",
    "parse_int",
]
