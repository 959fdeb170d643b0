"""Descriptions of the contacts routes (``crm/contacts``, ``crm/contact_groups``, batches)."""

from __future__ import annotations

from .model import Body, Op, Reply, Schema, header, json, listing, obj, query

__all__ = ["OPERATIONS"]

C = "/accounts/<account_id>/crm"
STRING: Schema = {"type": "string"}
TEXT: Schema = {"type": ["string", "null"]}
VCARD = {"text/vcard": STRING}
DELETED = Reply("Deleted.")
CONTACT = Reply.of("The contact (its ``ETag`` header too).", "Contact")
GROUP = Reply.of("The group.", "ContactGroup")
IF_MATCH = header("If-Match", "Only if the object's ``etag`` is still this (else 412).")
RAW_TYPE = query("raw_type", "Kloudless' object type name: ``contact``.")
CONTACT_FIELDS: dict[str, Schema] = {
    "name": TEXT,
    "first_name": TEXT,
    "last_name": TEXT,
    "nickname": TEXT,
    "title": TEXT,
    "department": TEXT,
    "organization": TEXT,
    "notes": TEXT,
    "birthday": TEXT,
    "emails": {"type": "array", "items": {"type": "object"}},
    "phones": {"type": "array", "items": {"type": "object"}},
    "addresses": {"type": "array", "items": {"type": "object"}},
    "urls": {"type": "array", "items": {"type": "object"}},
    "groups": {"type": "array", "items": STRING},
}
CONTACT_ID = {"contact_id": "$CONTACT_ID"}
GROUP_ID = {"group_id": "$CONTACT_GROUP_ID"}
IMAGE: Schema = {"type": "string", "format": "binary"}

OPERATIONS: dict[str, Op] = {
    f"GET {C}/contacts": Op(
        "List contacts",
        {200: Reply.of("One page of contacts.", listing("Contact"))},
        params=(
            query("q", "Text a contact's name, e-mail address or organization contains."),
            query("order_by", "``name`` (default), ``modified`` or ``created``."),
            query("updated_after", "Only contacts changed after this ISO 8601 time."),
            query("group", "Only members of this group."),
            RAW_TYPE,
        ),
        paged=True,
    ),
    f"POST {C}/contacts": Op(
        "Create a contact",
        {201: CONTACT},
        body=json(
            obj(**CONTACT_FIELDS),
            example={"name": "Ann Lee", "emails": [{"address": "ann@example.com"}]},
        ),
    ),
    f"POST {C}/contacts/import": Op(
        "Import vCards",
        {201: Reply.of("The imported contacts.", listing("Contact"))},
        body=Body(
            {"text/vcard": STRING},
            "One or more vCards.",
            example="@contacts.vcf",
        ),
        errors=(413, 415),
    ),
    f"GET {C}/contacts/export": Op(
        "Export contacts as vCards",
        {200: Reply("Every contact (or a group's) as vCards.", VCARD)},
        params=(query("group", "Only members of this group."),),
    ),
    f"GET {C}/contacts/<contact_id>": Op(
        "Get a contact",
        {
            200: Reply(
                "The contact (JSON, or a vCard for ``Accept: text/vcard``).",
                {"application/json": {"$ref": "#/components/schemas/Contact"}, **VCARD},
            )
        },
        params=(RAW_TYPE,),
        example=CONTACT_ID,
    ),
    f"PATCH {C}/contacts/<contact_id>": Op(
        "Change a contact",
        {200: CONTACT},
        params=(IF_MATCH,),
        body=json(obj(**CONTACT_FIELDS), example={"title": "Engineer"}),
        errors=(412,),
        example=CONTACT_ID,
    ),
    f"DELETE {C}/contacts/<contact_id>": Op(
        "Delete a contact",
        {204: DELETED},
        params=(IF_MATCH,),
        errors=(412,),
        example=CONTACT_ID,
    ),
    f"GET {C}/contacts/<contact_id>/photo": Op(
        "Get a contact's photo",
        {200: Reply("The image.", {"image/*": IMAGE})},
        example=CONTACT_ID,
    ),
    f"PUT {C}/contacts/<contact_id>/photo": Op(
        "Set a contact's photo",
        {200: CONTACT},
        params=(IF_MATCH,),
        body=Body(
            dict.fromkeys(("image/png", "image/jpeg", "image/gif", "image/webp"), IMAGE),
            "JPEG, PNG, GIF or WebP bytes.",
            example="@photo.png",
        ),
        errors=(412, 413, 415),
        example=CONTACT_ID,
    ),
    f"DELETE {C}/contacts/<contact_id>/photo": Op(
        "Remove a contact's photo",
        {204: DELETED},
        params=(IF_MATCH,),
        errors=(412,),
        example=CONTACT_ID,
    ),
    f"GET {C}/contact_groups": Op(
        "List contact groups",
        {200: Reply.of("One page of groups.", listing("ContactGroup"))},
        paged=True,
    ),
    f"POST {C}/contact_groups": Op(
        "Create a contact group",
        {201: GROUP},
        body=json(obj(("name",), name=STRING), example={"name": "Friends"}),
        errors=(409,),
    ),
    f"GET {C}/contact_groups/<group_id>": Op("Get a contact group", {200: GROUP}, example=GROUP_ID),
    f"PATCH {C}/contact_groups/<group_id>": Op(
        "Rename a contact group",
        {200: GROUP},
        params=(IF_MATCH,),
        body=json(obj(("name",), name=STRING), example={"name": "Close friends"}),
        errors=(409, 412),
        example=GROUP_ID,
    ),
    f"DELETE {C}/contact_groups/<group_id>": Op(
        "Delete a contact group",
        {204: DELETED},
        params=(IF_MATCH,),
        errors=(412,),
        example=GROUP_ID,
    ),
    f"GET {C}/contact_groups/<group_id>/contacts": Op(
        "A group's contacts",
        {200: Reply.of("One page of contacts.", listing("Contact"))},
        paged=True,
        example=GROUP_ID,
    ),
    f"POST {C}/batch": Op(
        "Run several contact requests",
        {200: Reply.of("One answer per request, in order.", "Batch")},
        body=json(
            obj(
                ("requests",),
                requests={
                    "type": "array",
                    "items": obj(
                        ("method",),
                        method={"enum": ["GET", "POST", "PATCH", "PUT", "DELETE"]},
                        path=STRING,
                        url_data={"type": "object"},
                        data={"type": "object"},
                    ),
                },
            ),
            example={"requests": [{"method": "GET", "path": "crm/contacts"}]},
        ),
    ),
}
