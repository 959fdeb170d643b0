"""``carddav`` accounts wired in like the other DAV services: the consent page (scope
``carddav``) and ``kloudless accounts create --service carddav``."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from werkzeug.test import Client

from .servers import DavServer
from .test_wiring import _consent_page


def test_consent_page_connects_carddav(
    api: Client, creds: Any, caldav_server: DavServer, addressbook: DavServer
) -> None:
    page, form = _consent_page(api, creds, "carddav.crm", response_type="token")
    text = page.get_data(as_text=True)
    assert 'name="addressbook"' in text and 'name="password"' in text
    book = addressbook.url.rstrip("/").rsplit("/", 1)[-1]
    form.update(
        account_id="new",
        service="carddav",
        url=caldav_server.url,
        username=caldav_server.username,
        password=caldav_server.password,
        addressbook=book,
    )
    done = api.post("/v1/oauth", data=form)
    assert done.status_code == 302, done.get_data(as_text=True)
    fragment = parse_qs(urlsplit(done.headers["Location"]).fragment)
    bearer = {"Authorization": f"Bearer {fragment['access_token'][0]}"}
    me = api.get("/v1/accounts/me", headers=bearer).get_json()
    assert me["service"] == "carddav" and me["apis"] == ["crm", "events"]
    made = api.post("/v1/accounts/me/crm/contacts", headers=bearer, json={"name": "Consented"})
    assert made.status_code == 201 and f"/{book}/" in made.get_json()["raw"]["href"]


def test_cli_creates_carddav_account(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caldav_server: DavServer,
    addressbook: DavServer,
) -> None:
    from kloudless.cli import main
    from kloudless.server import Settings, create_app

    data = str(tmp_path / "cli-data")
    create_app(Settings(data_dir=data)).close()  # admin commands need an existing store
    secret = tmp_path / "pw.txt"
    secret.write_text(caldav_server.password + "\n", encoding="utf-8")
    book = addressbook.url.rstrip("/").rsplit("/", 1)[-1]
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    status = main(
        [
            "accounts",
            "create",
            "--data-dir",
            data,
            "--service",
            "carddav",
            "--url",
            caldav_server.url,
            "--username",
            caldav_server.username,
            "--password-file",
            str(secret),
            "--addressbook",
            book,
            "--allow-upstream",
            "127.0.0.1",  # the test server listens on loopback
        ]
    )
    out, err = capsys.readouterr()
    assert status == 0, err
    assert caldav_server.password not in out + err
    assert re.search(r"Created account \d+ \(carddav, ", out)
    status = main(["accounts", "create", "--data-dir", data, "--addressbook", book])
    assert status == 2 and "only apply to --service" in capsys.readouterr().err
