"""The ``local`` connector's calendars: calendars and events in the server's SQLite database.

Tables ``cal_calendars`` and ``cal_events`` (migration 100) reference ``accounts`` with
``ON DELETE CASCADE``, so deleting an account (or a calendar) removes its events too. Each account
gets one primary calendar on first use, named after the account. Events keep ``start``/``end``
exactly as sent and also store their UTC instants (microseconds since the epoch) for filtering
and ordering. Recurrence rules are stored and returned unchanged, not expanded.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import weakref
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from ..store import Store, now_iso, register_migration
from .calendar_base import (
    CalendarBackend,
    CalendarConflict,
    CalendarForbidden,
    CalendarNotFound,
    CalendarRecord,
    EventRecord,
    Page,
    event_interval,
    is_all_day,
)

__all__ = ["LocalCalendar"]

MIGRATION_VERSION = 100

# No ';' inside this script except as statement separators (the store splits on it).
SCHEMA = """
CREATE TABLE cal_calendars (
    id TEXT PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name TEXT NOT NULL, description TEXT, location TEXT, timezone TEXT,
    is_primary INTEGER NOT NULL DEFAULT 0,
    created TEXT NOT NULL, modified TEXT NOT NULL);
CREATE UNIQUE INDEX cal_calendars_primary ON cal_calendars(account_id) WHERE is_primary = 1;
CREATE INDEX cal_calendars_account ON cal_calendars(account_id, is_primary, created, id);
CREATE TABLE cal_events (
    id TEXT PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    calendar_id TEXT NOT NULL REFERENCES cal_calendars(id) ON DELETE CASCADE,
    ical_uid TEXT NOT NULL,
    name TEXT, description TEXT, location TEXT,
    start_at TEXT NOT NULL, end_at TEXT NOT NULL,
    start_time_zone TEXT, end_time_zone TEXT,
    start_us INTEGER NOT NULL, end_us INTEGER NOT NULL,
    all_day INTEGER NOT NULL DEFAULT 0,
    attendees TEXT NOT NULL DEFAULT '[]',
    organizer TEXT, creator TEXT, owner TEXT, recurrence TEXT,
    created TEXT NOT NULL, modified TEXT NOT NULL);
