"""Build the OpenAPI 3.1 document from the routing table and the route descriptions.

The routing table gives each operation's path, methods, credentials, API family and body
kind; :data:`OPERATIONS` (one ``<area>.py`` module per API area) gives what a table cannot
say: parameters, request bodies, answers. :func:`missing` and :func:`unknown` keep the two in
step (a test fails for a route without a description, and for a description without a route).

Adding a route: add its description to the area's module, keyed ``"METHOD <Route.path>"``
exactly as the route is written (werkzeug syntax). The error answers (the JSON error contract)
are added here from the route (:func:`error_statuses`), so a description lists only its
successful answers and the errors particular to it.
"""

from __future__ import annotations

import http
import re
from collections.abc import Iterable, Sequence
from typing import Any

from ..context import MAX_PAGE
from ..idempotency import IDEMPOTENT_METHODS
from ..routing import (
    AUTH_ANY,
    AUTH_APP,
    AUTH_DEVELOPER,
    AUTH_META,
    AUTH_NONE,
    BODY_UPLOAD,
    Route,
)
from ..scopes import FAMILIES
from . import calendar, contacts, core, events, meta, storage, team
from .model import Op, Param, Reply, ref
from .schemas import SCHEMAS

__all__ = [
    "OPERATIONS",
    "build",
    "error_statuses",
    "missing",
    "openapi_path",
    "operation_key",
    "operations_of",
    "stub",
    "unknown",
]

#: Every route description, by :func:`operation_key`.
OPERATIONS: dict[str, Op] = {
    **core.OPERATIONS,
    **storage.OPERATIONS,
    **events.OPERATIONS,
    **calendar.OPERATIONS,
    **contacts.OPERATIONS,
    **team.OPERATIONS,
    **meta.OPERATIONS,
}

#: Who may call: the security requirements of each ``Route.auth`` level.
SECURITY: dict[str, list[dict[str, list[str]]]] = {
    AUTH_NONE: [],
    AUTH_ANY: [{"Bearer": []}, {"APIKey": []}],
    AUTH_APP: [{"APIKey": []}, {"Bearer": []}],
    AUTH_META: [{"APIKey": []}, {"Bearer": []}, {"DeveloperKey": []}],
    AUTH_DEVELOPER: [{"DeveloperKey": []}],
}

SECURITY_SCHEMES: dict[str, Any] = {
    "Bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": (
            "An account's access token (``Authorization: Bearer TOKEN``), from the OAuth flow "
            "or ``kloudless accounts token``; its scope must cover the route's family. "
            "Several comma-separated tokens reach several accounts (``events``, ``accounts``)."
        ),
    },
    "APIKey": {
        "type": "http",
        "scheme": "APIKey",
        "description": (
            "The application's API key (``Authorization: APIKey KEY``): every account of the "
            "application, and the Meta API."
        ),
    },
    "DeveloperKey": {
        "type": "http",
        "scheme": "DeveloperKey",
        "description": (
            "The operator's developer key (``Authorization: DeveloperKey KEY``): the "
            "applications themselves."
        ),
    },
}

PARAMETERS: dict[str, Any] = {
    "Page": {
        "name": "page",
        "in": "query",
        "description": "The page to return, from 1 (``next_page`` of the previous one).",
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE},
    },
    "PageSize": {
        "name": "page_size",
        "in": "query",
        "description": "Objects per page (at most the server's ``max_page_size``).",
        "schema": {"type": "integer", "minimum": 1},
    },
    "RawData": {
        "name": "X-Kloudless-Raw-Data",
        "in": "header",
        "description": "``true``: add the upstream's own data as ``raw``.",
        "schema": {"type": "string", "enum": ["true", "false"]},
    },
    "AsUser": {
        "name": "X-Kloudless-As-User",
        "in": "header",
        "description": "Admin accounts: act as this team user (a team user's id).",
        "schema": {"type": "string"},
    },
    "IdempotencyKey": {
        "name": "Idempotency-Key",
        "in": "header",
        "description": (
            "A repeat with the same key, method, path and body gets the first answer again "
            "instead of doing the work twice (for 24 hours)."
        ),
        "schema": {"type": "string", "maxLength": 255},
    },
}

