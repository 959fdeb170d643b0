"""The calendar backend interface every calendar-capable connector implements.

A :class:`CalendarBackend` is bound to one account (the connector creates it for that account),
so no method takes an account id and ids of other accounts simply are not found. The local
backend keeps calendars in SQLite (:mod:`kloudless.server.connectors.local_calendar`); the CalDAV
backend maps the same calls onto a CalDAV server.

Records are small dataclasses (:class:`CalendarRecord`, :class:`EventRecord`) that the API layer
turns into JSON. Input is validated once, here, by :func:`clean_calendar_input` and
:func:`clean_event_input`; backends receive the cleaned dicts. Backends report problems with the
typed errors below, which the API layer maps to JSON errors:

============================ ===== ======================
error                        HTTP  ``error_code``
============================ ===== ======================
:class:`CalendarNotFound`    404   ``not_found``
:class:`CalendarInvalid`     400   ``invalid_parameters``
:class:`CalendarConflict`    409   ``naming_conflict``
:class:`CalendarForbidden`   403   ``forbidden``
============================ ===== ======================
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Generic, TypeVar

from kloudless.server.availability import (
    Interval,
    parse_datetime,
    parse_time_value,
    resolve_timezone,
    to_utc,
)

__all__ = [
    "CALENDAR_FIELDS",
    "EVENT_FIELDS",
    "PRIMARY",
    "CalendarBackend",
    "CalendarConflict",
    "CalendarError",
    "CalendarForbidden",
    "CalendarInvalid",
    "CalendarNotFound",
    "CalendarRecord",
    "EventRecord",
    "Page",
    "clean_calendar_input",
    "clean_event_input",
    "event_interval",
    "is_all_day",
]

#: Alias for the account's primary calendar, accepted wherever a calendar id is.
PRIMARY = "primary"

#: Writable calendar attributes.
CALENDAR_FIELDS = ("name", "description", "location", "timezone")

#: Writable event attributes (``all_day`` and ``recurrence_type`` are derived).
EVENT_FIELDS = (
    "name",
    "description",
    "location",
    "start",
    "end",
    "start_time_zone",
    "end_time_zone",
    "attendees",
    "organizer",
    "creator",
    "owner",
    "recurrence",
    "ical_uid",
)

T = TypeVar("T")


# --- errors ---------------------------------------------------------------------------------


class CalendarError(Exception):
    """Base class of the errors a calendar backend raises.

    :param message: a human-readable message (no secrets).
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class CalendarNotFound(CalendarError):
    """The calendar or event does not exist (or belongs to another account)."""


class CalendarInvalid(CalendarError):
    """The request's values are invalid (bad time, end before start, wrong type, ...)."""


class CalendarConflict(CalendarError):
    """The object conflicts with an existing one (e.g. the same ``ical_uid`` in a calendar).

    :param message: a human-readable message.
    :param conflicting_id: id of the existing object.
    """

    def __init__(self, message: str, conflicting_id: str | None = None) -> None:
        super().__init__(message)
        self.conflicting_id = conflicting_id


class CalendarForbidden(CalendarError):
    """The operation is not allowed (e.g. deleting the primary calendar)."""


# --- records --------------------------------------------------------------------------------


@dataclass
class CalendarRecord:
    """One calendar as a backend returns it.

    ``raw`` is the backend's native record, shown with ``X-Kloudless-Raw-Data: true``.
    """

    id: str
    name: str
    description: str | None = None
    location: str | None = None
    timezone: str | None = None
    primary: bool = False
    raw: Any = None