CREATE UNIQUE INDEX cal_events_uid ON cal_events(calendar_id, ical_uid);
CREATE INDEX cal_events_order ON cal_events(calendar_id, start_us, id)
"""

register_migration(MIGRATION_VERSION, SCHEMA)

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)
#: Stores whose schema has been brought up to date since this module was imported.
_MIGRATED: weakref.WeakSet[Store] = weakref.WeakSet()


def _micros(value: datetime) -> int:
    """:returns: an aware datetime as integer microseconds since the Unix epoch."""
    return (value - _EPOCH) // _MICROSECOND


def _new_id(prefix: str) -> str:
    # Random, URL-safe and opaque; never derived from user input.
    return prefix + secrets.token_urlsafe(12)


def _dump(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"))


def _load(value: str | None) -> Any:
    return None if value is None else json.loads(value)


class LocalCalendar(CalendarBackend):
    """Calendars of one account in SQLite.

    :param store: the server's store.
    :param account_id: the account.
    :param primary_name: name given to the primary calendar when it is created.
    """

    def __init__(self, store: Store, account_id: int, primary_name: str = "Calendar") -> None:
        self.store = store
        self.account_id = account_id
        self.primary_name = primary_name
        if store not in _MIGRATED:
            # The store may have been opened before this module registered its migration.
            store.migrate()
            _MIGRATED.add(store)

    # -- records -----------------------------------------------------------------------------
    @staticmethod
    def _calendar(row: sqlite3.Row) -> CalendarRecord:
        return CalendarRecord(
            id=row["id"],
            name=row["name"],
            description=row["description"],
            location=row["location"],
            timezone=row["timezone"],
            primary=bool(row["is_primary"]),
            raw=dict(row),
        )

    @staticmethod
    def _event(row: sqlite3.Row) -> EventRecord:
        recurrence = _load(row["recurrence"])
        return EventRecord(
            id=row["id"],
            calendar_id=row["calendar_id"],
            start=row["start_at"],
            end=row["end_at"],
            name=row["name"],
            description=row["description"],
            location=row["location"],
            start_time_zone=row["start_time_zone"],
            end_time_zone=row["end_time_zone"],
            all_day=bool(row["all_day"]),
            attendees=_load(row["attendees"]) or [],
            organizer=_load(row["organizer"]),
            creator=_load(row["creator"]),
            owner=_load(row["owner"]),
            recurrence=recurrence,
            recurrence_type="recurring" if recurrence else "solo",
            ical_uid=row["ical_uid"],
            created=row["created"],
            modified=row["modified"],
            raw=dict(row),
        )

    def _calendar_row(self, calendar_id: str) -> sqlite3.Row:
        real_id = self.resolve_calendar_id(calendar_id)
        row = self.store.one(
            "SELECT * FROM cal_calendars WHERE id = ? AND account_id = ?",
            (real_id, self.account_id),
        )
        if row is None:
            raise CalendarNotFound(f"Calendar not found: {calendar_id[:100]}")
        return row

    def _event_row(self, calendar_id: str, event_id: str) -> sqlite3.Row:
        calendar = self._calendar_row(calendar_id)
        row = self.store.one(
            "SELECT * FROM cal_events WHERE id = ? AND calendar_id = ? AND account_id = ?",
            (event_id, calendar["id"], self.account_id),
        )
        if row is None:
            raise CalendarNotFound(f"Event not found: {event_id[:100]}")
        return row

    # -- calendars ---------------------------------------------------------------------------
    def primary_calendar_id(self) -> str:
        """:returns: the primary calendar's id, creating the calendar on first use."""
        query = "SELECT id FROM cal_calendars WHERE account_id = ? AND is_primary = 1"
        row = self.store.one(query, (self.account_id,))
        if row is not None:
            return str(row["id"])
        now = now_iso()
        with self.store.transaction():
            # The partial unique index makes a concurrent first use insert only one calendar.
            self.store.execute(
                "INSERT OR IGNORE INTO cal_calendars (id, account_id, name, timezone,"
                " is_primary, created, modified) VALUES (?, ?, ?, 'UTC', 1, ?, ?)",
                (_new_id("cal_"), self.account_id, self.primary_name, now, now),
            )
            row = self.store.one(query, (self.account_id,))
        assert row is not None
        return str(row["id"])

    def list_calendars(self, page: int, page_size: int) -> Page[CalendarRecord]:
        """:returns: one page of calendars, the primary one first, then by creation."""
        self.primary_calendar_id()
        rows = self.store.all(
            "SELECT * FROM cal_calendars WHERE account_id = ?"
            " ORDER BY is_primary DESC, created, id LIMIT ? OFFSET ?",
            (self.account_id, page_size + 1, (page - 1) * page_size),
        )
        more = len(rows) > page_size
        return Page([self._calendar(r) for r in rows[:page_size]], page, page + 1 if more else None)

    def get_calendar(self, calendar_id: str) -> CalendarRecord:
        """:raises CalendarNotFound: no such calendar in this account."""
        return self._calendar(self._calendar_row(calendar_id))

    def create_calendar(self, fields: Mapping[str, Any]) -> CalendarRecord:
        """:returns: the new (non-primary) calendar."""
        self.primary_calendar_id()
        calendar_id = _new_id("cal_")
        now = now_iso()
        self.store.execute(
            "INSERT INTO cal_calendars (id, account_id, name, description, location, timezone,"
            " is_primary, created, modified) VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?)",
            (
                calendar_id,
                self.account_id,
                fields["name"],
                fields.get("description"),
                fields.get("location"),
                fields.get("timezone"),
                now,
                now,
            ),
        )
        return self.get_calendar(calendar_id)

    def update_calendar(self, calendar_id: str, changes: Mapping[str, Any]) -> CalendarRecord:
        """:returns: the updated calendar. :raises CalendarNotFound: no such calendar."""
        with self.store.transaction():
            row = self._calendar_row(calendar_id)
            columns = [
                key for key in ("name", "description", "location", "timezone") if key in changes
            ]
            assignments = ", ".join(f"{key} = ?" for key in columns + ["modified"])
            self.store.execute(
                f"UPDATE cal_calendars SET {assignments} WHERE id = ?",
                [changes[key] for key in columns] + [now_iso(), row["id"]],
            )
            return self.get_calendar(row["id"])

    def delete_calendar(self, calendar_id: str) -> CalendarRecord:
        """Delete a calendar and its events.

        :raises CalendarForbidden: for the primary calendar.
        """
        with self.store.transaction():
            row = self._calendar_row(calendar_id)
            if row["is_primary"]:
                raise CalendarForbidden("The primary calendar cannot be deleted.")
            self.store.execute("DELETE FROM cal_events WHERE calendar_id = ?", (row["id"],))
            self.store.execute("DELETE FROM cal_calendars WHERE id = ?", (row["id"],))
        return self._calendar(row)

    # -- events ------------------------------------------------------------------------------
    def list_events(
        self,
        calendar_id: str,
        page: int,
        page_size: int,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> Page[EventRecord]:
        """List events by UTC start then id, optionally only those overlapping ``[start, end)``.

        A zero-length event matches when its instant lies in the range; a recurring event
        matches when its first occurrence starts before ``end`` (its rule is not expanded).
        """
        calendar = self._calendar_row(calendar_id)
        where = ["calendar_id = ?", "account_id = ?"]
        params: list[Any] = [calendar["id"], self.account_id]
        if end is not None:
            where.append("start_us < ?")
            params.append(_micros(end))
        if start is not None:
            where.append(
                "(end_us > ? OR (end_us = start_us AND start_us >= ?) OR recurrence IS NOT NULL)"
            )
            params += [_micros(start), _micros(start)]
        rows = self.store.all(
            f"SELECT * FROM cal_events WHERE {' AND '.join(where)}"
            " ORDER BY start_us, id LIMIT ? OFFSET ?",
            params + [page_size + 1, (page - 1) * page_size],
        )
        more = len(rows) > page_size
        return Page([self._event(r) for r in rows[:page_size]], page, page + 1 if more else None)

    def get_event(self, calendar_id: str, event_id: str) -> EventRecord:
        """:raises CalendarNotFound: no such calendar or event."""
        return self._event(self._event_row(calendar_id, event_id))

    def _check_uid(self, calendar_id: str, uid: str, event_id: str | None) -> None:
        row = self.store.one(
            "SELECT id FROM cal_events WHERE calendar_id = ? AND ical_uid = ? AND id IS NOT ?",
            (calendar_id, uid, event_id),
        )
        if row is not None:
            raise CalendarConflict(
                "An event with this ical_uid already exists in the calendar.", str(row["id"])
            )

    def create_event(self, calendar_id: str, fields: Mapping[str, Any]) -> EventRecord:
        """:returns: the new event.

        :raises CalendarInvalid: end before start. :raises CalendarConflict: duplicate ical_uid.
        """
        start_tz, end_tz = fields.get("start_time_zone"), fields.get("end_time_zone")
        start_dt, end_dt = event_interval(fields["start"], fields["end"], start_tz, end_tz)
        event_id = _new_id("evt_")
        uid = fields.get("ical_uid") or f"{event_id}@kloudless.local"
        now = now_iso()
        with self.store.transaction():
            calendar = self._calendar_row(calendar_id)
            self._check_uid(calendar["id"], uid, None)
            self.store.execute(
                "INSERT INTO cal_events (id, account_id, calendar_id, ical_uid, name,"
                " description, location, start_at, end_at, start_time_zone, end_time_zone,"
                " start_us, end_us, all_day, attendees, organizer, creator, owner, recurrence,"
                " created, modified) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
                " ?, ?, ?, ?)",
                (
                    event_id,
                    self.account_id,
                    calendar["id"],
                    uid,
                    fields.get("name"),
                    fields.get("description"),
                    fields.get("location"),
                    fields["start"],
                    fields["end"],
                    start_tz,
                    end_tz,
                    _micros(start_dt),
                    _micros(end_dt),
                    int(is_all_day(fields["start"])),
                    _dump(fields.get("attendees") or []),
                    _dump(fields.get("organizer")),
                    _dump(fields.get("creator")),
                    _dump(fields.get("owner")),
                    _dump(fields.get("recurrence") or None),
                    now,
                    now,
                ),
            )
            return self.get_event(calendar["id"], event_id)

    def update_event(
        self, calendar_id: str, event_id: str, changes: Mapping[str, Any]
    ) -> EventRecord:
        """Apply a partial update; the merged start/end are checked together.

        :raises CalendarNotFound: no such event. :raises CalendarInvalid: end before start.
        :raises CalendarConflict: the new ``ical_uid`` is taken in this calendar.
        """
        with self.store.transaction():
            row = self._event_row(calendar_id, event_id)
            start = changes.get("start", row["start_at"])
            end = changes.get("end", row["end_at"])
            start_tz = changes.get("start_time_zone", row["start_time_zone"])
            end_tz = changes.get("end_time_zone", row["end_time_zone"])
            start_dt, end_dt = event_interval(start, end, start_tz, end_tz)
            values: dict[str, Any] = {
                "start_at": start,
                "end_at": end,
                "start_time_zone": start_tz,
                "end_time_zone": end_tz,
                "start_us": _micros(start_dt),
                "end_us": _micros(end_dt),
                "all_day": int(is_all_day(start)),
                "modified": now_iso(),
            }
            for key in ("name", "description", "location"):
                if key in changes:
                    values[key] = changes[key]
            for key in ("attendees", "organizer", "creator", "owner", "recurrence"):
                if key in changes:
                    values[key] = _dump(changes[key])
            if "attendees" in changes and changes["attendees"] is None:
                values["attendees"] = "[]"
            if changes.get("ical_uid") and changes["ical_uid"] != row["ical_uid"]:
                self._check_uid(row["calendar_id"], changes["ical_uid"], row["id"])
                values["ical_uid"] = changes["ical_uid"]
            assignments = ", ".join(f"{key} = ?" for key in values)
            self.store.execute(
                f"UPDATE cal_events SET {assignments} WHERE id = ?",
                [*values.values(), row["id"]],
            )
            return self.get_event(row["calendar_id"], row["id"])

    def delete_event(self, calendar_id: str, event_id: str) -> EventRecord:
        """:returns: the deleted event. :raises CalendarNotFound: no such event."""
        with self.store.transaction():
            row = self._event_row(calendar_id, event_id)
            self.store.execute("DELETE FROM cal_events WHERE id = ?", (row["id"],))
        return self._event(row)
