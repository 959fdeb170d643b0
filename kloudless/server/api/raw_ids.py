"""Native ("raw") id conversion (spec §5.1): ``POST accounts/{id}/encode_raw_id`` and the
deprecated ``POST accounts/{id}/storage/convert_id``.

A storage object's ``raw_id`` is the upstream's own id of it (``local``: the id itself; WebDAV:
the path below the account's root). Kloudless client code keeps raw ids (from
``X-Kloudless-Raw-Data``) and turns them back into API ids with these calls.
"""

from __future__ import annotations

from typing import Any

from werkzeug.wrappers import Response

from ..connectors.base import StorageObject
from ..context import RequestContext
from ..errors import invalid_parameters
from ..responses import json_response
from ..routing import Route

#: Longest raw id accepted (the API's ids are at most 8192 characters too).
MAX_RAW_ID = 8192


def _raw_id(body: dict[str, Any]) -> str:
    # The Java SDK's test sends {"id": "root"}; everyone else sends "raw_id".
    value = body.get("raw_id", body.get("id"))
    if not isinstance(value, str) or not value or len(value) > MAX_RAW_ID:
        raise invalid_parameters(
            f"'raw_id' must be a non-empty string of at most {MAX_RAW_ID} characters."
        )
    return value


def _find(ctx: RequestContext, account_id: str) -> StorageObject:
    storage = ctx.storage(ctx.account(account_id))
    body = ctx.json_body()
    kind = body.get("type")  # optional: without it, a file or a folder
    if kind is not None and kind not in ("file", "folder"):
        raise invalid_parameters("'type' must be 'file' or 'folder'.")
    return storage.find_raw_id(_raw_id(body), kind)


def convert_id(ctx: RequestContext, account_id: str) -> Response:
    obj = _find(ctx, account_id)
    return json_response({"id": obj.id, "type": obj.type})


def encode_raw_id(ctx: RequestContext, account_id: str) -> Response:
    return json_response({"id": _find(ctx, account_id).id})


ROUTES = [
    Route("/accounts/<account_id>/storage/convert_id", ("POST",), convert_id),
    Route("/accounts/<account_id>/encode_raw_id", ("POST",), encode_raw_id),
]
