"""Calendar API (spec §6): calendars, events and availability under ``accounts/{id}/cal/``.

Routes (``{cid}`` may be ``primary``):

* ``GET|POST cal/calendars``; ``GET|PATCH|DELETE cal/calendars/{cid}`` (the primary calendar
  cannot be deleted: 403 ``forbidden``).
* ``GET|POST cal/calendars/{cid}/events`` (``page``, ``page_size``, ``start``, ``end``);
  ``GET|PATCH|DELETE cal/calendars/{cid}/events/{eid}``.
* ``POST cal/availability``: ``calendars`` (default ``["primary"]``), ``meeting_duration``
  (ISO-8601 duration), ``constraints.time_windows`` (or top-level ``time_windows``).

Handlers validate input with :mod:`~kloudless.server.connectors.calendar_base`, call the
account's :class:`~kloudless.server.connectors.calendar_base.CalendarBackend` and map its typed
errors to JSON errors. Every change is appended to the account's activity log.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import re
from datetime import datetime
from typing import Any, Callable

from werkzeug.wrappers import Response

from ..availability import find_availability, parse_datetime, parse_duration

# Imported for its side effect: it registers the calendar tables' migration before any store
# opens (HACKING.md); the local connector builds its backend from it.
from ..connectors import local_calendar  # noqa: F401
from ..connectors.calendar_base import (
    PRIMARY,
    CalendarBackend,
    CalendarConflict,
    CalendarError,
    CalendarForbidden,
    CalendarInvalid,
    CalendarNotFound,
    CalendarRecord,
    EventRecord,
    clean_calendar_input,
    clean_event_input,
)
from ..context import RequestContext
from ..errors import (
    ApiError,
    forbidden,
    invalid_parameters,
    naming_conflict,
    not_found,
)
from ..responses import json_response, no_content, object_list
from ..routing import Route

__all__ = ["ROUTES", "serialize_calendar", "serialize_event", "sync_upstream"]

log = logging.getLogger("kloudless.server")

#: Longest id accepted from a URL; longer ones cannot exist.
MAX_ID_LENGTH = 512
#: Most calendars and time windows one availability request may name.
MAX_AVAILABILITY_CALENDARS = 50
MAX_TIME_WINDOWS = 100
_LOST_PLUS = re.compile(r"(\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?) (\d{2}(?::?\d{2})?)\Z")
#: Largest list offset a backend is asked for (SQLite integers are 64-bit).
MAX_OFFSET = 2**40


def _api_error(exc: CalendarError) -> ApiError:
    """:returns: the JSON error for a backend's typed error."""
    if isinstance(exc, CalendarNotFound):
        return not_found(exc.message)
    if isinstance(exc, CalendarConflict):
        return naming_conflict(exc.message, exc.conflicting_id)
    if isinstance(exc, CalendarForbidden):
        return forbidden(exc.message)
    if isinstance(exc, CalendarInvalid):
        return invalid_parameters(exc.message)
    return ApiError(400, "request_failed", exc.message)


def _calendar_errors(handler: Callable[..., Response]) -> Callable[..., Response]:
    """Turn the backend's :class:`CalendarError` into the matching :class:`ApiError`."""

    @functools.wraps(handler)
    def wrapper(ctx: RequestContext, **kwargs: Any) -> Response:
        for key, value in kwargs.items():
            if key.endswith("_id") and key != "account_id" and len(value) > MAX_ID_LENGTH:
                raise not_found(f"Not found: {key} is too long.")
        try:
            return handler(ctx, **kwargs)
        except CalendarError as exc:
            raise _api_error(exc) from None

    return wrapper


def _backend(ctx: RequestContext, account_id: str) -> tuple[int, CalendarBackend]:
    """:returns: ``(numeric account id, calendar backend)``.

    :raises ApiError: 404 for an unknown account, 501 when its service has no calendar API.
    """
    account = ctx.account(account_id)
    return int(account["id"]), ctx.calendar(account)


def serialize_calendar(
    ctx: RequestContext, account_id: int, calendar: CalendarRecord, *, raw: bool | None = None
) -> dict[str, Any]:
    """:returns: the calendar JSON (``raw`` included when requested)."""
    data: dict[str, Any] = {
        "api": "calendar",
        "type": "calendar",
        "id": calendar.id,
        "name": calendar.name,
        "description": calendar.description,
        "location": calendar.location,
        "timezone": calendar.timezone,
        "primary": calendar.primary,
        "account_id": account_id,
        "href": ctx.href(f"accounts/{account_id}/cal/calendars/{calendar.id}"),
    }
    if ctx.wants_raw if raw is None else raw:
        data["raw"] = calendar.raw
    return data


