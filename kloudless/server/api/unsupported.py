"""Kloudless v1 endpoints this server knows but does not implement: a clear 501
``not_implemented`` instead of a generic 404, plus ``GET /v1/public/services``."""

from __future__ import annotations

from typing import Callable

from werkzeug.wrappers import Response

from ..connectors.registry import get_connector, services
from ..context import RequestContext
from ..errors import not_implemented
from ..responses import json_response
from ..routing import AUTH_NONE, Route

A = "/accounts/<account_id>"


def unsupported(what: str) -> Callable[..., Response]:
    def handler(ctx: RequestContext, account_id: str, **_: str) -> Response:
        ctx.account(account_id)  # authenticate and check the account first
        raise not_implemented(f"{what} is not supported by this server.")

    return handler


def public_services(ctx: RequestContext) -> Response:
    objects = []
    for name in services():
        connector = get_connector(name)
        objects.append(
            {
                "id": name,
                "name": name,
                "friendly_name": connector.service_name,
                "apis": list(connector.apis),
                "api": "core",
                "type": "service",
                "href": ctx.href(f"public/services?id={name}"),
            }
        )
    return json_response(ctx.object_list(objects, "core"))


#: ``(path, methods, what, API family)``.
_UNSUPPORTED = [
    ("/storage/files/<object_id>/thumbnail", ("GET",), "Thumbnails", "storage"),
    ("/storage/files/<object_id>/permissions", ("GET", "PUT", "PATCH"), "Permissions", "storage"),
    ("/storage/folders/<object_id>/permissions", ("GET", "PUT", "PATCH"), "Permissions", "storage"),
    ("/storage/files/<object_id>/properties", ("GET", "PATCH", "DELETE"), "Properties", "storage"),
    ("/storage/files/upload_url", ("POST",), "Upload URLs", "storage"),
    ("/crm/<path:rest>", ("GET", "POST", "PATCH", "DELETE"), "This CRM object type", "contacts"),
]

ROUTES = [
    Route(A + path, methods, unsupported(what), family=family)
    for path, methods, what, family in _UNSUPPORTED
] + [Route("/public/services", ("GET",), public_services, auth=AUTH_NONE, family="public")]
