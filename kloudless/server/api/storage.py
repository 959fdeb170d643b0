"""Storage API: folders, files, search, recent, quota (spec §5)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from typing import IO, Any, Callable, cast

from werkzeug.exceptions import RequestedRangeNotSatisfiable
from werkzeug.http import quote_etag
from werkzeug.wrappers import Response
from werkzeug.wsgi import FileWrapper, wrap_file

from .. import content, saver
from .. import quota as quotas
from ..availability import format_utc, parse_datetime
from ..connectors.base import StorageBackend, StorageObject, validate_name
from ..context import RequestContext
from ..diskspace import check_room
from ..errors import (
    ApiError,
    bad_request,
    invalid_parameters,
    not_found,
    not_implemented,
    too_large,
)
from ..file_slice import FileSlice
from ..outbound import policy_for
from ..responses import checked_headers, json_response, no_content, object_list
from ..routing import BODY_UPLOAD, Route
from ..spool import HASH_BODY
from ..transfer_limits import DOWNLOAD, Releasing, credential_key
from .tasks import run_maybe_async

A = "/accounts/<account_id>/storage"


def serialize(
    ctx: RequestContext,
    account_id: int,
    obj: StorageObject,
    ancestry: tuple[list[dict[str, Any]], str] | None = None,
) -> dict[str, Any]:
    """Turn a :class:`StorageObject` into the API's file/folder JSON (with ``href``).

    :param ancestry: ``_ancestry(obj.ancestors)``, when the caller shares it between siblings.
    """
    described = ctx.described
    if described is not None and described[0] is obj and described[1] == account_id:
        # The object this request's last activity event recorded (an upload's new file):
        # answered with the JSON the event holds, not built twice.
        return described[2]
    return _Serializer(ctx, account_id)(obj, ancestry)


class _Serializer:
    """:func:`serialize` with what every object of one account and request shares (the
    ``href`` prefix, ``wants_raw``) computed once: the one code path of single objects and
    pages."""

    __slots__ = ("account_id", "href_base", "wants_raw")

    def __init__(self, ctx: RequestContext, account_id: int) -> None:
        self.account_id = account_id
        self.href_base = ctx.href(f"accounts/{account_id}/storage/")
        self.wants_raw = ctx.wants_raw

    def __call__(
        self, obj: StorageObject, ancestry: tuple[list[dict[str, Any]], str] | None = None
    ) -> dict[str, Any]:
        kind = obj.type
        object_id = obj.id
        ancestors, prefix = ancestry if ancestry is not None else _ancestry(obj.ancestors)
        data: dict[str, Any] = {
            "id": object_id,
            "name": obj.name,
            "type": kind,
            "api": "storage",
            "href": f"{self.href_base}{kind}s/{object_id}",
            "account": self.account_id,
            "size": obj.size,
            "created": obj.created,
            "modified": obj.modified,
            "path": prefix + obj.name if object_id != "root" else "/",
            "parent": ancestors[-1] if ancestors else None,
            "ancestors": ancestors,
            "ids": {"default": object_id},
            "id_type": "default",
            "raw_id": obj.raw_id or object_id,
        }
        if kind == "file":
            data["mime_type"] = obj.mime_type
            data["downloadable"] = True
        else:
            data.update(can_create_folders=True, can_upload_files=True, can_list_recursively=True)
        if self.wants_raw:
            data["raw"] = obj.raw
        return data


def _ancestry(chain: list[tuple[str, str]]) -> tuple[list[dict[str, Any]], str]:
    """:returns: the ``ancestors`` JSON of an ``(id, name)`` chain and the path prefix of its
    children (``/a/b/``)."""
    ancestors = [
        {"type": "folder", "id": aid, "name": name, "id_type": "default"} for aid, name in chain
    ]
    return ancestors, "/" + "".join(name + "/" for aid, name in chain if aid != "root")


def serialize_many(
    ctx: RequestContext, account_id: int, objects: list[StorageObject]
) -> list[dict[str, Any]]:
    """:func:`serialize` for a page of objects: siblings share one ``ancestors`` list (a page
    of 1000 children of one folder builds it once, not 1000 times; a backend that gives
    siblings the same ``ancestors`` list object is not even compared)."""
    one = _Serializer(ctx, account_id)
    shared: dict[tuple[tuple[str, str], ...], tuple[list[dict[str, Any]], str]] = {}
    items = []
    chain: list[tuple[str, str]] | None = None
    ancestry: tuple[list[dict[str, Any]], str] | None = None
    for obj in objects:
        if obj.ancestors is not chain:
            chain = obj.ancestors
            key = tuple(chain)
            ancestry = shared.get(key)
            if ancestry is None:
                ancestry = shared[key] = _ancestry(chain)
        items.append(one(obj, ancestry))
    return items


def storage_backend(ctx: RequestContext, account: Any) -> StorageBackend:
    """:returns: the account's storage backend, whose activity events carry the objects' API
    JSON (:func:`serialize`). :raises ApiError: 501 when the service has no storage API."""
    acc = int(account["id"])

    def describe(obj: StorageObject) -> dict[str, Any]:
        data = serialize(ctx, acc, obj)
        ctx.described = (obj, acc, data)
        return data

    return ctx.storage(account, describe)


def _setup(ctx: RequestContext, account_id: str) -> tuple[int, StorageBackend]:
    account = ctx.account(account_id)
    return int(account["id"]), storage_backend(ctx, account)


def is_object_id(value: str) -> bool:
    """:returns: whether ``value`` can be an object id (letters, digits, ``_`` and ``-``)."""
    return len(value) <= 512 and value.replace("_", "").replace("-", "").isalnum()


def _id(value: str) -> str:
    if not is_object_id(value):
        raise ApiError(404, "not_found", f"Not found: {value[:100]!r}")
    return value


def _json_id(body: dict[str, Any], key: str, required: bool) -> str | None:
    value = body.get(key)
    if value is None:
        if required:
            raise invalid_parameters(f"'{key}' is required.")
        return None
    if not isinstance(value, str) or not value:
        raise invalid_parameters(f"'{key}' must be a non-empty string id.")
    return value


def _check_account_field(body: dict[str, Any], account_id: int) -> None:
    target = body.get("account")
    if target is not None and str(target) != str(account_id):
        raise not_implemented("Moving or copying between accounts is not supported.")


# -- folders ------------------------------------------------------------------------------------
def get_object(kind: str) -> Callable[..., Response]:
    def handler(ctx: RequestContext, account_id: str, object_id: str) -> Response:
        acc, storage = _setup(ctx, account_id)
        return json_response(serialize(ctx, acc, storage.get(_id(object_id), kind)))

    return handler


def folder_contents(ctx: RequestContext, account_id: str, object_id: str) -> Response:
    acc, storage = _setup(ctx, account_id)
    page, page_size = ctx.page_params()  # validate before doing work
    recursive = ctx.arg_bool("recursive")
    # Only the requested page is built and serialized (not the whole folder for every page).
    objects, more = storage.list_folder_page(
        _id(object_id), recursive, (page - 1) * page_size, page_size, with_raw=ctx.wants_raw
    )
    if page > 1 and not objects:
        raise not_found(f"Page {page} does not exist.")
    items = serialize_many(ctx, acc, objects)
    return json_response(object_list(items, "storage", page, page + 1 if more else None))


def create_folder(ctx: RequestContext, account_id: str) -> Response:
    acc, storage = _setup(ctx, account_id)
    body = ctx.json_body()
    conflict = ctx.arg_bool("conflict_if_exists")
    parent = _json_id(body, "parent_id", False) or "root"
    folder, created = storage.create_folder(
        parent,
        body.get("name"),  # type: ignore[arg-type]
        conflict,
    )
    return json_response(serialize(ctx, acc, folder), 201 if created else 200)


def patch_object(kind: str) -> Callable[..., Response]:
    def handler(ctx: RequestContext, account_id: str, object_id: str) -> Response:
        acc, storage = _setup(ctx, account_id)
        body = ctx.json_body()
        _check_account_field(body, acc)
        name = body.get("name")
        parent = _json_id(body, "parent_id", False)
        if name is None and parent is None:
            raise invalid_parameters("Give 'name' and/or 'parent_id'.")
        storage.get(_id(object_id), kind)  # 404 for a malformed id before any change
        after = storage.update(object_id, kind, name=name, parent_id=parent)
        return json_response(serialize(ctx, acc, after))

    return handler


def copy_object(kind: str) -> Callable[..., Response]:
    def handler(ctx: RequestContext, account_id: str, object_id: str) -> Response:
        acc, storage = _setup(ctx, account_id)
        body = ctx.json_body()
        _check_account_field(body, acc)
        parent = _json_id(body, "parent_id", True)
        name = body.get("name")
        storage.get(_id(object_id), kind)  # 404 before any task is created

        def work() -> tuple[int, dict[str, Any]]:
            copied = storage.copy(object_id, kind, parent or "root", name)
            return 201, serialize(ctx, acc, copied)

        return run_maybe_async(ctx, acc, work)

    return handler


def delete_object(kind: str) -> Callable[..., Response]:
    def handler(ctx: RequestContext, account_id: str, object_id: str) -> Response:
        acc, storage = _setup(ctx, account_id)
        recursive = ctx.arg_bool("recursive")
        permanent = ctx.arg_bool("permanent")
        storage.delete(_id(object_id), kind, recursive, permanent)
        return no_content()

    return handler


# -- files --------------------------------------------------------------------------------------
def upload_precheck(ctx: RequestContext, account_id: str, **_: str) -> None:
    """What an upload is refused for before its body is read (the HTTP server runs this on the
    headers): an account the caller cannot reach (404); a ``Content-Length`` that does not fit
    in a ``local`` account's quota or on the disk (507). The write checks both again.

    :raises ApiError: as :meth:`RequestContext.account`; 507 ``insufficient_storage``.
    """
    account = ctx.account(account_id)
    if account["service"] == "local":
        # A spooled body is hashed as it arrives: the handler need not read it back.
        ctx.request.environ[HASH_BODY] = True
    length = ctx.request.content_length
    if not length:
        return
    check_room(ctx.settings.data_dir, length, ctx.settings.min_free_bytes)
    if account["service"] == "local":
        limit = quotas.limit_for(ctx.store, ctx.settings, int(account["id"]))
        quotas.check(ctx.store, limit, int(account["id"]), length)


def _upload_stream(ctx: RequestContext) -> IO[bytes]:
    limit = ctx.settings.max_upload_bytes
    length = ctx.request.content_length
    if length is not None and length > limit:
        raise too_large(f"The upload exceeds the limit of {limit} bytes.")
    return ctx.body_stream()


def read_metadata(ctx: RequestContext) -> dict[str, Any]:
    """Parse the ``X-Kloudless-Metadata`` header (JSON object, size-limited)."""
    raw = ctx.request.headers.get("X-Kloudless-Metadata")
    if raw is None:
        raise invalid_parameters(
            'The X-Kloudless-Metadata header is required: {"name": ..., "parent_id": ...}.'
        )
    limit = ctx.settings.max_metadata_header_bytes
    if len(raw.encode("utf-8", "surrogateescape")) > limit:
        raise ApiError(
            431, "request_header_too_large", f"X-Kloudless-Metadata exceeds {limit} bytes."
        )
    try:
        # Headers arrive as latin-1 per WSGI; clients send UTF-8 JSON (or \\u escapes).
        text = raw.encode("latin-1").decode("utf-8")
        meta = json.loads(text)
        if "\\u" in text:
            # No lone surrogates (\ud800): only a \u escape makes one (the UTF-8 decoding
            # refused the others), so JSON without one is not encoded again to check.
            json.dumps(meta, ensure_ascii=False).encode("utf-8")
    except (UnicodeError, ValueError, RecursionError):
        raise bad_request("X-Kloudless-Metadata is not valid UTF-8 JSON.") from None
    if not isinstance(meta, dict):
        raise invalid_parameters("X-Kloudless-Metadata must be a JSON object.")
    return meta


def upload_file(ctx: RequestContext, account_id: str) -> Response:
    acc, storage = _setup(ctx, account_id)
    overwrite = ctx.arg_bool("overwrite")
    if (
        "X-Kloudless-Metadata" not in ctx.request.headers
        and ctx.request.mimetype == "application/json"
    ):
        return _upload_from_url(ctx, acc, storage, overwrite)
    meta = read_metadata(ctx)
    parent = _parent_id(meta)
    name = validate_name(meta.get("name"))
    data = _store_upload(ctx, acc, storage, parent, name, _upload_stream(ctx), overwrite)
    return json_response(data, 201)


def _parent_id(meta: dict[str, Any]) -> str:
    parent = meta.get("parent_id", "root")
    if not isinstance(parent, str) or not parent:
        raise invalid_parameters("'parent_id' must be a folder id.")
    return parent


def _store_upload(
    ctx: RequestContext,
    acc: int,
    storage: StorageBackend,
    parent: str,
    name: str,
    stream: IO[bytes],
    overwrite: bool,
) -> dict[str, Any]:
    """Store one uploaded file (the backend records its event). :returns: the file's JSON."""
    obj = storage.upload(parent, name, stream, overwrite, ctx.settings.max_upload_bytes)
    return serialize(ctx, acc, obj)


