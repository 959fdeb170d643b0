"""Descriptions of the storage routes: files, folders, multipart uploads, links, raw ids."""

from __future__ import annotations

from dataclasses import replace

from .model import (
    Body,
    Op,
    Reply,
    Schema,
    bool_param,
    form,
    header,
    int_param,
    json,
    listing,
    obj,
    query,
    raw,
)

__all__ = ["OPERATIONS"]

A = "/accounts/<account_id>/storage"
STRING: Schema = {"type": "string"}
BINARY: Schema = {"type": "string", "format": "binary"}
OBJECT = Reply.of("The file or folder.", "StorageObject")
DELETED = Reply("Deleted.")
ASYNC = header(
    "X-Kloudless-Async",
    "``true``: answer 202 with a task at once (poll ``tasks/{task_id}``) instead of waiting.",
    {"type": "string", "enum": ["true", "false"]},
)
RETURN_TYPE = query(
    "return_type", "``task``: the same as ``X-Kloudless-Async: true``.", {"enum": ["task"]}
)
TASK = Reply.of("Accepted: the work runs in the background (``X-Kloudless-Async``).", "Task")
PERMANENT = bool_param("permanent", "Delete at once rather than into the trash (if any).")
RECURSIVE = bool_param("recursive", "Delete a folder that is not empty, with its contents.")
OVERWRITE = bool_param(
    "overwrite", "Replace an object of the same name in the folder (else 409 or a new name)."
)
METADATA = header(
    "X-Kloudless-Metadata",
    'JSON object: ``{"name": "hello.txt", "parent_id": "root"}``.',
    required=True,
    example='{"name": "hello.txt", "parent_id": "root"}',
)
RENAME_FIELDS = obj(name=STRING, parent_id=STRING, account={"type": ["integer", "string"]})


def _rename(example: str) -> Body:
    return json(RENAME_FIELDS, "The new name and/or parent folder.", example={"name": example})


COPY = json(
    obj(("parent_id",), parent_id=STRING, name=STRING, account={"type": ["integer", "string"]}),
    "The destination folder (and name).",
    example={"parent_id": "root", "name": "copy"},
)


def _copy(kind: str, example_id: str) -> Op:
    return Op(
        f"Copy a {kind}",
        {201: Reply.of("The copy.", "StorageObject"), 202: TASK},
        params=(OVERWRITE, ASYNC, RETURN_TYPE),
        body=COPY,
        errors=(409,),
        example={"object_id": example_id},
    )


