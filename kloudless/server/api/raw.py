"""Pass-through: ``POST accounts/{id}/raw`` (spec §2.8). Connectors with an HTTP upstream
forward it via :meth:`Connector.passthrough`; the others answer 501 ``not_implemented``."""

from __future__ import annotations

from werkzeug.wrappers import Response

from ..connectors.base import PassthroughRequest
from ..context import RequestContext
from ..errors import invalid_parameters, not_implemented
from ..routing import BODY_UPLOAD, Route
from .storage import upload_precheck


def passthrough(ctx: RequestContext, account_id: str) -> Response:
    account = ctx.account(account_id)
    method = ctx.request.headers.get("X-Kloudless-Raw-Method", "").strip()
    uri = ctx.request.headers.get("X-Kloudless-Raw-URI", "").strip()
    if not method or not uri:
        raise invalid_parameters(
            "Pass-through needs the X-Kloudless-Raw-Method and X-Kloudless-Raw-URI headers."
        )
    request = ctx.request
    call = PassthroughRequest(
        method=method,
        uri=uri,
        headers=list(request.headers.items()),
        raw_headers=request.headers.get("X-Kloudless-Raw-Headers", ""),
        query=list(request.args.items(multi=True)),
        body=ctx.body_stream(),
        content_length=request.content_length,
        chunked=bool(request.environ.get("wsgi.input_terminated")),
    )
    response = ctx.connector(account).passthrough(ctx.account_env(account), call)
    if response is None:
        raise not_implemented(
            f"The {account['service']} service has no upstream API to pass requests through to."
        )
    return response


ROUTES = [
    Route(
        "/accounts/<account_id>/raw",
        ("POST",),
        passthrough,
        body=BODY_UPLOAD,
        precheck=upload_precheck,
    )
]
