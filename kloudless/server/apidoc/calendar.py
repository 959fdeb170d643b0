"""Descriptions of the calendar routes (calendars, events, availability)."""

from __future__ import annotations

from .model import Op, Reply, Schema, header, json, listing, obj, query

__all__ = ["OPERATIONS"]

C = "/accounts/<account_id>/cal"
STRING: Schema = {"type": "string"}
TEXT: Schema = {"type": ["string", "null"]}
DELETED = Reply("Deleted.")
CALENDAR = Reply.of("The calendar.", "Calendar")
EVENT = Reply.of("The event.", "CalendarEvent")
#: Cloud calendars (Google, Outlook) answer events with the upstream's ``ETag``.
IF_MATCH = header(
    "If-Match", "Only if the event's ``ETag`` is still this (else 412; ignored without etags)."
)
CAL_FIELDS: dict[str, Schema] = {
    "name": STRING,
    "description": TEXT,
    "location": TEXT,
    "timezone": TEXT,
}
EVENT_FIELDS: dict[str, Schema] = {
    "name": TEXT,
    "description": TEXT,
    "location": TEXT,
    "start": {"type": "string", "description": "ISO 8601 time, or a date for all-day events."},
    "end": {"type": "string"},
    "start_time_zone": TEXT,
    "end_time_zone": TEXT,
    "attendees": {"type": "array", "items": {"type": "object"}},
    "recurrence": {"type": ["array", "null"]},
    "ical_uid": TEXT,
}
CAL_ID = {"calendar_id": "primary"}
EVENT_EXAMPLE = {
    "name": "Planning",
    "start": "2026-12-02T10:00:00Z",
    "end": "2026-12-02T11:00:00Z",
}

OPERATIONS: dict[str, Op] = {
    f"GET {C}/calendars": Op(
        "List calendars",
        {200: Reply.of("One page of calendars.", listing("Calendar"))},
        paged=True,
    ),
    f"POST {C}/calendars": Op(
        "Create a calendar",
        {201: Reply.of("The new calendar.", "Calendar")},
        body=json(obj(("name",), **CAL_FIELDS), example={"name": "Team"}),
    ),
    f"GET {C}/calendars/<calendar_id>": Op(
        "Get a calendar (``primary``: the primary one)", {200: CALENDAR}, example=CAL_ID
    ),
    f"PATCH {C}/calendars/<calendar_id>": Op(
        "Change a calendar",
        {200: CALENDAR},
        body=json(obj(**CAL_FIELDS), example={"description": "Team events"}),
        example={"calendar_id": "$CALENDAR_ID"},
    ),
    f"DELETE {C}/calendars/<calendar_id>": Op(
        "Delete a calendar",
        {204: DELETED},
        errors=(409,),
        example={"calendar_id": "$CALENDAR_ID"},
    ),
    f"GET {C}/calendars/<calendar_id>/events": Op(
        "List events",
        {200: Reply.of("One page of events.", listing("CalendarEvent"))},
        params=(
            query("start", "Events ending after this ISO 8601 time."),
            query("end", "Events starting before this ISO 8601 time."),
        ),
        paged=True,
        example=CAL_ID,
    ),
    f"POST {C}/calendars/<calendar_id>/events": Op(
        "Create an event",
        {201: Reply.of("The new event.", "CalendarEvent")},
        body=json(obj(("start", "end"), **EVENT_FIELDS), example=EVENT_EXAMPLE),
        example=CAL_ID,
    ),
    f"GET {C}/calendars/<calendar_id>/events/<event_id>": Op(
        "Get an event", {200: EVENT}, example={**CAL_ID, "event_id": "$CAL_EVENT_ID"}
    ),
    f"PATCH {C}/calendars/<calendar_id>/events/<event_id>": Op(
        "Change an event",
        {200: EVENT},
        body=json(obj(**EVENT_FIELDS), example={"location": "Room 1"}),
        params=(IF_MATCH,),
        errors=(412,),
        example={**CAL_ID, "event_id": "$CAL_EVENT_ID"},
    ),
    f"DELETE {C}/calendars/<calendar_id>/events/<event_id>": Op(
        "Delete an event",
        {204: DELETED},
        params=(IF_MATCH,),
        errors=(412,),
        example={**CAL_ID, "event_id": "$CAL_EVENT_ID"},
    ),
    f"POST {C}/availability": Op(
        "Find free time",
        {200: Reply.of("The free windows.", "Availability")},
        body=json(
            obj(
                ("meeting_duration",),
                calendars={"type": "array", "items": STRING},
                meeting_duration={"type": "string", "description": "ISO 8601 duration: PT1H."},
                constraints=obj(
                    time_windows={
                        "type": "array",
                        "items": obj(("start", "end"), start=STRING, end=STRING),
                    }
                ),
            ),
            example={
                "calendars": ["primary"],
                "meeting_duration": "PT30M",
                "constraints": {
                    "time_windows": [
                        {"start": "2026-12-02T09:00:00Z", "end": "2026-12-02T17:00:00Z"}
                    ]
                },
            },
        ),
    ),
}