@dataclass
class EventRecord:
    """One calendar event as a backend returns it.

    ``start``/``end`` are the ISO-8601 strings as the client sent them (dates for all-day
    events). ``recurrence`` is passed through unchanged; ``recurrence_type`` is ``"solo"`` or
    ``"recurring"``. ``raw`` is the backend's native record.
    """

    id: str
    calendar_id: str
    start: str
    end: str
    name: str | None = None
    description: str | None = None
    location: str | None = None
    start_time_zone: str | None = None
    end_time_zone: str | None = None
    all_day: bool = False
    attendees: list[Any] = field(default_factory=list)
    organizer: dict[str, Any] | None = None
    creator: dict[str, Any] | None = None
    owner: dict[str, Any] | None = None
    recurrence: list[Any] | None = None
    recurrence_type: str = "solo"
    ical_uid: str | None = None
    created: str | None = None
    modified: str | None = None
    raw: Any = None
    #: The upstream's version tag (cloud calendars), sent as ``ETag``; None without one.
    etag: str | None = None
    #: The recurring event an expanded instance belongs to (``recurring_master_id``).
    recurring_master_id: str | None = None

    def interval(self) -> Interval:
        """:returns: the event's ``(start, end)`` as UTC datetimes (see :func:`event_interval`)."""
        return event_interval(self.start, self.end, self.start_time_zone, self.end_time_zone)


@dataclass
class Page(Generic[T]):
    """One page of a list: the objects, this page's number and the next one (None at the end)."""

    objects: list[T]
    page: int
    next_page: int | None = None


# --- validation -----------------------------------------------------------------------------


