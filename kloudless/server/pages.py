"""The server's own HTML pages: one page shell, one stylesheet, one set of security headers.

Used by the consent page (:mod:`kloudless.server.api.oauth`), its out-of-band completion page
and the home page at ``/`` (:mod:`kloudless.server.api.site`). Pages are self-contained: the
stylesheet and the one script (``oob.js``) are package files served from ``/static/`` by this
server, so nothing is fetched from elsewhere and the pages work on an offline server.

Every page answer carries:

* ``Content-Security-Policy`` with ``default-src 'none'``: only this server's stylesheet and
  (where a page needs it) its script, no inline script or style, no plugins, no framing
  (``frame-ancestors 'none'``, plus ``X-Frame-Options: DENY`` for older browsers), and forms may
  post only to this server (``form-action``; the consent page adds the one origin it redirects
  to, since browsers apply ``form-action`` to the redirect after a form post as well);
* ``Referrer-Policy: no-referrer``, so neither the page's query nor a redirect leaks through
  ``Referer``;
* ``Cache-Control: no-store`` (pages may hold one-time values) and
  ``X-Content-Type-Options: nosniff``.
"""

from __future__ import annotations

import html
from importlib import resources
from urllib.parse import urlsplit

from werkzeug.wrappers import Response

from ..version import VERSION

#: Files served at ``/static/<name>``, with their content types.
STATIC_FILES = {"kloudless.css": "text/css", "oob.js": "text/javascript"}

PRODUCT = "Kloudless-compatible server"
DOCS_URL = "https://kloudless.readthedocs.io/en/latest/"


def esc(value: object) -> str:
    """:returns: ``value`` as text safe inside HTML content and quoted attributes."""
    return html.escape(str(value), quote=True)


def static_file(name: str) -> bytes | None:
    """:returns: the bytes of a file listed in :data:`STATIC_FILES`, or None."""
    if name not in STATIC_FILES:
        return None
    return (resources.files("kloudless.server") / "static" / name).read_bytes()


def source_expression(uri: str) -> str | None:
    """:returns: the CSP source expression matching redirects to ``uri``: its origin for
    http(s) URLs, its scheme (``myapp:``) for custom schemes, None when it has neither."""
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if not scheme or not scheme.replace("+", "").replace("-", "").replace(".", "").isalnum():
        return None
    if scheme in ("http", "https"):
        if not parts.netloc or any(c in parts.netloc for c in " ;,'\"@"):
            return None
        return f"{scheme}://{parts.netloc.lower()}"
    return f"{scheme}:"


def page(
    title: str,
    body: str,
    *,
    status: int = 200,
    script: bool = False,
    form_targets: tuple[str, ...] = (),
    wide: bool = False,
) -> Response:
    """Wrap ``body`` (trusted HTML built with :func:`esc`) in the page shell.

    :param script: load ``/static/oob.js`` (the only script any page uses).
    :param form_targets: CSP sources forms may post or redirect to besides this server.
    :returns: the HTML response with the security headers of the module docstring.
    """
    script_tag = '<script src="/static/oob.js" defer></script>' if script else ""
    document = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{esc(title)}</title>
<link rel="stylesheet" href="/static/kloudless.css">{script_tag}
</head>
<body>
<main class="card{" wide" if wide else ""}" id="main">
{body}
</main>
<footer><p>{PRODUCT} {esc(VERSION)} · <a href="/">About this server</a></p></footer>
</body>
</html>
"""
    response = Response(document, status=status, mimetype="text/html")
    return secure(response, script=script, form_targets=form_targets)


def secure(
    response: Response, *, script: bool = False, form_targets: tuple[str, ...] = ()
) -> Response:
    """Set the page security headers (see the module docstring) on ``response``."""
    forms = " ".join(("'self'", *form_targets))
    scripts = "'self'" if script else "'none'"
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; "
        f"script-src {scripts}; form-action {forms}; frame-ancestors 'none'; base-uri 'none'"
    )
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "no-store"
    return response
