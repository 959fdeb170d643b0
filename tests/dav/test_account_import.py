"""Account import (``POST /v1/accounts`` with ``token``): credentials are stored untried, as
Kloudless did; the first upstream rejection answers 401 ``invalid_token`` and marks the account
inactive; new credentials by ``PATCH`` make it work again."""

from __future__ import annotations

import json
from typing import Any

import pytest
from werkzeug.test import Client

from .conftest import error
from .servers import DavServer

S = "/v1/accounts/{}/storage"


def _import(api: Client, creds: Any, body: dict[str, Any]) -> Any:
    return api.post("/v1/accounts", headers={"Authorization": f"APIKey {creds.api_key}"}, json=body)


def test_import_stores_credentials_untried_and_judges_them_later(
    api: Client, app: Any, creds: Any, webdav_folder: DavServer
) -> None:
    key = {"Authorization": f"APIKey {creds.api_key}"}
    made = _import(
        api,
        creds,
        {
            "service": "webdav",
            "account": webdav_folder.username,
            "domain": webdav_folder.url,
            "token": "wrong-password",
            "token_expiry": "2030-01-01T00:00:00Z",
        },
    )
    assert made.status_code == 201, made.get_data(as_text=True)  # not tried: no 401 here
    account = made.get_json()
    assert account["service"] == "webdav" and account["active"] is True
    assert account["token_expiry"] == "2030-01-01T00:00:00Z"
    stored = app.store.get_account(account["id"])["config"]
    assert "wrong-password" not in stored and json.loads(stored)["imported"] is True

    rejected = api.get(S.format(account["id"]) + "/folders/root/contents", headers=key)
    body = error(rejected, 401, "invalid_token")
    assert "wrong-password" not in json.dumps(body)
    assert api.get(f"/v1/accounts/{account['id']}", headers=key).get_json()["active"] is False
    inactive = api.get("/v1/accounts", headers=key, query_string={"active": "false"})
    assert [a["id"] for a in inactive.get_json()["objects"]] == [account["id"]]

    fixed = api.patch(
        f"/v1/accounts/{account['id']}", headers=key, json={"token": webdav_folder.password}
    )
    assert fixed.status_code == 200 and fixed.get_json()["active"] is True
    listed = api.get(S.format(account["id"]) + "/folders/root/contents", headers=key)
    assert listed.status_code == 200, listed.get_data(as_text=True)


def test_import_of_an_unreachable_server_is_not_tried(
    api: Client, creds: Any, closed_port_url: str
) -> None:
    body = {"service": "caldav", "account": "u", "domain": closed_port_url, "token": "p"}
    made = _import(api, creds, body)
    assert made.status_code == 201, made.get_data(as_text=True)
    assert made.get_json()["service"] == "caldav"


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"service": "evernote", "token": "t"}, "it supports:"),
        ({"service": "dropbox", "token": "t"}, "takes no imported credentials"),
        ({"service": 3, "token": "t"}, "'service'"),
        ({"service": "webdav", "account": "u", "token": "p"}, "'domain'"),
        ({"service": "webdav", "domain": "https://dav.example/", "token": "p"}, "'username'"),
        (
            {
                "service": "webdav",
                "account": "u",
                "domain": "https://dav.example/",
                "token_secret": "s",
            },
            "'token'",
        ),
        (
            {"service": "webdav", "account": "u", "domain": "ftp://dav.example/", "token": "p"},
            "'url'",
        ),
        ({"service": "local", "token": "t"}, "takes no imported credentials"),
    ],
)
def test_import_names_what_is_missing(
    api: Client, creds: Any, body: dict[str, Any], named: str
) -> None:
    message = error(_import(api, creds, body), 400, "invalid_parameters")["message"]
    assert named in message


def test_connecting_with_the_servers_own_settings_still_checks_them(
    api: Client, creds: Any, webdav_folder: DavServer
) -> None:
    dav = webdav_folder
    body = {"service": "webdav", "url": dav.url, "username": dav.username, "password": "wrong"}
    wrong = _import(api, creds, body)
    error(wrong, 401, "service_unauthorized")