OPERATIONS: dict[str, Op] = {
    f"POST {A}/folders": Op(
        "Create a folder",
        {
            201: Reply.of("Created.", "StorageObject"),
            200: Reply.of("It existed already.", "StorageObject"),
        },
        body=json(
            obj(("name",), name=STRING, parent_id=STRING),
            "Its name and parent folder (``root`` by default).",
            example={"name": "Reports", "parent_id": "root"},
        ),
        errors=(409,),
    ),
    f"GET {A}/folders/<object_id>": Op(
        "Get a folder's metadata", {200: OBJECT}, example={"object_id": "root"}
    ),
    f"PATCH {A}/folders/<object_id>": Op(
        "Rename or move a folder",
        {200: OBJECT},
        body=_rename("Renamed folder"),
        errors=(409,),
        example={"object_id": "$FOLDER_ID"},
    ),
    f"DELETE {A}/folders/<object_id>": Op(
        "Delete a folder",
        {204: DELETED},
        params=(RECURSIVE, PERMANENT),
        errors=(409,),
        example={"object_id": "$FOLDER_ID"},
    ),
    f"GET {A}/folders/<object_id>/contents": Op(
        "List a folder's contents",
        {200: Reply.of("One page of files and folders.", listing("StorageObject"))},
        paged=True,
        example={"object_id": "root"},
    ),
    f"POST {A}/folders/<object_id>/copy": _copy("folder", "$FOLDER_ID"),
    f"POST {A}/files": Op(
        "Upload a file",
        {201: Reply.of("The new file.", "StorageObject"), 202: TASK},
        description=(
            "The body is the file's bytes; ``X-Kloudless-Metadata`` names it. With a JSON body "
            "``{url, name, parent_id}`` and no metadata header the server downloads the file "
            "from ``url`` (within the outbound policy)."
        ),
        params=(replace(METADATA, required=False), OVERWRITE, ASYNC),
        body=raw("The file's bytes.", example="Hello, world"),
        errors=(409, 413, 431, 507),
    ),
    f"GET {A}/files/<object_id>": Op(
        "Get a file's metadata", {200: OBJECT}, example={"object_id": "$FILE_ID"}
    ),
    f"PUT {A}/files/<object_id>": Op(
        "Replace a file's contents",
        {200: Reply.of("The file.", "StorageObject")},
        body=raw("The new bytes.", example="new contents"),
        errors=(413, 507),
        example={"object_id": "$FILE_ID"},
    ),
    f"PATCH {A}/files/<object_id>": Op(
        "Rename or move a file",
        {200: OBJECT},
        body=_rename("renamed.txt"),
        errors=(409,),
        example={"object_id": "$FILE_ID"},
    ),
    f"DELETE {A}/files/<object_id>": Op(
        "Delete a file", {204: DELETED}, params=(PERMANENT,), example={"object_id": "$FILE_ID"}
    ),
    f"GET {A}/files/<object_id>/contents": Op(
        "Download a file",
        {
            200: Reply("The bytes (as an attachment).", {"application/octet-stream": BINARY}),
            206: Reply("The requested ``Range``."),
        },
        params=(header("Range", "One byte range: ``bytes=0-99``."),),
        errors=(416,),
        example={"object_id": "$FILE_ID"},
    ),
    f"POST {A}/files/<object_id>/copy": _copy("file", "$FILE_ID"),
    f"GET {A}/search": Op(
        "Search files and folders by name",
        {200: Reply.of("One page of matches.", listing("StorageObject"))},
        params=(
            query("q", "Text the name contains.", example="report"),
            query("parents", "Comma-separated folder ids to search in."),
        ),
        paged=True,
    ),
    f"GET {A}/recent": Op(
        "Recently changed files",
        {200: Reply.of("Newest first.", listing("StorageObject"))},
        params=(query("after", "Only files modified after this ISO 8601 time."),),
        paged=True,
    ),
    f"GET {A}/quota": Op("Storage used and available", {200: Reply.of("The quota.", "Quota")}),
    f"POST {A}/multipart": Op(
        "Start a multipart upload",
        {201: Reply.of("The session: send ``part_size`` parts.", "Multipart")},
        params=(OVERWRITE,),
        body=json(
            obj(("name",), name=STRING, parent_id=STRING, size={"type": "integer", "minimum": 0}),
            "The file to build (``size`` optional).",
            example={"name": "big.bin", "parent_id": "root", "size": 10},
        ),
    ),
    f"GET {A}/multipart/<session_id>": Op(
        "Get a multipart upload",
        {200: Reply.of("The session.", "Multipart")},
        example={"session_id": "$SESSION_ID"},
    ),
    f"PUT {A}/multipart/<session_id>": Op(
        "Upload one part",
        {200: Reply("Stored."), 204: Reply("Stored.")},
        params=(int_param("part_number", "Part number, from 1.", required=True, example=1),),
        body=raw("The part's bytes.", example="0123456789"),
        errors=(409, 413, 507),
        example={"session_id": "$SESSION_ID"},
    ),
    f"DELETE {A}/multipart/<session_id>": Op(
        "Abort a multipart upload",
        {204: DELETED},
        errors=(409,),
        example={"session_id": "$SESSION_ID"},
    ),
    f"POST {A}/multipart/<session_id>/complete": Op(
        "Finish a multipart upload",
        {201: Reply.of("The new file.", "StorageObject")},
        errors=(409,),
        example={"session_id": "$SESSION_ID"},
    ),
    f"GET {A}/links": Op(
        "List links",
        {200: Reply.of("One page of links.", listing("Link"))},
        params=(bool_param("active", "Only active (or inactive) links."),),
        paged=True,
    ),
    f"POST {A}/links": Op(
        "Create a link to a file",
        {201: Reply.of("The link.", "Link")},
        body=json(
            obj(
                ("file_id",),
                file_id=STRING,
                direct={"type": "boolean"},
                password={"type": "string"},
                expiration={"type": ["string", "integer", "null"]},
                active={"type": "boolean"},
            ),
            "The file and the link's settings.",
            example={"file_id": "$FILE_ID"},
        ),
    ),
    f"GET {A}/links/<link_id>": Op(
        "Get a link", {200: Reply.of("The link.", "Link")}, example={"link_id": "$LINK_ID"}
    ),
    f"PATCH {A}/links/<link_id>": Op(
        "Change a link",
        {200: Reply.of("The link.", "Link")},
        body=json(
            obj(
                active={"type": "boolean"},
                password={"type": ["string", "null"]},
                expiration={"type": ["string", "integer", "null"]},
                direct={"type": "boolean"},
            ),
            example={"active": False},
        ),
        example={"link_id": "$LINK_ID"},
    ),
    f"DELETE {A}/links/<link_id>": Op(
        "Delete a link", {204: DELETED}, example={"link_id": "$LINK_ID"}
    ),
    "GET /l/<link_id>": Op(
        "Open a public link",
        {
            200: Reply("The file's bytes, or a password page for protected links."),
            302: Reply("A redirect to the bytes (non-direct links)."),
        },
        params=(bool_param("download", "Download as an attachment."),),
        errors=(400, 401, 403, 404, 410),
        example={"link_id": "$LINK_ID"},
    ),
    "POST /l/<link_id>": Op(
        "Open a password-protected public link",
        {200: Reply("The file's bytes."), 302: Reply("A redirect to the bytes.")},
        body=form(obj(("password",), password=STRING), example={"password": "secret"}),
        errors=(400, 401, 403, 404, 410),
        example={"link_id": "$PROTECTED_LINK_ID"},
    ),
    f"POST {A}/convert_id": Op(
        "Convert an upstream id",
        {200: Reply.of("The id this server uses.", "RawId")},
        body=json(
            obj(raw_id=STRING, type={"enum": ["file", "folder"]}),
            example={"raw_id": "$FILE_ID", "type": "file"},
        ),
    ),
    "POST /accounts/<account_id>/encode_raw_id": Op(
        "Encode an upstream id",
        {200: Reply.of("The id this server uses.", "RawId")},
        body=json(
            obj(raw_id=STRING, type={"enum": ["file", "folder"]}),
            example={"raw_id": "$FILE_ID", "type": "file"},
        ),
    ),
    "POST /accounts/<account_id>/raw": Op(
        "Pass a request through to the upstream",
        {200: Reply("The upstream's answer, as it was.")},
        description="Services without an upstream API (``local``) answer 501.",
        params=(
            header("X-Kloudless-Raw-Method", "The upstream method.", required=True, example="GET"),
            header("X-Kloudless-Raw-URI", "The upstream path.", required=True, example="/"),
            header("X-Kloudless-Raw-Headers", "JSON object of extra upstream headers."),
        ),
        body=raw("Sent to the upstream as it is.", required=False),
        errors=(501, 502),
        runnable=False,
    ),
}