def _upload_from_url(
    ctx: RequestContext, acc: int, storage: StorageBackend, overwrite: bool
) -> Response:
    """The Saver: ``{"url", "name", "parent_id"}``, fetched by the server (see
    :mod:`kloudless.server.saver`); ``X-Kloudless-Async: true`` makes it a task."""
    body = ctx.json_body()
    url = body.get("url")
    if url is None:
        raise invalid_parameters(
            "Give the file as the body with an X-Kloudless-Metadata header, or a JSON body "
            '{"url": ..., "name": ..., "parent_id": ...} to upload from a URL.'
        )
    if not isinstance(url, str) or len(url) > 8192:
        raise invalid_parameters("'url' must be a string of at most 8192 characters.")
    parent = _parent_id(body)
    name = validate_name(body["name"] if body.get("name") is not None else saver.name_from_url(url))
    storage.get(parent, "folder")  # 404 before anything is fetched
    policy, limit = policy_for(ctx.settings), ctx.settings.max_upload_bytes

    def work() -> tuple[int, dict[str, Any]]:
        with saver.fetch(url, policy, limit) as stream:
            return 201, _store_upload(ctx, acc, storage, parent, name, stream, overwrite)

    return run_maybe_async(ctx, acc, work)


def put_file(ctx: RequestContext, account_id: str, object_id: str) -> Response:
    acc, storage = _setup(ctx, account_id)
    obj = storage.replace_contents(
        _id(object_id), _upload_stream(ctx), ctx.settings.max_upload_bytes
    )
    return json_response(serialize(ctx, acc, obj))