#: Why each error status is answered (every error body is the ``Error`` schema).
ERROR_REASONS: dict[int, str] = {
    400: "Bad request: malformed or invalid parameters (``invalid_parameters``, ``bad_request``).",
    401: "No valid credentials (``authentication_required``, ``invalid_token``).",
    403: "The credentials do not allow this (``forbidden``; a token's scope).",
    404: "No such object, account or page (``not_found``).",
    409: "A conflict: a name in use, or the same Idempotency-Key still running.",
    410: "Gone (an expired link).",
    412: "The ``If-Match`` etag no longer matches (``precondition_failed``).",
    413: "The body is over the route's limit (``request_too_large``).",
    415: "An unsupported body type.",
    416: "The ``Range`` cannot be satisfied.",
    422: "The Idempotency-Key was used for another request.",
    429: "Too many requests or failed logins; see ``Retry-After``.",
    431: "A header is over its limit.",
    501: "The account's service has no such API (``not_implemented``).",
    502: "The upstream service failed.",
    507: "No room: the disk or the account's quota is full (``insufficient_storage``).",
}

#: What the URL variables are (those not listed are the ids their names say).
PATH_VARIABLES = {
    "account_id": "The account's id, or ``me`` (the Bearer token's account).",
    "object_id": "The file's or folder's id (``root``: the account's root folder).",
    "app_id": "The application's id.",
    "calendar_id": "The calendar's id (``primary``: the account's primary calendar).",
    "event_id": "The event's id.",
    "link_id": "The link's id.",
    "session_id": "The multipart upload's id.",
    "task_id": "The task's id.",
    "contact_id": "The contact's id.",
    "group_id": "The group's id.",
    "user_id": "The team user's id (what ``X-Kloudless-As-User`` takes).",
    "domain_id": "The trusted domain's id.",
    "rest": "The rest of the path.",
    "name": "The file's name.",
}

#: The families whose routes reach a connector (which may lack the API: 501).
CONNECTOR_FAMILIES = frozenset({"storage", "calendar", "contacts", "raw", "team"})

_RULE_VARIABLE = re.compile(r"<(?:(?P<converter>\w+)(?:\([^)]*\))?:)?(?P<name>\w+)>")


def operation_key(method: str, route: Route) -> str:
    """:returns: the key of a route's description: ``"GET /accounts/<account_id>"``."""
    return f"{method} {route.path}"


def operations_of(routes: Iterable[Route]) -> list[tuple[str, Route]]:
    """:returns: ``(method, route)`` for every operation of ``routes``, in table order."""
    return [(method, route) for route in routes for method in route.methods]


def missing(routes: Iterable[Route]) -> list[str]:
    """:returns: the keys of the operations that have no description."""
    return [
        operation_key(method, route)
        for method, route in operations_of(routes)
        if operation_key(method, route) not in OPERATIONS
    ]


def unknown(routes: Iterable[Route]) -> list[str]:
    """:returns: the description keys that name no operation of ``routes``."""
    known = {operation_key(method, route) for method, route in operations_of(routes)}
    return sorted(set(OPERATIONS) - known)


def stub(key: str) -> str:
    """:returns: a description to paste into the area's module for an undescribed route."""
    return f'    "{key}": Op("One-line summary", {{200: Reply.of("What it answers.", "Schema")}}),'


def openapi_path(route: Route) -> str:
    """:returns: the OpenAPI path of a route: ``/v1/accounts/{account_id}``."""
    path = _RULE_VARIABLE.sub(lambda m: "{" + m.group("name") + "}", route.path)
    return ("/v1" + path) if route.prefix else path


def _path_parameters(route: Route) -> list[dict[str, Any]]:
    params = []
    for match in _RULE_VARIABLE.finditer(route.path):
        name = match.group("name")
        schema: dict[str, Any] = {"type": "string", "minLength": 1}
        if match.group("converter") == "int":
            schema = {"type": "integer", "minimum": 0}
        elif match.group("converter") != "path":
            schema["pattern"] = "^[^/]+$"
        param = {"name": name, "in": "path", "required": True, "schema": schema}
        if name in PATH_VARIABLES:
            param["description"] = PATH_VARIABLES[name]
        params.append(param)
    return params


def _parameter(param: Param) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": param.name,
        "in": param.where,
        "description": param.description,
        "schema": param.schema,
    }
    if param.required:
        data["required"] = True
    return data


