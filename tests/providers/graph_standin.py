"""A local stand-in of Microsoft Graph's calendar API (v1.0), on loopback, for the contract
tests of the ``outlook_calendar`` connector.

Built from Graph's published resource descriptions (``calendar``, ``event``,
``dateTimeTimeZone``, ``patternedRecurrence``, ``attendee``, ``scheduleInformation``) and
its documented request conventions, and written independently of the connector (it expands
recurrences with dateutil from the pattern, never from an RRULE). It checks requests the way
the service does:

* unknown properties of ``event``/``calendar`` are 400 ``RequestBodyRead``; ``start``/``end``
  are required ``dateTimeTimeZone`` values (``dateTime`` without offset, a known IANA or
  Windows ``timeZone``); ``isAllDay`` needs midnights in one zone; ``end`` not before
  ``start``; recurrence patterns need the properties of their type; attendees need an
  address; extended property ids must be well formed;
* ``calendarView`` and its ``delta`` need ``startDateTime``/``endDateTime``; paging links
  (``$skip`` / ``$skiptoken``) and ``$deltatoken`` values must be ones it issued (else 400 /
  410 ``SyncStateNotFound``); ``$top`` 1..1000, ``Prefer: odata.maxpagesize``;
* every item has ``@odata.etag`` (``W/"changeKey"``); ``If-Match`` on PATCH/DELETE must name
  the current one (412 ``ErrorIrresolvableConflict``);
* ``Prefer: outlook.timezone`` converts every returned ``start``/``end``;
* knobs: :attr:`GraphState.throttle` (next N calls 429 + ``Retry-After``),
  :attr:`GraphState.granted` (False: 403 ``ErrorAccessDenied``, a token without
  ``Calendars.ReadWrite``), :attr:`GraphState.max_page` (the server's own page size cap).

What it does not model is listed in the guide ("Cloud calendars", contract tests).
"""

from __future__ import annotations

import base64
import copy
import itertools
import json
import re
import threading
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from typing import Any, Callable
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from dateutil import rrule
from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON
from werkzeug.wrappers import Request, Response

from . import graph_schema

USER_MAIL = "ada@example.com"
_DATETIME = re.compile(r"\A\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,7})?)?\Z")
_PROPERTY_ID = re.compile(r"\AString \{[0-9a-fA-F-]{36}\} Name \S+\Z")
PATTERN_TYPES = {
    "daily": (),
    "weekly": ("daysOfWeek",),
    "absoluteMonthly": ("dayOfMonth",),
    "relativeMonthly": ("daysOfWeek",),
    "absoluteYearly": ("dayOfMonth", "month"),
    "relativeYearly": ("daysOfWeek", "month"),
}
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
INDEX = {"first": 1, "second": 2, "third": 3, "fourth": 4, "last": -1}
FREQ = {"daily": rrule.DAILY, "weekly": rrule.WEEKLY}
FREQ.update(dict.fromkeys(("absoluteMonthly", "relativeMonthly"), rrule.MONTHLY))
FREQ.update(dict.fromkeys(("absoluteYearly", "relativeYearly"), rrule.YEARLY))
MAX_OCCURRENCES = 2000


