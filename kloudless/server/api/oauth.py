"""OAuth 2.0 (spec §3): the consent page, the code exchange and token verification.

* ``GET /v1/oauth`` shows an HTML page where the user picks one of the application's accounts or
  creates a new local one. The form carries a CSRF token bound (HMAC) to a random
  ``SameSite=Strict`` cookie set with the page, so another site cannot submit it.
* ``POST /v1/oauth`` (the form) redirects to ``redirect_uri?code=..&state=..`` or, for
  ``response_type=token``, to ``redirect_uri#access_token=..&token_type=Bearer&state=..``.
* ``POST /v1/oauth/token`` exchanges a code: single use, expires after
  ``Settings.oauth_code_ttl`` seconds, bound to the client_id and the exact redirect_uri.
* ``GET /v1/oauth/token`` verifies a Bearer token (invalid → 400, as the JS SDK expects).

Connecting a WebDAV or CalDAV server
    The ``scope`` is split on spaces; the service of each item is its text before the first
    ``.`` or ``:`` (``webdav``, ``webdav.storage``, ``webdav:normal.storage``, ``caldav``,
    ``caldav.calendar``). When any item names ``webdav`` or ``caldav``, the page is a connection
    form for those services instead of the "new local account" choice: server URL, user name
    and password (``webdav_auth.FORM_FIELDS``), plus an optional calendar name for CalDAV and a
    service chooser when both are named. Categories and other services (``all``, ``any``,
    ``storage``, ``any.calendar``, ``local``) keep the local page. The app's existing accounts of
    the named services are still offered (unless ``oauth_pick_existing`` is off).
    The URL (and user name) are pre-filled from the JSON object in ``form_data`` or
    ``extra_data`` (keys ``domain`` or ``url``, and ``username``; ``form_data`` wins).
    On submit (CSRF-checked like the rest of the page) the settings are checked against the
    server by the connector's ``validate_config`` (which seals the password) under the server's
    outbound policy (:mod:`kloudless.server.outbound`: no loopback, private or link-local
    addresses unless allowlisted); a failure shows the form again (the password is never sent
    back) with the form's own mistake (a missing field, a malformed URL) or, for anything the
    server learnt by trying to connect, one message whatever happened (:data:`CONNECT_FAILED`;
    the details go to the server log), since the visitor is not authenticated. Success creates
    the account named ``user@host`` and continues with the usual code or token redirect.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import logging
import secrets
import time
from typing import Any
from urllib.parse import urlencode, urlsplit

from werkzeug.utils import redirect
from werkzeug.wrappers import Response

from ..connectors.registry import get_connector
from ..connectors.webdav_auth import FORM_FIELDS, MAX_FIELD, MAX_URL, clean_settings
from ..context import RequestContext
from ..errors import ApiError, invalid_parameters
from ..hosts import LOOPBACK_HOSTS
from ..outbound import policy_for
from ..responses import json_response
from ..routing import AUTH_NONE, Route
from ..store import hash_secret
from .accounts import default_account_name

log = logging.getLogger("kloudless.server.oauth")

CSRF_COOKIE = "kloudless_csrf"
#: What the consent page says when connecting to the given server failed, whatever the reason.
CONNECT_FAILED = (
    "Could not connect an account with these settings. Check the server URL, the user name "
    "and the password (and the calendar name), or ask the server's operator."
)
PARAMS = ("client_id", "response_type", "redirect_uri", "scope", "state", "extra_data", "form_data")
#: Services whose accounts are connected with a server URL and credentials on the consent page.
DAV_SERVICES = ("webdav", "caldav")


def _csrf_token(ctx: RequestContext, cookie: str) -> str:
    return hmac.new(
        ctx.store.server_secret(), b"consent:" + cookie.encode(), hashlib.sha256
    ).hexdigest()


def _validate_request(ctx: RequestContext, params: dict[str, str]) -> tuple[str, str]:
    """:returns: ``(app_id, redirect_uri)``. :raises ApiError: 400 on a bad request."""
    app_id = params.get("client_id", "")
    app = ctx.store.get_app(app_id) if app_id else None
    if app is None:
        raise invalid_parameters("Unknown or missing client_id.")
    if params.get("response_type", "code") not in ("code", "token"):
        raise invalid_parameters("response_type must be 'code' or 'token'.")
    redirect_uri = params.get("redirect_uri", "")
    parts = urlsplit(redirect_uri)
    if not redirect_uri or not parts.scheme or len(redirect_uri) > 2000:
        raise invalid_parameters("A valid absolute redirect_uri is required.")
    registered = json.loads(app["redirect_uris"] or "[]")
    if registered and redirect_uri not in registered:
        raise invalid_parameters("redirect_uri is not registered for this application.")
    # The implicit flow puts the token itself in the redirect: only to this machine or to a
    # URI the application registered. (A code is useless without the API key, so the code
    # flow keeps accepting any redirect_uri when none are registered.)
    if (
        params.get("response_type") == "token"
        and redirect_uri not in registered
        and (parts.hostname or "").lower() not in LOOPBACK_HOSTS
    ):
        raise invalid_parameters(
            "response_type=token needs a loopback redirect_uri (localhost, 127.0.0.1, [::1]) "
            "or one registered for the application (kloudless apps redirect-uri add URL)."
        )
    return app_id, redirect_uri


def dav_services(scope: str) -> list[str]:
    """:returns: the DAV services (``webdav``, ``caldav``) a scope names, in order (see the
    module docstring); empty for scopes that do not name one."""
    found: list[str] = []
    for item in scope.split():
        service = item.split(":", 1)[0].split(".", 1)[0].lower()
        if service in DAV_SERVICES and service not in found:
            found.append(service)
    return found


def prefill(params: dict[str, str]) -> dict[str, str]:
    """:returns: the connection form's pre-filled ``url`` and ``username`` from the JSON objects
    in ``extra_data`` and ``form_data`` (``domain`` or ``url``; ``form_data`` wins).

    :raises ApiError: 400 when one of them is not empty and not a JSON object.
    """
    values: dict[str, str] = {}
    for key in ("extra_data", "form_data"):
        text = params.get(key) or ""
        if not text.strip():
            continue
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise invalid_parameters(f"'{key}' must be a URL-encoded JSON object.")
        for name, sources in (("url", ("domain", "url")), ("username", ("username",))):
            for source in sources:
                if isinstance(data.get(source), str) and data[source]:
                    values[name] = data[source]
    return values


def _dav_form(services: list[str], values: dict[str, str]) -> str:
    """:returns: the HTML inputs of the DAV connection form (never a password value)."""
    if len(services) == 1:
        chooser = f'<input type="hidden" name="service" value="{services[0]}">'
    else:
        options = "".join(
            f'<option value="{s}"{" selected" if values.get("service") == s else ""}>'
            f"{html.escape(get_connector(s).service_name or s)}</option>"
            for s in services
        )
        chooser = f'<p><label>Service <select name="service">{options}</select></label></p>'
    fields = [chooser]
    for name, label, kind in FORM_FIELDS:
        value = "" if kind == "password" else html.escape(values.get(name, ""))
        limit = MAX_URL if name == "url" else MAX_FIELD
        fields.append(
            f'<p><label>{html.escape(label)} <input type="{kind}" name="{name}" '
            f'value="{value}" maxlength="{limit}" autocomplete="off"></label></p>'
        )
    if "caldav" in services:
        value = html.escape(values.get("primary_calendar", ""))
        fields.append(
            '<p><label>Calendar name (CalDAV, optional) <input type="text" '
            f'name="primary_calendar" value="{value}" maxlength="{MAX_FIELD}"></label></p>'
        )
    return "\n".join(fields)


def _page(
    ctx: RequestContext,
    params: dict[str, str],
    app_name: str,
    cookie: str,
    error: str = "",
    values: dict[str, str] | None = None,
) -> str:
    """:param values: the DAV form's values (pre-fill, or the submitted ones on re-show)."""
    auth_app = params["client_id"]
    services = dav_services(params.get("scope") or "")
    accounts = ctx.store.list_accounts(auth_app) if ctx.settings.oauth_pick_existing else []
    if services:
        accounts = [r for r in accounts if r["service"] in services]
    hidden = "".join(
        f'<input type="hidden" name="{k}" value="{html.escape(params.get(k, ""))}">' for k in PARAMS
    )
    options = "".join(
        f'<p><label><input type="radio" name="account_id" value="{int(r["id"])}"'
        f"{' checked' if i == 0 and not error else ''}> {html.escape(str(r['account']))}"
        f" ({html.escape(str(r['service']))}, id {int(r['id'])})</label></p>"
        for i, r in enumerate(accounts)
        if r["active"]
    )
    new_checked = "" if options and not error else " checked"
    if services:
        new_option = (
            f'<p><label><input type="radio" name="account_id" value="new"{new_checked}>'
            " Connect a new account:</label></p>\n"
            + _dav_form(services, values if values is not None else prefill(params))
        )
    else:
        new_option = (
            f'<p><label><input type="radio" name="account_id" value="new"{new_checked}>\n'
            'New local account named <input type="text" name="new_account" value="local"'
            ' maxlength="255">\n</label></p>'
        )
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Connect an account</title>
</head><body><h1>Connect an account to {html.escape(app_name)}</h1>
<p>Requested scope: <code>{html.escape(params.get("scope") or "all")}</code></p>
{f'<p class="error">{html.escape(error)}</p>' if error else ""}
<form method="post" action="">
<input type="hidden" name="csrf_token" value="{_csrf_token(ctx, cookie)}">{hidden}
{options}
{new_option}
<p><button type="submit" name="decision" value="allow">Allow</button>
<button type="submit" name="decision" value="deny">Deny</button></p>
</form></body></html>"""


def _html(body: str, status: int = 200) -> Response:
    response = Response(body, status=status, mimetype="text/html")
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Security-Policy"] = "default-src 'none'; form-action 'self' *"
    return response


def consent_page(ctx: RequestContext) -> Response:
    params = {k: v for k, v in ctx.request.args.items() if k in PARAMS}
    app_id, _ = _validate_request(ctx, params)
    prefill(params)  # a malformed extra_data/form_data is a 400 before any page is shown
    app = ctx.store.get_app(app_id)
    assert app is not None
    cookie = ctx.request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)
    response = _html(_page(ctx, params, str(app["name"]), cookie))
    response.set_cookie(CSRF_COOKIE, cookie, httponly=True, samesite="Strict", path="/v1/oauth")
    return response


def _redirect(uri: str, params: dict[str, Any], fragment: bool) -> Response:
    query = urlencode({k: v for k, v in params.items() if v is not None})
    if fragment:
        target = uri.split("#", 1)[0] + "#" + query
    else:
        target = uri + ("&" if "?" in uri else "?") + query
    response = redirect(target, 302)
    response.headers["Cache-Control"] = "no-store"
    return response


def _connect_dav(
    ctx: RequestContext,
    form: dict[str, str],
    params: dict[str, str],
    app_id: str,
    cookie: str,
    services: list[str],
) -> tuple[str, dict[str, Any]] | Response:
    """Check the submitted DAV connection settings against the server.

    :returns: ``(service, config to store)``, or the form shown again with the error (HTTP 400;
        the submitted URL and user name are kept, the password is not).
    """
    service = form.get("service", "")
    if service not in services:
        raise invalid_parameters("Pick one of the requested services.")
    settings = {name: form.get(name, "") for name, _, _ in FORM_FIELDS}
    if service == "caldav" and form.get("primary_calendar", "").strip():
        settings["primary_calendar"] = form["primary_calendar"].strip()
    try:
        clean_settings(settings)  # the form's own mistakes are shown as they are
    except ApiError as exc:
        return _dav_form_again(ctx, params, app_id, cookie, service, settings, exc.message)
    try:
        # Contacts the upstream: outside any store transaction. Seals the password.
        config = get_connector(service).validate_config(
            settings, ctx.store, policy_for(ctx.settings)
        )
    except ApiError as exc:
        # The visitor is not authenticated: whatever the address answered (or that it was
        # refused, or did not resolve) stays in the server log, or the page is a port scanner.
        log.info(
            "consent page: connecting a %s account failed: %s (request_id=%s)",
            service,
            exc.message,
            ctx.request_id,
        )
        return _dav_form_again(ctx, params, app_id, cookie, service, settings, CONNECT_FAILED)
    return service, config


def _dav_form_again(
    ctx: RequestContext,
    params: dict[str, str],
    app_id: str,
    cookie: str,
    service: str,
    settings: dict[str, str],
    message: str,
) -> Response:
    """:returns: the DAV form shown again with ``message`` (HTTP 400; the submitted URL and
    user name are kept, the password is not)."""
    app = ctx.store.get_app(app_id)
    assert app is not None
    values = {k: v for k, v in settings.items() if k != "password"}
    values["service"] = service
    return _html(_page(ctx, params, str(app["name"]), cookie, message, values), 400)


def consent_submit(ctx: RequestContext) -> Response:
    form = ctx.form_body()
    params = {k: form.get(k, "") for k in PARAMS}
    app_id, redirect_uri = _validate_request(ctx, params)
    cookie = ctx.request.cookies.get(CSRF_COOKIE, "")
    token = form.get("csrf_token", "")
    if not cookie or not hmac.compare_digest(token, _csrf_token(ctx, cookie)):
        raise ApiError(403, "forbidden", "The consent form's CSRF token is missing or invalid.")
    state = params.get("state") or None
    implicit = params.get("response_type") == "token"
    if form.get("decision") != "allow":
        return _redirect(
            redirect_uri,
            {
                "error": "access_denied",
                "error_description": "The user denied access.",
                "state": state,
            },
            implicit,
        )
    scope = params.get("scope") or "all"
    choice = form.get("account_id", "")
    services = dav_services(scope)
    connection: tuple[str, dict[str, Any]] | None = None
    if choice == "new" and services:
        result = _connect_dav(ctx, form, params, app_id, cookie, services)
        if isinstance(result, Response):
            return result
        connection = result
    with ctx.store.transaction():
        if connection is not None:
            service, config = connection
            name = default_account_name(service, config)
            account_id = ctx.store.create_account(app_id, service, name, config)
        elif choice == "new":
            name = (form.get("new_account") or "local").strip()[:255] or "local"
            account_id = ctx.store.create_account(app_id, "local", name)
        else:
            if not (choice.isascii() and choice.isdigit()) or not ctx.settings.oauth_pick_existing:
                raise invalid_parameters("Pick an account.")
            row = ctx.store.get_account(int(choice))
            if row is None or row["app_id"] != app_id:
                raise invalid_parameters("Unknown account.")
            if services and row["service"] not in services:
                raise invalid_parameters("Pick an account of the requested service.")
            account_id = int(row["id"])
        if implicit:
            access = ctx.store.create_token(app_id, account_id, scope)
        else:
            code = secrets.token_urlsafe(32)
            ctx.store.execute("DELETE FROM oauth_codes WHERE expires < ?", (time.time() - 3600,))
            ctx.store.execute(
                "INSERT INTO oauth_codes VALUES (?, ?, ?, ?, ?, ?, 0)",
                (
                    hash_secret(code),
                    app_id,
                    account_id,
                    redirect_uri,
                    scope,
                    time.time() + ctx.settings.oauth_code_ttl,
                ),
            )
    if implicit:
        return _redirect(
            redirect_uri,
            {
                "access_token": access,
                "token_type": "Bearer",
                "account_id": account_id,
                "scope": scope,
                "state": state,
            },
            True,
        )
    return _redirect(redirect_uri, {"code": code, "state": state}, False)


def exchange_code(ctx: RequestContext) -> Response:
    form = ctx.form_body()
    if not form:
        form = dict(ctx.request.args.items())
    if form.get("grant_type", "authorization_code") != "authorization_code":
        raise invalid_parameters("grant_type must be 'authorization_code'.")
    client_id = form.get("client_id", "")
    secret = form.get("client_secret", "")
    header = ctx.request.headers.get("Authorization", "")
    if not secret and header.lower().startswith("apikey "):
        secret = header[7:].strip()
    ctx.check_auth_failures()
    if not client_id or not secret or ctx.store.app_for_api_key(secret) != client_id:
        ctx.note_auth_failure()
        raise ApiError(401, "unauthorized", "Invalid client_id or client_secret.")
    code = form.get("code", "")
    redirect_uri = form.get("redirect_uri", "")
    if not code:
        raise invalid_parameters("'code' is required.")
    with ctx.store.transaction():
        row = ctx.store.one("SELECT * FROM oauth_codes WHERE code_hash = ?", (hash_secret(code),))
        if (
            row is None
            or row["used"]
            or row["expires"] < time.time()
            or row["app_id"] != client_id
            or row["redirect_uri"] != redirect_uri
        ):
            if row is not None and row["used"]:
                # A replayed code: revoke nothing silently, but make the code useless.
                ctx.store.execute(
                    "DELETE FROM oauth_codes WHERE code_hash = ?", (row["code_hash"],)
                )
            raise ApiError(
                400,
                "invalid_grant",
                "The authorization code is invalid, expired, already used, or was "
                "issued for another client_id or redirect_uri.",
            )
        ctx.store.execute(
            "UPDATE oauth_codes SET used = 1 WHERE code_hash = ?", (row["code_hash"],)
        )
        account_id = int(row["account_id"])
        token = ctx.store.create_token(client_id, account_id, str(row["scope"]))
    return json_response(
        {
            "access_token": token,
            "token_type": "Bearer",
            "account_id": account_id,
            "scope": row["scope"],
        },
        headers={"Cache-Control": "no-store"},
    )


def verify_token(ctx: RequestContext) -> Response:
    ctx.check_auth_failures()
    header = ctx.request.headers.get("Authorization", "").strip()
    scheme, _, token = header.partition(" ")
    row: Any | None = (
        ctx.store.lookup_token(token.strip())
        if (scheme.lower() == "bearer" and token.strip())
        else None
    )
    if row is None:
        ctx.note_auth_failure()
        raise ApiError(400, "invalid_token", "The Bearer token is invalid or revoked.")
    return json_response(
        {
            "client_id": row["app_id"],
            "account_id": row["account_id"],
            "scope": row["scope"],
            "token_type": "Bearer",
        }
    )


ROUTES = [
    Route("/oauth", ("GET",), consent_page, auth=AUTH_NONE),
    Route("/oauth", ("POST",), consent_submit, auth=AUTH_NONE),
    Route("/oauth/token", ("POST",), exchange_code, auth=AUTH_NONE),
    Route("/oauth/token", ("GET",), verify_token, auth=AUTH_NONE),
]
