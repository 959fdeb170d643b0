"""What the consent page shows: the HTML of the consent form, its error and expired states
and the out-of-band (popup) completion page. The flow itself (checks, grants, redirects) is
:mod:`kloudless.server.api.oauth`; the page shell and security headers are
:mod:`kloudless.server.pages`.

Every value from the request is escaped; a password is never written back into the page, and
neither is an invitation code, a token or an authorization code (the popup completion page
is the one exception: its whole job is to hand the token to the opener, see
:func:`popup_page`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from werkzeug.wrappers import Response

from ..connectors.providers import CATALOGUE
from ..connectors.rclone_forms import FORMS as RCLONE_FORMS
from ..connectors.rclone_forms import FormField, RcloneForm
from ..connectors.registry import get_connector
from ..connectors.webdav_auth import FORM_FIELDS, MAX_FIELD, MAX_URL
from ..pages import esc, page

#: What an application may do, in plain words, per API a scope item names.
ABILITIES = {
    "storage": "See, add, change and delete your files and folders",
    "calendar": "See, add, change and delete your calendars and events",
    "contacts": "See, add, change and delete your contacts",
}
_API_ALIASES = {
    "storage": "storage",
    "calendar": "calendar",
    "cal": "calendar",
    "contacts": "contacts",
}
_SERVICE_APIS: dict[str, tuple[str, ...]] = {
    "webdav": ("storage",),
    "caldav": ("calendar",),
    "carddav": ("contacts",),
    **dict.fromkeys(RCLONE_FORMS, ("storage",)),
    # The providers' calendar services (google_calendar, outlook_calendar).
    **{p.calendar_service: ("calendar",) for p in CATALOGUE.values() if p.calendar_service},
}


def describe_scope(scope: str) -> list[str]:
    """:returns: one plain sentence per thing the scope lets the application do (``all``,
    ``any`` and an empty scope: files and calendars)."""
    apis: list[str] = []
    unknown: list[str] = []
    for item in scope.split() or ["all"]:
        words = [w for w in re.split(r"[.:]", item.lower()) if w]
        named = [_API_ALIASES[w] for w in words if w in _API_ALIASES]
        if not named and words and words[0] in _SERVICE_APIS:
            named = list(_SERVICE_APIS[words[0]])
        if not named and words and words[0] in ("all", "any", "local"):
            named = ["storage", "calendar"]
        if not named:
            unknown.append(item)
        apis.extend(a for a in named if a not in apis)
    lines = [ABILITIES[a] for a in ABILITIES if a in apis]
    lines.extend(f"Use the permission “{item}”" for item in unknown[:5])
    return lines


def destination(redirect_uri: str, popup: bool) -> str:
    """:returns: where Allow sends the person, for the page's note."""
    if popup:
        return "the application's window"
    parts = urlsplit(redirect_uri)
    return parts.netloc or f"{parts.scheme}:"


@dataclass
class ConsentView:
    """Everything the consent form shows."""

    app_name: str
    server: str
    scope: str
    #: Hidden fields carried through the post (the authorization request).
    hidden: dict[str, str]
    csrf_token: str
    redirect_to: str
    #: ``"invited"``, ``"any"`` or ``"none"`` (see ``Settings.oauth_existing_accounts``).
    existing_mode: str
    #: Accounts offered by id (``existing_mode == "any"`` only): ``(id, name, service)``.
    accounts: Sequence[tuple[int, str, str]] = ()
    #: DAV services the scope names; empty for the local choice.
    dav_services: Sequence[str] = ()
    #: The forms of the rclone services the scope names (SFTP, S3, ...), one choice each.
    rclone_forms: Sequence[RcloneForm] = ()
    #: Providers the person may sign in at (``(name, title)``, e.g. ``("google", "Google
    #: Drive")``): one choice each, value ``provider:<name>``.
    providers: Sequence[tuple[str, str]] = ()
    #: CSP ``form-action`` sources of those providers' authorization endpoints (the form's
    #: answer redirects there, which ``form-action`` governs too).
    provider_targets: Sequence[str] = ()
    #: The DAV form's values (pre-fill or the submitted ones), never a password; the rclone
    #: forms' values are keyed ``<service>.<option>``.
    values: dict[str, str] = field(default_factory=dict)
    error: str = ""
    #: The choice to pre-select after an error (``new``, ``invitation`` or an account id).
    selected: str = ""


