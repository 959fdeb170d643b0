"""Client code written for Kloudless' management API runs unchanged against a real server: the
2.x SDK's "meta bearer token" calls, and the 1.x SDK's DeveloperKey requests (form bodies)."""

from __future__ import annotations

import pytest
import requests

import kloudless
from kloudless.exceptions import NotFoundException

from .conftest import LiveServer


def test_the_2x_sdk_with_the_developer_key_as_meta_bearer_token(live_server: LiveServer) -> None:
    developer_key = live_server.creds.developer_key
    assert developer_key is not None
    meta = kloudless.Client(token=developer_key, base_url=live_server.base_url)
    try:
        apps = meta.get("meta/applications")
        assert [a.data["id"] for a in apps] == [live_server.creds.app_id]
        made = meta.post("meta/applications", json={"name": "From the SDK"})
        app_id, api_key = made.data["id"], made.data["api_key"]
        keys = meta.get(f"applications/{app_id}/apikeys")
        assert keys.data["count"] == 1 and api_key not in str(keys.data)
        developer = meta.get("meta/developers").data["objects"][0]
        assert developer["type"] == "developer"
        # The new application works with its own key, and sees none of the first one's accounts.
        app = kloudless.Client(api_key=api_key, base_url=live_server.base_url)
        try:
            assert app.get("accounts").data["count"] == 0
            first = live_server.creds.account_id
            with pytest.raises(NotFoundException):
                app.get(f"accounts/{first}")
        finally:
            app.close()
        meta.delete(f"meta/applications/{app_id}")
        assert len(list(meta.get("meta/applications"))) == 1
    finally:
        meta.close()


def test_1x_style_developer_key_requests(live_server: LiveServer) -> None:
    """As 1.x's ``kloudless.Application`` / ``ApiKey`` sent them: form bodies, the key in the
    ``DeveloperKey`` scheme, an API key deleted by the ``key`` its listing shows."""
    base = f"{live_server.base_url}/v1/applications"
    headers = {"Authorization": f"DeveloperKey {live_server.creds.developer_key}"}
    with requests.Session() as http:
        made = http.post(base, data={"name": "testApp", "description": "d"}, headers=headers)
        assert made.status_code == 201, made.text
        app = made.json()
        assert (app["name"], app["description"], app["active"]) == ("testApp", "d", True)
        assert http.patch(f"{base}/{app['id']}", data={"name": "more"}, headers=headers).ok
        assert http.get(f"{base}/{app['id']}", headers=headers).json()["name"] == "more"
        created = http.post(f"{base}/{app['id']}/apikeys", headers=headers).json()
        assert created["key"].startswith("key_")
        listed = http.get(f"{base}/{app['id']}/apikeys", headers=headers).json()["objects"]
        assert len(listed) == 2
        for key in listed:
            gone = http.delete(f"{base}/{app['id']}/apikeys/{key['key']}", headers=headers)
            assert gone.status_code == 204
        assert http.get(f"{base}/{app['id']}/apikeys", headers=headers).json()["count"] == 0
        assert http.delete(f"{base}/{app['id']}", headers=headers).status_code == 204
        assert http.get(f"{base}/{app['id']}", headers=headers).status_code == 404
