"""Pass-through: ``POST accounts/{id}/raw`` (spec §2.8). Connectors with an HTTP upstream
forward it via :meth:`Connector.passthrough`; the others answer 501 ``not_implemented``."""

from __future__ import annotations

from werkzeug.wrappers import Response

from ..app import RequestContext, Route
from ..errors import invalid_parameters, not_implemented


def passthrough(ctx: RequestContext, account_id: str) -> Response:
    account = ctx.account(account_id)
    method = ctx.request.headers.get("X-Kloudless-Raw-Method", "").strip()
    uri = ctx.request.headers.get("X-Kloudless-Raw-URI", "").strip()
    if not method or not uri:
        raise invalid_parameters(
            "Pass-through needs the X-Kloudless-Raw-Method and X-Kloudless-Raw-URI headers."
        )
    response = ctx.connector(account).passthrough(ctx, account)
    if response is None:
        raise not_implemented(
            f"The {account['service']} service has no upstream API to pass requests through to."
        )
    return response


ROUTES = [Route("/accounts/<account_id>/raw", ("POST",), passthrough)]
