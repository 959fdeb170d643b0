"""The Microsoft Graph v1.0 types the calendar stand-in checks request bodies against.

Transcribed from Graph's published v1.0 schema (the CSDL metadata that Microsoft publishes and
from which its SDKs are generated; property names and types as the generated models of
``msgraph-sdk-python`` list them): ``event`` (with ``outlookItem`` and ``entity``),
``calendar``, and the complex types and enumerations they use. Only writable structure is
checked here (names, JSON types, enumeration members); the service's own rules (an all-day
event's midnights, the properties a recurrence type needs) are in the stand-in itself.
"""

from __future__ import annotations

from typing import Any

#: Enumerations (members as Graph spells them).
ENUMS: dict[str, frozenset[str]] = {
    "freeBusyStatus": frozenset(
        {"unknown", "free", "tentative", "busy", "oof", "workingElsewhere"}
    ),
    "importance": frozenset({"low", "normal", "high"}),
    "sensitivity": frozenset({"normal", "personal", "private", "confidential"}),
    "eventType": frozenset({"singleInstance", "occurrence", "exception", "seriesMaster"}),
    "bodyType": frozenset({"text", "html"}),
    "attendeeType": frozenset({"required", "optional", "resource"}),
    "responseType": frozenset(
        {"none", "organizer", "tentativelyAccepted", "accepted", "declined", "notResponded"}
    ),
    "dayOfWeek": frozenset(
        {"sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"}
    ),
    "weekIndex": frozenset({"first", "second", "third", "fourth", "last"}),
    "recurrencePatternType": frozenset(
        {
            "daily",
            "weekly",
            "absoluteMonthly",
            "relativeMonthly",
            "absoluteYearly",
            "relativeYearly",
        }
    ),
    "recurrenceRangeType": frozenset({"endDate", "noEnd", "numbered"}),
    "calendarColor": frozenset(
        {
            "auto",
            "lightBlue",
            "lightGreen",
            "lightOrange",
            "lightGray",
            "lightYellow",
            "lightTeal",
            "lightPink",
            "lightBrown",
            "lightRed",
            "maxColor",
        }
    ),
    "onlineMeetingProviderType": frozenset(
        {"unknown", "skypeForBusiness", "skypeForConsumer", "teamsForBusiness"}
    ),
    "locationType": frozenset(
        {
            "default",
            "conferenceRoom",
            "homeAddress",
            "businessAddress",
            "geoCoordinates",
            "streetAddress",
            "hotel",
            "restaurant",
            "localBusiness",
            "postalAddress",
        }
    ),
}