def _optional_str(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise CalendarInvalid(f"'{key}' must be a string or null.")
    return value


def _optional_object(data: Mapping[str, Any], key: str) -> dict[str, Any] | None:
    value = data.get(key)
    if value is not None and not isinstance(value, dict):
        raise CalendarInvalid(f'\'{key}\' must be an object (e.g. {{"name", "email"}}) or null.')
    return value


def _timezone_name(data: Mapping[str, Any], key: str) -> str | None:
    value = _optional_str(data, key)
    if value:
        try:
            resolve_timezone(value)
        except ValueError as exc:
            raise CalendarInvalid(f"'{key}' is not a known IANA time zone: {value!r}.") from exc
    return value or None


def _time_text(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise CalendarInvalid(f"'{key}' is required as an ISO-8601 date-time or date string.")
    try:
        parse_time_value(value)
        parse_datetime(value)  # also range-checks the instant
    except ValueError as exc:
        raise CalendarInvalid(f"'{key}' is not a valid ISO-8601 date-time or date: {exc}") from exc
    return value


def clean_calendar_input(data: Mapping[str, Any], *, partial: bool) -> dict[str, Any]:
    """Validate a calendar create (``partial=False``) or update (``partial=True``) body.

    :param data: the decoded JSON object; unknown keys are ignored.
    :param partial: whether only the given keys change (PATCH).
    :returns: the accepted keys among :data:`CALENDAR_FIELDS`.
    :raises CalendarInvalid: a value has the wrong type, ``name`` is missing or empty on create,
        or ``timezone`` is not an IANA zone.
    """
    cleaned: dict[str, Any] = {}
    if "name" in data or not partial:
        name = data.get("name")
        if not isinstance(name, str) or not name.strip():
            raise CalendarInvalid("'name' is required as a non-empty string.")
        cleaned["name"] = name
    for key in ("description", "location"):
        if key in data:
            cleaned[key] = _optional_str(data, key)
    if "timezone" in data:
        cleaned["timezone"] = _timezone_name(data, "timezone")
    return cleaned


def clean_event_input(data: Mapping[str, Any], *, partial: bool) -> dict[str, Any]:
    """Validate an event create (``partial=False``) or update (``partial=True``) body.

    Checks each value's type and format; the order of ``start`` and ``end`` is checked by
    :func:`event_interval` once both are known (on update they may come from the stored event).

    :param data: the decoded JSON object; unknown and read-only keys are ignored.
    :param partial: whether only the given keys change (PATCH).
    :returns: the accepted keys among :data:`EVENT_FIELDS`.
    :raises CalendarInvalid: ``start``/``end`` missing (on create) or not ISO-8601, a time zone
        unknown, or a value of the wrong type.
    """
    cleaned: dict[str, Any] = {}
    for key in ("start", "end"):
        if key in data or not partial:
            cleaned[key] = _time_text(data, key)
    for key in ("name", "description", "location"):
        if key in data:
            cleaned[key] = _optional_str(data, key)
    for key in ("start_time_zone", "end_time_zone"):
        if key in data:
            cleaned[key] = _timezone_name(data, key)
    for key in ("organizer", "creator", "owner"):
        if key in data:
            cleaned[key] = _optional_object(data, key)
    if "attendees" in data:
        attendees = data["attendees"]
        if attendees is None:
            attendees = []
        if not isinstance(attendees, list) or not all(isinstance(a, dict) for a in attendees):
            raise CalendarInvalid("'attendees' must be a list of objects (name, email, ...).")
        cleaned["attendees"] = attendees
    if "recurrence" in data:
        recurrence = data["recurrence"]
        if recurrence is not None and not isinstance(recurrence, list):
            raise CalendarInvalid("'recurrence' must be a list (of recurrence rules) or null.")
        cleaned["recurrence"] = recurrence or None
    if "ical_uid" in data:
        uid = data["ical_uid"]
        if not isinstance(uid, str) or not uid.strip():
            raise CalendarInvalid("'ical_uid' must be a non-empty string.")
        cleaned["ical_uid"] = uid
    return cleaned


def event_interval(
    start: str, end: str, start_tz: str | None = None, end_tz: str | None = None
) -> Interval:
    """Compute an event's instants in UTC and check that it does not end before it starts.

    Values without an offset (and dates) are read in ``start_tz``/``end_tz`` (UTC when absent).
    ``start`` and ``end`` must both be dates (an all-day event; ``end`` is exclusive, equal dates
    mean one day) or both date-times.

    :param start: the event's start as stored.
    :param end: the event's end as stored.
    :param start_tz: IANA zone for ``start``.
    :param end_tz: IANA zone for ``end`` (defaults to ``start_tz``).
    :returns: ``(start, end)`` as UTC datetimes.
    :raises CalendarInvalid: unparsable values, mixed date/date-time, or end before start.
    """
    try:
        start_value = parse_time_value(start)
        end_value = parse_time_value(end)
        zone_start = resolve_timezone(start_tz)
        zone_end = resolve_timezone(end_tz) or zone_start
        start_dt = to_utc(parse_datetime(start, zone_start))
        end_dt = to_utc(parse_datetime(end, zone_end))
    except ValueError as exc:
        raise CalendarInvalid(f"Invalid event time: {exc}") from exc
    start_is_date = not isinstance(start_value, datetime) and isinstance(start_value, date)
    end_is_date = not isinstance(end_value, datetime) and isinstance(end_value, date)
    if start_is_date != end_is_date:
        raise CalendarInvalid("'start' and 'end' must both be dates or both be date-times.")
    if end_dt < start_dt:
        raise CalendarInvalid("'end' must not be before 'start'.")
    if start_is_date and end_dt == start_dt:
        try:
            end_dt = start_dt + timedelta(days=1)
        except OverflowError as exc:
            raise CalendarInvalid("'end' is out of range.") from exc
    return start_dt, end_dt


def is_all_day(start: str) -> bool:
    """:returns: whether an event's ``start`` is a plain date (an all-day event)."""
    try:
        value = parse_time_value(start)
    except ValueError:
        return False
    return not isinstance(value, datetime)


# --- the interface --------------------------------------------------------------------------


class CalendarBackend(abc.ABC):
    """Calendars and events of one account.

    Every method that takes a calendar id also accepts :data:`PRIMARY`. Page numbers start at 1;
    a page past the end is empty with ``next_page`` None. Methods raise the ``Calendar*`` errors
    of this module; anything else is a server bug.
    """

    #: Upper bound of pages :meth:`busy_intervals` reads (bounded loop, see the standards).
    max_busy_pages = 1000
    #: Whether :meth:`sync_upstream` reports changes made outside the API (cloud calendars).
    tracks_upstream = False

    @abc.abstractmethod
    def primary_calendar_id(self) -> str:
        """:returns: the id of the account's primary calendar (created on first use if needed)."""

    def resolve_calendar_id(self, calendar_id: str) -> str:
        """:param calendar_id: a calendar id or :data:`PRIMARY`.
        :returns: the real id (the alias resolved; other ids unchanged, not checked).
        """
        return self.primary_calendar_id() if calendar_id == PRIMARY else calendar_id

    @abc.abstractmethod
    def list_calendars(self, page: int, page_size: int) -> Page[CalendarRecord]:
        """:returns: one page of the account's calendars, the primary one first."""

    @abc.abstractmethod
    def get_calendar(self, calendar_id: str) -> CalendarRecord:
        """:raises CalendarNotFound: no such calendar."""

    @abc.abstractmethod
    def create_calendar(self, fields: Mapping[str, Any]) -> CalendarRecord:
        """:param fields: output of :func:`clean_calendar_input` (``partial=False``).
        :returns: the new calendar.
        """

    @abc.abstractmethod
    def update_calendar(self, calendar_id: str, changes: Mapping[str, Any]) -> CalendarRecord:
        """:param changes: output of :func:`clean_calendar_input` (``partial=True``).
        :returns: the updated calendar.
        :raises CalendarNotFound: no such calendar.
        """

    @abc.abstractmethod
    def delete_calendar(self, calendar_id: str) -> CalendarRecord:
        """Delete a calendar and its events.

        :returns: the deleted calendar (for the activity log).
        :raises CalendarNotFound: no such calendar.
        :raises CalendarForbidden: it is the primary calendar.
        """

    @abc.abstractmethod
    def list_events(
        self,
        calendar_id: str,
        page: int,
        page_size: int,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> Page[EventRecord]:
        """List a calendar's events ordered by start (UTC) then id.

        :param start: aware datetime; only events ending after it (instants at or after it).
        :param end: aware datetime; only events starting before it.
        :raises CalendarNotFound: no such calendar.
        """

    @abc.abstractmethod
    def get_event(self, calendar_id: str, event_id: str) -> EventRecord:
        """:raises CalendarNotFound: no such calendar or event (or the event is elsewhere)."""

    @abc.abstractmethod
    def create_event(self, calendar_id: str, fields: Mapping[str, Any]) -> EventRecord:
        """:param fields: output of :func:`clean_event_input` (``partial=False``).
        :returns: the new event.
        :raises CalendarNotFound: no such calendar.
        :raises CalendarInvalid: the end is before the start.
        :raises CalendarConflict: the calendar already has an event with this ``ical_uid``.
        """

    @abc.abstractmethod
    def update_event(
        self, calendar_id: str, event_id: str, changes: Mapping[str, Any]
    ) -> EventRecord:
        """:param changes: output of :func:`clean_event_input` (``partial=True``).
        :returns: the updated event.
        :raises CalendarNotFound: no such calendar or event.
        :raises CalendarInvalid: the resulting end is before the resulting start.
        """

    @abc.abstractmethod
    def delete_event(self, calendar_id: str, event_id: str) -> EventRecord:
        """:returns: the deleted event (for the activity log).
        :raises CalendarNotFound: no such calendar or event.
        """

    def busy_intervals(self, calendar_id: str, start: datetime, end: datetime) -> list[Interval]:
        """Busy time of a calendar between ``start`` and ``end``.

        The default pages through :meth:`list_events`; a backend with a free-busy query may
        override it. Recurring events count with their first occurrence only (recurrence rules
        are passed through, not expanded).

        :returns: the events' UTC intervals (unmerged).
        :raises CalendarNotFound: no such calendar.
        """
        busy: list[Interval] = []
        page: int | None = 1
        for _ in range(self.max_busy_pages):
            if page is None:
                break
            result = self.list_events(calendar_id, page, 1000, start, end)
            busy.extend(event.interval() for event in result.objects)
            page = result.next_page
        return busy

    def busy_across(
        self, calendar_ids: list[str], start: datetime, end: datetime
    ) -> list[Interval]:
        """Busy time of several calendars (real ids) between ``start`` and ``end``.

        The default asks :meth:`busy_intervals` calendar by calendar; a provider with one
        free/busy query for several calendars overrides it.

        :raises CalendarNotFound: a calendar does not exist.
        """
        busy: list[Interval] = []
        for calendar_id in calendar_ids:
            busy.extend(self.busy_intervals(calendar_id, start, end))
        return busy

    def sync_upstream(self) -> Sequence[tuple[str, EventRecord | CalendarRecord]]:
        """Changes made upstream (outside this API) since the last call, as activity:
        ``("add" | "update" | "delete", event or calendar)``. The default has none (see
        :attr:`tracks_upstream`)."""
        return []
