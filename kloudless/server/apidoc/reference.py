"""The REST reference: reStructuredText and ``curl`` examples made from the OpenAPI document.

The docs' ``rest-reference`` directive (``docs/_ext/rest_reference.py``) renders
:func:`reference_rst`; ``tests/openapi/test_rest_examples.py`` runs every :func:`examples`
command against a live server, so the examples shown are the examples tested.

The commands use the variables ``kloudless serve`` prints on its first start
(``KLOUDLESS_BASE_URL``, ``KLOUDLESS_TOKEN``, ``KLOUDLESS_API_KEY``, ``KLOUDLESS_APP_ID``,
``KLOUDLESS_ACCOUNT_ID``) and, for objects, variables such as ``$FILE_ID`` named in the
description's ``example`` (:attr:`kloudless.server.apidoc.model.Op.example`).
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..routing import AUTH_APP, AUTH_DEVELOPER, AUTH_META, AUTH_NONE, Route
from .document import OPERATIONS, build, openapi_path, operation_key, operations_of
from .model import Op

__all__ = ["AREAS", "Example", "examples", "reference_rst"]

#: The reference's sections: (title, API families), in reading order.
AREAS: list[tuple[str, tuple[str, ...]]] = [
    ("Accounts and tasks", ("account",)),
    ("Storage", ("storage",)),
    ("Activity events", ("events",)),
    ("Calendars", ("calendar",)),
    ("Contacts", ("contacts",)),
    ("Teams", ("team",)),
    ("Applications (Meta API)", ("meta",)),
    ("Pass-through", ("raw",)),
    ("OAuth", ("oauth",)),
    ("Public pages and links", ("public",)),
]

#: Path values of the examples, unless the description's ``example`` names others.
EXAMPLE_VALUES = {
    "app_id": "$KLOUDLESS_APP_ID",
    "object_id": "$FILE_ID",
}

_VARIABLE = re.compile(r"\$([A-Z_]+)")

#: The longest line of an example: what a code block of the docs' theme shows at desktop width
#: without scrolling (the docs' other code blocks keep to it too: tests/docs/test_doc_layout.py).
#: Longer commands go on on the next line after ``\``, longer JSON bodies are indented.
WIDTH = 88
#: Where the continuation lines of a command start.
CONTINUATION = "    "


@dataclass(frozen=True)
class Example:
    """One operation's ``curl`` example."""

    key: str  #: the description's key, ``"GET /accounts/<account_id>"``
    command: str  #: the shell command, lines joined by ``\\`` + newline
    statuses: frozenset[int]  #: the answers it may get (the operation's documented replies)
    runnable: bool  #: whether the test runs it (False: it needs an upstream or a browser)

    @property
    def variables(self) -> set[str]:
        """:returns: the shell variables the command uses."""
        return set(_VARIABLE.findall(self.command))


def _credential(route: Route, op: Op) -> str | None:
    if op.credential:
        return op.credential
    if route.auth == AUTH_NONE:
        return None
    if route.auth == AUTH_DEVELOPER:
        return "DeveloperKey"
    return "APIKey" if route.auth in (AUTH_APP, AUTH_META) else "Bearer"


def _quote(value: str) -> str:
    """Shell-quote ``value`` so that ``$VARIABLES`` in it still expand."""
    if "$" not in value:
        return shlex.quote(value)
    return '"' + re.sub(r'(["\\`])', r"\\\1", value) + '"'


def _command(method: str, route: Route, op: Op) -> str:
    credential = _credential(route, op)
    values = dict(EXAMPLE_VALUES)
    values["account_id"] = "me" if credential == "Bearer" else "$KLOUDLESS_ACCOUNT_ID"
    values.update(op.example)
    path = re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), m.group(1)), openapi_path(route))
    query = [
        f"{p.name}={p.example}" for p in op.params if p.where == "query" and p.example is not None
    ]
    url = "$KLOUDLESS_BASE_URL" + path + ("?" + "&".join(query) if query else "")
    # A GET whose URL would not fit on a line sends its query with -G instead.
    separate = method == "GET" and bool(query) and not _fits(_quote(url))
    if separate:
        url = "$KLOUDLESS_BASE_URL" + path
    lines = ["curl -sS" + (" -G" if separate else "" if method == "GET" else f" -X {method}")]
    lines.append(_quote(url))
    if credential is not None:
        variable = {
            "Bearer": "KLOUDLESS_TOKEN",
            "APIKey": "KLOUDLESS_API_KEY",
            "DeveloperKey": "KLOUDLESS_DEVELOPER_KEY",
        }[credential]
        lines.append(f'-H "Authorization: {credential} ${variable}"')
    for param in op.params:
        if param.where == "header" and param.example is not None:
            lines.append("-H " + _quote(f"{param.name}: {param.example}"))
    if separate:
        lines += [f"--data-urlencode {_quote(item)}" for item in query]
    body = op.body
    if body is not None and body.example is not None:
        media = next(iter(body.content))
        if isinstance(body.example, str) and body.example.startswith("@"):
            lines.append("-H " + _quote(f"Content-Type: {media}"))
            lines.append(f"--data-binary {body.example}")
        elif media == "application/x-www-form-urlencoded":
            lines += [f"--data-urlencode {_quote(f'{k}={v}')}" for k, v in body.example.items()]
        elif media == "application/json":
            lines.append('-H "Content-Type: application/json"')
            lines.append("-d " + _json_argument(body.example))
        else:
            lines.append("-H " + _quote(f"Content-Type: {media}"))
            lines.append("--data-binary " + _quote(str(body.example)))
    return f" \\\n{CONTINUATION}".join(lines)