def error_statuses(method: str, route: Route, op: Op) -> list[int]:
    """:returns: the error statuses an operation can answer (all in the JSON error contract).

    Every operation: 400 (bad parameters, unknown ``Host``) and 429 (rate limits); with
    credentials: 401, 403; with path variables or pages: 404; keyed writes: 409 and 422;
    uploads: 413 and 507; routes that reach a connector: 501; plus the operation's own.
    """
    codes = {400, 429, *op.errors}
    if route.auth != AUTH_NONE:
        codes |= {401, 403}
        if method in IDEMPOTENT_METHODS:
            codes |= {409, 422}
    if "<" in route.path or op.paged:
        codes.add(404)
    if route.body == BODY_UPLOAD:
        codes |= {413, 507}
    if method in IDEMPOTENT_METHODS or method == "PUT":
        codes.add(413)
    if route.family in CONNECTOR_FAMILIES:
        codes |= {501, 502}
    return sorted(code for code in codes if code not in op.replies)


def _reply(reply: Reply) -> dict[str, Any]:
    data: dict[str, Any] = {"description": reply.description}
    if reply.content:
        data["content"] = {media: {"schema": schema} for media, schema in reply.content.items()}
    return data


def _operation(method: str, route: Route, op: Op) -> dict[str, Any]:
    parameters: list[dict[str, Any]] = _path_parameters(route)
    parameters += [_parameter(p) for p in op.params]
    if op.paged:
        parameters += [{"$ref": "#/components/parameters/Page"}]
        if not any(p.name == "page_size" for p in op.params):
            parameters += [{"$ref": "#/components/parameters/PageSize"}]
    if route.auth != AUTH_NONE:
        parameters.append({"$ref": "#/components/parameters/RawData"})
        if route.path.startswith("/accounts/<account_id>"):
            parameters.append({"$ref": "#/components/parameters/AsUser"})
        if method in IDEMPOTENT_METHODS:
            parameters.append({"$ref": "#/components/parameters/IdempotencyKey"})
    responses = {str(code): _reply(reply) for code, reply in sorted(op.replies.items())}
    for code in error_statuses(method, route, op):
        responses[str(code)] = {"$ref": f"#/components/responses/Error{code}"}
    data: dict[str, Any] = {
        "operationId": _operation_id(method, route),
        "summary": op.summary,
        "tags": [route.family or "public"],
        "parameters": parameters,
        "responses": responses,
        "security": SECURITY[route.auth],
    }
    if op.description:
        data["description"] = op.description
    if op.body is not None:
        body: dict[str, Any] = {
            "required": op.body.required,
            "content": {media: {"schema": s} for media, s in op.body.content.items()},
        }
        if op.body.description:
            body["description"] = op.body.description
        data["requestBody"] = body
    return data


def _operation_id(method: str, route: Route) -> str:
    words = [
        w for w in re.split(r"[^A-Za-z0-9]+", _RULE_VARIABLE.sub(r"\g<name>", route.path)) if w
    ]
    return (
        "_".join([method.lower(), *words])
        if route.prefix
        else "_".join([method.lower(), "site", *words])
    )


def build(routes: Sequence[Route], server_url: str = "/") -> dict[str, Any]:
    """:returns: the OpenAPI 3.1 document describing ``routes``.

    :param server_url: the server's base URL (``servers``).
    :raises KeyError: for a route without a description (see :func:`missing`).
    """
    paths: dict[str, dict[str, Any]] = {}
    for method, route in operations_of(routes):
        op = OPERATIONS[operation_key(method, route)]
        paths.setdefault(openapi_path(route), {})[method.lower()] = _operation(method, route, op)
    families = sorted({route.family or "public" for route in routes})
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Kloudless-compatible REST API",
            "version": "1",
            "description": (
                "The REST API v1 of a self-hosted Kloudless-compatible server. Every path "
                "under ``/v1`` is also served under ``/v2``. Errors are JSON "
                "``{status_code, error_code, message, id}``; lists are ``object_list`` "
                "envelopes paged with ``page``/``next_page``."
            ),
        },
        "servers": [{"url": server_url}],
        "tags": [{"name": name, "description": FAMILIES.get(name, "")} for name in families],
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "parameters": PARAMETERS,
            "securitySchemes": SECURITY_SCHEMES,
            "responses": {
                f"Error{code}": {
                    "description": f"{http.HTTPStatus(code).phrase}. {reason}",
                    "content": {"application/json": {"schema": ref("Error")}},
                }
                for code, reason in ERROR_REASONS.items()
            },
        },
    }
