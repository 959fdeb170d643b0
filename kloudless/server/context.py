"""The request context: everything an API handler needs for one request.

A handler receives a :class:`RequestContext` and the URL variables. The context resolves
accounts against the caller's credentials, builds what connectors are given
(:meth:`RequestContext.account_env`), parses small bodies and query values, and builds hrefs and
paging envelopes. It never reaches connectors' internals, and connectors never see it.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO, Any, Callable

from werkzeug.sansio.utils import get_current_url
from werkzeug.wrappers import Request, Response

from . import team
from .activity import Describe
from .auth import Auth, unauthenticated
from .connectors.base import AccountEnv, Connector, StorageBackend
from .core import Core
from .errors import invalid_parameters, not_found, not_implemented
from .params import parse_bool, parse_form, parse_int, parse_json_object, read_limited
from .ratelimit import AuthGuard
from .responses import object_list
from .settings import Settings
from .store import Store

__all__ = ["HOST_URLS", "MAX_PAGE", "HandlerWrapper", "RequestContext", "host_url"]

#: How many ``(scheme, host)`` pairs :func:`host_url` remembers.
HOST_URLS = 64
#: The highest ``page`` a list can have: no list has that many pages (a higher one is a 404,
#: as any page past the last), and every page's offset (up to ``MAX_PAGE * max_page_size``)
#: stays within the databases' 64-bit integers.
MAX_PAGE = 10**12


@dataclass
class RequestContext:
    """Everything a handler needs for one request.

    :param core: the server's shared state (store, settings, activity log, executor, ...).
    :param request: the werkzeug request.
    :param request_id: this request's id (``X-Request-Id``, error bodies).
    :param auth_guard: the server's failed-authentication guard.
    """

    core: Core
    request: Request
    request_id: str
    auth_guard: AuthGuard
    auth: Auth | None = None
    response_headers: dict[str, str] = field(default_factory=dict)
    #: Replacement request body set by a wrapper that had to read it (e.g. to hash it for
    #: idempotency keys); handlers read the body only through :meth:`body_stream`.
    body_override: IO[bytes] | None = None
    #: The accounts this request acts on as an admin account's team user
    #: (``X-Kloudless-As-User``): account id -> the actor its activity events record.
    actors: dict[int, dict[str, Any]] = field(default_factory=dict)
    #: Identifies a request with an ``Idempotency-Key`` (the same on its retries); set by the
    #: idempotency layer once the key is claimed.
    request_key: str | None = None
    #: True when the handler runs as one unit of work (an authenticated write of an atomic
    #: route): wrappers that store state about the request join it.
    atomic: bool = False
    #: Set by a handler whose answer shows a secret once (a new API key, a signing key): the
    #: idempotency layer then keeps that answer sealed, never in clear.
    secret_answer: bool = False
    #: ``(object, account id, JSON)`` of the last object an activity event of this request
    #: recorded, as the API layer described it: a handler answering with that object reuses
    #: the JSON (never changed after it was built: the event stored it encoded).
    described: tuple[object, int, dict[str, Any]] | None = None

    def body_stream(self) -> IO[bytes]:
        """:returns: the request body stream (the override when a wrapper consumed it)."""
        if self.body_override is not None:
            return self.body_override
        stream: IO[bytes] = self.request.stream
        return stream

    @property
    def store(self) -> Store:
        """:returns: the server's :class:`~kloudless.server.store.Store`."""
        return self.core.store

    @property
    def settings(self) -> Settings:
        """:returns: the server's settings."""
        return self.core.settings

    # -- accounts ----------------------------------------------------------------------------
    def account(self, account_ref: str, impersonate: bool = True) -> sqlite3.Row:
        """Resolve ``me`` or a numeric id to an account the caller may access.

        With ``X-Kloudless-As-User: <user id>`` (and ``impersonate``), the account must be an
        admin account and the answer is the account of that user of its team (see
        :mod:`kloudless.server.team`); the request's activity events record both.

        :raises ApiError: 400 for a malformed id, 404 when missing or not the caller's; 403
            ``forbidden`` when impersonating on a non-admin account or a user outside the team.
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
        # Read with the Bearer token (once: a handler asking again after a change reads anew).
        row = auth.account_rows.pop(account_id, None) or self.store.get_account(account_id)
        if row is None or row["app_id"] != auth.app_id or not auth.may_access(account_id):
            raise not_found(f"Account not found: {account_id}")
        as_user = self.request.environ.get("HTTP_X_KLOUDLESS_AS_USER", "").strip()
        if impersonate and as_user:
            row, actor = team.impersonate(self.store, row, as_user)
            self.actors[int(row["id"])] = actor
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
            raise unauthenticated()
        return self.auth

    def check_auth_failures(self) -> None:
        """Refuse this client address when it had too many failed authentications (429)."""
        self.auth_guard.check(self.request.remote_addr)

    def note_auth_failure(self) -> None:
        """Count one failed authentication of this client address."""
        self.auth_guard.note_failure(self.request.remote_addr)

    # -- connectors --------------------------------------------------------------------------
    def connector(self, account: sqlite3.Row) -> Connector:
        """:returns: the :class:`~kloudless.server.connectors.base.Connector` of the account."""
        return self.core.connector(account)

    def account_env(self, account: sqlite3.Row, describe: Describe | None = None) -> AccountEnv:
        """:returns: what the account's connector is given (events carry the caller's
        address; ``describe`` turns backend objects into event metadata)."""
        return self.core.account_env(
            account,
            self.client_ip,
            describe,
            self.actors.get(int(account["id"])),
            self.request_key,
        )

    def storage(self, account: sqlite3.Row, describe: Describe | None = None) -> StorageBackend:
        """:returns: the account's storage backend. :raises ApiError: 501 if it has none."""
        backend = self.connector(account).storage(self.account_env(account, describe))
        if backend is None:
            raise not_implemented(f"The {account['service']} service has no storage API.")
        return backend

    def calendar(self, account: sqlite3.Row) -> Any:
        """:returns: the account's calendar backend. :raises ApiError: 501 if it has none."""
        backend = self.connector(account).calendar(self.account_env(account))
        if backend is None:
            raise not_implemented(f"The {account['service']} service has no calendar API.")
        return backend

    # -- request helpers ---------------------------------------------------------------------
    def href(self, path: str) -> str:
        """:returns: the absolute URL of an API path, e.g. ``accounts/1/storage/files/x``."""
        return self._api_base + path.lstrip("/")

    @functools.cached_property
    def _api_base(self) -> str:
        # Computed once per request: a listing builds an href for every object.
        return self._base_url + "/v1/"

    @property
    def _base_url(self) -> str:
        """The site's URL without a trailing slash: the public base URL, else the request's
        scheme and host."""
        base = self.settings.public_base_url or host_url(self.request.scheme, self.request.host)
        return base.rstrip("/")

    def site_url(self, path: str) -> str:
        """:returns: the absolute URL of a path at the site root (e.g. ``l/<link id>``)."""
        return self._base_url + "/" + path.lstrip("/")

    def json_body(self, required: bool = True) -> dict[str, Any]:
        """Parse the JSON object body (size-limited).

        :raises ApiError: 400 on malformed JSON or a non-object, 413 when too large.
        """
        data = read_limited(self.request, self.settings.max_json_bytes, self.body_stream())
        return parse_json_object(data, required)

    def form_body(self) -> dict[str, str]:
        """Parse a form-encoded body, whatever its declared Content-Type (the 2.x SDK sends
        ``application/form-urlencoded``)."""
        return parse_form(
            read_limited(self.request, self.settings.max_json_bytes, self.body_stream())
        )

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

        :raises ApiError: 400 ``invalid_parameters`` for bad values; 404 for a page above
            :data:`MAX_PAGE`, which no list has.
        """
        page = parse_int(self.request.args.get("page"), "page", 1, 1, None)
        if page > MAX_PAGE:
            raise not_found(f"Page {page} does not exist.")
        return (
            page,
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
        """Append to the account's activity log, with the caller's address (see
        :meth:`kloudless.server.activity.ActivityLog.record`)."""
        return self.core.activity.record(
            account_id, type_, metadata, object_id, self.client_ip, self.actors.get(account_id)
        )


@functools.lru_cache(maxsize=HOST_URLS)
def host_url(scheme: str, host: str) -> str:
    """:returns: werkzeug's ``Request.host_url`` of a request with this scheme and host
    (``scheme://host/``, as an IRI), remembered: werkzeug builds it anew for every request
    (its quoting and IRI decoding were about 5 % of the app's CPU time per small upload), and the
    hosts a server answers for are few (the host check refuses the others first)."""
    return get_current_url(scheme, host)


#: A wrapper around handler execution: ``wrapper(ctx, call_next) -> Response``.
HandlerWrapper = Callable[[RequestContext, Callable[[], Response]], Response]