class GraphProblem(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def zone(name: Any) -> tzinfo:
    """:returns: the zone of a Graph ``timeZone`` (IANA or Windows). :raises GraphProblem."""
    if not isinstance(name, str) or not name:
        raise GraphProblem(400, "ErrorInvalidTimeZone", "timeZone is required.")
    if name.upper() == "UTC":
        return timezone.utc
    try:
        return ZoneInfo(WINDOWS_TO_OLSON.get(name, name))
    except (KeyError, ValueError):
        raise GraphProblem(400, "ErrorInvalidTimeZone", f"Unknown time zone {name}.") from None


def instant(value: Any, what: str) -> datetime:
    if not isinstance(value, dict) or set(value) - {"dateTime", "timeZone"}:
        raise GraphProblem(400, "RequestBodyRead", f"{what} must be a dateTimeTimeZone.")
    text = value.get("dateTime")
    if not isinstance(text, str) or not _DATETIME.match(text):
        raise GraphProblem(400, "RequestBodyRead", f"{what}.dateTime is not a local date-time.")
    local = datetime.fromisoformat(text[:26] if "." in text else text)
    return local.replace(tzinfo=zone(value.get("timeZone")))


def shown(moment: datetime, name: str) -> dict[str, str]:
    local = moment.astimezone(zone(name)).replace(tzinfo=None)
    return {"dateTime": local.strftime("%Y-%m-%dT%H:%M:%S.0000000"), "timeZone": name}


def query_time(value: str | None, what: str) -> datetime:
    if not value:
        raise GraphProblem(400, "ErrorInvalidParameter", f"{what} is required.")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise GraphProblem(400, "ErrorInvalidParameter", f"{what} is not a date-time.") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


@dataclass
class GraphState:
    """The mailbox and the knobs tests turn."""

    calendars: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> stored event
    changes: list[tuple[int, str, str]] = field(default_factory=list)  # (seq, calendar, id)
    tokens: dict[str, dict[str, Any]] = field(default_factory=dict)  # issued skip/delta tokens
    seq: itertools.count = field(default_factory=lambda: itertools.count(1))
    throttle: int = 0
    retry_after: str = "7"
    granted: bool = True
    max_page: int = 1000
    calls: list[str] = field(default_factory=list)
    #: Called with an event just before the next PATCH/DELETE of it is checked (an edit made
    #: in Outlook between the connector's read and its write).
    edit_before_write: Callable[[dict[str, Any]], None] | None = None
    lock: threading.RLock = field(default_factory=threading.RLock)

    def __post_init__(self) -> None:
        self.default = self.add_calendar("Calendar", default=True)

    def add_calendar(self, name: str, default: bool = False) -> str:
        calendar_id = "AAMkCal" + uuid.uuid4().hex
        self.calendars[calendar_id] = {
            "id": calendar_id,
            "name": name,
            "color": "auto",
            "isDefaultCalendar": default,
            "canEdit": True,
            "owner": {"name": "Ada", "address": USER_MAIL},
            "props": {},
        }
        self.touch(self.calendars[calendar_id])
        return calendar_id

    @staticmethod
    def touch(item: dict[str, Any]) -> None:
        item["changeKey"] = base64.b64encode(uuid.uuid4().bytes).decode()
        item["@odata.etag"] = f'W/"{item["changeKey"]}"'

    def changed(self, calendar_id: str, event_id: str) -> None:
        self.changes.append((next(self.seq), calendar_id, event_id))

    def issue(self, value: dict[str, Any]) -> str:
        token = uuid.uuid4().hex
        self.tokens[token] = value
        return token


def _properties(value: Any) -> dict[str, str]:
    if not isinstance(value, list):
        raise GraphProblem(400, "RequestBodyRead", "singleValueExtendedProperties is a list.")
    found = {}
    for prop in value:
        if (
            not isinstance(prop, dict)
            or not _PROPERTY_ID.match(str(prop.get("id", "")))
            or not isinstance(prop.get("value"), str)
        ):
            raise GraphProblem(400, "ErrorInvalidProperty", "Invalid extended property.")
        found[prop["id"].lower()] = prop["value"]
    return found


def _check_recurrence(value: Any) -> None:
    if value is None:
        return
    pattern = value.get("pattern") if isinstance(value, dict) else None
    span = value.get("range") if isinstance(value, dict) else None
    if not isinstance(pattern, dict) or not isinstance(span, dict):
        raise GraphProblem(400, "ErrorInvalidRecurrence", "pattern and range are required.")
    kind = pattern.get("type")
    if kind not in PATTERN_TYPES or not isinstance(pattern.get("interval"), int):
        raise GraphProblem(400, "ErrorInvalidRecurrence", "pattern type/interval invalid.")
    for name in PATTERN_TYPES[kind]:
        if not pattern.get(name):
            raise GraphProblem(400, "ErrorInvalidRecurrence", f"pattern.{name} is required.")
    if any(d not in WEEKDAYS for d in pattern.get("daysOfWeek") or []):
        raise GraphProblem(400, "ErrorInvalidRecurrence", "daysOfWeek invalid.")
    if kind.startswith("relative") and pattern.get("index", "first") not in INDEX:
        raise GraphProblem(400, "ErrorInvalidRecurrence", "index invalid.")
    rtype = span.get("type")
    needs = {"endDate": "endDate", "numbered": "numberOfOccurrences", "noEnd": None}
    if rtype not in needs or not span.get("startDate"):
        raise GraphProblem(400, "ErrorInvalidRecurrence", "range type/startDate invalid.")
    if needs[rtype] and not span.get(needs[rtype]):
        raise GraphProblem(400, "ErrorInvalidRecurrence", f"range.{needs[rtype]} is required.")


def _check_people(body: dict[str, Any]) -> None:
    for attendee in body.get("attendees") or []:
        address = (attendee or {}).get("emailAddress") or {}
        if not address.get("address") or attendee.get("type", "required") not in (
            "required",
            "optional",
            "resource",
        ):
            raise GraphProblem(400, "ErrorInvalidRecipients", "An attendee needs an address.")
    organizer = body.get("organizer")
    if organizer is not None and not ((organizer.get("emailAddress") or {}).get("address")):
        raise GraphProblem(400, "ErrorInvalidRecipients", "The organizer needs an address.")


def _check_times(event: dict[str, Any]) -> None:
    start, end = instant(event.get("start"), "start"), instant(event.get("end"), "end")
    if end < start:
        raise GraphProblem(400, "ErrorInvalidRequest", "The end is before the start.")
    if event.get("isAllDay"):
        local_start, local_end = (
            datetime.fromisoformat(event["start"]["dateTime"][:19]),
            datetime.fromisoformat(event["end"]["dateTime"][:19]),
        )
        if (
            local_start.time() != time()
            or local_end.time() != time()
            or event["start"]["timeZone"] != event["end"]["timeZone"]
            or end <= start
        ):
            raise GraphProblem(
                400,
                "ErrorPropertyValidationFailure",
                "All-day events need midnights in one time zone and at least one day.",
            )


def _occurrences(event: dict[str, Any], low: datetime, high: datetime) -> list[dict[str, Any]]:
    """The instances of a series between ``low`` and ``high`` (dateutil from the pattern)."""
    pattern, span = event["recurrence"]["pattern"], event["recurrence"]["range"]
    where = zone(span.get("recurrenceTimeZone") or event["start"]["timeZone"])
    first = instant(event["start"], "start")
    length = instant(event["end"], "end") - first
    local = first.astimezone(where).replace(tzinfo=None)
    kind = pattern["type"]
    options: dict[str, Any] = {"interval": pattern["interval"], "dtstart": local}
    days = [getattr(rrule, d[:2].upper()) for d in pattern.get("daysOfWeek") or []]
    if kind == "weekly":
        options["byweekday"] = days
        options["wkst"] = getattr(rrule, str(pattern.get("firstDayOfWeek", "sunday"))[:2].upper())
    if kind.startswith("relative"):
        options["byweekday"] = [d(INDEX[pattern.get("index", "first")]) for d in days]
    if kind.startswith("absolute"):
        options["bymonthday"] = pattern["dayOfMonth"]
    if kind.endswith("Yearly"):
        options["bymonth"] = pattern["month"]
    if span["type"] == "numbered":
        options["count"] = span["numberOfOccurrences"]
    elif span["type"] == "endDate":
        options["until"] = datetime.combine(date.fromisoformat(span["endDate"]), time(23, 59, 59))
    found = []
    for moment in itertools.islice(rrule.rrule(FREQ[kind], **options), MAX_OCCURRENCES):
        begin = moment.replace(tzinfo=where)
        if begin >= high:
            break
        if begin + length <= low:
            continue
        occurrence = copy.deepcopy(event)
        occurrence.pop("recurrence")
        occurrence.update(
            id=f"{event['id']}_OCC{begin.astimezone(timezone.utc):%Y%m%dT%H%M%S}",
            type="occurrence",
            seriesMasterId=event["id"],
            start={"dateTime": begin.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": str(where)},
            end={
                "dateTime": (begin + length).strftime("%Y-%m-%dT%H:%M:%S"),
                "timeZone": str(where),
            },
        )
        found.append(occurrence)
    return found


class GraphApp:
    """The WSGI side: ``handle(request)`` answers paths under ``/v1.0/me/`` (the caller has
    checked the bearer token)."""

    def __init__(self, state: GraphState) -> None:
        self.state = state

    # -- plumbing ----------------------------------------------------------------------------
    def handle(self, request: Request) -> Response:
        with self.state.lock:
            self.state.calls.append(f"{request.method} {request.full_path}")
            if self.state.throttle > 0:
                self.state.throttle -= 1
                return self._error(
                    GraphProblem(429, "ApplicationThrottled", "Too many requests."),
                    {"Retry-After": self.state.retry_after},
                )
            if not self.state.granted:
                return self._error(GraphProblem(403, "ErrorAccessDenied", "Access is denied."))
            try:
                return self._route(request)
            except GraphProblem as problem:
                return self._error(problem)

    @staticmethod
    def _error(problem: GraphProblem, headers: dict[str, str] | None = None) -> Response:
        body = {"error": {"code": problem.code, "message": problem.message}}
        return Response(json.dumps(body), problem.status, headers, content_type="application/json")

    @staticmethod
    def _json(value: Any, status: int = 200) -> Response:
        return Response(json.dumps(value), status, content_type="application/json")

    @staticmethod
    def _body(request: Request, graph_type: str) -> dict[str, Any]:
        try:
            body = json.loads(request.get_data(as_text=True) or "null")
        except ValueError:
            raise GraphProblem(400, "BadRequest", "Unable to read JSON request payload.") from None
        if not isinstance(body, dict):
            raise GraphProblem(400, "BadRequest", "The body must be an object.")
        try:
            graph_schema.check(graph_type, body)
        except graph_schema.SchemaError as exc:
            raise GraphProblem(400, "RequestBodyRead", str(exc)) from None
        return body

    @staticmethod
    def _prefer(request: Request) -> dict[str, str]:
        found = {}
        for part in request.headers.get("Prefer", "").split(","):
            name, _, value = part.strip().partition("=")
            if name:
                found[name] = value.strip('"')
        return found

    def _route(self, request: Request) -> Response:
        parts = request.path.split("/")[3:]  # after /v1.0/me
        method = request.method
        if parts == ["calendar", "getSchedule"] and method == "POST":
            return self._schedule(request)
        if parts == ["calendar"] and method == "GET":
            return self._json(self._calendar_json(self.state.default, request))
        if parts[:1] != ["calendars"]:
            raise GraphProblem(400, "BadRequest", f"Unsupported segment {request.path}.")
        if len(parts) == 1:
            if method == "GET":
                items = [self._calendar_json(c, request) for c in self.state.calendars]
                return self._page(request, items)
            if method == "POST":
                return self._create_calendar(request)
        calendar_id = parts[1]
        if calendar_id not in self.state.calendars:
            raise GraphProblem(404, "ErrorItemNotFound", "The calendar was not found.")
        rest = parts[2:]
        if not rest:
            return self._one_calendar(request, calendar_id)
        if rest == ["events"]:
            if method == "GET":
                return self._list_events(request, calendar_id, None)
            if method == "POST":
                return self._create_event(request, calendar_id)
        if rest == ["calendarView"] and method == "GET":
            low = query_time(request.args.get("startDateTime"), "startDateTime")
            high = query_time(request.args.get("endDateTime"), "endDateTime")
            return self._list_events(request, calendar_id, (low, high))
        if rest == ["calendarView", "delta"] and method == "GET":
            return self._delta(request, calendar_id)
        if len(rest) == 2 and rest[0] == "events":
            return self._one_event(request, calendar_id, rest[1])
        raise GraphProblem(405, "ErrorInvalidRequest", "Unsupported request.")

    def _page(self, request: Request, items: list[Any]) -> Response:
        """One page by ``$top``/``$skip`` (and ``odata.maxpagesize``), with a next link."""
        try:
            top = int(request.args.get("$top", "10"))
            skip = int(request.args.get("$skip", "0"))
        except ValueError:
            raise GraphProblem(400, "BadRequest", "Invalid $top or $skip.") from None
        if not 1 <= top <= 1000 or skip < 0:
            raise GraphProblem(400, "BadRequest", "$top must be 1..1000.")
        size = min(
            top, self.state.max_page, int(self._prefer(request).get("odata.maxpagesize") or 1000)
        )
        answer: dict[str, Any] = {"value": items[skip : skip + size]}
        if skip + size < len(items):
            query = dict(request.args.items())
            query.update({"$skip": str(skip + size), "$top": str(top)})
            answer["@odata.nextLink"] = f"{request.base_url}?{urlencode(query)}"
        return self._json(answer)

    # -- calendars ---------------------------------------------------------------------------
    def _calendar_json(self, calendar_id: str, request: Request) -> dict[str, Any]:
        stored = self.state.calendars[calendar_id]
        value = {k: v for k, v in stored.items() if k != "props"}
        return self._with_props(value, stored["props"], request)

    @staticmethod
    def _with_props(
        value: dict[str, Any], props: dict[str, str], request: Request
    ) -> dict[str, Any]:
        expand = request.args.get("$expand", "")
        match = re.fullmatch(r"singleValueExtendedProperties\(\$filter=id eq '([^']+)'\)", expand)
        if expand and not match:
            raise GraphProblem(400, "BadRequest", f"Unsupported $expand {expand}.")
        if match and match.group(1).lower() in props:
            value["singleValueExtendedProperties"] = [
                {"id": match.group(1), "value": props[match.group(1).lower()]}
            ]
        return value

    def _create_calendar(self, request: Request) -> Response:
        body = self._body(request, "calendar")
        name = body.get("name")
        if not isinstance(name, str) or not name.strip():
            raise GraphProblem(400, "ErrorInvalidRequest", "name is required.")
        if any(c["name"] == name for c in self.state.calendars.values()):
            raise GraphProblem(409, "ErrorFolderExists", "A calendar with that name exists.")
        calendar_id = self.state.add_calendar(name)
        self.state.calendars[calendar_id]["props"] = _properties(
            body.get("singleValueExtendedProperties", [])
        )
        return self._json(self._calendar_json(calendar_id, request), 201)

    def _one_calendar(self, request: Request, calendar_id: str) -> Response:
        stored = self.state.calendars[calendar_id]
        if request.method == "GET":
            return self._json(self._calendar_json(calendar_id, request))
        if request.method == "PATCH":
            body = self._body(request, "calendar")
            if "name" in body:
                if not isinstance(body["name"], str) or not body["name"].strip():
                    raise GraphProblem(400, "ErrorInvalidRequest", "name may not be empty.")
                stored["name"] = body["name"]
            stored["props"].update(_properties(body.get("singleValueExtendedProperties", [])))
            self.state.touch(stored)
            return self._json(self._calendar_json(calendar_id, request))
        if request.method == "DELETE":
            if stored["isDefaultCalendar"]:
                raise GraphProblem(400, "ErrorDeleteDistinguishedFolder", "Default calendar.")
            del self.state.calendars[calendar_id]
            for event_id in [
                k for k, e in self.state.events.items() if e["calendar"] == calendar_id
            ]:
                del self.state.events[event_id]
            return Response(status=204)
        raise GraphProblem(405, "ErrorInvalidRequest", "Unsupported method.")

    # -- events ------------------------------------------------------------------------------
    def _event_json(self, stored: dict[str, Any], request: Request) -> dict[str, Any]:
        value = {k: copy.deepcopy(v) for k, v in stored.items() if k not in ("props", "calendar")}
        where = self._prefer(request).get("outlook.timezone", "UTC")
        zone(where)
        value["start"] = shown(instant(stored["start"], "start"), where)
        value["end"] = shown(instant(stored["end"], "end"), where)
        value["body"] = dict(value.get("body") or {"contentType": "html", "content": ""})
        if self._prefer(request).get("outlook.body-content-type") == "text":
            value["body"]["contentType"] = "text"
        return self._with_props(value, stored["props"], request)

    def _event_for(self, calendar_id: str, event_id: str) -> dict[str, Any]:
        master_id, _, occurrence = event_id.partition("_OCC")
        stored = self.state.events.get(master_id)
        if stored is None or stored["calendar"] != calendar_id:
            raise GraphProblem(404, "ErrorItemNotFound", "The specified object was not found.")
        if occurrence:
            moment = datetime.strptime(occurrence, "%Y%m%dT%H%M%S").replace(tzinfo=timezone.utc)
            for found in _occurrences(stored, moment, moment + timedelta(seconds=1)):
                if found["id"] == event_id:
                    return found
            raise GraphProblem(404, "ErrorItemNotFound", "The specified object was not found.")
        return stored

    def _create_event(self, request: Request, calendar_id: str) -> Response:
        body = self._body(request, "event")
        for name in ("start", "end"):
            if name not in body:
                raise GraphProblem(400, "ErrorInvalidRequest", f"{name} is required.")
        _check_times(body)
        _check_recurrence(body.get("recurrence"))
        _check_people(body)
        now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.0000000Z")
        event_id = "AAMkEv" + uuid.uuid4().hex
        stored = {
            "id": event_id,
            "calendar": calendar_id,
            "createdDateTime": now,
            "lastModifiedDateTime": now,
            "iCalUId": "040000008200E00074C5B7101A82E008" + uuid.uuid4().hex.upper(),
            "subject": body.get("subject", ""),
            "body": body.get("body") or {"contentType": "html", "content": ""},
            "start": body["start"],
            "end": body["end"],
            "originalStartTimeZone": body["start"]["timeZone"],
            "originalEndTimeZone": body["end"]["timeZone"],
            "isAllDay": bool(body.get("isAllDay")),
            "location": body.get("location") or {"displayName": ""},
            "attendees": [
                dict(a, status={"response": "none", "time": "0001-01-01T00:00:00Z"})
                for a in body.get("attendees") or []
            ],
            # Exchange makes the mailbox owner the organizer of what it creates.
            "organizer": {"emailAddress": {"name": "Ada", "address": USER_MAIL}},
            "recurrence": body.get("recurrence"),
            "type": "seriesMaster" if body.get("recurrence") else "singleInstance",
            "seriesMasterId": None,
            "showAs": body.get("showAs", "busy"),
            "isCancelled": False,
            "props": _properties(body.get("singleValueExtendedProperties", [])),
        }
        self.state.touch(stored)
        self.state.events[event_id] = stored
        self.state.changed(calendar_id, event_id)
        return self._json(self._event_json(stored, request), 201)

    def _check_match(self, request: Request, stored: dict[str, Any]) -> None:
        wanted = request.headers.get("If-Match")
        if wanted and wanted not in (stored["@odata.etag"], "*"):
            raise GraphProblem(412, "ErrorIrresolvableConflict", "The change key does not match.")

    def _one_event(self, request: Request, calendar_id: str, event_id: str) -> Response:
        stored = self._event_for(calendar_id, event_id)
        if request.method == "GET":
            return self._json(self._event_json(stored, request))
        if stored.get("type") == "occurrence":
            raise GraphProblem(400, "ErrorInvalidRequest", "The stand-in edits series only.")
        if self.state.edit_before_write is not None:  # another client's edit lands first
            self.state.edit_before_write(stored)
            self.state.touch(stored)
            self.state.edit_before_write = None
        self._check_match(request, stored)
        if request.method == "DELETE":
            del self.state.events[event_id]
            self.state.changed(calendar_id, event_id)
            return Response(status=204)
        if request.method != "PATCH":
            raise GraphProblem(405, "ErrorInvalidRequest", "Unsupported method.")
        body = self._body(request, "event")
        kept = ("singleValueExtendedProperties", "organizer")
        candidate = dict(stored, **{k: v for k, v in body.items() if k not in kept})
        _check_times(candidate)
        _check_recurrence(candidate.get("recurrence"))
        _check_people(candidate)
        props = dict(stored["props"])
        props.update(_properties(body.get("singleValueExtendedProperties", [])))
        stored.update(candidate, props=props)
        if "attendees" in body:
            stored["attendees"] = [
                dict(a, status={"response": "none", "time": "0001-01-01T00:00:00Z"})
                for a in body["attendees"] or []
            ]
        stored["originalStartTimeZone"] = stored["start"]["timeZone"]
        stored["originalEndTimeZone"] = stored["end"]["timeZone"]
        stored["type"] = "seriesMaster" if stored.get("recurrence") else "singleInstance"
        stored["lastModifiedDateTime"] = datetime.now(timezone.utc).strftime(
            "%Y-%m-%dT%H:%M:%S.0000000Z"
        )
        self.state.touch(stored)
        self.state.changed(calendar_id, event_id)
        return self._json(self._event_json(stored, request))

    def _items(
        self, calendar_id: str, window: tuple[datetime, datetime] | None
    ) -> list[dict[str, Any]]:
        found = []
        for stored in self.state.events.values():
            if stored["calendar"] != calendar_id:
                continue
            if window is None:
                found.append(stored)
            elif stored.get("recurrence"):
                found.extend(_occurrences(stored, *window))
            elif (
                instant(stored["start"], "start") < window[1]
                and instant(stored["end"], "end") > window[0]
            ):
                found.append(stored)
        return found

    def _list_events(
        self, request: Request, calendar_id: str, window: tuple[datetime, datetime] | None
    ) -> Response:
        items = self._items(calendar_id, window)
        order = request.args.get("$orderby")
        if order not in (None, "start/dateTime", "start/dateTime asc"):
            raise GraphProblem(400, "BadRequest", f"Unsupported $orderby {order}.")
        if order:
            items.sort(key=lambda e: (instant(e["start"], "start"), e["id"]))
        return self._page(request, [self._event_json(e, request) for e in items])

    def _delta(self, request: Request, calendar_id: str) -> Response:
        """A delta round: the first call names the window; its pages (``$skiptoken``) and its
        final ``$deltatoken`` carry it (tokens are the stand-in's own, checked)."""
        skip, delta = request.args.get("$skiptoken"), request.args.get("$deltatoken")
        now = max((seq for seq, _c, _e in self.state.changes), default=0)
        if skip or delta:
            state = self.state.tokens.get(skip or delta or "")
            if state is None or state["calendar"] != calendar_id or bool(skip) != ("rows" in state):
                raise GraphProblem(410, "SyncStateNotFound", "The sync state is not valid.")
            window = (datetime.fromisoformat(state["low"]), datetime.fromisoformat(state["high"]))
            if skip:
                rows, now = state["rows"], state["since"]
            else:
                rows = self._changes_since(calendar_id, state["since"], window, request)
        else:
            low = query_time(request.args.get("startDateTime"), "startDateTime")
            high = query_time(request.args.get("endDateTime"), "endDateTime")
            window = (low, high)
            rows = [self._event_json(e, request) for e in self._items(calendar_id, window)]
        base = {
            "calendar": calendar_id,
            "low": window[0].isoformat(),
            "high": window[1].isoformat(),
        }
        size = min(self.state.max_page, int(self._prefer(request).get("odata.maxpagesize") or 100))
        answer: dict[str, Any] = {"value": rows[:size]}
        if rows[size:]:
            token = self.state.issue(dict(base, rows=rows[size:], since=now))
            answer["@odata.nextLink"] = f"{request.base_url}?{urlencode({'$skiptoken': token})}"
        else:
            token = self.state.issue(dict(base, since=now))
            answer["@odata.deltaLink"] = f"{request.base_url}?{urlencode({'$deltatoken': token})}"
        return self._json(answer)

    def _changes_since(
        self, calendar_id: str, since: int, window: tuple[datetime, datetime], request: Request
    ) -> list[dict[str, Any]]:
        changed = []
        for _seq, calendar, event_id in self.state.changes:
            if _seq > since and calendar == calendar_id and event_id not in changed:
                changed.append(event_id)
        rows: list[dict[str, Any]] = []
        for event_id in changed:
            stored = self.state.events.get(event_id)
            if stored is None:
                rows.append({"id": event_id, "@removed": {"reason": "deleted"}})
            elif stored.get("recurrence"):
                rows.extend(self._event_json(o, request) for o in _occurrences(stored, *window))
            elif (
                instant(stored["start"], "start") < window[1]
                and instant(stored["end"], "end") > window[0]
            ):
                rows.append(self._event_json(stored, request))
        return rows

    # -- free/busy ---------------------------------------------------------------------------
    def _schedule(self, request: Request) -> Response:
        body = self._body(request, "getSchedule")
        schedules = body.get("schedules")
        if not isinstance(schedules, list) or not schedules:
            raise GraphProblem(400, "ErrorInvalidRequest", "schedules is required.")
        low, high = (
            instant(body.get("startTime"), "startTime"),
            instant(body.get("endTime"), "endTime"),
        )
        if high - low > timedelta(days=62) or high <= low:
            raise GraphProblem(400, "ErrorInvalidParameter", "At most 62 days per request.")
        where = self._prefer(request).get("outlook.timezone", "UTC")
        answers = []
        for address in schedules:
            if address != USER_MAIL:
                answers.append(
                    {
                        "scheduleId": address,
                        "error": {
                            "message": "Not found",
                            "responseCode": "ErrorMailRecipientNotFound",
                        },
                    }
                )
                continue
            items = []
            for event in self._items(self.state.default, (low, high)):
                if event.get("showAs") == "free":
                    continue
                items.append(
                    {
                        "status": event.get("showAs", "busy"),
                        "start": shown(instant(event["start"], "start"), where),
                        "end": shown(instant(event["end"], "end"), where),
                    }
                )
            answers.append({"scheduleId": address, "availabilityView": "", "scheduleItems": items})
        return self._json({"value": answers})