def file_contents(ctx: RequestContext, account_id: str, object_id: str) -> Response:
    _, storage = _setup(ctx, account_id)
    opened = storage.open_contents(_id(object_id))
    return send_contents(
        ctx, opened.stream, opened.size, opened.mime_type, opened.etag, name=opened.name
    )


def send_contents(
    ctx: RequestContext,
    stream: IO[bytes],
    size: int,
    mime_type: str,
    etag: str | None,
    *,
    name: str | None = None,
    inline: bool = False,
) -> Response:
    """Stream file bytes with ``Content-Length``, ``ETag`` and ``Range``/206/416 support.

    The stored MIME type is sent unchanged (no ``charset`` is added to ``text/*``). A
    multi-range ``Range`` header is ignored (200 with the whole body), as RFC 9110 allows.
    User content never runs on the API origin (:mod:`kloudless.server.content`): an attachment
    named ``name`` (``inline`` only for safe types), ``nosniff``, a sandboxing CSP. Each
    download holds a transfer slot until its body is closed (:mod:`..transfer_limits`: 429
    past the per-credential or per-address limit).
    """
    try:
        release = ctx.core.transfer_limits.acquire(
            DOWNLOAD,
            credential_key(ctx.request.environ.get("HTTP_AUTHORIZATION")),
            ctx.request.remote_addr,
        )
    except BaseException:
        stream.close()
        raise
    # The slot is held until the server closes the body (the last byte sent, or the client
    # gone), not merely until this handler returns: the bytes are streamed after it.
    stream = cast(IO[bytes], Releasing(stream, release))
    environ = ctx.request.environ
    plain = is_plain_download(environ)
    headers = file_headers(mime_type, size, etag, name, inline, plain)
    # A whole small file (not a HEAD, which sends nothing) goes out with its headers.
    small = size if plain and size <= SMALL_ANSWER and environ["REQUEST_METHOD"] == "GET" else -1
    body = _body(environ, stream, small=small)
    response = Response(body, headers=checked_headers(headers), direct_passthrough=True)
    if plain:
        return response
    if "," in environ.get("HTTP_RANGE", ""):
        environ = {k: v for k, v in environ.items() if k != "HTTP_RANGE"}
    try:
        response.make_conditional(environ, accept_ranges=True, complete_length=size)
    except RequestedRangeNotSatisfiable:
        stream.close()
        raise ApiError(
            416,
            "invalid_range",
            "The requested range is not satisfiable.",
            headers={"Content-Range": f"bytes */{size}"},
        ) from None
    except BaseException:
        stream.close()
        raise
    if response.status_code == 206 and _seekable(stream):
        # Serve the range as a file of its own, so that the server's file wrapper streams it
        # without a worker (werkzeug's range iterator would pin one to a slow reader).
        first, last = _content_range(response.headers["Content-Range"])
        window = cast(IO[bytes], FileSlice(stream, first, last - first + 1))
        response.response = _body(environ, window, remote=getattr(stream, "remote", False))
    return response


