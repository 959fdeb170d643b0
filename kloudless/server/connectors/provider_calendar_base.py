"""What the cloud calendar backends (Google Calendar, Outlook) share: page numbers over the
provider's page tokens, the state of upstream change tracking, and the provider's errors as
the API's.

Page numbers
    The calendar API pages by number (``page=1, 2, ...``; the SDKs send ``next_page`` back);
    the providers page by opaque tokens (Google ``pageToken``, Graph ``@odata.nextLink``).
    :class:`PageTokens` remembers, per account and listing (calendar, window, page size), the
    token that fetches page *n* (table ``calendar_page_tokens``, migration 150; entries older
    than :data:`TOKEN_TTL` are dropped). :func:`numbered_page` serves page *n* from the
    nearest remembered page, walking forward at most :data:`MAX_WALK` provider pages, so a
    client reading pages in order costs one provider request per page.

Upstream changes
    :class:`SyncState` keeps, per account and calendar, the provider's sync token (Google
    ``nextSyncToken``, Graph ``@odata.deltaLink``) and the etags of the events this server
    changed itself (table ``calendar_sync_state``/``calendar_sync_seen``, migration 151), so
    that a change made through the API is not reported a second time as an upstream change.

Errors
    :func:`upstream_error` turns a provider's answer into the JSON errors of the API:

    ======================================== ===== ========================================
    provider answer                           HTTP  ``error_code``
    ======================================== ===== ========================================
    rate limit (429, Google 403 rate reasons) 429   ``too_many_requests`` + ``Retry-After``
    missing scope (403 insufficient scope)    403   ``forbidden``, naming the scope to grant
    other 403                                 403   ``forbidden``
    404, 410                                  404   ``not_found``
    409 (the id exists)                       409   ``naming_conflict``
    412 (the etag changed)                    412   ``precondition_failed``
    400                                       400   ``invalid_parameters``
    401 after a refresh                       401   ``service_unauthorized``
    5xx, unreachable                          502   ``bad_gateway`` / 503 + ``Retry-After``
    ======================================== ===== ========================================

Messages name the provider and its own reason code, never tokens.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from ..errors import ApiError
from ..store import Store, register_migration

__all__ = [
    "MAX_WALK",
    "PageTokens",
    "SyncState",
    "forget_account",
    "numbered_page",
    "retry_seconds",
    "upstream_error",
]

register_migration(
    150,
    """
    CREATE TABLE calendar_page_tokens (
        account_id INTEGER NOT NULL,
        list_key TEXT NOT NULL,
        page INTEGER NOT NULL,
        token TEXT NOT NULL,
        created REAL NOT NULL,
        PRIMARY KEY (account_id, list_key, page)
    );
    """,
)
register_migration(
    151,
    """
    CREATE TABLE calendar_sync_state (
        account_id INTEGER NOT NULL,
        calendar_id TEXT NOT NULL,
        token TEXT NOT NULL,
        modified REAL NOT NULL,
        PRIMARY KEY (account_id, calendar_id)
    );
    CREATE TABLE calendar_sync_seen (
        account_id INTEGER NOT NULL,
        event_id TEXT NOT NULL,
        etag TEXT NOT NULL,
        PRIMARY KEY (account_id, event_id)
    );
    """,
)

T = TypeVar("T")

#: Seconds a remembered page token is used (providers' tokens expire; Google's after hours).
TOKEN_TTL = 600.0
#: Most provider pages one request walks to reach a page number nobody asked for yet.
MAX_WALK = 50
#: Longest ``Retry-After`` passed on; shortest one given when the provider names none.
MAX_RETRY_AFTER = 3600
DEFAULT_RETRY_AFTER = 5


class PageTokens:
    """The provider tokens of one listing of one account (see the module docstring).

    :param key: what identifies the listing (calendar id, window, page size, kind); hashed.
    """

    def __init__(self, store: Store, account_id: int, key: Sequence[object]) -> None:
        self.store = store
        self.account_id = account_id
        self.key = hashlib.sha256(repr(tuple(key)).encode("utf-8")).hexdigest()[:32]

    def nearest(self, page: int) -> tuple[int, str]:
        """:returns: the highest page <= ``page`` whose token is known, and that token
        (page 1 and its token ``""``, the first page, when none is)."""
        row = self.store.one(
            "SELECT page, token FROM calendar_page_tokens WHERE account_id = ? AND list_key = ? "
            "AND page <= ? AND created > ? ORDER BY page DESC LIMIT 1",
            (self.account_id, self.key, page, time.time() - TOKEN_TTL),
        )
        return (int(row["page"]), str(row["token"])) if row is not None else (1, "")

    def remember(self, page: int, token: str) -> None:
        """Keep the token that fetches ``page`` (older entries of the account are dropped)."""
        now = time.time()
        with self.store.transaction():
            self.store.execute(
                "DELETE FROM calendar_page_tokens WHERE account_id = ? AND created < ?",
                (self.account_id, now - TOKEN_TTL),
            )
            self.store.execute(
                "INSERT INTO calendar_page_tokens (account_id, list_key, page, token, created) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (account_id, list_key, page) DO UPDATE SET "
                "token = excluded.token, created = excluded.created",
                (self.account_id, self.key, page, token, now),
            )


class Fetched(Generic[T]):
    """One provider page: its items and the token of the next one ("" at the end)."""

    def __init__(self, items: list[T], next_token: str) -> None:
        self.items = items
        self.next_token = next_token


def numbered_page(
    tokens: PageTokens, page: int, fetch: Callable[[str], Fetched[T]]
) -> tuple[list[T], int | None]:
    """Serve page ``page`` of a token-paged listing.

    :param fetch: ``fetch(token)`` reads one provider page (``""``: the first).
    :returns: the page's items and the next page number (None at the end); a page past the
        end is empty.
    :raises ApiError: 404 when reaching the page would take more than :data:`MAX_WALK`
        provider requests (read the pages in order, or narrow the window).
    """
    at, token = tokens.nearest(page)
    if page - at > MAX_WALK:
        raise ApiError(
            404,
            "not_found",
            f"Page {page} is too far ahead of the pages read so far; read them in order.",
        )
    for _ in range(page - at + 1):
        fetched = fetch(token)
        if fetched.next_token:
            tokens.remember(at + 1, fetched.next_token)
        if at == page:
            return fetched.items, (page + 1 if fetched.next_token else None)
        if not fetched.next_token:
            return [], None
        token, at = fetched.next_token, at + 1
    return [], None  # not reached: the loop returns on its last round


class SyncState:
    """Upstream change tracking of one account (see the module docstring)."""

    def __init__(self, store: Store, account_id: int) -> None:
        self.store = store
        self.account_id = account_id

    def token(self, calendar_id: str) -> str | None:
        """:returns: the calendar's sync token, or None before the first sync."""
        row = self.store.one(
            "SELECT token FROM calendar_sync_state WHERE account_id = ? AND calendar_id = ?",
            (self.account_id, calendar_id),
        )
        return None if row is None else str(row["token"])

    def save_token(self, calendar_id: str, token: str) -> None:
        with self.store.transaction():
            self.store.execute(
                "INSERT INTO calendar_sync_state (account_id, calendar_id, token, modified) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (account_id, calendar_id) DO UPDATE SET "
                "token = excluded.token, modified = excluded.modified",
                (self.account_id, calendar_id, token, time.time()),
            )

    def forget(self, calendar_id: str) -> None:
        """Drop a calendar's token (the provider expired it: the next sync starts afresh)."""
        with self.store.transaction():
            self.store.execute(
                "DELETE FROM calendar_sync_state WHERE account_id = ? AND calendar_id = ?",
                (self.account_id, calendar_id),
            )

    def seen(self, event_id: str, etag: str | None) -> None:
        """Note the etag of an event this server wrote (None: it deleted the event)."""
        with self.store.transaction():
            self.store.execute(
                "DELETE FROM calendar_sync_seen WHERE account_id = ? AND event_id = ?",
                (self.account_id, event_id),
            )
            self.store.execute(
                "INSERT INTO calendar_sync_seen (account_id, event_id, etag) VALUES (?, ?, ?)",
                (self.account_id, event_id, etag or ""),
            )

    def is_own(self, event_id: str, etag: str | None) -> bool:
        """:returns: whether a change reported upstream is one this server made (and forget
        it, so that a later change of the same event is reported)."""
        row = self.store.one(
            "SELECT etag FROM calendar_sync_seen WHERE account_id = ? AND event_id = ?",
            (self.account_id, event_id),
        )
        if row is None or str(row["etag"]) != (etag or ""):
            return False
        with self.store.transaction():
            self.store.execute(
                "DELETE FROM calendar_sync_seen WHERE account_id = ? AND event_id = ?",
                (self.account_id, event_id),
            )
        return True


