"""The named schemas of the OpenAPI document (``components/schemas``).

Object schemas name the fields every answer carries and allow more (connectors add fields, and
``X-Kloudless-Raw-Data: true`` adds ``raw``), so a client may rely on what is listed here.
"""

from __future__ import annotations

from typing import Any

from .model import Schema, array, obj, ref

__all__ = ["SCHEMAS"]

STRING: Schema = {"type": "string"}
NULLABLE_STRING: Schema = {"type": ["string", "null"]}
INTEGER: Schema = {"type": "integer"}
NULLABLE_INTEGER: Schema = {"type": ["integer", "null"]}
BOOLEAN: Schema = {"type": "boolean"}
TIME: Schema = {"type": ["string", "null"], "description": "ISO 8601 time (UTC)."}
OBJECT: Schema = {"type": "object"}


def _kloudless(
    api: str, type_: str | list[str], required: tuple[str, ...], **fields: Schema
) -> Schema:
    """An API object: ``api``, ``type`` and ``href`` plus ``fields``."""
    type_schema: Schema = {"enum": type_} if isinstance(type_, list) else {"const": type_}
    return obj(
        ("api", "type", *required),
        api={"const": api},
        type=type_schema,
        href={"type": "string", "format": "uri"},
        **fields,
    )


PARENT = obj(("id", "type"), id=STRING, type=STRING, name=STRING)