def is_plain_download(environ: dict[str, Any]) -> bool:
    """:returns: whether a download request asks for the whole file, unconditionally: a GET or
    HEAD without :data:`_CONDITIONAL` headers (nothing to compare or cut)."""
    return environ["REQUEST_METHOD"] in ("GET", "HEAD") and _CONDITIONAL.isdisjoint(environ)


def file_headers(
    mime_type: str, size: int, etag: str | None, name: str | None, inline: bool, plain: bool
) -> list[tuple[str, str]]:
    """:returns: the headers of a file's download (:func:`send_contents`); ``plain``
    (:func:`is_plain_download`) adds ``Accept-Ranges``, which ``make_conditional()`` adds to
    the others. Built as one list: setting headers one by one cost more than the rest of a
    small GET."""
    headers = [
        ("Content-Type", mime_type),
        *content.protection_headers(mime_type, name, inline),
        ("Content-Length", str(size)),
    ]
    if etag:
        headers.append(("ETag", quote_etag(etag)))
    if plain:
        # The whole file, as make_conditional() would answer it (the HTTP server adds the
        # Date header).
        headers.append(("Accept-Ranges", "bytes"))
    return headers


#: The request headers that make a download partial or conditional (``make_conditional()``).
_CONDITIONAL = frozenset(
    (
        "HTTP_RANGE",
        "HTTP_IF_RANGE",
        "HTTP_IF_MATCH",
        "HTTP_IF_NONE_MATCH",
        "HTTP_IF_MODIFIED_SINCE",
        "HTTP_IF_UNMODIFIED_SINCE",
    )
)


