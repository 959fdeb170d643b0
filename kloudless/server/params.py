"""Parsing request input: query values, small bodies (JSON objects, forms)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import IO, Any
from urllib.parse import parse_qsl

from werkzeug.wrappers import Request

from .errors import ApiError, invalid_parameters, too_large

#: Largest integer SQLite stores; larger ids and cursors are refused before they reach a query.
SQLITE_MAX_INT = 2**63 - 1

__all__ = [
    "SQLITE_MAX_INT",
    "parse_bool",
    "parse_form",
    "parse_int",
    "parse_json_object",
    "read_limited",
]


def parse_bool(value: str | None, name: str, default: bool) -> bool:
    """:returns: the boolean value of a query/header string. :raises ApiError: 400."""
    if value is None or value == "":
        return default
    low = value.strip().lower()
    if low in ("true", "1", "yes"):
        return True
    if low in ("false", "0", "no"):
        return False
    raise invalid_parameters(f"Parameter '{name}' must be true or false.")


def parse_int(
    value: str | None, name: str, default: int, minimum: int | None, maximum: int | None
) -> int:
    """:returns: an integer query value within bounds. :raises ApiError: 400."""
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise invalid_parameters(f"Parameter '{name}' must be an integer.") from None
    if minimum is not None and number < minimum:
        raise invalid_parameters(f"Parameter '{name}' must be at least {minimum}.")
    if maximum is not None and number > maximum:
        raise invalid_parameters(f"Parameter '{name}' must be at most {maximum}.")
    return number


def read_limited(request: Request, limit: int, stream: IO[bytes] | None = None) -> bytes:
    """Read a whole (small) body, refusing more than ``limit`` bytes with a 413."""
    length = request.content_length
    if length is None or length <= limit:  # a declared oversize body is not read at all
        data = (stream or request.stream).read(limit + 1)
        if len(data) <= limit:
            return data
    raise too_large(f"The request body exceeds {limit} bytes.")


def parse_json_object(data: bytes, required: bool = True) -> dict[str, Any]:
    """Parse a JSON object body.

    :raises ApiError: 400 on malformed JSON, a non-object, or an empty body when ``required``.
    """
    if not data.strip():
        if required:
            raise invalid_parameters("A JSON object body is required.")
        return {}
    try:
        # Strict UTF-8 first (json.loads on bytes would let lone surrogates through), and
        # no lone surrogates from \u escapes either: they cannot be stored or sent back.
        value = json.loads(data.decode("utf-8"))
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except (ValueError, UnicodeError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)[:200]
        raise ApiError(400, "bad_request", f"Malformed JSON body: {reason}") from None
    if not isinstance(value, dict):
        raise invalid_parameters("The JSON body must be an object.")
    if _holds_nul(value):
        raise invalid_parameters(NUL_REFUSED)
    return value


#: Why text with U+0000 is refused, on every database alike: PostgreSQL text cannot hold it.
NUL_REFUSED = "Text in a request may not contain the NUL character (U+0000)."


def _holds_nul(value: Any) -> bool:
    """:returns: whether a parsed JSON value holds a NUL in any string or key (iterative: the
    depth is what json.loads accepted)."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


def check_no_nul(values: Iterable[str]) -> None:
    """:raises ApiError: 400 when one of ``values`` (query or form values) holds a NUL."""
    if any("\x00" in value for value in values):
        raise invalid_parameters(NUL_REFUSED)


def parse_form(data: bytes) -> dict[str, str]:
    """Parse a form-encoded body, whatever its declared Content-Type (the 2.x SDK sends
    ``application/form-urlencoded``). :raises ApiError: 400 when not UTF-8."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise invalid_parameters("The form body must be UTF-8.") from None
    fields = dict(parse_qsl(text, keep_blank_values=True))
    check_no_nul([*fields, *fields.values()])
    return fields
