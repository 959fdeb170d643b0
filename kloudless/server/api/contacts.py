"""Contacts (the Kloudless CRM API's contact paths, spec §11), on every account whose connector
offers them (``local``, ``carddav``):

* ``GET|POST crm/contacts`` (``page``, ``page_size``, ``q``, ``updated_after``, ``order_by``
  = ``name|-name|modified|-modified``, ``group``; ``raw_type=Contact`` accepted);
  ``GET|PATCH|DELETE crm/contacts/{cid}`` (``If-Match`` → 412 when the etag changed; ``GET``
  with ``Accept: text/vcard`` answers the vCard);
* ``POST crm/contacts/import`` (a ``text/vcard`` body of one or more cards) and
  ``GET crm/contacts/export`` (every contact, or one group's, as ``text/vcard``);
* ``GET|PUT|DELETE crm/contacts/{cid}/photo`` (an image body with its content type);
* ``GET|POST crm/contact_groups``, ``GET|PATCH|DELETE crm/contact_groups/{gid}``,
  ``GET crm/contact_groups/{gid}/contacts``;
* ``POST crm/batch``: ``{"requests": [{"id", "method", "path" or "url_data", "data"}]}`` →
  ``{"responses": [...], "errors": [...]}``, each request run on its own.

Every contact and group answer carries its ``etag`` (also as the ``ETag`` header), and every
change is appended to the account's activity log (``add``, ``update``, ``delete``). Writes run
as the request's one unit of work: on ``local`` accounts the change, its events and the stored
idempotent answer commit together; CardDAV backends call the server first and then commit its
outcome (etags, events) with the answer (a batch on a CardDAV account commits request by
request, see :func:`_batch_atomic`).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timezone
from typing import Any

from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Map
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request, Response

from .. import content
from ..availability import parse_datetime
from ..connectors.contacts_base import (
    ContactPhoto,
    ContactQuery,
    ContactRecord,
    ContactsBackend,
    GroupRecord,
    clean_contact_input,
    clean_group_input,
)
from ..connectors.vcard_mapping import MAX_VCARD_BYTES
from ..context import RequestContext
from ..errors import ApiError, invalid_parameters, not_found, not_implemented, too_large
from ..params import read_limited
from ..responses import error_body, json_response, no_content, object_list
from ..routing import BODY_UPLOAD, Handler, Route, url_map
from ..store import TIME_FORMAT

__all__ = ["ROUTES", "contacts_backend", "serialize_contact", "serialize_group"]

#: Longest id accepted from a URL; longer ones cannot exist.
MAX_ID_LENGTH = 512
#: Most requests in one batch.
MAX_BATCH = 100
#: Largest list offset a backend is asked for.
MAX_OFFSET = 2**40
ORDERS = ("name", "-name", "modified", "-modified")
#: Image signatures checked against a photo's declared type.
_MAGIC = {
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "image/webp": (b"RIFF",),
}
log = logging.getLogger("kloudless.server")


def contacts_backend(ctx: RequestContext, account_id: str) -> tuple[int, ContactsBackend]:
    """:returns: ``(numeric account id, contacts backend)``; the backend records its changes
    in the activity log with :func:`describe` as their metadata.

    :raises ApiError: 404 for an unknown account, 501 when its service has no contacts.
    """
    account = ctx.account(account_id)
    return int(account["id"]), _backend(ctx, account)


def _backend(ctx: RequestContext, account: Any) -> ContactsBackend:
    acc = int(account["id"])
    env = ctx.account_env(account, lambda obj: describe(ctx, acc, obj))
    backend = ctx.connector(account).contacts(env)
    if backend is None:
        raise not_implemented(f"The {account['service']} service has no contacts API.")
    return backend


def describe(ctx: RequestContext, acc: int, obj: Any) -> dict[str, Any]:
    """:returns: the activity metadata of a changed contact or group: its JSON without
    ``raw`` (a contact deleted upstream, known by its id only, gets its id only)."""
    if isinstance(obj, GroupRecord):
        return serialize_group(ctx, acc, obj)
    assert isinstance(obj, ContactRecord)
    if not obj.fields:
        return {"api": "crm", "type": "contact", "id": obj.id, "account_id": acc}
    return serialize_contact(ctx, acc, obj, raw=False)


def _check_ids(kwargs: dict[str, str]) -> None:
    for key, value in kwargs.items():
        if key != "account_id" and len(value) > MAX_ID_LENGTH:
            raise not_found(f"Not found: {key} is too long.")


def _raw_type(ctx: RequestContext, expected: str) -> None:
    # Kloudless CRM clients name the upstream object type; only the matching one is served here.
    raw_type = ctx.request.args.get("raw_type")
    if raw_type and raw_type.lower() != expected.lower():
        raise invalid_parameters(f"Parameter 'raw_type' must be {expected!r} here.")


def _if_match(ctx: RequestContext) -> str | None:
    return ctx.request.headers.get("If-Match")


# -- JSON ----------------------------------------------------------------------------------------


def serialize_contact(
    ctx: RequestContext, account_id: int, contact: ContactRecord, *, raw: bool = True
) -> dict[str, Any]:
    """:returns: the contact JSON: the Kloudless CRM fields (``raw`` included unless asked not
    to), the address-book fields and the ``etag``."""
    fields = contact.fields
    phones = fields.get("phones") or []
    phone = next((p for p in phones if p["primary"] and p["type"] != "fax"), None) or next(
        (p for p in phones if p["type"] != "fax"), None
    )
    fax = next((p for p in phones if p["type"] == "fax"), None)
    addresses = fields.get("addresses") or []
    mailing = next((a for a in addresses if a["primary"]), addresses[0] if addresses else None)
    data: dict[str, Any] = {
        "api": "crm",
        "type": "contact",
        "id": contact.id,
        "account_id": account_id,
        "etag": contact.etag,
        "first_name": fields.get("first_name"),
        "last_name": fields.get("last_name"),
        "name": fields.get("name"),
        "nickname": fields.get("nickname"),
        "title": fields.get("title"),
        "department": fields.get("department"),
        "organization": fields.get("organization"),
        "phone": phone["number"] if phone else None,
        "fax": fax["number"] if fax else None,
        "mailing_address": (
            {k: v for k, v in mailing.items() if k not in ("type", "primary")} if mailing else None
        ),
        "description": fields.get("notes"),
        "notes": fields.get("notes"),
        "emails": fields.get("emails") or [],
        "phones": phones,
        "addresses": addresses,
        "urls": fields.get("urls") or [],
        "birthday": fields.get("birthday"),
        "groups": fields.get("groups") or [],
        "photo": contact.photo,
        "created": contact.created,
        "modified": contact.modified,
        "href": ctx.href(f"accounts/{account_id}/crm/contacts/{contact.id}"),
    }
    if raw:
        data["raw"] = contact.raw
    return data


def serialize_group(ctx: RequestContext, account_id: int, group: GroupRecord) -> dict[str, Any]:
    """:returns: the contact group JSON."""
    data: dict[str, Any] = {
        "api": "crm",
        "type": "contact_group",
        "id": group.id,
        "account_id": account_id,
        "etag": group.etag,
        "name": group.name,
        "count": group.count,
        "created": group.created,
        "modified": group.modified,
        "href": ctx.href(f"accounts/{account_id}/crm/contact_groups/{group.id}"),
    }
    if ctx.wants_raw:
        data["raw"] = group.raw
    return data


def _with_etag(data: dict[str, Any], status: int = 200) -> Response:
    return json_response(data, status, {"ETag": f'"{data["etag"]}"'})


# -- upstream changes ----------------------------------------------------------------------------


def sync_upstream(ctx: RequestContext, account: Any) -> None:
    """Record, as activity, the contacts changed upstream (outside this API) since the last
    look. Called before the activity stream is read and before contacts are listed; an
    unreachable upstream is logged and retried next time (the stream stays readable)."""
    if not getattr(ctx.connector(account), "upstream_contacts", False):
        return
    try:
        _backend(ctx, account).sync_upstream()
    except ApiError as exc:
        log.warning(
            "contacts sync of account %s failed: %s %s", account["id"], exc.status, exc.message
        )


# -- one kind of object: contacts and groups share their handlers ---------------------------------


@dataclass(frozen=True)
class _Kind:
    """What the create, read, change and delete handlers of contacts and groups differ in."""

    var: str  # the URL variable of an object's id
    raw_type: str | None  # the ``raw_type`` Kloudless clients may name
    clean_new: Callable[[dict[str, Any]], dict[str, Any]]
    clean_changes: Callable[[dict[str, Any]], dict[str, Any]]
    create: Callable[[ContactsBackend, dict[str, Any]], Any]
    read: Callable[[ContactsBackend, str], Any]
    update: Callable[[ContactsBackend, str, dict[str, Any], str | None], Any]
    delete: Callable[[ContactsBackend, str, str | None], Any]
    serialize: Callable[[RequestContext, int, Any], dict[str, Any]]


CONTACT = _Kind(
    var="contact_id",
    raw_type="Contact",
    clean_new=lambda body: clean_contact_input(body, partial=False),
    clean_changes=lambda body: clean_contact_input(body, partial=True),
    create=lambda backend, fields: backend.create_contact(fields),
    read=lambda backend, object_id: backend.get_contact(object_id),
    update=lambda backend, object_id, fields, tag: backend.update_contact(object_id, fields, tag),
    delete=lambda backend, object_id, tag: backend.delete_contact(object_id, tag),
    serialize=serialize_contact,
)
GROUP = _Kind(
    var="group_id",
    raw_type=None,
    clean_new=clean_group_input,
    clean_changes=clean_group_input,
    create=lambda backend, fields: backend.create_group(fields),
    read=lambda backend, object_id: backend.get_group(object_id),
    update=lambda backend, object_id, fields, tag: backend.update_group(object_id, fields, tag),
    delete=lambda backend, object_id, tag: backend.delete_group(object_id, tag),
    serialize=serialize_group,
)


def _object_id(kind: _Kind, ctx: RequestContext, ids: dict[str, str]) -> str:
    _check_ids(ids)
    if kind.raw_type is not None:
        _raw_type(ctx, kind.raw_type)
    return ids[kind.var]


def _creator(kind: _Kind) -> Handler:
    def create(ctx: RequestContext, account_id: str) -> Response:
        _object_id(kind, ctx, {kind.var: ""})
        fields = kind.clean_new(ctx.json_body())
        acc, backend = contacts_backend(ctx, account_id)
        return _with_etag(kind.serialize(ctx, acc, kind.create(backend, fields)), 201)

    return create


def _reader(kind: _Kind) -> Handler:
    def read(ctx: RequestContext, account_id: str, **ids: str) -> Response:
        object_id = _object_id(kind, ctx, ids)
        acc, backend = contacts_backend(ctx, account_id)
        return _with_etag(kind.serialize(ctx, acc, kind.read(backend, object_id)))

    return read


def _updater(kind: _Kind) -> Handler:
    def update(ctx: RequestContext, account_id: str, **ids: str) -> Response:
        object_id = _object_id(kind, ctx, ids)
        fields = kind.clean_changes(ctx.json_body())
        acc, backend = contacts_backend(ctx, account_id)
        changed = kind.update(backend, object_id, fields, _if_match(ctx))
        return _with_etag(kind.serialize(ctx, acc, changed))

    return update


def _deleter(kind: _Kind) -> Handler:
    def delete(ctx: RequestContext, account_id: str, **ids: str) -> Response:
        object_id = _object_id(kind, ctx, ids)
        _, backend = contacts_backend(ctx, account_id)
        kind.delete(backend, object_id, _if_match(ctx))
        return no_content()

    return delete


# -- contacts ------------------------------------------------------------------------------------


def _query(ctx: RequestContext, group: str | None = None) -> tuple[ContactQuery, int, int]:
    page, page_size = ctx.page_params()
    if (page - 1) * page_size > MAX_OFFSET:
        raise not_found(f"Page {page} does not exist.")
    args = ctx.request.args
    q = args.get("q")
    if q is not None and (len(q) > 256 or not q.strip()):
        raise invalid_parameters("Parameter 'q' must be 1 to 256 characters.")
    order = args.get("order_by") or "name"
    if order not in ORDERS:
        raise invalid_parameters(f"Parameter 'order_by' must be one of {', '.join(ORDERS)}.")
    updated_after = None
    if args.get("updated_after"):
        try:
            instant = parse_datetime(args["updated_after"].replace(" ", "+"))
        except ValueError as exc:
            raise invalid_parameters(
                f"Parameter 'updated_after' must be an ISO-8601 date-time: {exc}"
            ) from None
        updated_after = instant.astimezone(timezone.utc).strftime(TIME_FORMAT)
    query = ContactQuery(
        q=q.strip() if q else None,
        updated_after=updated_after,
        order=order,
        group=group or args.get("group") or None,
        offset=(page - 1) * page_size,
        limit=page_size,
    )
    return query, page, page_size


def _listing(ctx: RequestContext, account_id: str, group: str | None = None) -> Response:
    _raw_type(ctx, "Contact")
    account = ctx.account(account_id)
    sync_upstream(ctx, account)  # upstream changes reach the activity stream first
    acc, backend = contacts_backend(ctx, account_id)
    query, page, page_size = _query(ctx, group)
    if query.group is not None and len(query.group) > MAX_ID_LENGTH:
        raise not_found("Contact group not found.")
    records, total = backend.list_contacts(query)
    objects = [serialize_contact(ctx, acc, r) for r in records]
    return json_response(ctx.page_envelope(objects, "crm", page, page_size, total, with_total=True))


def list_contacts(ctx: RequestContext, account_id: str) -> Response:
    return _listing(ctx, account_id)


def _wants_vcard(ctx: RequestContext) -> bool:
    accept = ctx.request.accept_mimetypes
    return accept.quality("text/vcard") > accept.quality("application/json")


def get_contact(ctx: RequestContext, account_id: str, contact_id: str) -> Response:
    if not _wants_vcard(ctx):
        return _read_contact(ctx, account_id, contact_id=contact_id)
    _check_ids({"contact_id": contact_id})
    _, backend = contacts_backend(ctx, account_id)
    record = backend.get_contact(contact_id)
    return Response(
        backend.export_vcard(contact_id),
        mimetype="text/vcard",
        headers={"ETag": f'"{record.etag}"'},
    )


_read_contact = _reader(CONTACT)


def _vcard_body(ctx: RequestContext) -> str:
    data = read_limited(ctx.request, MAX_VCARD_BYTES, ctx.body_stream())
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise invalid_parameters("The vCard text must be UTF-8.") from None


def import_contacts(ctx: RequestContext, account_id: str) -> Response:
    mimetype = ctx.request.mimetype
    if mimetype not in ("text/vcard", "text/x-vcard", "text/directory"):
        raise ApiError(
            415, "unsupported_media_type", "Send vCard text with Content-Type: text/vcard."
        )
    text = _vcard_body(ctx)
    acc, backend = contacts_backend(ctx, account_id)
    objects = [serialize_contact(ctx, acc, r) for r in backend.import_vcards(text)]
    return json_response(object_list(objects, "crm", 1, None, total=len(objects)), 201)


def export_contacts(ctx: RequestContext, account_id: str) -> Response:
    acc, backend = contacts_backend(ctx, account_id)
    group = ctx.request.args.get("group") or None
    cards: list[str] = []
    offset = 0
    while True:  # bounded: each round reads a page and stops at the total
        query = ContactQuery(group=group, offset=offset, limit=500)
        records, total = backend.list_contacts(query)
        cards.extend(backend.export_vcard(r.id) for r in records)
        offset += len(records)
        if not records or offset >= total:
            break
    return Response(
        "".join(c if c.endswith("\r\n") else c + "\r\n" for c in cards),
        mimetype="text/vcard",
        headers={"Content-Disposition": 'attachment; filename="contacts.vcf"'},
    )


# -- photos --------------------------------------------------------------------------------------


def get_photo(ctx: RequestContext, account_id: str, contact_id: str) -> Response:
    _check_ids({"contact_id": contact_id})
    _, backend = contacts_backend(ctx, account_id)
    record = backend.get_contact(contact_id)
    if record.photo is not None and "url" in record.photo:
        # A linked photo is not fetched: the server never connects where contact data says.
        raise not_found("The contact's photo is a link (see the contact's photo.url).")
    photo = backend.get_photo(contact_id)
    response = Response(
        photo.data,
        mimetype=photo.content_type,
        headers={"ETag": '"' + hashlib.sha256(photo.data).hexdigest()[:32] + '"'},
    )
    # User content (a CardDAV card may embed any type): never run on the API origin.
    content.protect(response.headers, photo.content_type, "photo", inline=True)
    return response


def put_photo(ctx: RequestContext, account_id: str, contact_id: str) -> Response:
    _check_ids({"contact_id": contact_id})
    acc, backend = contacts_backend(ctx, account_id)
    mimetype = ctx.request.mimetype
    if mimetype not in _MAGIC:
        raise ApiError(
            415,
            "unsupported_media_type",
            f"A photo must be one of {', '.join(_MAGIC)} (sent with that Content-Type).",
        )
    limit = backend.max_photo_bytes
    try:
        data = read_limited(ctx.request, limit, ctx.body_stream())
    except ApiError as exc:
        if exc.status == 413:
            raise too_large(f"A photo may have at most {limit} bytes.") from None
        raise
    if not data:
        raise invalid_parameters("The photo body is empty.")
    if not data.startswith(_MAGIC[mimetype]) or (
        mimetype == "image/webp" and data[8:12] != b"WEBP"
    ):
        raise invalid_parameters(f"The body is not a {mimetype} image.")
    contact = backend.put_photo(contact_id, ContactPhoto(data, mimetype), _if_match(ctx))
    return _with_etag(serialize_contact(ctx, acc, contact))


def delete_photo(ctx: RequestContext, account_id: str, contact_id: str) -> Response:
    _check_ids({"contact_id": contact_id})
    _, backend = contacts_backend(ctx, account_id)
    backend.delete_photo(contact_id, _if_match(ctx))
    return no_content()


# -- groups --------------------------------------------------------------------------------------


def list_groups(ctx: RequestContext, account_id: str) -> Response:
    acc, backend = contacts_backend(ctx, account_id)
    groups = [serialize_group(ctx, acc, g) for g in backend.list_groups()]
    return json_response(ctx.object_list(groups, "crm", with_total=True))


def group_contacts(ctx: RequestContext, account_id: str, group_id: str) -> Response:
    _check_ids({"group_id": group_id})
    return _listing(ctx, account_id, group_id)


# -- batch ---------------------------------------------------------------------------------------

#: ``url_data.raw_type`` -> the collection it names.
_RAW_TYPES = {"contact": "contacts", "contactgroup": "contact_groups", "group": "contact_groups"}


def _batch_path(index: int, item: dict[str, Any]) -> str:
    path = item.get("path")
    if path is None:
        url_data = item.get("url_data")
        if not isinstance(url_data, dict):
            raise invalid_parameters(f"requests[{index}] needs 'path' or 'url_data'.")
        collection = _RAW_TYPES.get(str(url_data.get("raw_type", "Contact")).lower())
        if collection is None:
            raise invalid_parameters(f"requests[{index}].url_data.raw_type is not supported.")
        object_id = url_data.get("id")
        path = collection if object_id is None else f"{collection}/{object_id}"
    if not isinstance(path, str) or not path.strip("/"):
        raise invalid_parameters(f"requests[{index}].path must be a path under crm/.")
    path = path.strip("/")
    if path.startswith("crm/"):
        path = path[4:]
    head = path.split("/", 1)[0].split("?", 1)[0]
    if head not in ("contacts", "contact_groups") or ".." in path or "//" in path:
        raise invalid_parameters(
            f"requests[{index}].path must name crm/contacts or crm/contact_groups."
        )
    return path


def _run_one(
    ctx: RequestContext,
    path: str,
    method: str,
    data: dict[str, Any] | None,
    if_match: str | None,
    number: int,
) -> tuple[int, Any]:
    """Run one batch request through this module's own routes, as the caller (no new
    authentication, idempotency or rate-limit round: the batch itself went through them).

    :returns: ``(status, JSON answer or None)``.
    """
    headers = [("Host", ctx.request.host)]
    if "X-Kloudless-Raw-Data" in ctx.request.headers:
        headers.append(("X-Kloudless-Raw-Data", ctx.request.headers["X-Kloudless-Raw-Data"]))
    if if_match:
        headers.append(("If-Match", if_match))
    builder = EnvironBuilder(
        path=path,
        method=method,
        headers=headers,
        data=None if data is None else json.dumps(data),
        content_type=None if data is None else "application/json",
        environ_overrides={"REMOTE_ADDR": ctx.request.remote_addr or "127.0.0.1"},
    )
    request_id = f"{ctx.request_id}.{number}"
    try:
        environ = builder.get_environ()
    finally:
        builder.close()
    sub = RequestContext(ctx.core, Request(environ), request_id, ctx.auth_guard, auth=ctx.auth)
    if ctx.request_key is not None:
        # Each request of a keyed batch has an intent slot of its own (CardDAV writes).
        sub.request_key = f"{ctx.request_key}/{number}"
    try:
        index, args = _batch_map().bind_to_environ(environ).match()
        response = _BATCH_ROUTES[index].handler(sub, **args)
    except ApiError as exc:
        return exc.status, error_body(exc, request_id)
    except NotFound:
        return 404, error_body(not_found(f"No such endpoint: {path}"), request_id)
    except MethodNotAllowed:
        error = ApiError(405, "method_not_allowed", f"Method {method} is not allowed here.")
        return 405, error_body(error, request_id)
    except Exception:
        log.exception("unhandled error in a batch request, request_id=%s", request_id)
        error = ApiError(500, "internal_error", "An internal error occurred; see the server log.")
        return 500, error_body(error, request_id)
    text = response.get_data(as_text=True)
    answer = json.loads(text) if response.mimetype == "application/json" and text else None
    return response.status_code, answer


_BATCH_MAP: list[Map] = []


def _batch_map() -> Map:
    if not _BATCH_MAP:
        _BATCH_MAP.append(url_map(_BATCH_ROUTES))
    return _BATCH_MAP[0]


def _batch_atomic(ctx: RequestContext, account_id: str) -> bool:
    """:returns: whether a batch runs as one unit of work: on accounts without an upstream
    (``local``) yes, so its changes, their events and its stored answer commit together; on
    CardDAV accounts no, since each of its requests calls the server and the database's write
    lock would be held across those calls (each request commits on its own there)."""
    try:
        account = ctx.account(account_id)
        return not getattr(ctx.connector(account), "upstream_contacts", False)
    except ApiError:
        return True  # the handler answers the same error


def batch(ctx: RequestContext, account_id: str) -> Response:
    acc, _ = contacts_backend(ctx, account_id)
    body = ctx.json_body()
    requests = body.get("requests")
    if not isinstance(requests, list) or not requests:
        raise invalid_parameters("'requests' must be a non-empty list.")
    if len(requests) > MAX_BATCH:
        raise invalid_parameters(f"A batch holds at most {MAX_BATCH} requests.")
    plans = []
    for index, item in enumerate(requests):
        if not isinstance(item, dict):
            raise invalid_parameters(f"requests[{index}] must be an object.")
        method = str(item.get("method", "GET")).upper()
        if method not in ("GET", "POST", "PATCH", "PUT", "DELETE"):
            raise invalid_parameters(f"requests[{index}].method is not supported.")
        data = item.get("data")
        if data is not None and not isinstance(data, dict):
            raise invalid_parameters(f"requests[{index}].data must be an object.")
        if_match = item.get("if_match")
        if if_match is not None and (not isinstance(if_match, str) or "\n" in if_match):
            raise invalid_parameters(f"requests[{index}].if_match must be an etag string.")
        plans.append((item.get("id", str(index)), method, _batch_path(index, item), data, if_match))
    responses, errors = [], []
    for number, (request_id, method, path, data, if_match) in enumerate(plans):
        status, answer = _run_one(
            ctx, f"/v1/accounts/{acc}/crm/{path}", method, data, if_match, number
        )
        if status >= 400:
            errors.append({"id": request_id, "status_code": status, "error": answer})
        else:
            responses.append({"id": request_id, "status_code": status, "data": answer})
    return json_response({"api": "crm", "type": "batch", "responses": responses, "errors": errors})


CRM = "/accounts/<account_id>/crm"

ROUTES = [
    Route(CRM + "/contacts", ("GET",), list_contacts),
    Route(CRM + "/contacts", ("POST",), _creator(CONTACT)),
    # Bodies larger than a JSON body; the handlers bound them (vCard text, photo size limit).
    Route(CRM + "/contacts/import", ("POST",), import_contacts, body=BODY_UPLOAD),
    Route(CRM + "/contacts/export", ("GET",), export_contacts),
    Route(CRM + "/contacts/<contact_id>", ("GET",), get_contact),
    Route(CRM + "/contacts/<contact_id>", ("PATCH",), _updater(CONTACT)),
    Route(CRM + "/contacts/<contact_id>", ("DELETE",), _deleter(CONTACT)),
    Route(CRM + "/contacts/<contact_id>/photo", ("GET",), get_photo),
    Route(CRM + "/contacts/<contact_id>/photo", ("PUT",), put_photo, body=BODY_UPLOAD),
    Route(CRM + "/contacts/<contact_id>/photo", ("DELETE",), delete_photo),
    Route(CRM + "/contact_groups", ("GET",), list_groups),
    Route(CRM + "/contact_groups", ("POST",), _creator(GROUP)),
    Route(CRM + "/contact_groups/<group_id>", ("GET",), _reader(GROUP)),
    Route(CRM + "/contact_groups/<group_id>", ("PATCH",), _updater(GROUP)),
    Route(CRM + "/contact_groups/<group_id>", ("DELETE",), _deleter(GROUP)),
    Route(CRM + "/contact_groups/<group_id>/contacts", ("GET",), group_contacts),
    Route(CRM + "/batch", ("POST",), batch, atomic=_batch_atomic),
]
#: What a batch request may reach: every contacts route but the batch itself.
_BATCH_ROUTES = [r for r in ROUTES if r.handler is not batch]