#: A whole local file up to this size is read by the handler and answered as bytes
#: (:class:`SmallBody`): the HTTP server then writes headers and body to the socket at once,
#: instead of the headers first and then the file through its file wrapper (a second write,
#: and the wrapper's seeks); see docs/performance.rst.
SMALL_ANSWER = 64 * 1024


class SmallBody:
    """The whole body of a small file answer, read at once: one item, and :meth:`close`
    closes the file (which frees its transfer slot, as for a streamed answer).

    :param stream: the file, at its start. :param size: its size (what ``Content-Length`` says).
    """

    def __init__(self, stream: IO[bytes], size: int) -> None:
        self._stream = stream
        try:
            self._chunks = [stream.read(size)]
        except BaseException:
            stream.close()
            raise

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._chunks)

    def __len__(self) -> int:
        return 1

    def close(self) -> None:
        self._stream.close()


def _body(
    environ: dict[str, Any], stream: IO[bytes], remote: bool = False, small: int = -1
) -> Iterable[bytes]:
    """:returns: the response body of a file: through the server's file wrapper (streamed by
    its I/O thread), except for a remote blob (``remote``: reads wait on the network, which
    must not stall the I/O loop), which a worker streams, and a whole local file of ``small``
    bytes (0 or more, at most :data:`SMALL_ANSWER`), which is read now (:class:`SmallBody`)."""
    if remote or getattr(stream, "remote", False):
        return FileWrapper(stream, 256 * 1024)
    if small >= 0:
        return SmallBody(stream, small)
    return wrap_file(environ, stream)


def _seekable(stream: IO[bytes]) -> bool:
    try:
        return bool(stream.seekable())
    except (AttributeError, OSError, ValueError):
        return False