def _fits(argument: str) -> bool:
    """:returns: whether ``argument`` fits on a continuation line of an example."""
    return len(CONTINUATION) + len(argument) + len(" \\") <= WIDTH


def _json_argument(value: Any) -> str:
    """:returns: ``value`` as one quoted shell word: on one line when it fits, else as indented
    JSON over several lines (inside the quotes, so the shell keeps the line breaks)."""
    flat = _quote(json.dumps(value))
    if _fits("-d " + flat):
        return flat
    pretty = json.dumps(value, indent=2).replace("\n", "\n" + CONTINUATION + "   ")
    return _quote(pretty)


def examples(routes: Sequence[Route]) -> list[Example]:
    """:returns: the ``curl`` example of every operation of ``routes``, in table order."""
    found = []
    for method, route in operations_of(routes):
        key = operation_key(method, route)
        op = OPERATIONS[key]
        command = _command(method, route, op)
        found.append(Example(key, command, frozenset(op.replies), op.runnable))
    return found


def _indent(text: str, prefix: str = "   ") -> str:
    return "\n".join(prefix + line if line else "" for line in text.splitlines())


def _params_table(operation: dict[str, Any], document: dict[str, Any]) -> list[str]:
    rows = []
    for param in operation["parameters"]:
        if "$ref" in param:
            param = document["components"]["parameters"][param["$ref"].rsplit("/", 1)[1]]
        kind = param["in"] + (", required" if param.get("required") else "")
        schema = param.get("schema", {})
        kind += f", {schema['type']}" if isinstance(schema.get("type"), str) else ""
        text = " ".join(param.get("description", "").split()) or "\\"
        rows.append(f"   * - ``{param['name']}``\n     - {kind}\n     - {text}")
    if not rows:
        return []
    return [
        ".. list-table::",
        "   :header-rows: 1",
        "   :widths: 25 20 55",
        "",
        "   * - Parameter\n     - In\n     - Meaning",
        *rows,
        "",
    ]


def _schema_name(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        return "``" + schema["$ref"].rsplit("/", 1)[1] + "``"
    if "allOf" in schema:  # the object_list envelope of listing()
        items = schema["allOf"][1]["properties"]["objects"]["items"]
        return f"``object_list`` of {_schema_name(items)}"
    return "``" + str(schema.get("type", "object")) + "``"


def _answers(operation: dict[str, Any]) -> list[str]:
    lines = []
    for code, answer in operation["responses"].items():
        if "$ref" in answer:
            continue
        content = answer.get("content", {})
        bodies = ", ".join(f"{media} {_schema_name(c['schema'])}" for media, c in content.items())
        text = " ".join(answer["description"].split())
        lines.append(f"* **{code}**: {text}" + (f" ({bodies})" if bodies else ""))
    errors = [code for code, answer in operation["responses"].items() if "$ref" in answer]
    if errors:
        lines.append("* errors (``Error``): " + ", ".join(errors))
    return [*lines, ""]


def reference_rst(routes: Sequence[Route]) -> str:
    """:returns: the REST reference's body: a section per API area, an entry per operation."""
    document = build(routes)
    by_key = {ex.key: ex for ex in examples(routes)}
    out: list[str] = []
    for title, families in AREAS:
        entries = [
            (method, route)
            for method, route in operations_of(routes)
            if (route.family or "public") in families
        ]
        if not entries:
            continue
        out += [title, "-" * len(title), ""]
        for method, route in entries:
            path = openapi_path(route)
            operation = document["paths"][path][method.lower()]
            heading = f"{method} {path}"
            out += [heading, "~" * len(heading), "", operation["summary"] + ".", ""]
            if operation.get("description"):
                out += [" ".join(operation["description"].split()), ""]
            security = [name for requirement in operation["security"] for name in requirement]
            out += [
                "Credentials: " + (", ".join(security) if security else "none") + ".",
                "",
            ]
            out += _params_table(operation, document)
            body = operation.get("requestBody")
            if body:
                kinds = ", ".join(
                    f"{media} {_schema_name(c['schema'])}" for media, c in body["content"].items()
                )
                text = " ".join(body.get("description", "").split())
                out += [f"Body: {kinds}" + (f". {text}" if text else "."), ""]
            out += _answers(operation)
            example = by_key[operation_key(method, route)]
            out += [".. code-block:: sh", "", _indent(example.command), ""]
    return "\n".join(out)
