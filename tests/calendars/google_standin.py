"""A loopback stand-in of Google Calendar v3, built from the discovery document that
``google-api-python-client`` ships (the same description the server's client builds its
requests from).

From the document it takes every route (``httpMethod`` + ``path`` of each method), the query
parameters (required ones, ``type``, ``enum``, ``minimum``/``maximum``, ``format: date-time``)
and the request schemas (property types, ``format: date``/``date-time``, the fields each
method requires through ``annotations.required``); requests that break them get Google's
400 error shape. On top of that it keeps calendars and events in memory and behaves as the
service documents it does (see docs/calendars-cloud.rst, "Contract tests"):

* a dateTime without an offset needs a ``timeZone``, and recurring events need one;
  answers give dateTime with the offset of the event's (or the calendar's) zone;
* etags change on every write; ``If-Match`` with another etag is 412 ``conditionNotMet``;
* ``pageToken`` is opaque and bound to the query it came from; ``syncToken`` excludes
  ``timeMin``/``timeMax``/``orderBy``..., lists deleted events as ``cancelled``, and an
  expired one is 410 ``fullSyncRequired``;
* ``singleEvents=true`` expands recurrences (instance ids ``<id>_<UTC start>``,
  ``recurringEventId``), ``orderBy=startTime`` needs it;
* deleted events stay as ``cancelled`` (``events.get`` still answers them, a second delete
  is 410); a client-chosen event id must be base32hex, and an existing one is 409;
* the organizer and creator are the account's user whatever the body says;
* ``calendarList.list`` takes a ``syncToken`` too (changed entries, deleted ones with
  ``deleted: true``);
* ``freeBusy.query`` answers busy periods per calendar (``notFound`` per unknown one);
* the bearer token is checked with the OAuth stand-in of tests/providers, and calendar
  methods need a calendar scope (403 ``insufficientPermissions`` + ``WWW-Authenticate:
  ... error="insufficient_scope"`` otherwise);
* ``fail_next`` queues answers (rate limits: 429 + ``Retry-After`` or Google's 403
  ``rateLimitExceeded``; server errors) for the error tests.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any, Callable
from zoneinfo import ZoneInfo

from dateutil.rrule import rrulestr
from werkzeug.wrappers import Request, Response

from kloudless.server.connectors.google_calendar import discovery_document
from tests.dav.servers import ServerThread
from tests.providers.standins import USER, Provider, Validator, upstream_app

DOC = discovery_document()
BASE = "/" + DOC["servicePath"]  # /calendar/v3/
CALENDAR_SCOPES = (
    "https://www.googleapis.com/auth/calendar",
    "https://www.googleapis.com/auth/calendar.events",
)
PRIMARY_ZONE = "America/Los_Angeles"
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
LOCAL_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?$")
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
EVENT_ID = re.compile(r"^[a-v0-9]{5,1024}$")
#: Most instances one recurring event expands to (bounded, as Google's expansion is).
MAX_INSTANCES = 730


class GoogleError(Exception):
    def __init__(self, status: int, reason: str, message: str, **headers: str) -> None:
        super().__init__(message)
        self.status, self.reason, self.message, self.headers = status, reason, message, headers

    def response(self) -> Response:
        body = {
            "error": {
                "code": self.status,
                "message": self.message,
                "errors": [{"domain": "global", "reason": self.reason, "message": self.message}],
            }
        }
        return Response(
            json.dumps(body), self.status, self.headers, content_type="application/json"
        )


def bad(message: str, reason: str = "invalid") -> GoogleError:
    return GoogleError(400, reason, message)


# -- what the discovery document says -------------------------------------------------------


@dataclass(frozen=True)
class Method:
    id: str
    http: str
    pattern: re.Pattern[str]
    spec: dict[str, Any]


def _methods() -> list[Method]:
    found: list[Method] = []

    def walk(resources: dict[str, Any]) -> None:
        for resource in resources.values():
            for spec in resource.get("methods", {}).values():
                regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", spec["path"])
                found.append(Method(spec["id"], spec["httpMethod"], re.compile(f"^{regex}$"), spec))
            walk(resource.get("resources", {}))

    walk(DOC["resources"])
    return found


METHODS = _methods()


def check_params(method: Method, args: dict[str, str]) -> dict[str, Any]:
    """:returns: the query parameters, typed as the document says. :raises GoogleError: 400."""
    specs = {**DOC["parameters"], **method.spec.get("parameters", {})}
    values: dict[str, Any] = {}
    for name, spec in specs.items():
        if spec.get("location") == "path":
            continue
        if name not in args:
            if spec.get("required"):
                raise bad(f"Required parameter: {name}", "required")
            continue
        text = args[name]
        if spec.get("type") == "integer":
            if not re.fullmatch(r"-?\d+", text):
                raise bad(f"Invalid value for {name}: {text}")
            number = int(text)
            low, high = spec.get("minimum"), spec.get("maximum")
            if (low is not None and number < int(low)) or (high is not None and number > int(high)):
                raise bad(f"Invalid value for {name}: {text}")
            values[name] = number
        elif spec.get("type") == "boolean":
            if text not in ("true", "false"):
                raise bad(f"Invalid boolean value for {name}: {text}")
            values[name] = text == "true"
        else:
            if "enum" in spec and text not in spec["enum"]:
                raise bad(f"Invalid value for {name}: {text}")
            if spec.get("format") == "date-time" and not RFC3339.match(text):
                raise bad(f"Bad request: {name} is not an RFC3339 timestamp with an offset")
            values[name] = text
    return values


def check_body(schema: dict[str, Any], value: Any, method_id: str, where: str = "") -> None:
    """Type-check ``value`` against a schema of the document. :raises GoogleError: 400."""
    if "$ref" in schema:
        check_body(DOC["schemas"][schema["$ref"]], value, method_id, where)
        return
    kind = schema.get("type")
    types: dict[str, Any] = {
        "object": dict,
        "array": list,
        "string": str,
        "boolean": bool,
        "integer": int,
    }
    if kind in types and not isinstance(value, types[kind]):
        raise bad(f"Invalid value at '{where or 'body'}': expected {kind}")
    if (
        kind == "string"
        and schema.get("format") == "date-time"
        and not (RFC3339.match(value) or LOCAL_TIME.match(value))
    ):
        raise bad(f"Invalid value at '{where}': not an RFC3339 date-time")
    if kind == "string" and schema.get("format") == "date" and not DATE.match(value):
        raise bad(f"Invalid value at '{where}': not a date")
    if kind == "object":
        properties = schema.get("properties", {})
        for name, spec in properties.items():
            required = spec.get("annotations", {}).get("required", [])
            if method_id in required and name not in value:
                raise bad(f"Missing {where + '.' if where else ''}{name}.", "required")
            if name in value and value[name] is not None:
                check_body(spec, value[name], method_id, f"{where}.{name}".strip("."))
        extra = schema.get("additionalProperties")
        if extra is not None:
            for name, item in value.items():
                check_body(extra, item, method_id, f"{where}.{name}")
    if kind == "array":
        for index, item in enumerate(value):
            check_body(schema.get("items", {}), item, method_id, f"{where}[{index}]")


# -- the calendar data ----------------------------------------------------------------------------


def _stamp(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _instant(value: dict[str, Any], zone: str) -> datetime:
    if "date" in value:
        day = date.fromisoformat(value["date"])
        return datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(zone))
    text = value["dateTime"].replace("Z", "+00:00")
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(value["timeZone"]))
    return moment


def _shown(moment: datetime, zone: str) -> str:
    local = moment.astimezone(ZoneInfo(zone))
    text = local.replace(microsecond=0).isoformat()
    return text.replace("+00:00", "Z") if zone == "UTC" else text


@dataclass
class CalendarData:
    resource: dict[str, Any]
    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    seq: dict[str, int] = field(default_factory=dict)  # event id -> change number
    changed: int = 0  # change number of the calendar itself


@dataclass
class State:
    calendars: dict[str, CalendarData] = field(default_factory=dict)
    changes: int = 0
    id_counter: int = 0
    #: Sync tokens minted before this change number are expired (410).
    oldest_sync: int = 0
    fail_next: list[GoogleError] = field(default_factory=list)
    #: calendar id -> change number of its deletion (calendarList sync lists them)
    deleted_calendars: dict[str, int] = field(default_factory=dict)
    requests: list[tuple[str, str, str]] = field(default_factory=list)  # method, path, query

    def reset(self) -> None:
        fresh = State()
        for name in fresh.__dataclass_fields__:
            setattr(self, name, getattr(fresh, name))
        primary = USER["email"]
        self.calendars[primary] = CalendarData(
            {
                "kind": "calendar#calendar",
                "id": primary,
                "summary": primary,
                "timeZone": PRIMARY_ZONE,
            }
        )

    def tick(self) -> int:
        self.changes += 1
        return self.changes

    def new_id(self, prefix: str) -> str:
        self.id_counter += 1
        return f"{prefix}{self.id_counter:08d}"


def _calendar_id(state: State, raw: str) -> str:
    return USER["email"] if raw == "primary" else raw


class CalendarApi:
    """The handlers of the Calendar v3 methods the connector uses."""

    def __init__(self, state: State) -> None:
        self.state = state
        self.lock = threading.Lock()

    # -- helpers ---------------------------------------------------------------------------------
    def calendar(self, raw: str) -> CalendarData:
        found = self.state.calendars.get(_calendar_id(self.state, raw))
        if found is None:
            raise GoogleError(404, "notFound", "Not Found")
        return found

    def entry(self, data: CalendarData) -> dict[str, Any]:
        resource = data.resource
        entry = {
            "kind": "calendar#calendarListEntry",
            "etag": f'"{resource.get("_etag", 1)}"',
            "accessRole": "owner",
            **{k: v for k, v in resource.items() if not k.startswith("_") and k != "kind"},
        }
        if resource["id"] == USER["email"]:
            entry["primary"] = True
        return entry

    def page(
        self, items: list[Any], params: dict[str, Any], default: int, query_key: str
    ) -> dict[str, Any]:
        size = params.get("maxResults", default)
        start = 0
        if "pageToken" in params:
            try:
                decoded = json.loads(base64.urlsafe_b64decode(params["pageToken"]))
                offset, key = int(decoded["o"]), str(decoded["k"])
            except (ValueError, KeyError, TypeError):
                raise bad("Invalid page token.") from None
            if key != query_key:
                raise bad("The page token does not belong to this query.")
            start = offset
        chunk = items[start : start + size]
        answer: dict[str, Any] = {"items": chunk}
        if start + size < len(items):
            token = json.dumps({"o": start + size, "k": query_key}).encode()
            answer["nextPageToken"] = base64.urlsafe_b64encode(token).decode()
        return answer

    def shown_event(self, data: CalendarData, event: dict[str, Any]) -> dict[str, Any]:
        shown = {k: v for k, v in event.items() if not k.startswith("_")}
        if event.get("status") == "cancelled" and event.get("_gone"):
            return {
                "kind": "calendar#event",
                "id": event["id"],
                "etag": event["etag"],
                "status": "cancelled",
            }
        for key in ("start", "end"):
            value = dict(event[key])
            if "dateTime" in value:
                zone = value.get("timeZone") or data.resource["timeZone"]
                value["dateTime"] = _shown(_instant(value, zone), zone)
            shown[key] = value
        return shown

    # -- calendars -------------------------------------------------------------------------------
    def _since(self, token: str) -> int:
        try:
            since = int(token.removeprefix("sync-"))
        except ValueError:
            raise bad("Invalid sync token value.") from None
        if since < self.state.oldest_sync:
            raise GoogleError(410, "fullSyncRequired", "Sync token is no longer valid.")
        return since

    def calendarList_list(self, params: dict[str, Any], **_: Any) -> dict[str, Any]:
        entries = [self.entry(c) for c in self.state.calendars.values()]
        key = "calendarList"
        if "syncToken" in params:
            since = self._since(params["syncToken"])
            entries = [
                self.entry(c) for c in self.state.calendars.values() if c.changed > since
            ] + [
                {"kind": "calendar#calendarListEntry", "id": i, "etag": f'"{n}"', "deleted": True}
                for i, n in self.state.deleted_calendars.items()
                if n > since
            ]
            key += ":" + params["syncToken"]
        answer = self.page(entries, params, 100, key)
        if "nextPageToken" not in answer:
            answer["nextSyncToken"] = f"sync-{self.state.changes}"
        return {"kind": "calendar#calendarList", "etag": '"l"', **answer}

    def calendarList_get(self, calendarId: str, **_: Any) -> dict[str, Any]:
        return self.entry(self.calendar(calendarId))

    def calendars_get(self, calendarId: str, **_: Any) -> dict[str, Any]:
        resource = self.calendar(calendarId).resource
        return {k: v for k, v in resource.items() if not k.startswith("_")}

    def _zone(self, value: Any) -> None:
        if value is not None:
            try:
                ZoneInfo(value)
            except (ValueError, KeyError):
                raise bad("Invalid time zone definition.", "invalid") from None

    def calendars_insert(self, body: dict[str, Any], **_: Any) -> dict[str, Any]:
        self._zone(body.get("timeZone"))
        cid = self.state.new_id("c") + "@group.calendar.google.com"
        resource = {"kind": "calendar#calendar", "id": cid, "timeZone": "UTC", **body}
        resource["id"] = cid
        change = self.state.tick()
        resource["etag"] = f'"{change}"'
        self.state.calendars[cid] = CalendarData(resource, changed=change)
        return {k: v for k, v in resource.items() if not k.startswith("_")}

    def calendars_patch(self, calendarId: str, body: dict[str, Any], **_: Any) -> dict[str, Any]:
        data = self.calendar(calendarId)
        self._zone(body.get("timeZone"))
        data.resource.update({k: v for k, v in body.items() if k not in ("id", "kind")})
        data.changed = self.state.tick()
        data.resource["etag"] = f'"{data.changed}"'
        return self.calendars_get(calendarId)

    def calendars_delete(self, calendarId: str, **_: Any) -> None:
        data = self.calendar(calendarId)
        if data.resource["id"] == USER["email"]:
            raise bad("Cannot delete the primary calendar.", "cannotDeletePrimaryCalendar")
        del self.state.calendars[data.resource["id"]]
        self.state.deleted_calendars[data.resource["id"]] = self.state.tick()

    # -- events ----------------------------------------------------------------------------------
    def _check_event(self, data: CalendarData, body: dict[str, Any]) -> None:
        recurring = bool(body.get("recurrence"))
        for key in ("start", "end"):
            value = body[key]
            if ("date" in value) == ("dateTime" in value):
                raise bad(f"Invalid {key} time: give date or dateTime.")
            local = "dateTime" in value and LOCAL_TIME.match(value["dateTime"])
            if local and not value.get("timeZone"):
                raise bad(f"Missing time zone definition for {key} time.")
            if recurring and "dateTime" in value and not value.get("timeZone"):
                raise bad(f"Missing time zone definition for {key} time.")
            self._zone(value.get("timeZone"))
        zone = data.resource["timeZone"]
        if _instant(body["end"], zone) < _instant(body["start"], zone):
            raise bad("The specified time range is empty.", "timeRangeEmpty")
        for line in body.get("recurrence") or []:
            head = line.split(":", 1)[0].split(";", 1)[0]
            if head not in ("RRULE", "EXRULE", "RDATE", "EXDATE"):
                raise bad("Invalid recurrence rule.")
            if head in ("RRULE", "EXRULE"):
                try:
                    rrulestr(line.split(":", 1)[1], dtstart=datetime(2000, 1, 1))
                except (ValueError, IndexError):
                    raise bad("Invalid recurrence rule.") from None
        for person in body.get("attendees") or []:
            if not person.get("email"):
                raise bad("Missing attendee email.", "required")

    def _store(self, data: CalendarData, event: dict[str, Any]) -> dict[str, Any]:
        change = self.state.tick()
        event["etag"] = f'"{3180000000000000 + change}"'
        event["updated"] = _stamp(datetime.now(timezone.utc))
        data.events[event["id"]] = event
        data.seq[event["id"]] = change
        return self.shown_event(data, event)

    def _owner(self) -> dict[str, Any]:
        return {"email": USER["email"], "self": True}

    def events_insert(self, calendarId: str, body: dict[str, Any], **_: Any) -> dict[str, Any]:
        data = self.calendar(calendarId)
        self._check_event(data, body)
        event_id = body.get("id") or self.state.new_id("e")
        if not EVENT_ID.match(event_id):
            raise bad("Invalid resource id value.", "invalidResourceId")
        if event_id in data.events:
            raise GoogleError(409, "duplicate", "The requested identifier already exists.")
        now = _stamp(datetime.now(timezone.utc))
        event = {
            **body,
            "kind": "calendar#event",
            "id": event_id,
            "status": "confirmed",
            "created": now,
            "iCalUID": body.get("iCalUID") or f"{event_id}@google.com",
            "organizer": self._owner(),
            "creator": self._owner(),
            "sequence": 0,
        }
        event["attendees"] = [
            {"responseStatus": "needsAction", **a} for a in body.get("attendees") or []
        ]
        if not event["attendees"]:
            del event["attendees"]
        return self._store(data, event)

    def _existing(self, data: CalendarData, event_id: str) -> dict[str, Any]:
        event = data.events.get(event_id)
        if event is None:
            raise GoogleError(404, "notFound", "Not Found")
        return event

    def _if_match(self, event: dict[str, Any], headers: dict[str, str]) -> None:
        wanted = headers.get("if-match")
        if wanted is not None and wanted != event["etag"]:
            raise GoogleError(412, "conditionNotMet", "Precondition Failed")

    def events_get(self, calendarId: str, eventId: str, **_: Any) -> dict[str, Any]:
        data = self.calendar(calendarId)
        return self.shown_event(data, self._existing(data, eventId))

    def events_update(
        self, calendarId: str, eventId: str, body: dict[str, Any], headers: dict[str, str], **_: Any
    ) -> dict[str, Any]:
        data = self.calendar(calendarId)
        event = self._existing(data, eventId)
        if event.get("status") == "cancelled":
            raise GoogleError(404, "notFound", "Not Found")
        self._if_match(event, headers)
        self._check_event(data, body)
        kept = {k: event[k] for k in ("kind", "id", "created", "iCalUID", "organizer", "creator")}
        updated = {**body, **kept, "status": "confirmed", "sequence": event["sequence"] + 1}
        updated["attendees"] = [
            {"responseStatus": "needsAction", **a} for a in body.get("attendees") or []
        ]
        if not updated["attendees"]:
            del updated["attendees"]
        return self._store(data, updated)

    def events_delete(
        self, calendarId: str, eventId: str, headers: dict[str, str], **_: Any
    ) -> None:
        data = self.calendar(calendarId)
        event = self._existing(data, eventId)
        if event.get("status") == "cancelled":
            raise GoogleError(410, "deleted", "Resource has been deleted")
        self._if_match(event, headers)
        self._store(data, {**event, "status": "cancelled", "_gone": True})

    def _instances(self, data: CalendarData, event: dict[str, Any]) -> list[dict[str, Any]]:
        if not event.get("recurrence"):
            return [event]
        zone = event["start"].get("timeZone") or data.resource["timeZone"]
        start = _instant(event["start"], zone)
        length = _instant(event["end"], zone) - start
        local = start.astimezone(ZoneInfo(zone))
        rule = rrulestr(
            "\n".join(event["recurrence"]), dtstart=local, forceset=True, tzids=ZoneInfo
        )
        found = []
        for index, moment in enumerate(rule):
            if index >= MAX_INSTANCES:
                break
            begin = moment.replace(tzinfo=ZoneInfo(zone))
            stamp = begin.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
            instance = {k: v for k, v in event.items() if k != "recurrence"}
            instance.update(
                id=f"{event['id']}_{stamp}",
                recurringEventId=event["id"],
                originalStartTime=dict(event["start"]),
                start={"dateTime": begin.isoformat(), "timeZone": zone},
                end={"dateTime": (begin + length).isoformat(), "timeZone": zone},
            )
            found.append(instance)
        return found

    def events_list(self, calendarId: str, params: dict[str, Any], **_: Any) -> dict[str, Any]:
        data = self.calendar(calendarId)
        sync = params.get("syncToken")
        if sync is not None:
            clashing = {"timeMin", "timeMax", "orderBy", "q", "iCalUID", "updatedMin"} & set(params)
            if clashing:
                raise bad(f"syncToken cannot be used with {sorted(clashing)[0]}.")
            since = self._since(sync)
            changed = [e for i, e in data.events.items() if data.seq[i] > since]
            items = [self.shown_event(data, e) for e in changed]
            answer = self.page(items, params, 250, f"sync:{calendarId}:{sync}")
            if "nextPageToken" not in answer:
                answer["nextSyncToken"] = f"sync-{self.state.changes}"
            return {"kind": "calendar#events", **answer}
        if params.get("orderBy") == "startTime" and not params.get("singleEvents"):
            raise bad("The requested ordering is not available for the particular query.")
        zone = data.resource["timeZone"]
        live = [e for e in data.events.values() if e.get("status") != "cancelled"]
        if params.get("showDeleted"):
            live = list(data.events.values())
        if params.get("singleEvents"):
            live = [i for e in live for i in self._instances(data, e)]
        if "iCalUID" in params:
            live = [e for e in live if e.get("iCalUID") == params["iCalUID"]]
        low = params.get("timeMin")
        high = params.get("timeMax")
        if low is not None:
            bound = datetime.fromisoformat(low.replace("Z", "+00:00"))
            live = [e for e in live if _instant(e["end"], zone) > bound]
        if high is not None:
            bound = datetime.fromisoformat(high.replace("Z", "+00:00"))
            live = [e for e in live if _instant(e["start"], zone) < bound]
        if params.get("orderBy") == "startTime":
            live.sort(key=lambda e: (_instant(e["start"], zone), e["id"]))
        items = [self.shown_event(data, e) for e in live]
        key = json.dumps({k: v for k, v in sorted(params.items()) if k != "pageToken"})
        answer = self.page(items, params, 250, f"{calendarId}:{key}")
        if "nextPageToken" not in answer:
            answer["nextSyncToken"] = f"sync-{self.state.changes}"
        return {"kind": "calendar#events", "timeZone": zone, **answer}

    def freebusy_query(self, body: dict[str, Any], **_: Any) -> dict[str, Any]:
        low = datetime.fromisoformat(body["timeMin"].replace("Z", "+00:00"))
        high = datetime.fromisoformat(body["timeMax"].replace("Z", "+00:00"))
        if high < low:
            raise bad("The specified time range is empty.", "timeRangeEmpty")
        calendars: dict[str, Any] = {}
        for item in body.get("items") or []:
            data = self.state.calendars.get(_calendar_id(self.state, item["id"]))
            if data is None:
                calendars[item["id"]] = {
                    "errors": [{"domain": "global", "reason": "notFound"}],
                    "busy": [],
                }
                continue
            zone = data.resource["timeZone"]
            busy = []
            for event in data.events.values():
                if event.get("status") == "cancelled" or event.get("transparency") == "transparent":
                    continue
                for one in self._instances(data, event):
                    begin, end = _instant(one["start"], zone), _instant(one["end"], zone)
                    if end > low and begin < high:
                        busy.append((max(begin, low), min(end, high)))
            busy.sort()
            calendars[item["id"]] = {
                "busy": [{"start": _shown(b, "UTC"), "end": _shown(e, "UTC")} for b, e in busy]
            }
        return {
            "kind": "calendar#freeBusy",
            "timeMin": body["timeMin"],
            "timeMax": body["timeMax"],
            "calendars": calendars,
        }


def calendar_app(api: CalendarApi, validator: Validator, scopes: Callable[[str], list[str]]) -> Any:
    """:returns: the Calendar v3 stand-in as a WSGI app (paths under ``/calendar/v3/``)."""
    state = api.state

    @Request.application  # type: ignore[misc]
    def app(request: Request) -> Response:
        path = request.path[len(BASE) :]
        state.requests.append((request.method, request.path, request.query_string.decode()))
        try:
            return answer(request, path)
        except GoogleError as exc:
            return exc.response()

    def answer(request: Request, path: str) -> Response:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme != "Bearer" or not validator.validate_bearer_token(token, None, None):
            raise GoogleError(
                401,
                "authError",
                "Invalid Credentials",
                **{"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'},
            )
        if not set(scopes(token)) & set(CALENDAR_SCOPES):
            raise GoogleError(
                403,
                "insufficientPermissions",
                "Request had insufficient authentication scopes.",
                **{
                    "WWW-Authenticate": 'Bearer realm="https://accounts.google.com/", '
                    'error="insufficient_scope", '
                    'scope="https://www.googleapis.com/auth/calendar"'
                },
            )
        if state.fail_next:
            raise state.fail_next.pop(0)
        for method in METHODS:
            match = method.pattern.match(path)
            if match is None or method.http != request.method:
                continue
            handler = getattr(api, method.id.removeprefix("calendar.").replace(".", "_"), None)
            if handler is None:
                raise GoogleError(501, "notImplemented", f"{method.id} is not in the stand-in")
            params = check_params(method, dict(request.args.items()))
            kwargs: dict[str, Any] = dict(match.groupdict())
            if "request" in method.spec:
                try:
                    body = json.loads(request.get_data() or b"null")
                except ValueError:
                    raise bad("Parse Error", "parseError") from None
                check_body(method.spec["request"], body, method.id)
                kwargs["body"] = body
            with api.lock:
                result = handler(
                    params=params,
                    headers={k.lower(): v for k, v in request.headers.items()},
                    **kwargs,
                )
            if result is None:
                return Response(status=204)
            return Response(json.dumps(result), content_type="application/json")
        raise GoogleError(404, "notFound", "Not Found")

    return app


class GoogleProvider(Provider):
    """The OAuth stand-in of tests/providers with Calendar v3 on its API host."""

    def __init__(self) -> None:
        super().__init__()
        self.calendar = State()
        self.calendar.reset()
        validator = Validator(self.state)
        #: The handlers, for tests that change the calendars "at Google" (hold its lock).
        self.calendar_api = CalendarApi(self.calendar)
        calendar = calendar_app(self.calendar_api, validator, self.scopes_of)
        others = upstream_app(self.state, self.requests)

        def app(environ: dict[str, Any], start_response: Any) -> Any:
            if environ.get("PATH_INFO", "").startswith(BASE):
                return calendar(environ, start_response)
            return others(environ, start_response)

        self._api.server.server_close()  # the plain API of the parent, never started
        self._api = ServerThread(app)

    def scopes_of(self, token: str) -> list[str]:
        return list(self.state.grant.scopes.get(token, []))

    def reset(self) -> None:
        super().reset()
        self.calendar.reset()