def _dav_fields(view: ConsentView) -> str:
    services = list(view.dav_services)
    if len(services) == 1:
        chooser = f'<input type="hidden" name="service" value="{esc(services[0])}">'
    else:
        options = "".join(
            f'<option value="{esc(s)}"{" selected" if view.values.get("service") == s else ""}>'
            f"{esc(get_connector(s).service_name or s)}</option>"
            for s in services
        )
        chooser = (
            '<div class="field"><label for="f-service">Service</label>'
            f'<select name="service" id="f-service">{options}</select></div>'
        )
    fields = [chooser]
    for name, label, kind in FORM_FIELDS:
        value = "" if kind == "password" else esc(view.values.get(name, ""))
        limit = MAX_URL if name == "url" else MAX_FIELD
        complete = {"url": "url", "username": "username", "password": "current-password"}[name]
        fields.append(
            f'<div class="field"><label for="f-{name}">{esc(label)}</label>'
            f'<input type="{kind}" name="{name}" value="{value}" id="f-{name}" '
            f'maxlength="{limit}" autocomplete="{complete}" spellcheck="false"></div>'
        )
    if "caldav" in services:
        value = esc(view.values.get("primary_calendar", ""))
        fields.append(
            '<div class="field"><label for="f-cal">Calendar name (CalDAV, optional)</label>'
            f'<input type="text" name="primary_calendar" value="{value}" id="f-cal" '
            f'maxlength="{MAX_FIELD}"></div>'
        )
    if "carddav" in services:
        value = esc(view.values.get("addressbook", ""))
        fields.append(
            '<div class="field"><label for="f-book">Address book name (CardDAV, optional)</label>'
            f'<input type="text" name="addressbook" value="{value}" id="f-book" '
            f'maxlength="{MAX_FIELD}"></div>'
        )
    return "\n".join(fields)


def _rclone_field(view: ConsentView, form: RcloneForm, item: FormField) -> str:
    name = f"{form.service}.{item.option}"
    ident = f"f-{form.service}-{item.option}"
    value = "" if item.secret else esc(view.values.get(name, ""))
    hint = f'<p class="hint" id="{ident}-hint">{esc(item.hint)}</p>' if item.hint else ""
    described = f' aria-describedby="{ident}-hint"' if item.hint else ""
    required = ' aria-required="true"' if item.required else ""
    if item.kind == "checkbox":
        checked = " checked" if view.values.get(name) else ""
        return (
            f'<div class="field check"><label for="{ident}"><input type="checkbox" '
            f'name="{name}" value="true" id="{ident}"{checked}{described}>'
            f"{esc(item.label)}</label>{hint}</div>"
        )
    if item.kind == "key":
        control = (
            f'<textarea name="{name}" id="{ident}" maxlength="{item.max_length}" '
            f'autocomplete="off" spellcheck="false"{described}></textarea>'
        )
    else:
        kind = {"password": "password", "url": "url"}.get(item.kind, "text")
        numeric = ' inputmode="numeric"' if item.kind == "port" else ""
        control = (
            f'<input type="{kind}" name="{name}" value="{value}" id="{ident}" '
            f'maxlength="{item.max_length}" autocomplete="{esc(item.autocomplete)}" '
            f'spellcheck="false"{numeric}{required}{described}>'
        )
    return f'<div class="field"><label for="{ident}">{esc(item.label)}</label>{control}{hint}</div>'


def _rclone_choice(view: ConsentView, form: RcloneForm, checked: bool) -> str:
    fields = "\n".join(_rclone_field(view, form, item) for item in form.fields)
    return _radio(
        f"rclone:{form.service}",
        checked,
        f"Connect your {esc(form.title)}",
        esc(form.intro),
        f'<div class="fields">{fields}</div>',
    )


def _radio(value: str, checked: bool, title: str, hint: str, inner: str = "") -> str:
    ident = f"c-{value.replace(':', '-')}"
    return (
        f'<div class="choice"><label for="{ident}"><input type="radio" name="account_id" '
        f'value="{esc(value)}" id="{ident}" aria-describedby="{ident}-hint"'
        f"{' checked' if checked else ''}><span>{title}</span></label>"
        f'<p class="hint" id="{ident}-hint">{hint}</p>{inner}</div>'
    )


def _provider_choices(view: ConsentView, selected: str) -> list[str]:
    """One choice per provider: Allow sends the person to sign in there."""
    return [
        _radio(
            f"provider:{name}",
            selected == f"provider:{name}",
            f"Your {esc(title)} account",
            f"You sign in at {esc(title)} and grant access there, then come back here.",
        )
        for name, title in view.providers
    ]