SCHEMAS: dict[str, Any] = {
    "Error": obj(
        ("status_code", "error_code", "message", "id"),
        status_code={"type": "integer", "minimum": 400, "maximum": 599},
        error_code={"type": "string", "description": "A stable code, e.g. ``not_found``."},
        message={"type": "string"},
        id={"type": "string", "description": "The request id (also in ``X-Request-Id``)."},
        conflicting_resource_id={
            "type": ["string", "null"],
            "description": "409 ``naming_conflict``: the object in the way.",
        },
    ),
    "ObjectList": obj(
        ("type", "objects", "count"),
        api=STRING,
        type={"const": "object_list"},
        page={"description": "This page (usually a number)."},
        next_page={"description": "The next page to ask for, ``null`` on the last page."},
        count={"type": "integer", "minimum": 0, "description": "Objects on this page."},
        total={"type": "integer", "minimum": 0},
        objects=array(OBJECT),
    ),
    "Account": _kloudless(
        "core",
        "account",
        ("id", "service"),
        id=INTEGER,
        account=STRING,
        service=STRING,
        service_name=STRING,
        active=BOOLEAN,
        admin=BOOLEAN,
        apis=array(STRING),
        effective_scope=STRING,
        created=TIME,
        modified=TIME,
        custom_properties=OBJECT,
        properties=OBJECT,
    ),
    "StorageObject": _kloudless(
        "storage",
        ["file", "folder"],
        ("id", "name", "account"),
        id=STRING,
        name=STRING,
        account=INTEGER,
        size=NULLABLE_INTEGER,
        created=TIME,
        modified=TIME,
        path=STRING,
        parent={"oneOf": [PARENT, {"type": "null"}]},
        ancestors=array(PARENT),
        mime_type=NULLABLE_STRING,
        downloadable=BOOLEAN,
        raw_id=STRING,
    ),
    "Quota": _kloudless(
        "storage",
        "quota",
        (),
        used=NULLABLE_INTEGER,
        total=NULLABLE_INTEGER,
    ),
    "Link": _kloudless(
        "storage",
        "link",
        ("id", "file_id", "url"),
        id=STRING,
        file_id=STRING,
        account=INTEGER,
        url={"type": "string", "format": "uri"},
        active=BOOLEAN,
        direct=BOOLEAN,
        expiration=TIME,
        password={"type": "boolean", "description": "Whether a password protects the link."},
        created=TIME,
        modified=TIME,
    ),
    "Multipart": _kloudless(
        "storage",
        "multipart",
        ("id", "part_size"),
        id={"type": ["integer", "string"]},
        account=INTEGER,
        name=STRING,
        parent_id=STRING,
        size=NULLABLE_INTEGER,
        part_size=INTEGER,
        parts=array(obj(("part_number", "size"), part_number=INTEGER, size=INTEGER)),
        created=TIME,
    ),
    "RawId": obj(("id", "type"), id=STRING, type=STRING),
    "Task": _kloudless(
        "core",
        "task",
        ("id", "state"),
        id=STRING,
        state={"enum": ["PENDING", "RECEIVED", "STARTED", "SUCCESS", "FAILURE"]},
        account=INTEGER,
    ),
    "ActivityEvent": obj(
        ("api", "type", "event_id", "account"),
        api={"const": "events"},
        type=STRING,
        id=NULLABLE_STRING,
        event_id=INTEGER,
        action=STRING,
        account=INTEGER,
        modified=TIME,
        metadata={},
        href={"type": "string", "format": "uri"},
    ),
    "ActivityList": obj(
        ("type", "objects", "count", "cursor", "remaining"),
        api={"const": "events"},
        type={"const": "object_list"},
        objects=array(ref("ActivityEvent")),
        count={"type": "integer", "minimum": 0},
        cursor={"type": ["integer", "string"], "description": "Pass it back as ``cursor``."},
        remaining={"type": "integer", "minimum": 0},
    ),
    "Cursor": obj(("cursor",), cursor={"type": ["integer", "string"]}),
    "Calendar": _kloudless(
        "calendar",
        "calendar",
        ("id", "name"),
        id=STRING,
        name=STRING,
        description=NULLABLE_STRING,
        location=NULLABLE_STRING,
        timezone=NULLABLE_STRING,
        primary=BOOLEAN,
        account_id=INTEGER,
    ),
    "CalendarEvent": _kloudless(
        "calendar",
        "event",
        ("id", "calendar_id", "start", "end"),
        id=STRING,
        account_id=INTEGER,
        calendar_id=STRING,
        ical_uid=NULLABLE_STRING,
        name=NULLABLE_STRING,
        description=NULLABLE_STRING,
        location=NULLABLE_STRING,
        start=STRING,
        end=STRING,
        all_day=BOOLEAN,
        attendees=array(OBJECT),
        created=TIME,
        modified=TIME,
    ),
    "Availability": obj(
        ("api", "type", "time_windows"),
        api={"const": "calendar"},
        type={"const": "availability"},
        time_windows=array(obj(("start", "end"), start=STRING, end=STRING)),
    ),
    "Contact": _kloudless(
        "crm",
        "contact",
        ("id",),
        id=STRING,
        account_id=INTEGER,
        etag=NULLABLE_STRING,
        name=NULLABLE_STRING,
        first_name=NULLABLE_STRING,
        last_name=NULLABLE_STRING,
        emails=array(OBJECT),
        phones=array(OBJECT),
        addresses=array(OBJECT),
        groups=array(STRING),
        created=TIME,
        modified=TIME,
    ),
    "ContactGroup": _kloudless(
        "crm",
        "contact_group",
        ("id", "name"),
        id=STRING,
        account_id=INTEGER,
        etag=NULLABLE_STRING,
        name=STRING,
        count={"type": ["integer", "null"]},
        created=TIME,
        modified=TIME,
    ),
    "Batch": obj(
        ("api", "type", "responses", "errors"),
        api={"const": "crm"},
        type={"const": "batch"},
        responses=array(OBJECT),
        errors=array(OBJECT),
    ),
    "TeamUser": _kloudless("team", "user", ("id",), id={"type": ["integer", "string"]}),
    "TeamGroup": _kloudless("team", "group", ("id",), id={"type": ["integer", "string"]}),
    "Application": _kloudless(
        "meta",
        "application",
        ("id", "name"),
        id=STRING,
        name=STRING,
        description=NULLABLE_STRING,
        active=BOOLEAN,
        created=TIME,
        modified=TIME,
        webhook_url=NULLABLE_STRING,
    ),
    "Developer": _kloudless(
        "meta",
        "developer",
        ("id",),
        id=INTEGER,
        first_name=NULLABLE_STRING,
        last_name=NULLABLE_STRING,
        email=NULLABLE_STRING,
        created=TIME,
        modified=TIME,
    ),
    "ApiKey": _kloudless(
        "meta", "apikey", ("id", "key"), id=STRING, key=STRING, application=STRING, created=TIME
    ),
    "Webhook": _kloudless(
        "meta",
        "webhook",
        ("id", "url"),
        id=STRING,
        url=STRING,
        status=STRING,
        application=STRING,
        created=TIME,
        modified=TIME,
    ),
    "TrustedDomain": _kloudless(
        "meta",
        "trusted_domain",
        ("id", "domain"),
        id=INTEGER,
        domain=STRING,
        application=STRING,
        created=TIME,
    ),
    "Service": _kloudless(
        "core", "service", ("id", "name"), id=STRING, name=STRING, apis=array(STRING)
    ),
    "AccessToken": obj(
        ("access_token", "token_type", "account_id"),
        access_token=STRING,
        token_type={"const": "Bearer"},
        account_id=INTEGER,
        scope=STRING,
    ),
    "TokenInfo": obj(
        ("client_id", "account_id", "token_type"),
        client_id=STRING,
        account_id=NULLABLE_INTEGER,
        scope=STRING,
        token_type={"const": "Bearer"},
    ),
}