def serialize_event(
    ctx: RequestContext, account_id: int, event: EventRecord, *, raw: bool | None = None
) -> dict[str, Any]:
    """:returns: the event JSON (``raw`` included when requested)."""
    data: dict[str, Any] = {
        "api": "calendar",
        "type": "event",
        "id": event.id,
        "account_id": account_id,
        "calendar_id": event.calendar_id,
        "ical_uid": event.ical_uid,
        "name": event.name,
        "description": event.description,
        "location": event.location,
        "start": event.start,
        "end": event.end,
        "start_time_zone": event.start_time_zone,
        "end_time_zone": event.end_time_zone,
        "all_day": event.all_day,
        "attendees": event.attendees,
        "organizer": event.organizer,
        "creator": event.creator,
        "owner": event.owner,
        "attachments": [],
        "recurrence": event.recurrence,
        "recurrence_type": event.recurrence_type,
        "recurring_master_id": event.recurring_master_id,
        "created": event.created,
        "modified": event.modified,
        "href": ctx.href(
            f"accounts/{account_id}/cal/calendars/{event.calendar_id}/events/{event.id}"
        ),
    }
    if ctx.wants_raw if raw is None else raw:
        data["raw"] = event.raw
    return data


def _page_params(ctx: RequestContext) -> tuple[int, int]:
    """:returns: ``(page, page_size)``; 404 for pages so far out that no list reaches them."""
    page, page_size = ctx.page_params()
    if (page - 1) * page_size > MAX_OFFSET:
        raise not_found(f"Page {page} does not exist.")
    return page, page_size


def _page_response(
    ctx: RequestContext, objects: list[dict[str, Any]], page: int, next_page: int | None
) -> Response:
    if page > 1 and not objects:
        raise not_found(f"Page {page} does not exist.")
    return json_response(object_list(objects, "calendar", page, next_page))


def _time_param(ctx: RequestContext, name: str) -> datetime | None:
    value = ctx.request.args.get(name)
    if value is None or value == "":
        return None
    # An unencoded '+' of a UTC offset arrives as a space: "12:00:00 05:00" means "+05:00".
    value = _LOST_PLUS.sub(r"\1+\2", value)
    try:
        return parse_datetime(value)
    except ValueError as exc:
        raise invalid_parameters(
            f"Parameter '{name}' is not an ISO-8601 date-time: {exc}"
        ) from None


def _event_response(data: dict[str, Any], event: EventRecord, status: int = 200) -> Response:
    """An event answer, with the upstream's ``ETag`` when the backend has one."""
    headers = {}
    if event.etag:
        headers["ETag"] = event.etag if event.etag.startswith('"') else f'"{event.etag}"'
    return json_response(data, status, headers)


def _check_if_match(ctx: RequestContext, backend: CalendarBackend, cid: str, eid: str) -> None:
    """``If-Match`` on an event change: 412 when the event's etag differs (backends without
    etags ignore it; ``*`` matches any existing event)."""
    wanted = ctx.request.headers.get("If-Match", "").strip()
    if not wanted:
        return
    current = backend.get_event(cid, eid)
    if wanted == "*" or current.etag is None:
        return
    tags = {t.strip() for t in wanted.split(",")}
    if not tags & {current.etag, f'"{current.etag}"', current.etag.strip('"')}:
        raise ApiError(
            412,
            "precondition_failed",
            "The event changed since that version (If-Match does not match its ETag).",
        )


def sync_upstream(ctx: RequestContext, account: Any) -> None:
    """Record, as activity, the events changed upstream (a cloud calendar, outside this API)
    since the last look. Called before the activity stream is read; an unreachable upstream
    is logged and retried next time (the stream stays readable)."""
    connector = ctx.connector(account)
    if "calendar" not in connector.account_apis(json.loads(account["config"] or "{}")):
        return
    try:
        backend = connector.calendar(ctx.account_env(account))
        if backend is None or not backend.tracks_upstream:
            return
        acc = int(account["id"])
        for type_, changed in backend.sync_upstream():
            if isinstance(changed, CalendarRecord):
                data = serialize_calendar(ctx, acc, changed, raw=False)
            else:
                data = serialize_event(ctx, acc, changed, raw=False)
            ctx.record_activity(acc, type_, data)
    except (ApiError, CalendarError) as exc:
        status = getattr(exc, "status", 400)
        log.warning("calendar sync of account %s failed: %s %s", account["id"], status, exc)


# --- calendars ------------------------------------------------------------------------------


