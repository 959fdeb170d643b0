"""The vocabulary of route descriptions: :class:`Op`, :class:`Param`, :class:`Body`, schemas.

A route's description says what the routing table cannot: its parameters, its request body and
its answers. The routing table (:mod:`kloudless.server.api`) gives the path, the methods, the
credentials (``auth``), the API family and the body kind; :mod:`.document` joins both into the
OpenAPI document. Schemas are plain JSON Schema dicts (OpenAPI 3.1 is JSON Schema 2020-12);
:func:`ref` points at a named one in :mod:`.schemas`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Body",
    "Op",
    "Param",
    "Reply",
    "Schema",
    "array",
    "bool_param",
    "form",
    "header",
    "int_param",
    "json",
    "listing",
    "obj",
    "query",
    "raw",
    "ref",
]

Schema = dict[str, Any]


def ref(name: str) -> Schema:
    """:returns: a reference to the named schema in ``components/schemas``."""
    return {"$ref": f"#/components/schemas/{name}"}


def listing(item: str | Schema) -> Schema:
    """:returns: the ``object_list`` paging envelope whose ``objects`` are ``item``."""
    items = ref(item) if isinstance(item, str) else item
    return {
        "allOf": [ref("ObjectList"), {"type": "object", "properties": {"objects": array(items)}}]
    }


def array(items: Schema) -> Schema:
    """:returns: an array schema."""
    return {"type": "array", "items": items}


def obj(required: tuple[str, ...] = (), /, **properties: Schema) -> Schema:
    """:returns: an object schema that allows properties it does not name."""
    schema: Schema = {"type": "object", "properties": dict(properties)}
    if required:
        schema["required"] = list(required)
    return schema


@dataclass(frozen=True)
class Param:
    """A query or header parameter (path parameters come from the route's path)."""

    name: str
    where: str  # "query" or "header"
    description: str
    schema: Schema = field(default_factory=lambda: {"type": "string"})
    required: bool = False
    #: A value for the REST reference's examples.
    example: Any = None


def query(name: str, description: str, schema: Schema | None = None, **kw: Any) -> Param:
    """:returns: a query parameter (a string unless ``schema`` says otherwise)."""
    return Param(name, "query", description, schema or {"type": "string"}, **kw)


def header(name: str, description: str, schema: Schema | None = None, **kw: Any) -> Param:
    """:returns: a header parameter."""
    return Param(name, "header", description, schema or {"type": "string"}, **kw)


def bool_param(name: str, description: str, **kw: Any) -> Param:
    """:returns: a boolean query parameter (``true``/``false``/``1``/``0``)."""
    return Param(name, "query", description, {"type": "boolean"}, **kw)


def int_param(name: str, description: str, minimum: int = 1, **kw: Any) -> Param:
    """:returns: an integer query parameter."""
    return Param(name, "query", description, {"type": "integer", "minimum": minimum}, **kw)


@dataclass(frozen=True)
class Body:
    """A request body: one schema per media type."""

    content: Mapping[str, Schema]
    description: str = ""
    required: bool = True
    #: The body of the REST reference's example (JSON-able for JSON bodies).
    example: Any = None


def json(schema: Schema, description: str = "", required: bool = True, **kw: Any) -> Body:
    """:returns: a JSON request body."""
    return Body({"application/json": schema}, description, required, **kw)


def form(schema: Schema, description: str = "", required: bool = True, **kw: Any) -> Body:
    """:returns: a form-encoded request body (JSON is accepted too)."""
    return Body(
        {"application/x-www-form-urlencoded": schema, "application/json": schema},
        description,
        required,
        **kw,
    )


def raw(description: str, media_type: str = "application/octet-stream", **kw: Any) -> Body:
    """:returns: a request body of raw bytes (file uploads)."""
    return Body({media_type: {"type": "string", "format": "binary"}}, description, **kw)


@dataclass(frozen=True)
class Reply:
    """One answer of an operation: a description and its body per media type (none: empty)."""

    description: str
    content: Mapping[str, Schema] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, description: str, schema: Schema | str) -> Reply:
        """:returns: a JSON answer (``schema`` may name a component schema)."""
        return cls(
            description, {"application/json": ref(schema) if isinstance(schema, str) else schema}
        )


@dataclass(frozen=True)
class Op:
    """The description of one operation (one method of one route).

    :param summary: one line, shown in the REST reference's table of contents.
    :param replies: the successful answers by status code (errors are added from the route:
        every operation answers the JSON error contract).
    :param errors: error statuses this operation can answer beyond those every operation of
        its kind gets (see :func:`kloudless.server.apidoc.document.error_statuses`).
    :param paged: adds the ``page`` and ``page_size`` query parameters.
    :param example: what the REST reference's ``curl`` example uses: path values by name
        (``{"object_id": "$FILE_ID"}``), overriding the defaults of
        :data:`kloudless.server.apidoc.document.EXAMPLE_VALUES`.
    """

    summary: str
    replies: Mapping[int, Reply]
    description: str = ""
    params: tuple[Param, ...] = ()
    body: Body | None = None
    errors: tuple[int, ...] = ()
    paged: bool = False
    example: Mapping[str, str] = field(default_factory=dict)
    #: The credential of the ``curl`` example (``Bearer``, ``APIKey``) when not the route's
    #: usual one (Bearer, or APIKey for application routes).
    credential: str = ""
    #: Run by the REST reference's example test? False for operations whose example cannot
    #: succeed on a fresh local server (an upstream is needed).
    runnable: bool = True
