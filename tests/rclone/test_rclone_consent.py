"""The consent page's rclone forms (SFTP, S3-compatible, ...): the same checks as
``POST /v1/accounts`` (the remote tried before the account exists), the form's own mistakes
shown as they are, one message for a failed connection, no secret sent back or logged."""

from __future__ import annotations

import json
import logging
import re
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from werkzeug.test import Client

from kloudless.server.app import ServerApp
from kloudless.server.bootstrap import Credentials
from tests.dav.test_wiring import _consent_page

from .servers import ACCESS_KEY, PASSWORD, SECRET_KEY, USER, Upstreams
from .test_rclone_failures import _upload

HTML = {"Accept": "text/html"}


def _page(
    client: Client, creds: Credentials, scope: str, **extra: str
) -> tuple[str, dict[str, str]]:
    """:returns: the consent page's HTML and the form fields it carries (hidden, csrf)."""
    page, form = _consent_page(client, creds, scope, **{"response_type": "token", **extra})
    assert page.status_code == 200, page.get_data(as_text=True)
    return page.get_data(as_text=True), form


def _sftp_fields(upstreams: Upstreams, password: str = PASSWORD) -> tuple[Any, dict[str, str]]:
    sftp = upstreams.make("sftp")
    return sftp, {
        "account_id": "rclone:sftp",
        "sftp.host": "127.0.0.1",
        "sftp.port": str(sftp.options["port"]),
        "sftp.user": USER,
        "sftp.pass": password,
        "sftp.rclone_path": sftp.path,
    }


def _accounts(app: ServerApp) -> int:
    return len(app.store.list_accounts())


def test_sftp_form_wrong_password_then_right(
    client: Client,
    app: ServerApp,
    creds: Credentials,
    upstreams: Upstreams,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    text, hidden = _page(client, creds, "sftp")
    assert 'value="rclone:sftp"' in text and re.search(r'id="c-rclone-sftp"[^>]* checked', text)
    assert 'name="sftp.host"' in text and 'name="sftp.key_pem"' in text
    assert "A new account on this server" not in text
    assert "See, add, change and delete your files and folders" in text
    before = _accounts(app)

    sftp, fields = _sftp_fields(upstreams, password="wrong-Passw0rd-77")
    answer = client.post("/v1/oauth", data={**hidden, **fields}, headers=HTML)
    page = answer.get_data(as_text=True)
    assert answer.status_code == 400 and "Location" not in answer.headers
    assert "Could not connect your SFTP server with these settings" in page
    assert "wrong-Passw0rd-77" not in page
    assert f'value="{USER}"' in page and f'value="{sftp.path}"' in page  # the rest is kept
    assert re.search(r'id="c-rclone-sftp"[^>]* checked', page)
    assert _accounts(app) == before
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "connecting a sftp account failed" in logged and "wrong-Passw0rd-77" not in logged

    text, hidden = _page(client, creds, "sftp")
    answer = client.post("/v1/oauth", data={**hidden, **fields, "sftp.pass": PASSWORD})
    assert answer.status_code == 302, answer.get_data(as_text=True)
    location = answer.headers["Location"]
    assert PASSWORD not in location
    fragment = parse_qs(urlsplit(location).fragment)
    token = fragment["access_token"][0]
    auth = {"Authorization": f"Bearer {token}"}
    me = client.get("/v1/accounts/me", headers=auth).get_json()
    assert (me["service"], me["account"]) == ("sftp", f"{USER}@127.0.0.1")
    up = _upload(client, token, "consented.txt", b"via the consent page")
    assert up.status_code == 201, up.get_json()
    assert (sftp.folder / "consented.txt").read_bytes() == b"via the consent page"
    stored = app.store.get_account(me["id"])
    assert stored is not None and PASSWORD not in stored["config"]
    assert _accounts(app) == before + 1
    assert PASSWORD not in "\n".join(r.getMessage() for r in caplog.records)

    # Signing in again with the same settings reconnects the same account.
    _, hidden = _page(client, creds, "sftp")
    again = client.post("/v1/oauth", data={**hidden, **fields, "sftp.pass": PASSWORD})
    assert again.status_code == 302
    fragment = parse_qs(urlsplit(again.headers["Location"]).fragment)
    assert fragment["account_id"] == [str(me["id"])] and _accounts(app) == before + 1


def test_form_mistakes_are_shown_as_they_are(
    client: Client, app: ServerApp, creds: Credentials, upstreams: Upstreams
) -> None:
    _, fields = _sftp_fields(upstreams)
    cases = [
        ({"sftp.host": ""}, "'Server name or address' is required."),
        ({"sftp.port": "22x"}, "must be a number from 1 to 65535"),
        ({"sftp.pass": ""}, "Give 'Password' or 'Private key"),
    ]
    before = _accounts(app)
    for change, message in cases:
        _, hidden = _page(client, creds, "sftp")
        answer = client.post("/v1/oauth", data={**hidden, **fields, **change}, headers=HTML)
        page = answer.get_data(as_text=True)
        assert answer.status_code == 400, change
        assert message.replace("'", "&#x27;") in page, (change, page)
        assert PASSWORD not in page
    # A choice the page did not offer is refused (JSON without an HTML Accept).
    _, hidden = _page(client, creds, "sftp")
    forged = client.post("/v1/oauth", data={**hidden, **fields, "account_id": "rclone:smb"})
    assert forged.status_code == 400 and forged.get_json()["error_code"] == "invalid_parameters"
    assert _accounts(app) == before


def test_several_services_and_prefill(
    client: Client, app: ServerApp, creds: Credentials, upstreams: Upstreams
) -> None:
    s3 = upstreams.make("s3")
    form_data = json.dumps(
        {"domain": s3.options["endpoint"], "access_key_id": ACCESS_KEY, "secret_access_key": "x1"}
    )
    text, hidden = _page(client, creds, "webdav sftp s3_compatible", form_data=form_data)
    choices = re.findall(r'name="account_id" value="([^"]+)"', text)
    assert choices == ["new", "rclone:sftp", "rclone:s3_compatible", "invitation"]
    assert f'name="s3_compatible.endpoint" value="{s3.options["endpoint"]}"' in text
    assert f'name="s3_compatible.access_key_id" value="{ACCESS_KEY}"' in text
    # A secret is never pre-filled (form_data itself is carried as the request's hidden field).
    assert 'name="s3_compatible.secret_access_key" value=""' in text
    fields = {
        "account_id": "rclone:s3_compatible",
        "s3_compatible.endpoint": s3.options["endpoint"],
        "s3_compatible.access_key_id": ACCESS_KEY,
        "s3_compatible.secret_access_key": SECRET_KEY,
        "s3_compatible.rclone_path": s3.path,
    }
    answer = client.post("/v1/oauth", data={**hidden, **fields})
    assert answer.status_code == 302, answer.get_data(as_text=True)
    fragment = parse_qs(urlsplit(answer.headers["Location"]).fragment)
    me = client.get(
        "/v1/accounts/me", headers={"Authorization": f"Bearer {fragment['access_token'][0]}"}
    ).get_json()
    assert me["service"] == "s3_compatible"
    stored = app.store.get_account(me["id"])
    assert stored is not None and SECRET_KEY not in stored["config"]
    assert SECRET_KEY not in urlencode(fragment, doseq=True)
