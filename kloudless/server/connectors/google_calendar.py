"""The calendar API over Google Calendar v3, with Google's client library.

The requests are built by ``google-api-python-client`` from the Calendar v3 discovery document
it ships (no discovery request is made; required parameters and enums are checked by the
library before anything is sent), against the account's API base
(:attr:`~.providers.ProviderApp.api_base` + ``/calendar/v3/``, overridable for sovereign
set-ups and the tests). They are sent by :class:`PolicyHttp`, an ``httplib2``-shaped
transport over the server's outbound policy session (the checked address, no redirects, no
environment proxies), which applies the account's current token through ``google-auth``'s
:class:`google.oauth2.credentials.Credentials` and, on a 401, refreshes it once through the
account's :class:`~.provider.TokenKeeper` (one token for Drive, Calendar and pass-through)
and sends the request again.

How each operation maps:

* calendars: ``calendarList.list/get`` (listing; the primary calendar is listed first),
  ``calendars.insert/patch/delete``; the primary calendar cannot be deleted (403).
* events in a window (``start``/``end``): ``events.list`` with ``singleEvents=true``,
  ``orderBy=startTime``, ``timeMin``/``timeMax``, pages through ``pageToken``
  (:func:`~.provider_calendar_base.numbered_page`): recurring events come expanded into their
  instances (``recurring_master_id`` names the series). Without a window Google cannot order
  by start, so the series themselves are read (at most :data:`MAX_FULL_PAGES` pages of 2500)
  and ordered here.
* create: ``events.insert``; with an ``ical_uid`` (also the one derived from an
  ``Idempotency-Key``) the calendar is first asked for an event of that UID
  (``events.list`` with ``iCalUID``), so that a repeated create answers the existing event.
  Update: ``events.get`` then ``events.update`` with
  ``If-Match`` (412 if it changed meanwhile). Delete: ``events.delete`` with ``If-Match``.
  A cancelled event is not found.
* availability: one ``freeBusy.query`` for all the calendars.
* upstream changes: ``events.list`` with ``syncToken`` per calendar
  (:meth:`GoogleCalendar.sync_upstream`); the first call takes the baseline; an expired token
  (410) starts a new baseline.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from importlib import resources
from typing import Any

import httplib2
import requests
from google.oauth2.credentials import Credentials
from googleapiclient.discovery import build_from_document
from googleapiclient.errors import HttpError

from ..availability import Interval, parse_datetime
from ..errors import ApiError
from ..outbound import OutboundPolicy, OutboundRefused
from .calendar_base import (
    CalendarBackend,
    CalendarConflict,
    CalendarForbidden,
    CalendarNotFound,
    CalendarRecord,
    EventRecord,
    Page,
)
from .google_calendar_mapping import calendar_body, calendar_record, event_body, event_record
from .provider_calendar_base import Fetched, PageTokens, SyncState, numbered_page, upstream_error

__all__ = ["GoogleCalendar", "PolicyHttp", "discovery_document"]

TITLE = "Google Calendar"
#: The scope a calendar account needs (named in 403 answers).
CALENDAR_SCOPE = "https://www.googleapis.com/auth/calendar"
#: Google's page size limits.
MAX_EVENTS_PAGE = 2500
MAX_CALENDARS_PAGE = 250
#: Most pages read for a listing without a window / a sync / a baseline (bounded loops).
MAX_FULL_PAGES = 20
#: Most calendars whose changes are tracked.
MAX_SYNCED_CALENDARS = 50
#: (connect, read) timeouts in seconds.
TIMEOUTS = (15, 60)
#: Google's 403 reasons that are rate limits, not permissions.
_RATE_REASONS = {"rateLimitExceeded", "userRateLimitExceeded", "quotaExceeded"}
_SCOPE_REASONS = {"insufficientPermissions", "ACCESS_TOKEN_SCOPE_INSUFFICIENT"}
_DELETED = "<deleted>"
#: Keys of calendars in the sync state (events use their ids; the list its own key).
_CALENDAR = "calendar:"
_LIST = "calendarList"
#: The page token of Google's first page when our page 1 holds the primary calendar alone.
_FIRST = "<first>"


@functools.cache
def discovery_document() -> dict[str, Any]:
    """:returns: the Calendar v3 discovery document google-api-python-client ships."""
    text = (
        resources.files("googleapiclient")
        .joinpath("discovery_cache/documents/calendar.v3.json")
        .read_text("utf-8")
    )
    document: dict[str, Any] = json.loads(text)
    return document


class PolicyHttp:
    """The ``httplib2.Http`` interface google-api-python-client calls, over a requests
    session of the outbound policy (see the module docstring).

    :param token: ``token(rejected=None) -> str``, the account's current access token.
    """

    def __init__(self, policy: OutboundPolicy, token: Callable[..., str]) -> None:
        self.policy = policy
        self.token = token

    def _send(
        self,
        session: requests.Session,
        uri: str,
        method: str,
        body: Any,
        headers: dict[str, str],
        access: str,
    ) -> requests.Response:
        headers = dict(headers)
        Credentials(token=access).apply(headers)
        try:
            return session.request(
                method, uri, data=body, headers=headers, timeout=TIMEOUTS, allow_redirects=False
            )
        except OutboundRefused:
            raise ApiError(
                403, "forbidden", f"The {TITLE} address is refused by the outbound policy."
            ) from None
        except requests.Timeout:
            raise ApiError(504, "gateway_timeout", f"{TITLE} did not answer in time.") from None
        except (requests.RequestException, OSError):
            raise ApiError(502, "bad_gateway", f"{TITLE} could not be reached.") from None

    def request(
        self,
        uri: str,
        method: str = "GET",
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        redirections: int = 0,
        connection_type: Any = None,
    ) -> tuple[httplib2.Response, bytes]:
        """:returns: ``(response, content)`` as ``httplib2.Http.request`` does."""
        sent = dict(headers or {})
        access = self.token()
        # One session per call, closed with it: the backend lives for one API request and has
        # no close hook, and a call's answer is read in full here.
        with self.policy.session() as session:
            answer = self._send(session, uri, method, body, sent, access)
            if answer.status_code == 401:
                answer = self._send(session, uri, method, body, sent, self.token(rejected=access))
            content = answer.content
        info = {k.lower(): v for k, v in answer.headers.items()}
        info["status"] = str(answer.status_code)
        return httplib2.Response(info), content


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class GoogleCalendar(CalendarBackend):
    """The calendars of one Google account (see the module docstring).

    :param api_base: the provider's API base (``https://www.googleapis.com``).
    :param token: ``token(rejected=None) -> str`` (:meth:`~.provider.TokenKeeper.access_token`).
    :param pages: remembers page tokens; :param sync: the upstream change tracking state.
    """

    tracks_upstream = True

    def __init__(
        self,
        api_base: str,
        token: Callable[..., str],
        policy: OutboundPolicy,
        pages: Callable[[tuple[object, ...]], PageTokens],
        sync: SyncState,
    ) -> None:
        self.http = PolicyHttp(policy, token)
        self.service = build_from_document(
            discovery_document(),
            http=self.http,
            client_options={"api_endpoint": api_base.rstrip("/") + "/calendar/v3/"},
        )
        self.pages = pages
        self.sync = sync
        self._primary: str | None = None

    # -- plumbing ------------------------------------------------------------------------------
    def _run(self, request: Any, if_match: str | None = None) -> Any:
        if if_match:
            request.headers["If-Match"] = if_match
        try:
            return request.execute(num_retries=0)
        except HttpError as exc:
            raise _error(exc) from None
        except ValueError:  # a 2xx answer that is not JSON
            raise ApiError(502, "bad_gateway", f"{TITLE} gave an unreadable answer.") from None

    # -- calendars -----------------------------------------------------------------------------
    def primary_calendar_id(self) -> str:
        if self._primary is None:
            found = self._run(self.service.calendars().get(calendarId="primary"))
            self._primary = str(found["id"])
        return self._primary

    def list_calendars(self, page: int, page_size: int) -> Page[CalendarRecord]:
        primary = self.primary_calendar_id()
        size = min(page_size, MAX_CALENDARS_PAGE)
        tokens = self.pages(("calendars", size))

        def fetch(token: str) -> Fetched[CalendarRecord]:
            # The primary calendar first: page 1 is it plus one entry fewer from Google (with
            # a page size of 1, it alone; page 2 then starts at Google's first entry).
            first = not token
            if first and size == 1:
                return Fetched([], _FIRST)
            upstream = None if token in ("", _FIRST) else token
            for _ in range(2):  # the primary entry alone on Google's page: read the next one
                answer = self._run(
                    self.service.calendarList().list(
                        maxResults=size - 1 if first else size, pageToken=upstream
                    )
                )
                items = [
                    calendar_record(i, primary)
                    for i in answer.get("items", [])
                    if i.get("id") != primary
                ]
                upstream = answer.get("nextPageToken")
                if items or not upstream:
                    break
            return Fetched(items, str(upstream or ""))

        items, next_page = numbered_page(tokens, page, fetch)
        if page == 1:
            items.insert(0, self.get_calendar(primary))
        return Page(items, page, next_page)

    def get_calendar(self, calendar_id: str) -> CalendarRecord:
        primary = self.primary_calendar_id()
        return calendar_record(
            self._run(self.service.calendarList().get(calendarId=calendar_id)), primary
        )

    def create_calendar(self, fields: Mapping[str, Any]) -> CalendarRecord:
        created = self._run(self.service.calendars().insert(body=calendar_body(fields)))
        # The list entry (what the calendar list sync reports), with its etag.
        return self._seen_calendar(self.get_calendar(str(created["id"])))

    def update_calendar(self, calendar_id: str, changes: Mapping[str, Any]) -> CalendarRecord:
        body = calendar_body(changes)
        if body:
            self._run(self.service.calendars().patch(calendarId=calendar_id, body=body))
            return self._seen_calendar(self.get_calendar(calendar_id))
        return self.get_calendar(calendar_id)

    def _seen_calendar(self, calendar: CalendarRecord) -> CalendarRecord:
        self.sync.seen(_CALENDAR + calendar.id, str((calendar.raw or {}).get("etag", "")))
        return calendar

    def delete_calendar(self, calendar_id: str) -> CalendarRecord:
        if calendar_id == self.primary_calendar_id():
            raise CalendarForbidden(
                "The primary calendar cannot be deleted (Google Calendar keeps it)."
            )
        calendar = self.get_calendar(calendar_id)
        self._run(self.service.calendars().delete(calendarId=calendar_id))
        self.sync.seen(_CALENDAR + calendar_id, _DELETED)
        return calendar

    # -- events --------------------------------------------------------------------------------
    def list_events(
        self,
        calendar_id: str,
        page: int,
        page_size: int,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> Page[EventRecord]:
        if start is None and end is None:
            return self._list_all(calendar_id, page, page_size)
        size = min(page_size, MAX_EVENTS_PAGE)
        window = (_rfc3339(start) if start else None, _rfc3339(end) if end else None)
        tokens = self.pages(("events", calendar_id, window, size))

        def fetch(token: str) -> Fetched[EventRecord]:
            answer = self._run(
                self.service.events().list(
                    calendarId=calendar_id,
                    singleEvents=True,
                    orderBy="startTime",
                    timeMin=window[0],
                    timeMax=window[1],
                    maxResults=size,
                    pageToken=token or None,
                )
            )
            items = [
                event_record(i, calendar_id)
                for i in answer.get("items", [])
                if i.get("status") != "cancelled"
            ]
            return Fetched(items, str(answer.get("nextPageToken") or ""))

        items, next_page = numbered_page(tokens, page, fetch)
        return Page(items, page, next_page)

    def _list_all(self, calendar_id: str, page: int, page_size: int) -> Page[EventRecord]:
        found: list[EventRecord] = []
        token: str | None = None
        for _ in range(MAX_FULL_PAGES):
            answer = self._run(
                self.service.events().list(
                    calendarId=calendar_id, maxResults=MAX_EVENTS_PAGE, pageToken=token
                )
            )
            found.extend(
                event_record(i, calendar_id)
                for i in answer.get("items", [])
                if i.get("status") != "cancelled"
            )
            token = answer.get("nextPageToken")
            if not token:
                break
        found.sort(key=lambda e: (e.interval()[0], e.id))
        first = (page - 1) * page_size
        chunk = found[first : first + page_size]
        return Page(chunk, page, page + 1 if first + page_size < len(found) else None)

    def get_event(self, calendar_id: str, event_id: str) -> EventRecord:
        item = self._run(self.service.events().get(calendarId=calendar_id, eventId=event_id))
        if item.get("status") == "cancelled":
            raise CalendarNotFound(f"Event not found: {event_id} (it was deleted).")
        return event_record(item, calendar_id)

    def create_event(self, calendar_id: str, fields: Mapping[str, Any]) -> EventRecord:
        body = event_body(fields)
        uid = fields.get("ical_uid")
        if uid:
            # Google takes an iCalUID *or* an id at creation; the UID is the client's, so the
            # calendar is asked for it first (a repeated keyed create finds its event).
            found = self._run(
                self.service.events().list(calendarId=calendar_id, iCalUID=uid, maxResults=1)
            ).get("items", [])
            if found:
                raise CalendarConflict(
                    "The calendar already has an event with this ical_uid.", str(found[0]["id"])
                )
        item = self._run(self.service.events().insert(calendarId=calendar_id, body=body))
        event = event_record(item, calendar_id)
        self.sync.seen(event.id, event.etag)
        return event

    def update_event(
        self, calendar_id: str, event_id: str, changes: Mapping[str, Any]
    ) -> EventRecord:
        current = self.get_event(calendar_id, event_id)
        body = event_body(changes, current.raw)
        item = self._run(
            self.service.events().update(calendarId=calendar_id, eventId=event_id, body=body),
            if_match=current.etag,
        )
        event = event_record(item, calendar_id)
        self.sync.seen(event.id, event.etag)
        return event

    def delete_event(self, calendar_id: str, event_id: str) -> EventRecord:
        current = self.get_event(calendar_id, event_id)
        self._run(
            self.service.events().delete(calendarId=calendar_id, eventId=event_id),
            if_match=current.etag,
        )
        self.sync.seen(event_id, _DELETED)
        return current

    # -- availability --------------------------------------------------------------------------
    def busy_intervals(self, calendar_id: str, start: datetime, end: datetime) -> list[Interval]:
        return self.busy_across([calendar_id], start, end)

    def busy_across(
        self, calendar_ids: list[str], start: datetime, end: datetime
    ) -> list[Interval]:
        body = {
            "timeMin": _rfc3339(start),
            "timeMax": _rfc3339(end),
            "items": [{"id": c} for c in calendar_ids],
        }
        answer = self._run(self.service.freebusy().query(body=body))
        busy: list[Interval] = []
        for calendar_id in calendar_ids:
            found = (answer.get("calendars") or {}).get(calendar_id) or {}
            if found.get("errors"):
                reason = str(found["errors"][0].get("reason", ""))
                raise CalendarNotFound(f"Calendar not found: {calendar_id} ({reason}).")
            for slot in found.get("busy", []):
                busy.append((parse_datetime(slot["start"]), parse_datetime(slot["end"])))
        return busy

    # -- upstream changes ----------------------------------------------------------------------
    def _changes(self, key: str, sync_token: str | None) -> tuple[list[Any], str]:
        """:param key: a calendar id, or :data:`_LIST` for the calendar list.
        :returns: the items changed since ``sync_token`` (all, for a baseline) and the
        next sync token ("" when Google gave none within the page bound)."""
        items: list[Any] = []
        page_token: str | None = None
        for _ in range(MAX_FULL_PAGES):
            if key == _LIST:
                request = self.service.calendarList().list(
                    maxResults=MAX_CALENDARS_PAGE, pageToken=page_token, syncToken=sync_token
                )
            else:
                request = self.service.events().list(
                    calendarId=key,
                    maxResults=MAX_EVENTS_PAGE,
                    pageToken=page_token,
                    syncToken=sync_token,
                )
            answer = self._run(request)
            items.extend(answer.get("items", []))
            page_token = answer.get("nextPageToken")
            if not page_token:
                return items, str(answer.get("nextSyncToken") or "")
        return items, ""

    def _synced(self, key: str) -> tuple[list[Any], bool]:
        """:returns: what changed in ``key`` since the last look, and whether that was a
        baseline (nothing to report). The new sync token is saved."""
        token = self.sync.token(key)
        try:
            items, next_token = self._changes(key, token)
        except ApiError as exc:
            if exc.status != 404 or token is None:
                raise
            # 410: Google expired the token; take a new baseline at once (what changed since
            # the last look is not reported: Google no longer says what it was).
            self.sync.forget(key)
            token = None
            items, next_token = self._changes(key, None)
        if next_token:
            self.sync.save_token(key, next_token)
        return items, token is None

    def sync_upstream(self) -> list[tuple[str, EventRecord | CalendarRecord]]:
        changes: list[tuple[str, EventRecord | CalendarRecord]] = []
        entries, baseline = self._synced(_LIST)
        if not baseline:
            primary = self.primary_calendar_id()
            for entry in entries:
                changes.extend(self._calendar_change(entry, primary))
        listed = self._run(self.service.calendarList().list(maxResults=MAX_SYNCED_CALENDARS))
        for calendar_id in [str(i["id"]) for i in listed.get("items", [])][:MAX_SYNCED_CALENDARS]:
            items, baseline = self._synced(calendar_id)
            if not baseline:
                for item in items:
                    changes.extend(self._change(calendar_id, item))
        return changes

    def _calendar_change(
        self, entry: Mapping[str, Any], primary: str
    ) -> list[tuple[str, EventRecord | CalendarRecord]]:
        calendar_id = str(entry.get("id", ""))
        mark = _DELETED if entry.get("deleted") else str(entry.get("etag", ""))
        if self.sync.is_own(_CALENDAR + calendar_id, mark):
            return []
        if entry.get("deleted"):
            self.sync.forget(calendar_id)
            return [("delete", CalendarRecord(calendar_id, "", raw=dict(entry)))]
        # A calendar whose events were never looked at is new here.
        kind = "update" if self.sync.token(calendar_id) is not None else "add"
        return [(kind, calendar_record(entry, primary))]

    def _change(
        self, calendar_id: str, item: Mapping[str, Any]
    ) -> list[tuple[str, EventRecord | CalendarRecord]]:
        event_id = str(item.get("id", ""))
        if item.get("status") == "cancelled":
            if self.sync.is_own(event_id, _DELETED):
                return []
            return [("delete", EventRecord(event_id, calendar_id, "", "", raw=dict(item)))]
        event = event_record(item, calendar_id)
        if self.sync.is_own(event_id, event.etag):
            return []
        return [("add" if _is_new(item) else "update", event)]


def _is_new(item: Mapping[str, Any]) -> bool:
    try:
        created = parse_datetime(str(item.get("created")))
        updated = parse_datetime(str(item.get("updated")))
    except ValueError:
        return False
    return abs((updated - created).total_seconds()) < 2


_SCOPE_IN_CHALLENGE = re.compile(r'scope="([^"]+)"')


def _error(exc: HttpError) -> ApiError:
    """:returns: the API's error for one of Google's (see provider_calendar_base)."""
    status = int(exc.resp.status)
    try:
        body = json.loads(exc.content or b"{}").get("error") or {}
    except (ValueError, AttributeError):
        body = {}
    if not isinstance(body, dict):
        body = {}
    reasons = [str(e.get("reason", "")) for e in body.get("errors") or [] if isinstance(e, dict)]
    reasons += [str(d.get("reason", "")) for d in body.get("details") or [] if isinstance(d, dict)]
    reason = next((r for r in reasons if r), str(body.get("status") or ""))
    challenge = str(exc.resp.get("www-authenticate", ""))
    scope = None
    if status == 403 and (set(reasons) & _SCOPE_REASONS or "insufficient_scope" in challenge):
        named = _SCOPE_IN_CHALLENGE.search(challenge)
        scope = named.group(1).split()[0] if named else CALENDAR_SCOPE
    return upstream_error(
        TITLE,
        status,
        reason[:80],
        retry_after=exc.resp.get("retry-after"),
        rate_limited=status == 403 and bool(set(reasons) & _RATE_REASONS),
        missing_scope=scope,
    )
