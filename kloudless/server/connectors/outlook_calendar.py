"""The calendar API over Microsoft Graph (Outlook / Microsoft 365 calendars) for accounts
connected at Microsoft (``outlook_calendar``, and OneDrive accounts granted calendars).

Calls (all under ``/v1.0/me``, through :class:`~.graph_client.GraphClient`):

=============================== ==================================================================
API                             Graph
=============================== ==================================================================
calendars list / get            ``GET /calendars`` (``$top``, ``@odata.nextLink``) /
                                ``GET /calendars/{id}``
``primary``                     ``GET /calendar`` (the default calendar's id)
create / update / delete        ``POST /calendars``, ``PATCH`` / ``DELETE /calendars/{id}`` (the
                                default calendar cannot be deleted: 403, checked before Graph)
events list without a window    ``GET /calendars/{id}/events?$orderby=start/dateTime`` (series
                                as one event)
events list with ``start`` /    ``GET /calendars/{id}/calendarView`` (occurrences expanded by
``end``                         Graph; an open side is :data:`OPEN_WINDOW` from the other)
event get / create / update /   ``/calendars/{id}/events[/{eid}]``; update and delete send the
delete                          event's ``@odata.etag`` as ``If-Match`` (412 if it changed)
availability                    the default calendar: ``POST /calendar/getSchedule`` (free/busy
                                of the mailbox); other calendars: their ``calendarView``
upstream changes (activity)     ``GET /calendars/{id}/calendarView/delta`` rounds, the
                                ``@odata.deltaLink`` kept per calendar (:class:`~.provider_calendar
                                _base.SyncState`)
=============================== ==================================================================

Page numbers map onto Graph's ``@odata.nextLink`` through
:class:`~.provider_calendar_base.PageTokens`. Every item is read with
``$expand=singleValueExtendedProperties(...)`` so that the fields Graph has no property for come
back (:mod:`~.graph_mapping`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

from ..availability import Interval
from ..errors import ApiError
from ..outbound import policy_for
from .base import AccountEnv
from .calendar_base import (
    CalendarBackend,
    CalendarConflict,
    CalendarForbidden,
    CalendarInvalid,
    CalendarNotFound,
    CalendarRecord,
    EventRecord,
    Page,
)
from .graph_client import MAX_PAGES, GraphClient, GraphError
from .graph_mapping import (
    EXPAND,
    calendar_body,
    calendar_record,
    event_body,
    event_record,
    graph_instant,
    master_id,
)
from .provider import TokenKeeper, app_of
from .provider_calendar_base import Fetched, PageTokens, SyncState, numbered_page
from .rclone_remotes import load_spec

#: How far an event list's open side reaches from its other side (Graph needs both).
OPEN_WINDOW = timedelta(days=3650)
#: The window upstream changes are tracked in (Graph's delta works on a calendar view):
#: from this far back to this far ahead of the first sync.
SYNC_PAST = timedelta(days=180)
SYNC_AHEAD = timedelta(days=730)
#: Most calendars whose changes one sync reads; page size of delta rounds.
MAX_SYNC_CALENDARS = 50
DELTA_PAGE = 200
#: The longest span of one ``getSchedule`` call (Graph's limit is 62 days), and most calls.
SCHEDULE_SPAN = timedelta(days=62)
MAX_SCHEDULE_CALLS = 24
#: ``$top`` of the calendar listings (all calendars are read: listing, sync).
ALL = 100


def _utc_text(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _segment(value: str) -> str:
    return quote(value, safe="")


class OutlookCalendar(CalendarBackend):
    """Calendars and events of one Microsoft account.

    :param env: the account's environment. :param client: its Graph client.
    """

    def __init__(self, env: AccountEnv, client: GraphClient) -> None:
        self.env = env
        self.client = client
        self._primary: str | None = None
        self.sync = SyncState(env.store, env.account_id)

    # -- plumbing ------------------------------------------------------------------------------
    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            return self.client.call(method, path, **kwargs).body
        except GraphError as exc:
            raise self._error(exc) from None

    @staticmethod
    def _error(exc: GraphError) -> Exception:
        if exc.status == 404:
            return CalendarNotFound(f"Not found at Microsoft Graph ({exc.code}).")
        if exc.code == "ErrorIrresolvableConflict":  # a change key that moved on (409 or 412)
            return GraphError(412, exc.code, exc.message).api_error()
        if exc.status == 409:
            return CalendarConflict(f"Microsoft Graph: the object exists already ({exc.code}).")
        if exc.status in (400, 422):
            return CalendarInvalid(
                f"Microsoft Graph refused the values ({exc.code}): {exc.message}"
            )
        return exc.api_error()

    def _calendar_path(self, calendar_id: str) -> str:
        return f"/me/calendars/{_segment(self.resolve_calendar_id(calendar_id))}"

    def _fetch(self, path: str, params: dict[str, str]) -> Any:
        def fetch(token: str) -> Fetched[dict[str, Any]]:
            if token:
                body = self._call("GET", token, absolute=True, prefer=self._prefer())
            else:
                body = self._call("GET", path, params=params, prefer=self._prefer())
            link = body.get("@odata.nextLink")
            return Fetched(list(body.get("value") or []), link if isinstance(link, str) else "")

        return fetch

    @staticmethod
    def _prefer() -> tuple[str, ...]:
        return ('outlook.body-content-type="text"',)

    # -- calendars -----------------------------------------------------------------------------
    def primary_calendar_id(self) -> str:
        if self._primary is None:
            self._primary = str(self._call("GET", "/me/calendar", params={"$select": "id"})["id"])
        return self._primary

    def list_calendars(self, page: int, page_size: int) -> Page[CalendarRecord]:
        """Every calendar is read (following ``@odata.nextLink``; mailboxes have few), so that
        the default one comes first whatever Graph's order, then the page is cut out."""
        params = {"$top": str(ALL), "$expand": EXPAND}
        found: list[CalendarRecord] = []
        try:
            for answer in self.client.pages("/me/calendars", params=params):
                found.extend(calendar_record(i) for i in answer.body.get("value") or [])
        except GraphError as exc:
            raise self._error(exc) from None
        found.sort(key=lambda c: not c.primary)  # stable: Graph's order otherwise
        begin = (page - 1) * page_size
        more = len(found) > begin + page_size
        return Page(found[begin : begin + page_size], page, page + 1 if more else None)

    def get_calendar(self, calendar_id: str) -> CalendarRecord:
        path = self._calendar_path(calendar_id)
        return calendar_record(self._call("GET", path, params={"$expand": EXPAND}))

    def create_calendar(self, fields: Mapping[str, Any]) -> CalendarRecord:
        item = self._call("POST", "/me/calendars", body=calendar_body(fields))
        return self.get_calendar(str(item["id"]))  # with its extended property

    def update_calendar(self, calendar_id: str, changes: Mapping[str, Any]) -> CalendarRecord:
        current = self.get_calendar(calendar_id)
        body = calendar_body(changes, current)
        if body:
            self._call("PATCH", self._calendar_path(current.id), body=body)
        return self.get_calendar(current.id)

    def delete_calendar(self, calendar_id: str) -> CalendarRecord:
        current = self.get_calendar(calendar_id)
        if current.primary:
            raise CalendarForbidden("The primary (default) Outlook calendar cannot be deleted.")
        self._call("DELETE", self._calendar_path(current.id))
        return current

    # -- events --------------------------------------------------------------------------------
    @staticmethod
    def _record(item: dict[str, Any], calendar_id: str) -> EventRecord:
        record = event_record(item, calendar_id)
        # The API's ETag is Graph's changeKey (Graph's own @odata.etag is W/"changeKey").
        change_key = item.get("changeKey")
        record.etag = change_key if isinstance(change_key, str) and change_key else None
        record.recurring_master_id = master_id(item)
        return record

    def list_events(
        self,
        calendar_id: str,
        page: int,
        page_size: int,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> Page[EventRecord]:
        real = self.resolve_calendar_id(calendar_id)
        base = self._calendar_path(real)
        params = {"$top": str(page_size), "$expand": EXPAND, "$orderby": "start/dateTime"}
        if start is None and end is None:
            path = f"{base}/events"
        else:
            if start is not None:
                low, high = start, end or start + OPEN_WINDOW
            else:
                assert end is not None
                low, high = end - OPEN_WINDOW, end
            path = f"{base}/calendarView"
            params.update(startDateTime=_utc_text(low), endDateTime=_utc_text(high))
        key = ("outlook-events", real, path, params.get("startDateTime"), params.get("endDateTime"))
        tokens = PageTokens(self.env.store, self.env.account_id, (*key, page_size))
        items, next_page = numbered_page(tokens, page, self._fetch(path, params))
        return Page([self._record(i, real) for i in items], page, next_page)

    def _event_path(self, calendar_id: str, event_id: str) -> str:
        return f"{self._calendar_path(calendar_id)}/events/{_segment(event_id)}"

    def _get_item(self, calendar_id: str, event_id: str) -> dict[str, Any]:
        return self._call(
            "GET",
            self._event_path(calendar_id, event_id),
            params={"$expand": EXPAND},
            prefer=self._prefer(),
        )

    def get_event(self, calendar_id: str, event_id: str) -> EventRecord:
        real = self.resolve_calendar_id(calendar_id)
        return self._record(self._get_item(real, event_id), real)

    def create_event(self, calendar_id: str, fields: Mapping[str, Any]) -> EventRecord:
        real = self.resolve_calendar_id(calendar_id)
        item = self._call("POST", f"{self._calendar_path(real)}/events", body=event_body(fields))
        # The answer of a create has no extended properties: read the event back.
        created = self._get_item(real, str(item["id"]))
        self.sync.seen(str(created["id"]), created.get("@odata.etag"))
        return self._record(created, real)

    def update_event(
        self, calendar_id: str, event_id: str, changes: Mapping[str, Any]
    ) -> EventRecord:
        real = self.resolve_calendar_id(calendar_id)
        item = self._get_item(real, event_id)
        body = event_body(changes, self._record(item, real))
        path = self._event_path(real, event_id)
        if body:
            # Graph applies the change only if nobody changed the event since it was read.
            self._call("PATCH", path, body=body, if_match=item.get("@odata.etag"))
        updated = self._get_item(real, event_id)
        self.sync.seen(str(updated["id"]), updated.get("@odata.etag"))
        return self._record(updated, real)

    def delete_event(self, calendar_id: str, event_id: str) -> EventRecord:
        real = self.resolve_calendar_id(calendar_id)
        item = self._get_item(real, event_id)
        self._call("DELETE", self._event_path(real, event_id), if_match=item.get("@odata.etag"))
        self.sync.seen(str(item["id"]), None)
        return self._record(item, real)

    # -- availability ------------------------------------------------------------------------
    def _mailbox(self) -> str:
        me = self._call("GET", "/me", params={"$select": "mail,userPrincipalName"})
        address = me.get("mail") or me.get("userPrincipalName")
        if not isinstance(address, str) or not address:
            raise ApiError(502, "bad_gateway", "Microsoft Graph did not name the mailbox.")
        return address

    def busy_intervals(self, calendar_id: str, start: datetime, end: datetime) -> list[Interval]:
        """The default calendar's busy time comes from ``getSchedule`` (the mailbox's
        free/busy, occurrences expanded, ``showAs: free`` left out); another calendar's from
        its ``calendarView``."""
        real = self.resolve_calendar_id(calendar_id)
        if real != self.primary_calendar_id():
            return self._view_busy(real, start, end)
        mailbox = self._mailbox()
        busy: list[Interval] = []
        low = start
        for _ in range(MAX_SCHEDULE_CALLS):
            if low >= end:
                return busy
            high = min(end, low + SCHEDULE_SPAN)
            busy.extend(self._schedule(mailbox, low, high))
            low = high
        raise CalendarInvalid(
            "Availability at Microsoft Graph covers at most "
            f"{MAX_SCHEDULE_CALLS * SCHEDULE_SPAN.days} days at once."
        )

    def _schedule(self, mailbox: str, start: datetime, end: datetime) -> list[Interval]:
        body = {
            "schedules": [mailbox],
            "startTime": {"dateTime": _utc_text(start)[:-1], "timeZone": "UTC"},
            "endTime": {"dateTime": _utc_text(end)[:-1], "timeZone": "UTC"},
            "availabilityViewInterval": 15,
        }
        answer = self._call("POST", "/me/calendar/getSchedule", body=body)
        busy: list[Interval] = []
        for schedule in answer.get("value") or []:
            if schedule.get("error"):
                raise ApiError(
                    502, "bad_gateway", "Microsoft Graph gave no free/busy for the mailbox."
                )
            for item in schedule.get("scheduleItems") or []:
                if item.get("status") != "free":
                    busy.append((graph_instant(item.get("start")), graph_instant(item.get("end"))))
        return busy

    def _view_busy(self, calendar_id: str, start: datetime, end: datetime) -> list[Interval]:
        params = {
            "startDateTime": _utc_text(start),
            "endDateTime": _utc_text(end),
            "$top": "1000",
            "$select": "start,end,showAs,isAllDay",
        }
        busy: list[Interval] = []
        path = f"{self._calendar_path(calendar_id)}/calendarView"
        try:
            for answer in self.client.pages(path, params=params):
                for item in answer.body.get("value") or []:
                    if item.get("showAs") != "free":
                        busy.append(
                            (graph_instant(item.get("start")), graph_instant(item.get("end")))
                        )
        except GraphError as exc:
            raise self._error(exc) from None
        return busy

    # -- upstream changes ----------------------------------------------------------------------
    tracks_upstream = True

    def sync_upstream(self) -> list[tuple[str, EventRecord]]:
        """Read the changes made at Microsoft since the last look (one delta round per
        calendar); the first look only takes the baseline. Changes this server made are left
        out (:meth:`~.provider_calendar_base.SyncState.is_own`).

        :returns: ``(activity type, event)`` pairs: ``add`` (new, never modified), ``update``
            or ``delete`` (only the ids are known then).
        """
        found: list[tuple[str, EventRecord]] = []
        calendars = self._call("GET", "/me/calendars", params={"$top": str(ALL), "$select": "id"})
        for calendar in (calendars.get("value") or [])[:MAX_SYNC_CALENDARS]:
            found.extend(self._sync_calendar(str(calendar["id"])))
        return found

    def _sync_calendar(self, calendar_id: str) -> list[tuple[str, EventRecord]]:
        link = self.sync.token(calendar_id)
        baseline = link is None
        if link is None:
            now = datetime.now(timezone.utc)
            path = f"{self._calendar_path(calendar_id)}/calendarView/delta"
            params: dict[str, str] | None = {
                "startDateTime": _utc_text(now - SYNC_PAST),
                "endDateTime": _utc_text(now + SYNC_AHEAD),
            }
        else:
            path, params = link, None
        rows: list[dict[str, Any]] = []
        prefer = (*self._prefer(), f"odata.maxpagesize={DELTA_PAGE}")
        try:
            for answer in self.client.pages(
                path, params=params, prefer=prefer, max_pages=MAX_PAGES
            ):
                rows.extend(answer.body.get("value") or [])
                delta_link = answer.body.get("@odata.deltaLink")
        except GraphError as exc:
            if exc.status == 410 and not baseline:  # the sync state expired: a new baseline
                self.sync.forget(calendar_id)
                return self._sync_calendar(calendar_id)
            raise self._error(exc) from None
        if isinstance(delta_link, str):
            self.sync.save_token(calendar_id, delta_link)
        if baseline:
            return []
        return self._changes(calendar_id, rows)

    def _changes(
        self, calendar_id: str, rows: list[dict[str, Any]]
    ) -> list[tuple[str, EventRecord]]:
        found: list[tuple[str, EventRecord]] = []
        own: dict[str, bool] = {}  # one decision per series: its occurrences share its etag
        for row in rows:
            event_id = str(row.get("id"))
            series = str(row.get("seriesMasterId") or event_id)
            if "@removed" in row:
                if self.sync.is_own(event_id, None):
                    continue
                found.append(("delete", EventRecord(event_id, calendar_id, "", "")))
                continue
            if series not in own:
                own[series] = self.sync.is_own(series, row.get("@odata.etag"))
            if own[series]:
                continue
            try:
                record = self._record(row, calendar_id)
            except ApiError:
                continue  # an item Graph gave without readable times: nothing to describe
            fresh = row.get("createdDateTime") == row.get("lastModifiedDateTime")
            found.append(("add" if fresh else "update", record))
        return found


def backend(env: AccountEnv, keeper: TokenKeeper) -> OutlookCalendar:
    """:returns: the Outlook calendar of a Microsoft account, reaching Graph with the one
    token ``keeper`` keeps (:data:`~.provider_calendar.BACKENDS` entry)."""
    spec = load_spec(env.config, env.store.server_secret())
    client = GraphClient(
        app_of(env.config, spec).api_base, keeper.access_token, policy_for(env.settings)
    )
    return OutlookCalendar(env, client)