def _choices(view: ConsentView) -> str:
    first_new = (
        f"rclone:{view.rclone_forms[0].service}"
        if view.rclone_forms and not view.dav_services
        else "new"
    )
    selected = view.selected or (
        str(view.accounts[0][0]) if view.accounts and view.existing_mode == "any" else first_new
    )
    if not view.selected and not view.accounts and len(view.providers) == 1:
        selected = f"provider:{view.providers[0][0]}"
    parts = []
    for account_id, name, service in view.accounts:
        parts.append(
            _radio(
                str(account_id),
                selected == str(account_id),
                esc(name),
                f"Already connected ({esc(service)}, id {int(account_id)})",
            )
        )
    parts.extend(_provider_choices(view, selected))
    if view.dav_services:
        names = " or ".join(esc(get_connector(s).service_name or s) for s in view.dav_services)
        parts.append(
            _radio(
                "new",
                selected == "new",
                f"Connect your {names} server",
                "Sign in with the server's address, your user name and your password. Signing "
                "in again to an account that is already connected reuses it.",
                f'<div class="fields">{_dav_fields(view)}</div>',
            )
        )
    for form in view.rclone_forms:
        parts.append(_rclone_choice(view, form, selected == f"rclone:{form.service}"))
    if not view.dav_services and not view.rclone_forms:
        parts.append(
            _radio(
                "new",
                selected == "new",
                "A new account on this server",
                "Files and calendars stored by this server itself.",
                '<div class="fields"><div class="field"><label for="f-new">Account name</label>'
                '<input type="text" name="new_account" value="local" id="f-new" '
                'maxlength="255"></div></div>',
            )
        )
    if view.existing_mode == "invited":
        parts.append(
            _radio(
                "invitation",
                selected == "invitation",
                "An account I was invited to connect",
                "Enter the one-time invitation code the server's operator gave you.",
                '<div class="fields"><div class="field"><label for="f-inv">Invitation code'
                '</label><input type="password" name="invitation" value="" id="f-inv" '
                'maxlength="100" autocomplete="one-time-code" spellcheck="false"></div></div>',
            )
        )
    return "\n".join(parts)


def consent_page(
    view: ConsentView, *, status: int = 200, form_target: str | None = None
) -> Response:
    """:returns: the consent form (HTTP ``status``: 400 when re-shown after an error)."""
    initial = (view.app_name.strip()[:1] or "?").upper()
    abilities = "".join(f"<li>{esc(line)}</li>" for line in describe_scope(view.scope))
    hidden = "".join(
        f'<input type="hidden" name="{esc(k)}" value="{esc(v)}">' for k, v in view.hidden.items()
    )
    alert = (
        '<div class="alert" role="alert"><strong>That did not work</strong>'
        f'<p class="error" id="error">{esc(view.error)}</p></div>'
        if view.error
        else ""
    )
    body = f"""<div class="brand"><span class="avatar" aria-hidden="true">{esc(initial)}</span>
<div><p class="eyebrow">{esc(view.server)}</p>
<h1><span class="app-name">{esc(view.app_name)}</span> wants to connect to your account</h1></div>
</div>
{alert}
<h2 id="abilities">It will be able to</h2>
<ul class="perms" aria-labelledby="abilities">{abilities}</ul>
<form method="post" action="" novalidate>
<input type="hidden" name="csrf_token" value="{esc(view.csrf_token)}">{hidden}
<fieldset><legend>Which account?</legend>
{_choices(view)}
</fieldset>
<p class="note">Allow sends you back to <strong>{esc(view.redirect_to)}</strong> with access
to the account you chose. Nothing is granted if you deny or close this page.</p>
<div class="actions">
<button type="submit" name="decision" value="allow" class="primary">Allow access</button>
<button type="submit" name="decision" value="deny" class="secondary" formnovalidate>Deny</button>
</div>
</form>"""
    targets = ((form_target,) if form_target else ()) + tuple(view.provider_targets)
    return page(f"Connect an account to {view.app_name}", body, status=status, form_targets=targets)


def error_page(status: int, title: str, message: str, hint: str = "") -> Response:
    """:returns: a page for a request that cannot go on (bad, expired or changed request)."""
    body = f"""<div class="brand"><span class="avatar" aria-hidden="true">!</span>
<div><p class="eyebrow">Connect an account</p><h1>{esc(title)}</h1></div></div>
<div class="alert" role="alert"><p>{esc(message)}</p></div>
<p>{esc(hint or "Go back to the application and start again from there.")}</p>"""
    return page(title, body, status=status)


def popup_page(
    request_id: str, origin: str, data: dict[str, Any], *, app_name: str, success: bool
) -> Response:
    """The out-of-band completion page: ``/static/oob.js`` posts
    ``"kloudless:" + JSON({"type": "authentication", "id": request_id, "data": data})`` to
    ``window.opener`` for ``origin`` only (a trusted domain of the application, checked by the
    caller). Without JavaScript or without an opener, the page itself says what happened and
    that the window can be closed; it never shows the token."""
    message = {"type": "authentication", "id": request_id, "data": data}
    # A JSON data block is not executed, and "</" is escaped so it cannot end the element.
    payload = json.dumps({"message": message, "origin": origin}).replace("</", "<\\/")
    if success:
        title = "Account connected"
        text = f"{app_name} now has access to the account you chose."
    else:
        title = "Nothing was connected"
        text = str(data.get("error_description") or "The request did not complete.")
    mark = "✓" if success else "!"
    body = f"""<div class="brand"><span class="avatar" aria-hidden="true">{mark}</span>
<div><p class="eyebrow">Connect an account</p><h1>{esc(title)}</h1></div></div>
<div class="alert{" ok" if success else ""}" role="status"><p>{esc(text)}</p></div>
<p id="popup-status">Return to <strong>{esc(origin)}</strong>; you can close this window.</p>
<script type="application/json" id="kloudless-result">{payload}</script>"""
    return page(title, body, script=True)