@_calendar_errors
def list_calendars(ctx: RequestContext, account_id: str) -> Response:
    acc, backend = _backend(ctx, account_id)
    page, page_size = _page_params(ctx)
    result = backend.list_calendars(page, page_size)
    objects = [serialize_calendar(ctx, acc, c) for c in result.objects]
    return _page_response(ctx, objects, result.page, result.next_page)


@_calendar_errors
def create_calendar(ctx: RequestContext, account_id: str) -> Response:
    acc, backend = _backend(ctx, account_id)
    fields = clean_calendar_input(ctx.json_body(), partial=False)
    calendar = backend.create_calendar(fields)
    ctx.record_activity(acc, "add", serialize_calendar(ctx, acc, calendar, raw=False))
    return json_response(serialize_calendar(ctx, acc, calendar), 201)


@_calendar_errors
def get_calendar(ctx: RequestContext, account_id: str, calendar_id: str) -> Response:
    acc, backend = _backend(ctx, account_id)
    calendar = backend.get_calendar(backend.resolve_calendar_id(calendar_id))
    return json_response(serialize_calendar(ctx, acc, calendar))


@_calendar_errors
def patch_calendar(ctx: RequestContext, account_id: str, calendar_id: str) -> Response:
    acc, backend = _backend(ctx, account_id)
    changes = clean_calendar_input(ctx.json_body(), partial=True)
    calendar = backend.update_calendar(backend.resolve_calendar_id(calendar_id), changes)
    ctx.record_activity(acc, "update", serialize_calendar(ctx, acc, calendar, raw=False))
    return json_response(serialize_calendar(ctx, acc, calendar))


@_calendar_errors
def delete_calendar(ctx: RequestContext, account_id: str, calendar_id: str) -> Response:
    acc, backend = _backend(ctx, account_id)
    calendar = backend.delete_calendar(backend.resolve_calendar_id(calendar_id))
    ctx.record_activity(acc, "delete", serialize_calendar(ctx, acc, calendar, raw=False))
    return no_content()


# --- events ---------------------------------------------------------------------------------


@_calendar_errors
def list_events(ctx: RequestContext, account_id: str, calendar_id: str) -> Response:
    acc, backend = _backend(ctx, account_id)
    page, page_size = _page_params(ctx)
    start, end = _time_param(ctx, "start"), _time_param(ctx, "end")
    if start is not None and end is not None and end < start:
        raise invalid_parameters("Parameter 'end' must not be before 'start'.")
    cid = backend.resolve_calendar_id(calendar_id)
    result = backend.list_events(cid, page, page_size, start, end)
    objects = [serialize_event(ctx, acc, e) for e in result.objects]
    return _page_response(ctx, objects, result.page, result.next_page)


@_calendar_errors
def create_event(ctx: RequestContext, account_id: str, calendar_id: str) -> Response:
    acc, backend = _backend(ctx, account_id)
    fields = clean_event_input(ctx.json_body(), partial=False)
    real_id = backend.resolve_calendar_id(calendar_id)
    derived = None
    if ctx.request_key is not None and not fields.get("ical_uid"):
        # A keyed create names its event after the key: a retry after a crash that came after
        # the upstream change finds that event instead of creating a second one.
        digest = hashlib.sha256(ctx.request_key.encode("utf-8")).hexdigest()
        derived = f"{digest[:32]}@kloudless"
        fields = {**fields, "ical_uid": derived}
    try:
        event = backend.create_event(real_id, fields)
    except CalendarConflict as exc:
        if derived is None or exc.conflicting_id is None:
            raise
        event = backend.get_event(real_id, exc.conflicting_id)
    ctx.record_activity(acc, "add", serialize_event(ctx, acc, event, raw=False))
    return _event_response(serialize_event(ctx, acc, event), event, 201)


@_calendar_errors
def get_event(ctx: RequestContext, account_id: str, calendar_id: str, event_id: str) -> Response:
    acc, backend = _backend(ctx, account_id)
    event = backend.get_event(backend.resolve_calendar_id(calendar_id), event_id)
    return _event_response(serialize_event(ctx, acc, event), event)


@_calendar_errors
def patch_event(ctx: RequestContext, account_id: str, calendar_id: str, event_id: str) -> Response:
    acc, backend = _backend(ctx, account_id)
    changes = clean_event_input(ctx.json_body(), partial=True)
    cid = backend.resolve_calendar_id(calendar_id)
    _check_if_match(ctx, backend, cid, event_id)
    event = backend.update_event(cid, event_id, changes)
    ctx.record_activity(acc, "update", serialize_event(ctx, acc, event, raw=False))
    return _event_response(serialize_event(ctx, acc, event), event)