def _content_range(header: str) -> tuple[int, int]:
    """:returns: ``(first, last)`` of a ``bytes first-last/size`` header werkzeug wrote."""
    span = header.split(" ", 1)[1].split("/", 1)[0]
    first, last = span.split("-", 1)
    return int(first), int(last)


# -- search, recent, quota ----------------------------------------------------------------------
def search(ctx: RequestContext, account_id: str) -> Response:
    accounts = ctx.accounts(account_id)
    query = ctx.request.args.get("q", "")
    if not query.strip():
        raise invalid_parameters("query parameter 'q' must be a string of at least 1 character")
    ctx.page_params()
    parents_arg = ctx.request.args.get("parents")
    parents = [p for p in parents_arg.split(",") if p] if parents_arg else None
    items: list[dict[str, Any]] = []
    for account in accounts:
        storage = ctx.storage(account)
        acc = int(account["id"])
        items.extend(serialize(ctx, acc, o) for o in storage.search(query, parents))
    return json_response(ctx.object_list(items, "storage"))


def recent(ctx: RequestContext, account_id: str) -> Response:
    accounts = ctx.accounts(account_id)
    ctx.page_params()
    after = ctx.request.args.get("after")
    since = _normalize_time(after) if after is not None else None
    items: list[dict[str, Any]] = []
    if after is None or since is not None:  # an unparseable 'after' gives an empty list
        for account in accounts:
            storage = ctx.storage(account)
            acc = int(account["id"])
            items.extend(serialize(ctx, acc, o) for o in storage.recent(since))
    items.sort(key=lambda item: str(item.get("modified") or ""), reverse=True)
    return json_response(ctx.object_list(items, "storage", with_total=True))


#: A ``+hh:mm`` offset whose ``+`` an unencoded query string turned into a space.
_SPACED_OFFSET = re.compile(r"(\d{2}:\d{2}:\d{2}(?:[.,]\d+)?) (\d{2}(?::?\d{2})?)$")


def _normalize_time(value: str) -> str | None:
    """Read ``after`` in every form Python and JS clients send: ``T`` or a space between date
    and time, ``Z`` or an offset (also ``+00:00`` sent unencoded, whose ``+`` arrives as a
    space), with or without fractions.

    :returns: the value as a UTC ``...Z`` time, or None if it is not a time (empty list).
    :raises ApiError: 400 for a time outside the representable range.
    """
    try:
        return format_utc(parse_datetime(_SPACED_OFFSET.sub(r"\1+\2", value.strip())))
    except ValueError as exc:
        if "out of range" in str(exc):
            raise invalid_parameters("Parameter 'after' is out of range.") from None
        return None


def quota(ctx: RequestContext, account_id: str) -> Response:
    acc, storage = _setup(ctx, account_id)
    data: dict[str, Any] = {
        "api": "storage",
        "type": "quota",
        "id": "quota",
        "href": ctx.href(f"accounts/{acc}/storage/quota"),
    }
    data.update(storage.quota())
    return json_response(data)


ROUTES = [
    Route(A + "/folders", ("POST",), create_folder),
    Route(A + "/folders/<object_id>", ("GET",), get_object("folder")),
    Route(A + "/folders/<object_id>", ("PATCH",), patch_object("folder")),
    Route(A + "/folders/<object_id>", ("DELETE",), delete_object("folder")),
    Route(A + "/folders/<object_id>/contents", ("GET",), folder_contents),
    Route(A + "/folders/<object_id>/copy", ("POST",), copy_object("folder")),
    Route(A + "/files", ("POST",), upload_file, body=BODY_UPLOAD, precheck=upload_precheck),
    Route(A + "/files/<object_id>", ("GET",), get_object("file")),
    Route(A + "/files/<object_id>", ("PUT",), put_file, body=BODY_UPLOAD, precheck=upload_precheck),
    Route(A + "/files/<object_id>", ("PATCH",), patch_object("file")),
    Route(A + "/files/<object_id>", ("DELETE",), delete_object("file")),
    Route(A + "/files/<object_id>/contents", ("GET",), file_contents),
    Route(A + "/files/<object_id>/copy", ("POST",), copy_object("file")),
    Route(A + "/search", ("GET",), search),
    Route(A + "/recent", ("GET",), recent),
    Route(A + "/quota", ("GET",), quota),
]
