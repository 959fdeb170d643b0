"""DAV accounts wired into the server: ``POST /v1/accounts`` (sealed passwords), the OAuth
consent form for WebDAV/CalDAV servers, ``kloudless accounts create --service webdav`` and the
closing of pooled upstream connections by ``ServerApp.close()``. Upstreams are the WsgiDAV and
Radicale fixtures of ``conftest.py``."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from werkzeug.test import Client, TestResponse

from kloudless.server.api.oauth import dav_services

from .servers import ALLOW_LOOPBACK, DavServer

REDIRECT = "http://localhost:8020/callback"


def _apikey(creds: Any) -> dict[str, str]:
    return {"Authorization": f"APIKey {creds.api_key}"}


def _db_bytes(app: Any) -> bytes:
    """:returns: the raw bytes of the SQLite database and its WAL/shared-memory files."""
    base = Path(app.settings.db_path)
    return b"".join(p.read_bytes() for p in base.parent.glob(base.name + "*"))


def _root_names(api: Client, headers: dict[str, str]) -> list[str]:
    response = api.get("/v1/accounts/me/storage/folders/root/contents", headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    return [item["name"] for item in response.get_json()["objects"]]


# -- POST /v1/accounts ---------------------------------------------------------------------------


def test_api_account_password_is_sealed(
    api: Client, app: Any, creds: Any, webdav_folder: DavServer
) -> None:
    (webdav_folder.data_dir / "hello.txt").write_bytes(b"hi")
    response = api.post(
        "/v1/accounts",
        headers=_apikey(creds),
        json={
            "service": "webdav",
            "url": webdav_folder.url,
            "username": webdav_folder.username,
            "password": webdav_folder.password,
        },
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    body = response.get_json()
    # Named user@host when no 'account' is given; the config is never returned.
    assert body["account"] == f"{webdav_folder.username}@127.0.0.1"
    assert body["service"] == "webdav" and "config" not in body
    assert webdav_folder.password not in response.get_data(as_text=True)

    config = json.loads(app.store.get_account(body["id"])["config"])
    assert set(config) == {"url", "username", "password_sealed"}
    app.store.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert webdav_folder.password.encode() not in _db_bytes(app)

    # The sealed password still opens the upstream.
    token = app.store.create_token(creds.app_id, body["id"])
    assert _root_names(api, {"Authorization": f"Bearer {token}"}) == ["hello.txt"]


def test_api_account_wrong_password_creates_nothing(
    api: Client, app: Any, creds: Any, webdav_folder: DavServer
) -> None:
    before = len(app.store.list_accounts())
    response = api.post(
        "/v1/accounts",
        headers=_apikey(creds),
        json={
            "service": "webdav",
            "account": "named",
            "url": webdav_folder.url,
            "username": webdav_folder.username,
            "password": "not-the-password",
        },
    )
    assert response.status_code == 401
    assert response.get_json()["error_code"] == "service_unauthorized"
    assert "not-the-password" not in response.get_data(as_text=True)
    assert len(app.store.list_accounts()) == before


def test_api_local_account_keeps_default_name(api: Client, creds: Any) -> None:
    response = api.post("/v1/accounts", headers=_apikey(creds), json={})
    assert response.status_code == 201
    assert response.get_json()["account"] == "local"
    bad = api.post("/v1/accounts", headers=_apikey(creds), json={"account": ""})
    assert bad.status_code == 400


# -- the OAuth consent page -----------------------------------------------------------------------


def test_dav_services_rules() -> None:
    assert dav_services("webdav") == ["webdav"]
    assert dav_services("webdav.storage") == ["webdav"]
    assert dav_services("caldav.calendar webdav:normal.storage caldav") == ["caldav", "webdav"]
    assert dav_services("all storage any.calendar local gdrive.storage") == []
    assert dav_services("") == []


def _consent_page(
    api: Client, creds: Any, scope: str, **extra: str
) -> tuple[TestResponse, dict[str, str]]:
    params = {
        "client_id": creds.app_id,
        "response_type": "code",
        "redirect_uri": REDIRECT,
        "scope": scope,
        "state": "st",
        **extra,
    }
    page = api.get("/v1/oauth", query_string=params)
    token = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page.get_data(as_text=True))
    form = dict(params, csrf_token=token.group(1) if token else "", decision="allow")
    return page, form


def _input_value(page: str, name: str) -> str | None:
    match = re.search(rf'<input type="[a-z]+" name="{name}" value="([^"]*)"', page)
    return match.group(1) if match else None


def test_consent_form_for_webdav(
    api: Client, app: Any, creds: Any, webdav_folder: DavServer
) -> None:
    (webdav_folder.data_dir / "consented.txt").write_bytes(b"x")
    extra = json.dumps({"domain": webdav_folder.url})
    page, form = _consent_page(api, creds, "webdav.storage", extra_data=extra)
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert _input_value(text, "url") == webdav_folder.url
    assert _input_value(text, "username") == "" and _input_value(text, "password") == ""
    assert 'name="service" value="webdav"' in text
    assert 'name="new_account"' not in text  # no local account choice
    assert "(local, id" not in text  # the app's local account is not offered for webdav
    before = len(app.store.list_accounts())

    # What a browser sends: the hidden service, the pre-filled URL and the typed credentials.
    form.update(account_id="new", service="webdav", url=webdav_folder.url)
    form.update(username=webdav_folder.username, password="wrong-pw-123")
    wrong = api.post("/v1/oauth", data=form)
    assert wrong.status_code == 400 and wrong.mimetype == "text/html"
    text = wrong.get_data(as_text=True)
    assert 'role="alert"' in text and "wrong-pw-123" not in text
    assert _input_value(text, "url") == webdav_folder.url
    assert _input_value(text, "username") == webdav_folder.username
    assert _input_value(text, "password") == ""
    assert len(app.store.list_accounts()) == before

    form["password"] = webdav_folder.password
    done = api.post("/v1/oauth", data=form)
    assert done.status_code == 302, done.get_data(as_text=True)
    query = parse_qs(urlsplit(done.headers["Location"]).query)
    assert query["state"] == ["st"]
    exchange = api.post(
        "/v1/oauth/token",
        data=urlencode(
            {
                "grant_type": "authorization_code",
                "code": query["code"][0],
                "redirect_uri": REDIRECT,
                "client_id": creds.app_id,
                "client_secret": creds.api_key,
            }
        ),
        content_type="application/x-www-form-urlencoded",
    )
    assert exchange.status_code == 200
    bearer = {"Authorization": f"Bearer {exchange.get_json()['access_token']}"}
    me = api.get("/v1/accounts/me", headers=bearer).get_json()
    assert me["service"] == "webdav"
    assert me["account"] == f"{webdav_folder.username}@127.0.0.1"
    assert _root_names(api, bearer) == ["consented.txt"]
    config = json.loads(app.store.get_account(me["id"])["config"])
    assert "password" not in config and "password_sealed" in config

    # The next consent page does not list it; signing in to the same server again proves
    # ownership and reuses the account instead of connecting a second copy.
    again, form = _consent_page(api, creds, "webdav")
    assert f"(webdav, id {me['id']})" not in again.get_data(as_text=True)
    form.update(account_id="new", service="webdav", url=webdav_folder.url)
    form.update(username=webdav_folder.username, password=webdav_folder.password)
    reused = api.post("/v1/oauth", data=form)
    assert reused.status_code == 302, reused.get_data(as_text=True)
    assert len(app.store.list_accounts()) == before + 1
    code = parse_qs(urlsplit(reused.headers["Location"]).query)["code"][0]
    exchange = api.post(
        "/v1/oauth/token",
        data=urlencode(
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": REDIRECT,
                "client_id": creds.app_id,
                "client_secret": creds.api_key,
            }
        ),
        content_type="application/x-www-form-urlencoded",
    )
    assert exchange.get_json()["account_id"] == me["id"]


def test_consent_form_prefill_and_csrf(
    api: Client, app: Any, creds: Any, webdav_folder: DavServer
) -> None:
    extra = json.dumps({"domain": "https://ignored.example/"})
    form_data = json.dumps({"url": webdav_folder.url, "username": "prefilled"})
    page, form = _consent_page(api, creds, "webdav", extra_data=extra, form_data=form_data)
    text = page.get_data(as_text=True)
    assert _input_value(text, "url") == webdav_folder.url  # form_data wins
    assert _input_value(text, "username") == "prefilled"

    bad, _ = _consent_page(api, creds, "webdav", extra_data="{not json")
    assert bad.status_code == 400 and bad.get_json()["error_code"] == "invalid_parameters"

    before = len(app.store.list_accounts())
    form.update(
        account_id="new",
        url=webdav_folder.url,
        username=webdav_folder.username,
        password=webdav_folder.password,
        csrf_token="0" * 64,
    )
    forged = api.post("/v1/oauth", data=form)
    assert forged.status_code == 403
    # A tampered service, or an existing account of another service, is refused.
    _, form = _consent_page(api, creds, "webdav")
    tampered = dict(form, account_id="new", service="local", url=webdav_folder.url)
    assert api.post("/v1/oauth", data=tampered).status_code == 400
    local = dict(form, account_id=str(creds.account_id))
    assert api.post("/v1/oauth", data=local).status_code == 400
    assert len(app.store.list_accounts()) == before


def test_consent_form_for_both_services(api: Client, creds: Any) -> None:
    page, _ = _consent_page(api, creds, "webdav caldav.calendar")
    text = page.get_data(as_text=True)
    assert '<select name="service" id="f-service">' in text
    assert '<option value="webdav">' in text and '<option value="caldav">' in text
    assert 'name="primary_calendar"' in text
    local, _ = _consent_page(api, creds, "storage")
    assert 'name="new_account"' in local.get_data(as_text=True)
    assert 'name="password"' not in local.get_data(as_text=True)


def test_consent_implicit_flow_for_caldav(
    api: Client, app: Any, creds: Any, caldav_server: DavServer
) -> None:
    page, form = _consent_page(api, creds, "caldav", response_type="token")
    assert 'name="primary_calendar"' in page.get_data(as_text=True)
    form.update(
        account_id="new",
        service="caldav",
        url=caldav_server.url,
        username=caldav_server.username,
        password=caldav_server.password,
    )
    done = api.post("/v1/oauth", data=form)
    assert done.status_code == 302, done.get_data(as_text=True)
    fragment = parse_qs(urlsplit(done.headers["Location"]).fragment)
    bearer = {"Authorization": f"Bearer {fragment['access_token'][0]}"}
    me = api.get("/v1/accounts/me", headers=bearer).get_json()
    assert me["service"] == "caldav" and "calendar" in me["apis"]
    calendars = api.get("/v1/accounts/me/cal/calendars", headers=bearer)
    assert calendars.status_code == 200 and calendars.get_json()["objects"]


# -- the command line -----------------------------------------------------------------------------


def _cli(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    stdin: str,
    *argv: str,
) -> tuple[int, str, str]:
    from kloudless.cli import main

    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_cli_creates_webdav_account(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    webdav_folder: DavServer,
) -> None:
    from kloudless.server import Settings, create_app

    data = str(tmp_path / "cli-data")
    create_app(Settings(data_dir=data)).close()  # admin commands need an existing store
    base = ["accounts", "create", "--data-dir", data, "--service", "webdav"]
    base += ["--url", webdav_folder.url, "--username", webdav_folder.username]
    base += ["--allow-upstream", "127.0.0.1"]  # the test server listens on loopback
    status, out, err = _cli(monkeypatch, capsys, "wrong-pw-456\n", *base, "--password-stdin")
    assert status == 1 and "wrong-pw-456" not in out + err
    assert "service_unauthorized" in err and "Created account" not in out
    assert "KLOUDLESS_API_KEY" not in out  # nothing bootstrapped by a failed check

    (webdav_folder.data_dir / "cli.txt").write_bytes(b"c")
    password = webdav_folder.password + "\n"
    status, out, err = _cli(monkeypatch, capsys, password, *base, "--password-stdin")
    assert status == 0, err
    assert webdav_folder.password not in out + err
    created = re.search(r"Created account (\d+) \(webdav, '([^']+)'\)", out)
    # The new account's token follows "Created account" (bootstrap may print another first).
    token = re.search(r"export KLOUDLESS_TOKEN=(tok_\S+)", out.split("Created account")[-1])
    assert created is not None and token is not None
    assert created.group(2) == f"{webdav_folder.username}@127.0.0.1"

    app = create_app(Settings(data_dir=data, allow_upstream=ALLOW_LOOPBACK))
    try:
        app.store.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        assert webdav_folder.password.encode() not in _db_bytes(app)
        headers = {"Authorization": f"Bearer {token.group(1)}"}
        assert _root_names(Client(app), headers) == ["cli.txt"]
    finally:
        app.close()


def test_cli_password_file_and_usage_errors(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    webdav_folder: DavServer,
) -> None:
    from kloudless.server import Settings, create_app

    data = str(tmp_path / "cli-data")
    create_app(Settings(data_dir=data)).close()  # admin commands need an existing store
    secret = tmp_path / "pw.txt"
    secret.write_text(webdav_folder.password + "\n", encoding="utf-8")
    base = ["accounts", "create", "--data-dir", data, "--allow-upstream", "127.0.0.1"]
    dav = ["--url", webdav_folder.url, "--username", webdav_folder.username]
    by_file = ["--service", "webdav", *dav, "--password-file", str(secret), "--name", "mine"]
    status, out, _ = _cli(monkeypatch, capsys, "", *base, *by_file)
    assert status == 0 and "(webdav, 'mine')" in out and webdav_folder.password not in out

    status, _, err = _cli(monkeypatch, capsys, "", *base, "--url", webdav_folder.url)
    assert status == 2 and "--url only apply to --service webdav, caldav or carddav" in err
    status, _, err = _cli(monkeypatch, capsys, "", *base, "--service", "webdav", *dav)
    assert status == 2 and "--password-file" in err  # stdin is not a terminal: no prompt
    status, _, err = _cli(monkeypatch, capsys, "", *base, "--service", "webdav", "--url", "x")
    assert status == 2 and "--username" in err
    missing = str(tmp_path / "missing.txt")
    status, _, err = _cli(
        monkeypatch, capsys, "", *base, "--service", "webdav", *dav, "--password-file", missing
    )
    assert status == 2 and "--password-file" in err


# -- closing --------------------------------------------------------------------------------------


def test_close_closes_pooled_clients(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, webdav_folder: DavServer
) -> None:
    from kloudless.server import Settings, create_app
    from kloudless.server.bootstrap import bootstrap
    from kloudless.server.connectors import caldav, webdav_client

    app = create_app(Settings(data_dir=str(tmp_path / "data"), allow_upstream=ALLOW_LOOPBACK))
    closed_backends: list[bool] = []
    monkeypatch.setattr(caldav, "close_backends", lambda: closed_backends.append(True))
    try:
        creds = bootstrap(app.store)
        assert creds is not None
        api = Client(app)
        settings = {
            "url": webdav_folder.url,
            "username": webdav_folder.username,
            "password": webdav_folder.password,
        }
        response = api.post(
            "/v1/accounts", headers=_apikey(creds), json={"service": "webdav", **settings}
        )
        assert response.status_code == 201
        token = app.store.create_token(creds.app_id, response.get_json()["id"])
        assert _root_names(api, {"Authorization": f"Bearer {token}"}) == []
        pooled = list(webdav_client._CLIENTS.values())
        assert pooled
        closed: list[Any] = []
        for client in pooled:
            original = client.close

            def recording_close(close: Any = original) -> None:
                closed.append(close)
                close()

            monkeypatch.setattr(client, "close", recording_close)
    finally:
        app.close()
    assert len(closed) == len(pooled) and not webdav_client._CLIENTS
    assert closed_backends == [True]
