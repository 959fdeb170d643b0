"""User content never runs on the API origin.

Files are whatever their owners uploaded: an ``x.html`` with a script, an SVG with one, an XML
file a browser would render. Served from the API's own origin as they are, such a file would run
with the origin of the consent page (reading it and its CSRF token). So every response carrying
user content (``GET .../files/{id}/contents`` and public links ``/l/<id>``) gets:

* ``Content-Disposition: attachment`` with the file's name (RFC 6266: an ASCII ``filename=``
  fallback and the exact UTF-8 name in ``filename*=``), so browsers download it; ``inline`` only
  when asked for (a direct link opened in a browser) and only for :data:`INLINE_TYPES`, types
  browsers display without running anything (images other than SVG, PDF, plain text, audio and
  video) — never HTML, SVG or XML;
* ``X-Content-Type-Options: nosniff``, so a browser never guesses HTML out of ``text/plain``
  or ``application/octet-stream``;
* ``Content-Security-Policy: sandbox; default-src 'none'``, so even a document a browser does
  render runs in a unique opaque origin with scripts, forms and plugins off, and loads nothing;
* ``Referrer-Policy: no-referrer`` and ``Cross-Origin-Opener-Policy: same-origin``.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from werkzeug.datastructures import Headers
from werkzeug.wrappers import Response

__all__ = ["INLINE_TYPES", "content_disposition", "page", "protect", "protection_headers"]

#: Types shown inline when asked for; everything else is an attachment.
INLINE_TYPES = frozenset(
    {
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "image/avif",
        "image/bmp",
        "application/pdf",
        "text/plain",
        "audio/mpeg",
        "audio/ogg",
        "audio/wav",
        "video/mp4",
        "video/webm",
        "video/ogg",
    }
)
#: RFC 5987 ``attr-char`` besides letters and digits: kept as is in ``filename*``.
_ATTR_CHARS = "!#$&+-.^_`|~"
#: A name that is its own ASCII fallback and its own ``filename*`` encoding (no space either:
#: the fallback would keep it, the encoding would not).
_PLAIN_NAME = re.compile(r"[A-Za-z0-9!#$&+\-.^_`|~]*[A-Za-z0-9!#$&+\-.^_`|~]")
#: The policy of every user-content response: an opaque origin, nothing loaded, nothing run.
SANDBOX = "sandbox; default-src 'none'"
#: The policy of the server's own small pages about a link (landing page, password form).
PAGE_POLICY = "default-src 'none'; form-action 'self'; frame-ancestors 'none'"


def _ascii_fallback(name: str) -> str:
    """:returns: ``name`` with everything but printable ASCII (and ``"``/``\\``) as ``_``."""
    text = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in name)
    return text.strip() or "download"


def content_disposition(name: str | None, inline: bool = False) -> str:
    """:returns: a ``Content-Disposition`` value (RFC 6266) for a file called ``name``:
    ``attachment; filename="naive.txt"; filename*=UTF-8''na%C3%AFve.txt``."""
    kind = "inline" if inline else "attachment"
    if name and _PLAIN_NAME.fullmatch(name):  # both forms would be the name itself
        return f'{kind}; filename="{name}"'
    name = (name or "").replace("\r", "").replace("\n", "") or "download"
    fallback = _ascii_fallback(name)
    value = f'{kind}; filename="{fallback}"'
    encoded = quote(name, safe=_ATTR_CHARS)
    if encoded != fallback:
        value += f"; filename*=UTF-8''{encoded}"
    return value


def _base_type(mime_type: str) -> str:
    return mime_type.split(";", 1)[0].strip().lower()


def protection_headers(
    mime_type: str, name: str | None, inline: bool = False
) -> list[tuple[str, str]]:
    """:returns: the headers that keep user content from running on the API origin (see the
    module docstring). ``inline`` is honoured only for :data:`INLINE_TYPES`."""
    shown = inline and _base_type(mime_type) in INLINE_TYPES
    return [("Content-Disposition", content_disposition(name, shown)), *_FIXED_HEADERS]


#: The protection headers that are the same for every file.
_FIXED_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("Content-Security-Policy", SANDBOX),
    ("Referrer-Policy", "no-referrer"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
)


def protect(headers: Headers, mime_type: str, name: str | None, inline: bool = False) -> None:
    """Set :func:`protection_headers` on ``headers`` (replacing any of the same names)."""
    for key, value in protection_headers(mime_type, name, inline):
        headers[key] = value


def page(body: str, status: int = 200) -> Response:
    """:returns: one of the server's own HTML pages about a link (landing page, password form):
    no scripts, no framing, no sniffing, not cached."""
    response = Response(body, status=status, mimetype="text/html")
    response.headers["Content-Security-Policy"] = PAGE_POLICY
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    return response