#: Types: property -> type; ``[T]`` a collection of T, ``enum:NAME``, a type name, or a JSON
#: primitive (``string``, ``boolean``, ``int``, ``Date``, ``DateTimeOffset``, ``any``).
TYPES: dict[str, dict[str, Any]] = {
    "event": {
        # entity, outlookItem
        "id": "string",
        "categories": ["string"],
        "changeKey": "string",
        "createdDateTime": "DateTimeOffset",
        "lastModifiedDateTime": "DateTimeOffset",
        # event
        "allowNewTimeProposals": "boolean",
        "attendees": ["attendee"],
        "body": "itemBody",
        "bodyPreview": "string",
        "end": "dateTimeTimeZone",
        "hasAttachments": "boolean",
        "hideAttendees": "boolean",
        "iCalUId": "string",
        "importance": "enum:importance",
        "isAllDay": "boolean",
        "isCancelled": "boolean",
        "isDraft": "boolean",
        "isOnlineMeeting": "boolean",
        "isOrganizer": "boolean",
        "isReminderOn": "boolean",
        "location": "location",
        "locations": ["location"],
        "onlineMeeting": "any",
        "onlineMeetingProvider": "enum:onlineMeetingProviderType",
        "onlineMeetingUrl": "string",
        "organizer": "recipient",
        "originalEndTimeZone": "string",
        "originalStart": "DateTimeOffset",
        "originalStartTimeZone": "string",
        "recurrence": "patternedRecurrence",
        "reminderMinutesBeforeStart": "int",
        "responseRequested": "boolean",
        "responseStatus": "responseStatus",
        "sensitivity": "enum:sensitivity",
        "seriesMasterId": "string",
        "showAs": "enum:freeBusyStatus",
        "start": "dateTimeTimeZone",
        "subject": "string",
        "transactionId": "string",
        "type": "enum:eventType",
        "webLink": "string",
        # navigation properties writable inline
        "singleValueExtendedProperties": ["singleValueLegacyExtendedProperty"],
        "multiValueExtendedProperties": ["any"],
        "extensions": ["any"],
        "attachments": ["any"],
    },
    "calendar": {
        "id": "string",
        "allowedOnlineMeetingProviders": ["enum:onlineMeetingProviderType"],
        "canEdit": "boolean",
        "canShare": "boolean",
        "canViewPrivateItems": "boolean",
        "changeKey": "string",
        "color": "enum:calendarColor",
        "defaultOnlineMeetingProvider": "enum:onlineMeetingProviderType",
        "hexColor": "string",
        "isDefaultCalendar": "boolean",
        "isRemovable": "boolean",
        "isTallyingResponses": "boolean",
        "name": "string",
        "owner": "emailAddress",
        "singleValueExtendedProperties": ["singleValueLegacyExtendedProperty"],
        "multiValueExtendedProperties": ["any"],
    },
    "dateTimeTimeZone": {"dateTime": "string", "timeZone": "string"},
    "itemBody": {"content": "string", "contentType": "enum:bodyType"},
    "emailAddress": {"address": "string", "name": "string"},
    "recipient": {"emailAddress": "emailAddress"},
    "attendee": {
        "emailAddress": "emailAddress",
        "type": "enum:attendeeType",
        "status": "responseStatus",
        "proposedNewTime": "any",
    },
    "responseStatus": {"response": "enum:responseType", "time": "DateTimeOffset"},
    "location": {
        "address": "any",
        "coordinates": "any",
        "displayName": "string",
        "locationEmailAddress": "string",
        "locationType": "enum:locationType",
        "locationUri": "string",
        "uniqueId": "string",
        "uniqueIdType": "string",
    },
    "patternedRecurrence": {"pattern": "recurrencePattern", "range": "recurrenceRange"},
    "recurrencePattern": {
        "dayOfMonth": "int",
        "daysOfWeek": ["enum:dayOfWeek"],
        "firstDayOfWeek": "enum:dayOfWeek",
        "index": "enum:weekIndex",
        "interval": "int",
        "month": "int",
        "type": "enum:recurrencePatternType",
    },
    "recurrenceRange": {
        "endDate": "Date",
        "numberOfOccurrences": "int",
        "recurrenceTimeZone": "string",
        "startDate": "Date",
        "type": "enum:recurrenceRangeType",
    },
    "singleValueLegacyExtendedProperty": {"id": "string", "value": "string"},
    # The body of the calendar's getSchedule action.
    "getSchedule": {
        "schedules": ["string"],
        "startTime": "dateTimeTimeZone",
        "endTime": "dateTimeTimeZone",
        "availabilityViewInterval": "int",
    },
}


class SchemaError(ValueError):
    """A value that does not fit its Graph type (``path`` names where)."""


def check(type_name: Any, value: Any, path: str = "") -> None:
    """:raises SchemaError: ``value`` does not fit Graph's type ``type_name`` (an unknown
    property, a JSON type or an enumeration member that is not Graph's). ``null`` fits every
    property, as in Graph's metadata, where they are nullable."""
    where = path or type_name
    if value is None or type_name == "any":
        return
    if isinstance(type_name, list):
        if not isinstance(value, list):
            raise SchemaError(f"{where} must be a collection.")
        for index, item in enumerate(value):
            check(type_name[0], item, f"{where}[{index}]")
        return
    if type_name.startswith("enum:"):
        if value not in ENUMS[type_name[5:]]:
            raise SchemaError(f"{where}: {value!r} is not a member of {type_name[5:]}.")
        return
    primitive = {"string": str, "Date": str, "DateTimeOffset": str, "boolean": bool}
    if type_name in primitive:
        if not isinstance(value, primitive[type_name]):
            raise SchemaError(f"{where} must be a {type_name}.")
        return
    if type_name == "int":
        if not isinstance(value, int) or isinstance(value, bool):
            raise SchemaError(f"{where} must be an integer.")
        return
    properties = TYPES[type_name]
    if not isinstance(value, dict):
        raise SchemaError(f"{where} must be a {type_name} object.")
    for name, item in value.items():
        if name.startswith("@odata."):
            continue
        if name not in properties:
            raise SchemaError(
                f"The property '{name}' does not exist on type 'microsoft.graph.{type_name}'."
            )
        check(properties[name], item, f"{where}.{name}")