def forget_account(store: Store, account_id: int) -> None:
    """Drop an account's page tokens and sync state (the account was deleted)."""
    with store.transaction():
        for table in ("calendar_page_tokens", "calendar_sync_state", "calendar_sync_seen"):
            store.execute(f"DELETE FROM {table} WHERE account_id = ?", (account_id,))


def retry_seconds(value: str | None) -> int:
    """:returns: a ``Retry-After`` value in whole seconds (delta-seconds only; HTTP dates and
    junk give :data:`DEFAULT_RETRY_AFTER`), at most :data:`MAX_RETRY_AFTER`."""
    try:
        seconds = int(float(value or ""))
    except ValueError:
        return DEFAULT_RETRY_AFTER
    return min(max(seconds, 1), MAX_RETRY_AFTER)


def upstream_error(
    title: str,
    status: int,
    reason: str,
    *,
    retry_after: str | None = None,
    rate_limited: bool = False,
    missing_scope: str | None = None,
) -> ApiError:
    """:param title: the provider's API (``Google Calendar``).
    :param status: the provider's HTTP status. :param reason: its reason code (no secrets).
    :param rate_limited: the provider says so in its body (Google's 403 rate reasons).
    :param missing_scope: the scope the token lacks (403 insufficient scope), if known.
    :returns: the API's error (see the module docstring).
    """
    said = f" ({reason})" if reason else ""
    if status == 429 or rate_limited:
        wait = retry_seconds(retry_after)
        return ApiError(
            429,
            "too_many_requests",
            f"{title} is rate limiting this account{said}; retry after {wait} seconds.",
            headers={"Retry-After": str(wait)},
        )
    if missing_scope is not None:
        return ApiError(
            403,
            "forbidden",
            f"{title} refused: the account's authorization lacks the scope "
            f"{missing_scope}. Connect the account again through the consent page with a "
            f"calendar scope (e.g. scope=calendar) and grant calendar access at the provider.",
        )
    if status == 403:
        return ApiError(403, "forbidden", f"{title} refused the request{said}.")
    if status in (404, 410):
        return ApiError(404, "not_found", f"Not found at {title}{said}.")
    if status == 409:
        return ApiError(409, "naming_conflict", f"{title}: the object exists already{said}.")
    if status == 412:
        return ApiError(
            412,
            "precondition_failed",
            f"The object changed at {title} since it was read{said}; read it again.",
        )
    if status == 400:
        return ApiError(400, "invalid_parameters", f"{title} refused the values{said}.")
    if status == 401:
        return ApiError(
            401, "service_unauthorized", f"{title} does not accept the account's authorization."
        )
    if status in (502, 503, 504):
        return ApiError(
            503,
            "service_not_available",
            f"{title} is unavailable{said}.",
            headers={"Retry-After": str(retry_seconds(retry_after))},
        )
    return ApiError(502, "bad_gateway", f"{title} answered HTTP {status}{said}.")
