"""The site root: ``GET /`` (what this server is, in the consent page's style) and the
package files the pages use (``/static/kloudless.css``, ``/static/oob.js``).

``/static/iexd.html`` (the Kloudless Authenticator's message relay for Internet Explorer) is
deliberately not served: Internet Explorer is retired and every other browser receives the
popup's ``postMessage`` directly (see the "Browser applications" guide).
"""

from __future__ import annotations

from werkzeug.wrappers import Response

from ...version import VERSION
from ..context import RequestContext
from ..errors import not_found
from ..pages import DOCS_URL, PRODUCT, STATIC_FILES, esc, page, static_file
from ..routing import AUTH_NONE, Route


def home(ctx: RequestContext) -> Response:
    api = ctx.href("")
    body = f"""<div class="brand"><span class="avatar" aria-hidden="true">K</span>
<div><p class="eyebrow">{esc(PRODUCT)}</p><h1>This is a Kloudless-compatible API server</h1></div>
</div>
<p>It serves the Kloudless REST API v1 for files and calendars, on storage it keeps itself
(<em>local</em> accounts) or on WebDAV and CalDAV servers. Applications use it through a
Kloudless SDK or plain HTTP; people meet it only on its consent page.</p>
<dl class="facts">
<dt>Version</dt><dd>{esc(VERSION)}</dd>
<dt>API base URL</dt><dd><code>{esc(api)}</code></dd>
<dt>Consent page</dt><dd><code>{esc(api)}oauth?client_id=APP_ID&amp;redirect_uri=...</code>
(<a href="{DOCS_URL}authentication.html">how applications send people there</a>)</dd>
<dt>OpenAPI</dt><dd><a href="/v1/openapi.json">/v1/openapi.json</a></dd>
<dt>Documentation</dt><dd><a href="{DOCS_URL}">{esc(DOCS_URL)}</a></dd>
</dl>
<h2>Operators</h2>
<p>Run <code>kloudless apps show</code> on the server's data folder for the application id,
and see the <a href="{DOCS_URL}server.html">server guide</a> for every option.</p>"""
    return page(f"{PRODUCT} {VERSION}", body, wide=True)


def static(ctx: RequestContext, name: str) -> Response:
    data = static_file(name)
    if data is None:
        raise not_found(f"No such endpoint: {ctx.request.path[:200]}")
    response = Response(data, mimetype=STATIC_FILES[name])
    response.headers["Cache-Control"] = "public, max-age=3600"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


ROUTES = [
    Route("/", ("GET",), home, auth=AUTH_NONE, prefix=False),
    Route("/static/<name>", ("GET",), static, auth=AUTH_NONE, prefix=False),
]
