"""OAuth 2.0 (spec §3): the consent page, the code exchange and token verification.

* ``GET /v1/oauth`` shows an HTML page where the user picks one of the application's accounts or
  creates a new local one. The form carries a CSRF token bound (HMAC) to a random
  ``SameSite=Strict`` cookie set with the page, so another site cannot submit it.
* ``POST /v1/oauth`` (the form) redirects to ``redirect_uri?code=..&state=..`` or, for
  ``response_type=token``, to ``redirect_uri#access_token=..&token_type=Bearer&state=..``.
* ``POST /v1/oauth/token`` exchanges a code: single use, expires after
  ``Settings.oauth_code_ttl`` seconds, bound to the client_id and the exact redirect_uri.
* ``GET /v1/oauth/token`` verifies a Bearer token (invalid → 400, as the JS SDK expects).
* ``redirect_uri`` follows :mod:`kloudless.server.redirect_uris`: ``http(s)`` or an app scheme
  (never ``javascript:``/``data:``), only registered URIs once there are some, only loopback
  ones until then; anything else is a 400 page, never a redirect (Deny included).

Connecting a WebDAV or CalDAV server
    The ``scope`` is split on spaces; the service of each item is its text before the first
    ``.`` or ``:`` (``webdav``, ``webdav.storage``, ``webdav:normal.storage``, ``caldav``,
    ``caldav.calendar``). When any item names ``webdav`` or ``caldav``, the page is a connection
    form for those services instead of the "new local account" choice: server URL, user name
    and password (``webdav_auth.FORM_FIELDS``), plus an optional calendar name for CalDAV and a
    service chooser when both are named. Categories and other services (``all``, ``any``,
    ``storage``, ``any.calendar``, ``local``) keep the local page. The app's existing accounts of
    the named services are offered only as ``Settings.oauth_existing_accounts`` allows.
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

Connecting storage through rclone (SFTP, FTP, SMB, S3, Azure...)
    Scope items naming a credential-based rclone service (``sftp``, ``ftp``, ``smb``, ``s3``,
    ``s3_compatible``, ``azure``, ``rclone_webdav``; the forms of
    :mod:`kloudless.server.connectors.rclone_forms`) add one choice each
    (``account_id=rclone:<service>``) with that service's fields (``<service>.<option>``:
    ``sftp.host``, ``s3.secret_access_key``...), pre-filled from ``form_data``/``extra_data``
    keys of the same option names (``domain`` for the host, URL or endpoint; never a secret).
    On submit the form becomes the settings of ``POST /v1/accounts`` and goes through the same
    ``validate_config`` (outbound policy, no local paths or programs, the remote tried before
    the account exists). The form's own mistakes are shown as they are; a failed connection
    shows :data:`CONNECT_FAILED_RCLONE` (the reason goes to the log), and no secret field is
    ever sent back. Signing in again with the same non-secret settings reconnects the app's
    existing account (``consent_identity``, a digest of them) with the new credentials.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import time
from typing import Any
from urllib.parse import urlencode

from werkzeug.utils import redirect
from werkzeug.wrappers import Response

from .. import invitations, trusted_domains
from ..auth import Auth
from ..connectors import rclone_forms
from ..connectors.registry import get_connector
from ..connectors.webdav_auth import FORM_FIELDS, clean_settings
from ..context import RequestContext
from ..errors import ApiError, invalid_parameters
from ..outbound import policy_for
from ..pages import source_expression
from ..redirect_uris import check_redirect_uri
from ..responses import json_response
from ..routing import AUTH_NONE, Route
from ..store import hash_secret, now_iso
from . import consent_view, provider_flow
from .accounts import default_account_name
from .consent_view import ConsentView, destination, error_page

log = logging.getLogger("kloudless.server.oauth")

CSRF_COOKIE = "kloudless_csrf"
#: What the consent page says when connecting to the given server failed, whatever the reason.
CONNECT_FAILED = (
    "Could not connect an account with these settings. Check the server URL, the user name "
    "and the password (and the calendar name), or ask the server's operator."
)
#: The same for the rclone forms (SFTP, S3, ...): ``title`` and ``check`` of the form.
CONNECT_FAILED_RCLONE = (
    "Could not connect your {title} with these settings. Check {check}, or ask the server's "
    "operator."
)
PARAMS = (
    "client_id",
    "response_type",
    "redirect_uri",
    "scope",
    "state",
    "extra_data",
    "form_data",
    "request_id",
    "origin",
)
#: The ``redirect_uri`` of the popup (out-of-band) flow of the Kloudless Authenticator.
OOB_REDIRECT_URI = "urn:ietf:wg:oauth:2.0:oob"
#: Services whose accounts are connected with a server URL and credentials on the consent page.
DAV_SERVICES = ("webdav", "caldav", "carddav")


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
    if redirect_uri == OOB_REDIRECT_URI:
        _check_popup_origin(ctx, app_id, str(app["name"]), params)
        return app_id, redirect_uri
    # http(s) or an app scheme, never javascript:/data:; only registered URIs once there are
    # some, only loopback ones until then (both flows, and Deny: no open redirect).
    check_redirect_uri(redirect_uri, json.loads(app["redirect_uris"] or "[]"))
    return app_id, redirect_uri


def _check_popup_origin(
    ctx: RequestContext, app_id: str, app_name: str, params: dict[str, str]
) -> None:
    """The popup flow hands its result to the page that opened it, by ``postMessage`` to
    ``origin``: only to a trusted domain of the application (an exact match).

    :raises ApiError: 400 ``untrusted_origin``, before anything is shown or created.
    """
    origin = params.get("origin", "")
    if not origin:
        raise invalid_parameters(
            "The popup flow (redirect_uri=urn:ietf:wg:oauth:2.0:oob) needs the 'origin' of the "
            "page that opened it."
        )
    if not trusted_domains.is_trusted(ctx.store, app_id, origin):
        raise ApiError(
            400,
            "untrusted_origin",
            f"{origin[:200]} is not a trusted domain of {app_name[:100]}, so nothing can be "
            "sent back to it. The server's operator can add it with: kloudless apps "
            "trusted-domain add ORIGIN",
        )


def dav_services(scope: str) -> list[str]:
    """:returns: the DAV services (``webdav``, ``caldav``) a scope names, in order (see the
    module docstring); empty for scopes that do not name one."""
    found: list[str] = []
    for item in scope.split():
        service = item.split(":", 1)[0].split(".", 1)[0].lower()
        if service in DAV_SERVICES and service not in found:
            found.append(service)
    return found


def rclone_services(scope: str) -> list[str]:
    """:returns: the credential-based rclone services (``sftp``, ``s3``, ... see
    :data:`~kloudless.server.connectors.rclone_forms.FORMS`) a scope names, in order."""
    found: list[str] = []
    for item in scope.split():
        service = item.split(":", 1)[0].split(".", 1)[0].lower()
        if service in rclone_forms.FORMS and service not in found:
            found.append(service)
    return found


def requested_services(scope: str) -> list[str]:
    """:returns: every service whose form the page shows (DAV, then rclone); empty for the
    local choice."""
    return dav_services(scope) + rclone_services(scope)


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
        for service in rclone_services(params.get("scope") or ""):
            for item in rclone_forms.FORMS[service].fields:
                given = data.get(item.option)
                if item.option in ("host", "url", "endpoint") and not given:
                    given = data.get("domain")
                if isinstance(given, str) and given and not item.secret:
                    values[f"{service}.{item.option}"] = given[: item.max_length]
    return values


def _request_mac(ctx: RequestContext, cookie: str, issued: str, params: dict[str, str]) -> str:
    request = json.dumps([issued, *(params.get(k, "") for k in PARAMS)])
    return hmac.new(
        ctx.store.server_secret(),
        b"consent-request:" + cookie.encode() + request.encode(),
        hashlib.sha256,
    ).hexdigest()[:32]


def form_token(ctx: RequestContext, cookie: str, params: dict[str, str]) -> str:
    """:returns: the consent form's ``csrf_token``: when the page was shown (12 hex digits),
    an HMAC binding it to the browser's cookie, and an HMAC over the authorization request the
    page showed (so a changed hidden field is told apart from a forged post)."""
    issued = f"{int(time.time()):012x}"
    csrf = _csrf_token(ctx, cookie + issued)[:32]
    return issued + csrf + _request_mac(ctx, cookie, issued, params)


def check_form_token(ctx: RequestContext, cookie: str, token: str, params: dict[str, str]) -> None:
    """:raises ApiError: 403 for a missing or forged token (or cookie), 400 when the request
    was changed after the page was shown or the page is older than
    ``Settings.oauth_page_ttl``."""
    issued, csrf, request = token[:12], token[12:44], token[44:]
    if (
        not cookie
        or len(token) != 76
        or not hmac.compare_digest(csrf, _csrf_token(ctx, cookie + issued)[:32])
    ):
        raise ApiError(403, "forbidden", "The consent form's CSRF token is missing or invalid.")
    if not hmac.compare_digest(request, _request_mac(ctx, cookie, issued, params)):
        raise ApiError(
            400,
            "bad_request",
            "The consent form was changed after it was shown; start again from the application.",
        )
    if time.time() - int(issued, 16) > ctx.settings.oauth_page_ttl:
        raise ApiError(
            400,
            "request_expired",
            "This consent page has expired; start again from the application.",
        )


def wants_html(ctx: RequestContext) -> bool:
    """:returns: whether the caller is a browser (it accepts HTML): errors then get a page."""
    return "text/html" in ctx.request.headers.get("Accept", "")


def _error_page(exc: ApiError) -> Response:
    titles = {
        "request_expired": "This page has expired",
        "forbidden": "This form cannot be used",
    }
    return error_page(
        exc.status, titles.get(exc.error_code, "This request cannot be completed"), exc.message
    )


def _offered_accounts(ctx: RequestContext, app_id: str, services: list[str]) -> list[Any]:
    """:returns: the accounts the page lists by id (only with ``oauth_existing_accounts="any"``,
    the single-user opt-in)."""
    if ctx.settings.oauth_existing_accounts != "any":
        return []
    rows = [r for r in ctx.store.list_accounts(app_id) if r["active"]]
    return [r for r in rows if not services or r["service"] in services]


def _view(
    ctx: RequestContext,
    params: dict[str, str],
    cookie: str,
    error: str = "",
    values: dict[str, str] | None = None,
    selected: str = "",
) -> ConsentView:
    app_id = params["client_id"]
    app = ctx.store.get_app(app_id)
    assert app is not None
    scope = params.get("scope") or ""
    services = dav_services(scope)
    offered = [] if services else provider_flow.offered(ctx, app_id, scope)
    return ConsentView(
        app_name=str(app["name"]),
        server=ctx.request.host,
        scope=params.get("scope") or "",
        hidden={k: params.get(k, "") for k in PARAMS},
        csrf_token=form_token(ctx, cookie, params),
        redirect_to=destination(
            params.get("redirect_uri", ""), params.get("redirect_uri") == OOB_REDIRECT_URI
        ),
        existing_mode=ctx.settings.oauth_existing_accounts,
        accounts=[
            (int(r["id"]), str(r["account"]), str(r["service"]))
            for r in _offered_accounts(ctx, app_id, requested_services(scope))
        ],
        dav_services=services,
        rclone_forms=[rclone_forms.FORMS[s] for s in rclone_services(scope)],
        providers=[(p.name, p.provider.title) for p in offered],
        provider_targets=[t for t in (source_expression(p.auth_url) for p in offered) if t],
        values=values if values is not None else prefill(params),
        error=error,
        selected=selected,
    )


def _show(view: ConsentView, params: dict[str, str], status: int = 200) -> Response:
    return consent_view.consent_page(
        view, status=status, form_target=source_expression(params.get("redirect_uri", ""))
    )


def consent_page(ctx: RequestContext) -> Response:
    params = {k: v for k, v in ctx.request.args.items() if k in PARAMS}
    try:
        _validate_request(ctx, params)
        prefill(params)  # a malformed extra_data/form_data is a 400 before any page is shown
    except ApiError as exc:
        if wants_html(ctx):
            return _error_page(exc)
        raise
    cookie = ctx.request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)
    response = _show(_view(ctx, params, cookie), params)
    response.set_cookie(
        CSRF_COOKIE,
        cookie,
        httponly=True,
        samesite="Strict",
        path="/v1/oauth",
        secure=ctx.request.scheme == "https",
    )
    return response


def _redirect(uri: str, params: dict[str, Any], fragment: bool) -> Response:
    query = urlencode({k: v for k, v in params.items() if v is not None})
    if fragment:
        target = uri.split("#", 1)[0] + "#" + query
    else:
        target = uri + ("&" if "?" in uri else "?") + query
    response = redirect(target, 302)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


class _Reshow(Exception):
    """Show the consent form again (HTTP 400) with this message and these values."""

    def __init__(self, message: str, values: dict[str, str] | None = None, selected: str = ""):
        super().__init__(message)
        self.message = message
        self.values = values
        self.selected = selected


def _connect_dav(
    ctx: RequestContext, form: dict[str, str], services: list[str]
) -> tuple[str, dict[str, Any]]:
    """Check the submitted DAV connection settings against the server.

    :returns: ``(service, config to store)``.
    :raises _Reshow: the upstream refused them (the URL and user name are kept, the password
        is not).
    """
    service = form.get("service", "")
    if service not in services:
        raise invalid_parameters("Pick one of the requested services.")
    settings = {name: form.get(name, "") for name, _, _ in FORM_FIELDS}
    if service == "caldav" and form.get("primary_calendar", "").strip():
        settings["primary_calendar"] = form["primary_calendar"].strip()
    if service == "carddav" and form.get("addressbook", "").strip():
        settings["addressbook"] = form["addressbook"].strip()
    try:
        clean_settings(settings)  # the form's own mistakes are shown as they are
    except ApiError as exc:
        raise _reshow_dav(service, settings, exc.message) from None
    config = _try_upstream(ctx, service, settings)
    if config is None:
        raise _reshow_dav(service, settings, CONNECT_FAILED)
    return service, config


def _try_upstream(
    ctx: RequestContext, service: str, settings: dict[str, Any]
) -> dict[str, Any] | None:
    """Check connection settings against the upstream with the service's ``validate_config``
    (outbound policy included; it seals the secrets), outside any store transaction.

    :returns: the config to store, or None when it failed: the visitor is not authenticated,
        so whatever the address answered (or that it was refused, or did not resolve) stays in
        the server log, or the page would be a port scanner.
    """
    try:
        return get_connector(service).validate_config(settings, ctx.store, policy_for(ctx.settings))
    except ApiError as exc:
        log.info(
            "consent page: connecting a %s account failed: %s (request_id=%s)",
            service,
            exc.message,
            ctx.request_id,
        )
        return None


def _reshow_dav(service: str, settings: dict[str, str], message: str) -> _Reshow:
    """:returns: the DAV form to show again with ``message`` (the submitted URL and user name
    are kept, the password is not)."""
    values = {k: v for k, v in settings.items() if k != "password"}
    values["service"] = service
    return _Reshow(message, values, "new")


def _same_upstream(
    ctx: RequestContext, app_id: str, service: str, config: dict[str, Any]
) -> int | None:
    """:returns: the app's existing account of ``service`` for the same server URL and user
    name (signing in to it again proves ownership: it is reused, with the new password), or
    None."""
    for row in ctx.store.list_accounts(app_id):
        if row["service"] != service or not row["active"]:
            continue
        stored = json.loads(row["config"] or "{}")
        if stored.get("url") == config.get("url") and stored.get("username") == config.get(
            "username"
        ):
            return int(row["id"])
    return None


def _connect_rclone(
    ctx: RequestContext, form: dict[str, str], service: str
) -> tuple[str, str, dict[str, Any]]:
    """Check a submitted rclone form (SFTP, S3, ...) the way ``POST /v1/accounts`` does: the
    connector's ``validate_config`` under the outbound policy, untrusted (no local paths or
    programs), the remote tried against its upstream.

    :returns: ``(service, account name, config to store)``.
    :raises _Reshow: the form's own mistake as it is, or :data:`CONNECT_FAILED_RCLONE` for
        anything learnt by connecting (details in the log); secret fields are never kept.
    """
    definition = rclone_forms.FORMS[service]
    values = {item.option: form.get(f"{service}.{item.option}", "") for item in definition.fields}
    kept = {
        f"{service}.{item.option}": values[item.option]
        for item in definition.fields
        if not item.secret
    }
    try:
        settings = rclone_forms.account_settings(definition, values)
    except ApiError as exc:
        raise _Reshow(exc.message, kept, f"rclone:{service}") from None
    config = _try_upstream(ctx, service, settings)
    if config is None:
        message = CONNECT_FAILED_RCLONE.format(title=definition.title, check=definition.check)
        raise _Reshow(message, kept, f"rclone:{service}")
    stored_service, label = get_connector(service).account_identity(config)
    # Signing in again with the same non-secret settings reconnects that account.
    identity = json.dumps([stored_service, settings.get("rclone_path", ""), *sorted(kept.items())])
    config["consent_identity"] = hashlib.sha256(identity.encode()).hexdigest()
    return stored_service, label or default_account_name(stored_service, config), config


def _same_rclone_upstream(
    ctx: RequestContext, app_id: str, service: str, config: dict[str, Any]
) -> int | None:
    """:returns: the app's active account of ``service`` connected through the consent page
    with the same non-secret settings (host, user, bucket...), or None."""
    for row in ctx.store.list_accounts(app_id):
        if row["service"] == service and row["active"]:
            stored = json.loads(row["config"] or "{}")
            if stored.get("consent_identity") == config["consent_identity"]:
                return int(row["id"])
    return None


def _pick(
    ctx: RequestContext,
    form: dict[str, str],
    app_id: str,
    scope: str,
) -> tuple[str, Any]:
    """Decide what the post asks for, before anything is written.

    :returns: ``("dav" or "rclone", (service, account name, config))``, ``("local", name)``,
        ``("invitation", code)``, ``("account", id)`` or ``("provider", name)``.
    :raises _Reshow: a choice the visitor can correct on the page.
    """
    choice = form.get("account_id", "")
    mode = ctx.settings.oauth_existing_accounts
    services = dav_services(scope)
    rclone = rclone_services(scope)
    if choice.startswith("rclone:") and choice[len("rclone:") :] in rclone:
        return "rclone", _connect_rclone(ctx, form, choice[len("rclone:") :])
    if choice.startswith(provider_flow.CHOICE_PREFIX) and not services:
        name = choice[len(provider_flow.CHOICE_PREFIX) :]
        offered_scope = form.get("scope") or ""
        if name not in [p.name for p in provider_flow.offered(ctx, app_id, offered_scope)]:
            raise invalid_parameters("That provider is not available for this application.")
        return "provider", name
    if choice == "new" and services:
        service, config = _connect_dav(ctx, form, services)
        return "dav", (service, default_account_name(service, config), config)
    if choice == "new" and rclone:
        raise invalid_parameters("Pick one of the requested services.")
    services = services + rclone
    if choice == "new":
        return "local", (form.get("new_account") or "local").strip()[:255] or "local"
    if choice == "invitation" and mode == "invited":
        code = form.get("invitation", "")
        row = invitations.lookup(ctx.store, app_id, code)
        if row is None:
            raise _Reshow(
                "That invitation code is not valid: it may be mistyped, used already or "
                "expired. Ask the server's operator for a new one.",
                selected="invitation",
            )
        if services and row["service"] not in services:
            raise _Reshow(
                "That invitation is for an account of another service than the one requested.",
                selected="invitation",
            )
        return "invitation", code
    if mode == "any" and choice.isascii() and choice.isdigit():
        row = ctx.store.get_account(int(choice))
        if row is None or row["app_id"] != app_id or not row["active"]:
            raise invalid_parameters("Unknown account.")
        if services and row["service"] not in services:
            raise invalid_parameters("Pick an account of the requested service.")
        return "account", int(row["id"])
    if choice.isascii() and choice.isdigit():
        # The attack of issue #24: an existing account picked by id without any proof.
        raise invalid_parameters(
            "Existing accounts can be connected only with an invitation code from the "
            "server's operator."
        )
    raise invalid_parameters("Pick an account.")


def consent_submit(ctx: RequestContext) -> Response:
    form = ctx.form_body()
    params = {k: form.get(k, "") for k in PARAMS}
    cookie = ctx.request.cookies.get(CSRF_COOKIE, "")
    try:
        app_id, redirect_uri = _validate_request(ctx, params)
        check_form_token(ctx, cookie, form.get("csrf_token", ""), params)
        return _decide(ctx, form, params, app_id, redirect_uri)
    except _Reshow as reshow:
        view = _view(ctx, params, cookie, reshow.message, reshow.values, reshow.selected)
        return _show(view, params, 400)
    except ApiError as exc:
        if wants_html(ctx):
            return _error_page(exc)
        raise


def _finish(
    params: dict[str, str], app_name: str, redirect_uri: str, data: dict[str, Any], implicit: bool
) -> Response:
    """:returns: the redirect to the application, or for the popup flow the page that posts
    ``data`` to its opener (the origin was checked by :func:`_validate_request`)."""
    data = {k: v for k, v in data.items() if v is not None}
    if redirect_uri == OOB_REDIRECT_URI:
        return consent_view.popup_page(
            params.get("request_id") or params.get("state") or "",
            params.get("origin", ""),
            data,
            app_name=app_name,
            success="error" not in data,
        )
    return _redirect(redirect_uri, data, implicit)


def _decide(
    ctx: RequestContext,
    form: dict[str, str],
    params: dict[str, str],
    app_id: str,
    redirect_uri: str,
) -> Response:
    state = params.get("state") or None
    implicit = params.get("response_type") == "token"
    app = ctx.store.get_app(app_id)
    app_name = str(app["name"]) if app is not None else app_id
    if form.get("decision") != "allow":
        return _finish(
            params,
            app_name,
            redirect_uri,
            {
                "error": "access_denied",
                "error_description": "The user denied access.",
                "state": state,
            },
            implicit,
        )
    scope = params.get("scope") or "all"
    kind, value = _pick(ctx, form, app_id, scope)
    if kind == "provider":
        return provider_flow.start(ctx, params, app_id, value)
    with ctx.store.transaction():
        if kind in ("dav", "rclone"):
            service, name, config = value
            same = _same_upstream if kind == "dav" else _same_rclone_upstream
            account_id = same(ctx, app_id, service, config)
            if account_id is None:
                account_id = ctx.store.create_account(app_id, service, name, config)
            else:
                ctx.store.execute(
                    "UPDATE accounts SET config = ?, modified = ? WHERE id = ?",
                    (json.dumps(config), now_iso(), account_id),
                )
        elif kind == "local":
            account_id = ctx.store.create_account(app_id, "local", value)
        elif kind == "invitation":
            row = invitations.lookup(ctx.store, app_id, value)
            if row is None or not invitations.spend(ctx.store, value):
                raise _Reshow("That invitation code was used meanwhile.", selected="invitation")
            account_id = int(row["id"])
        else:
            account_id = value
        granted = _grant(ctx, app_id, account_id, redirect_uri, scope, implicit, state)
    return _finish(params, app_name, redirect_uri, granted, implicit)


def _grant(
    ctx: RequestContext,
    app_id: str,
    account_id: int,
    redirect_uri: str,
    scope: str,
    implicit: bool,
    state: str | None,
) -> dict[str, Any]:
    """Issue the Kloudless grant for ``account_id`` (inside the caller's transaction).

    :returns: the parameters for the application: a token (``response_type=token``) or an
        authorization code."""
    if implicit:
        access = ctx.store.create_token(app_id, account_id, scope)
        return {
            "access_token": access,
            "token_type": "Bearer",
            "account_id": account_id,
            "scope": scope,
            "state": state,
        }
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
    return {"code": code, "state": state}


def _callback_error(ctx: RequestContext, exc: ApiError) -> Response:
    """A browser gets a page; any other client the JSON error contract."""
    if wants_html(ctx):
        return _error_page(exc)
    raise exc


def provider_callback(ctx: RequestContext) -> Response:
    """``GET /v1/oauth/callback``: the provider sends the browser back here (see
    :mod:`kloudless.server.api.provider_flow`). Creates the account (or reuses the one of the
    same provider user) and finishes the Kloudless flow; failures go to the application's
    redirect URI as OAuth error parameters, or are a page when no sign-in matches."""
    try:
        done = provider_flow.complete(ctx)
    except provider_flow.FlowFailed as failed:
        params = failed.request
        try:
            app_id, redirect_uri = _validate_request(ctx, params)
        except ApiError as exc:
            return _callback_error(ctx, exc)
        app = ctx.store.get_app(app_id)
        return _finish(
            params,
            str(app["name"]) if app is not None else app_id,
            redirect_uri,
            {
                "error": failed.error,
                "error_description": failed.description,
                "state": params.get("state") or None,
            },
            params.get("response_type") == "token",
        )
    except ApiError as exc:
        return _callback_error(ctx, exc)
    params = done.request
    try:
        app_id, redirect_uri = _validate_request(ctx, params)
    except ApiError as exc:
        return _callback_error(ctx, exc)
    implicit = params.get("response_type") == "token"
    scope = params.get("scope") or "all"
    app = ctx.store.get_app(app_id)
    with ctx.store.transaction():
        account_id = _same_provider_user(
            ctx, app_id, done.provider, done.identity.user_id, done.identity.service
        )
        if account_id is None:
            account_id = ctx.store.create_account(
                app_id,
                done.identity.service,
                done.identity.name or done.identity.service,
                done.config,
            )
        ctx.store.execute(
            "UPDATE accounts SET config = ?, token_expiry = ?, active = 1, modified = ? "
            "WHERE id = ?",
            (json.dumps(done.config), done.token_expiry, now_iso(), account_id),
        )
        granted = _grant(
            ctx, app_id, account_id, redirect_uri, scope, implicit, params.get("state") or None
        )
    return _finish(
        params, str(app["name"]) if app is not None else app_id, redirect_uri, granted, implicit
    )


def _same_provider_user(
    ctx: RequestContext, app_id: str, provider: str, user: str, service: str
) -> int | None:
    """:returns: the app's account of ``service`` connected earlier for the same provider
    user, or None (a calendar-only account and a storage account stay two accounts)."""
    if not user:
        return None
    for row in ctx.store.list_accounts(app_id):
        stored = json.loads(row["config"] or "{}")
        if (
            stored.get("provider") == provider
            and stored.get("provider_user") == user
            and row["service"] == service
        ):
            return int(row["id"])
    return None


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
    # The credential's application decides the CORS answer (a browser calls this endpoint).
    ctx.auth = Auth("bearer", str(row["app_id"]), row["account_id"], str(row["scope"]))
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
    Route("/oauth/callback", ("GET",), provider_callback, auth=AUTH_NONE),
    Route("/oauth/token", ("POST",), exchange_code, auth=AUTH_NONE),
    Route("/oauth/token", ("GET",), verify_token, auth=AUTH_NONE),
]