@_calendar_errors
def delete_event(ctx: RequestContext, account_id: str, calendar_id: str, event_id: str) -> Response:
    acc, backend = _backend(ctx, account_id)
    cid = backend.resolve_calendar_id(calendar_id)
    _check_if_match(ctx, backend, cid, event_id)
    event = backend.delete_event(cid, event_id)
    ctx.record_activity(acc, "delete", serialize_event(ctx, acc, event, raw=False))
    return no_content()


# --- availability ---------------------------------------------------------------------------


def _time_windows(body: dict[str, Any]) -> list[tuple[datetime, datetime]]:
    constraints = body.get("constraints")
    if constraints is not None and not isinstance(constraints, dict):
        raise invalid_parameters("'constraints' must be an object with 'time_windows'.")
    windows = (constraints or {}).get("time_windows", body.get("time_windows"))
    if not isinstance(windows, list) or not windows:
        raise invalid_parameters(
            "'constraints.time_windows' is required: a non-empty list of {start, end} objects."
        )
    if len(windows) > MAX_TIME_WINDOWS:
        raise invalid_parameters(f"At most {MAX_TIME_WINDOWS} time windows are allowed.")
    parsed: list[tuple[datetime, datetime]] = []
    for index, window in enumerate(windows):
        if not isinstance(window, dict):
            raise invalid_parameters(f"time_windows[{index}] must be an object {{start, end}}.")
        try:
            start = parse_datetime(window.get("start", ""))
            end = parse_datetime(window.get("end", ""))
        except ValueError as exc:
            raise invalid_parameters(
                f"time_windows[{index}] needs ISO-8601 'start' and 'end': {exc}"
            ) from None
        if end <= start:
            raise invalid_parameters(f"time_windows[{index}]: 'end' must be after 'start'.")
        parsed.append((start, end))
    return parsed


@_calendar_errors
def availability(ctx: RequestContext, account_id: str) -> Response:
    _, backend = _backend(ctx, account_id)
    body = ctx.json_body()
    calendars = body.get("calendars", [PRIMARY])
    if (
        not isinstance(calendars, list)
        or not calendars
        or not all(isinstance(c, str) and c for c in calendars)
    ):
        raise invalid_parameters("'calendars' must be a non-empty list of calendar ids.")
    if len(calendars) > MAX_AVAILABILITY_CALENDARS:
        raise invalid_parameters(f"At most {MAX_AVAILABILITY_CALENDARS} calendars are allowed.")
    try:
        duration = parse_duration(body.get("meeting_duration", ""))
    except ValueError as exc:
        raise invalid_parameters(
            f"'meeting_duration' must be an ISO-8601 duration: {exc}"
        ) from None
    if duration.total_seconds() <= 0:
        raise invalid_parameters("'meeting_duration' must be longer than zero.")
    windows = _time_windows(body)
    first = min(start for start, _ in windows)
    last = max(end for _, end in windows)
    ids = []
    for calendar_id in dict.fromkeys(calendars):  # each calendar once, in order
        if len(calendar_id) > MAX_ID_LENGTH:
            raise not_found("Calendar not found.")
        ids.append(backend.resolve_calendar_id(calendar_id))
    busy = backend.busy_across(list(dict.fromkeys(ids)), first, last)
    return json_response(
        {
            "api": "calendar",
            "type": "availability",
            "time_windows": find_availability(windows, busy, duration),
        }
    )


CAL = "/accounts/<account_id>/cal"

ROUTES = [
    Route(CAL + "/calendars", ("GET",), list_calendars),
    Route(CAL + "/calendars", ("POST",), create_calendar),
    Route(CAL + "/calendars/<calendar_id>", ("GET",), get_calendar),
    Route(CAL + "/calendars/<calendar_id>", ("PATCH",), patch_calendar),
    Route(CAL + "/calendars/<calendar_id>", ("DELETE",), delete_calendar),
    Route(CAL + "/calendars/<calendar_id>/events", ("GET",), list_events),
    Route(CAL + "/calendars/<calendar_id>/events", ("POST",), create_event),
    Route(CAL + "/calendars/<calendar_id>/events/<event_id>", ("GET",), get_event),
    Route(CAL + "/calendars/<calendar_id>/events/<event_id>", ("PATCH",), patch_event),
    Route(CAL + "/calendars/<calendar_id>/events/<event_id>", ("DELETE",), delete_event),
    Route(CAL + "/availability", ("POST",), availability),
]
