"""The operator's management API: the developer key, applications, their API keys, webhooks and
the developer; and that one application's credentials never reach another's data."""

from __future__ import annotations

import os
from typing import Any

import pytest
from werkzeug.test import Client

from kloudless.server import webhooks
from kloudless.server.app import ServerApp
from kloudless.server.bootstrap import Credentials

from .conftest import assert_error, upload

HOOK = "https://receiver.example/kloudless"


@pytest.fixture
def dev(creds: Credentials) -> dict[str, str]:
    assert creds.developer_key is not None and creds.developer_key.startswith("dev_")
    return {"Authorization": f"DeveloperKey {creds.developer_key}"}


@pytest.fixture
def receiver(app: ServerApp) -> list[tuple[str, bytes]]:
    """Webhook requests the server sends (answered as a valid receiver of any app would)."""
    seen: list[tuple[str, bytes]] = []

    def send(url: str, body: bytes, headers: dict[str, str], timeout: float) -> Any:
        seen.append((url, body))
        app_id = url.rsplit("app=", 1)[-1]
        return webhooks.DeliveryResult(200, app_id)

    app.webhooks.sender = send
    return seen


def _new_app(client: Client, dev: dict[str, str], name: str = "Second") -> dict[str, Any]:
    created = client.post("/v1/meta/applications", headers=dev, json={"name": name})
    assert created.status_code == 201, created.get_data(as_text=True)
    body = created.get_json()
    assert body["api_key"].startswith("key_") and body["type"] == "application"
    return dict(body)


def test_the_developer_key_reaches_the_management_api_only(
    client: Client, creds: Credentials, dev: dict[str, str], api_key_auth: dict[str, str]
) -> None:
    for path in ("/v1/accounts", f"/v1/accounts/{creds.account_id}/storage/folders/root"):
        assert_error(client.get(path, headers=dev), 403, "forbidden")
    assert_error(client.post("/v1/accounts", headers=dev, json={}), 403, "forbidden")
    # The management routes refuse the application's credentials and account tokens.
    token = {"Authorization": f"Bearer {creds.token}"}
    for headers in (api_key_auth, token):
        for path in ("/v1/applications", "/v1/meta/developers"):
            assert_error(client.get(path, headers=headers), 403, "forbidden")
    assert_error(client.post("/v1/meta/applications", headers=api_key_auth, json={"name": "x"}),
                 403, "forbidden")  # fmt: skip
    for bad in ("DeveloperKey dev_" + "x" * 40, "DeveloperKey key_nope", "Bearer dev_" + "y" * 40):
        assert_error(
            client.get("/v1/applications", headers={"Authorization": bad}), 401, "unauthorized"
        )
    # The 2.x SDK's "meta bearer token": the developer key as a Bearer credential.
    meta_bearer = {"Authorization": f"Bearer {creds.developer_key}"}
    assert client.get("/v1/meta/applications", headers=meta_bearer).status_code == 200
    assert client.get("/v1/applications", headers=dev).status_code == 200


def test_applications_are_created_changed_and_deleted(
    client: Client, app: ServerApp, creds: Credentials, dev: dict[str, str]
) -> None:
    second = _new_app(client, dev)
    key = {"Authorization": f"APIKey {second['api_key']}"}
    assert client.get("/v1/accounts", headers=key).get_json()["count"] == 0
    listed = client.get("/v1/meta/applications", headers=dev).get_json()
    assert [a["id"] for a in listed["objects"]] == [creds.app_id, second["id"]]
    assert listed["api"] == "meta" and listed["type"] == "object_list"
    assert "api_key" not in listed["objects"][1]  # shown once, at creation
    # The older routes, with the form bodies the 1.x SDK sends.
    old = f"/v1/applications/{second['id']}"
    patched = client.patch(old, headers=dev, data={"name": "Renamed", "description": "d"})
    assert patched.status_code == 200, patched.get_data(as_text=True)
    got = client.get(old, headers=dev).get_json()
    assert (got["name"], got["description"], got["active"]) == ("Renamed", "d", True)
    paged = client.get("/v1/applications?page_size=1&active=True", headers=dev).get_json()
    assert paged["count"] == 1 and paged["next_page"] == 2
    assert client.get("/v1/applications?active=false", headers=dev).get_json()["count"] == 0
    assert_error(client.post("/v1/applications", headers=dev, data={}), 400, "invalid_parameters")
    long_name = {"name": "n" * 1001}
    assert_error(client.post("/v1/applications", headers=dev, json=long_name), 400,
                 "invalid_parameters")  # fmt: skip
    made = client.post("/v1/applications", headers=dev, data={"name": "Third"})
    assert made.status_code == 201
    assert client.delete(old, headers=dev).status_code == 204
    assert_error(client.get(old, headers=dev), 404, "not_found")
    assert_error(client.get("/v1/accounts", headers=key), 401, "unauthorized")
    assert app.store.one("SELECT COUNT(*) AS n FROM api_keys WHERE app_id = ?",
                         (second["id"],))["n"] == 0  # fmt: skip


def test_deleting_an_application_deletes_its_accounts_and_their_files(
    client: Client, app: ServerApp, dev: dict[str, str]
) -> None:
    second = _new_app(client, dev)
    key = {"Authorization": f"APIKey {second['api_key']}"}
    account = client.post("/v1/accounts", headers=key, json={"service": "local"}).get_json()
    stored = upload(client, key, "a.txt", b"hello", account=str(account["id"]))
    assert stored.status_code == 201
    folder = os.path.join(app.settings.data_dir, "accounts", str(account["id"]))
    assert os.path.isdir(folder)
    assert client.delete(f"/v1/meta/applications/{second['id']}", headers=dev).status_code == 204
    assert app.store.get_account(account["id"]) is None
    assert app.store.one("SELECT COUNT(*) AS n FROM objects WHERE account_id = ?",
                         (account["id"],))["n"] == 0  # fmt: skip
    assert not os.path.exists(folder)


def test_api_keys_are_listed_created_once_and_deleted(
    client: Client, creds: Credentials, dev: dict[str, str]
) -> None:
    base = f"/v1/applications/{creds.app_id}/apikeys"
    first = client.get(base, headers=dev).get_json()
    assert first["count"] == 1
    listed = first["objects"][0]
    # A listed key shows its id, never the key (stored hashed).
    assert listed["key"] == listed["id"] and listed["id"].startswith("apikey_")
    assert creds.api_key not in str(first)
    made = client.post(base, headers=dev)
    assert made.status_code == 201
    new = made.get_json()
    assert new["key"].startswith("key_") and new["type"] == "apikey" and new["api"] == "meta"
    new_auth = {"Authorization": f"APIKey {new['key']}"}
    assert client.get("/v1/accounts", headers=new_auth).status_code == 200
    keys = client.get(base, headers=dev).get_json()
    assert keys["count"] == 2 and new["key"] not in str(keys)
    assert client.get(base + "?page_size=1", headers=dev).get_json()["count"] == 1
    # DELETE by the id a listing shows, or by the key itself (the 1.x SDK's detail path).
    assert client.delete(f"{base}/{new['id']}", headers=dev).status_code == 204
    assert_error(client.get("/v1/accounts", headers=new_auth), 401, "unauthorized")
    assert client.delete(f"{base}/{creds.api_key}", headers=dev).status_code == 204
    assert client.get(base, headers=dev).get_json()["count"] == 0
    gone = assert_error(client.delete(f"{base}/key_{'z' * 40}", headers=dev), 404, "not_found")
    assert "key_" not in gone["message"]
    assert_error(client.get("/v1/applications/app_nope/apikeys", headers=dev), 404, "not_found")


def test_the_webhook_through_the_management_api(
    client: Client, app: ServerApp, creds: Credentials, dev: dict[str, str], receiver: list[Any]
) -> None:
    base = f"/v1/applications/{creds.app_id}/webhooks"
    url = f"{HOOK}?app={creds.app_id}"
    assert client.get(base, headers=dev).get_json()["count"] == 0
    made = client.post(base, headers=dev, data={"url": url})
    assert made.status_code == 201, made.get_data(as_text=True)
    hook = made.get_json()
    assert hook["status"] == "valid" and hook["url"] == url and hook["type"] == "webhook"
    assert hook["signing_key"].startswith("whsec_") and receiver == [(url, b"")]
    assert webhooks.get_webhook(app.store, creds.app_id).signing_key == hook["signing_key"]
    again = client.post(base, headers=dev, json={"url": url})
    assert again.status_code == 200 and "signing_key" not in again.get_json()
    assert_error(client.post(base, headers=dev, json={"url": HOOK + "/other"}), 409, "conflict")
    assert_error(client.post(base, headers=dev, json={"url": "ftp://x"}), 400,
                 "invalid_parameters")  # fmt: skip
    listed = client.get(base, headers=dev).get_json()
    assert [h["id"] for h in listed["objects"]] == [hook["id"]]
    got = client.get(f"{base}/{hook['id']}", headers=dev).get_json()
    assert got["id"] == hook["id"] and "signing_key" not in got
    assert_error(client.get(f"{base}/wh_nope", headers=dev), 404, "not_found")
    assert client.delete(f"{base}/{hook['id']}", headers=dev).status_code == 204
    assert webhooks.get_webhook(app.store, creds.app_id) is None
    assert_error(client.get(f"{base}/{hook['id']}", headers=dev), 404, "not_found")
    # A signing key of the operator's choice (the API key a Kloudless receiver verifies with).
    chosen = client.post(base, headers=dev, json={"url": url, "signing_key": creds.api_key})
    assert chosen.status_code == 201 and "signing_key" not in chosen.get_json()
    assert chosen.get_json()["id"] != hook["id"]
    assert webhooks.get_webhook(app.store, creds.app_id).signing_key == creds.api_key


def test_the_developer_is_read_and_changed(client: Client, dev: dict[str, str]) -> None:
    listed = client.get("/v1/meta/developers", headers=dev).get_json()
    assert listed["count"] == 1 and listed["api"] == "meta"
    me = listed["objects"][0]
    assert me["type"] == "developer" and me["api"] == "meta"
    url = f"/v1/meta/developers/{me['id']}"
    patched = client.patch(url, headers=dev, json={"first_name": "Ada", "last_name": "Lovelace"})
    assert patched.status_code == 200
    assert (patched.get_json()["first_name"], patched.get_json()["last_name"]) == (
        "Ada",
        "Lovelace",
    )
    client.patch(url, headers=dev, data={"email": "ada@example.com"})
    got = client.get(url, headers=dev).get_json()
    assert (got["first_name"], got["email"]) == ("Ada", "ada@example.com")
    assert_error(client.patch(url, headers=dev, json={"first_name": 5}), 400, "invalid_parameters")
    for other in ("2", "x", "1" * 30):
        assert_error(client.get(f"/v1/meta/developers/{other}", headers=dev), 404, "not_found")


def test_an_applications_credentials_never_reach_another_applications_data(
    client: Client,
    app: ServerApp,
    creds: Credentials,
    dev: dict[str, str],
    api_key_auth: dict[str, str],
    receiver: list[Any],
) -> None:
    other = _new_app(client, dev, "B")
    b_key = {"Authorization": f"APIKey {other['api_key']}"}
    b_account = client.post("/v1/accounts", headers=b_key, json={"service": "local"}).get_json()
    b_id = b_account["id"]
    b_token = {"Authorization": "Bearer " + app.store.create_token(other["id"], b_id)}
    assert upload(client, b_key, "b.txt", b"secret of B", account=str(b_id)).status_code == 201
    hook = client.patch(
        f"/v1/meta/applications/{other['id']}",
        headers=b_key,
        json={"webhook_url": f"{HOOK}?app={other['id']}"},
    )
    assert hook.get_json()["webhook_status"] == "valid"
    a_token = {"Authorization": f"Bearer {creds.token}"}
    b_paths = [
        f"/v1/accounts/{b_id}",
        f"/v1/accounts/{b_id}/storage/folders/root/contents",
        f"/v1/accounts/{b_id}/events?cursor=0",
        f"/v1/accounts/{b_id}/events/latest",
        f"/v1/accounts/{b_id}/storage/search?q=b",
    ]
    for path in b_paths:
        assert client.get(path, headers=b_key).status_code == 200, path
        for headers in (api_key_auth, a_token):
            assert_error(client.get(path, headers=headers), 404, "not_found")
    assert_error(client.delete(f"/v1/accounts/{b_id}", headers=api_key_auth), 404, "not_found")
    # ...and the other way round.
    a_path = f"/v1/accounts/{creds.account_id}/storage/folders/root/contents"
    for headers in (b_key, b_token):
        assert_error(client.get(a_path, headers=headers), 404, "not_found")
    assert [a["id"] for a in client.get("/v1/accounts", headers=api_key_auth).get_json()[
        "objects"]] == [creds.account_id]  # fmt: skip
    # B's application: settings, webhook and keys are not A's to see or change.
    b_app = f"/v1/meta/applications/{other['id']}"
    assert_error(client.get(b_app, headers=api_key_auth), 404, "not_found")
    assert "webhook_url" in client.get(b_app, headers=b_key).get_json()
    renamed = client.patch(b_app, headers=api_key_auth, json={"name": "mine"})
    assert_error(renamed, 404, "not_found")
    assert_error(client.delete(b_app, headers=api_key_auth), 403, "forbidden")
    mine = client.get("/v1/meta/applications", headers=api_key_auth).get_json()
    assert [a["id"] for a in mine["objects"]] == [creds.app_id]
    for path in ("webhooks", "apikeys"):
        url = f"/v1/applications/{other['id']}/{path}"
        assert_error(client.get(url, headers=api_key_auth), 403, "forbidden")
    assert app.store.get_app(other["id"])["name"] == "B"
    # Trusted domains: the developer key manages any application's, A's key not B's.
    domains = f"{b_app}/trusted_domains"
    added = client.post(domains, headers=dev, json={"domain": "https://b.example"})
    assert added.status_code == 201, added.get_data(as_text=True)
    assert client.get(domains, headers=b_key).get_json()["count"] == 1
    assert_error(client.get(domains, headers=api_key_auth), 404, "not_found")
    assert_error(client.post(domains, headers=api_key_auth, json={"domain": "https://a.example"}),
                 404, "not_found")  # fmt: skip


def test_answers_showing_a_new_secret_are_stored_sealed_for_replays(
    client: Client, app: ServerApp, creds: Credentials, dev: dict[str, str]
) -> None:
    """The SDK sends an Idempotency-Key with every POST: the stored answer that a retry gets
    back must not keep the new API key in clear."""
    keyed = dict(dev, **{"Idempotency-Key": "create-billing"})
    first = client.post("/v1/meta/applications", headers=keyed, json={"name": "Billing"})
    assert first.status_code == 201
    api_key = first.get_json()["api_key"]
    again = client.post("/v1/meta/applications", headers=keyed, json={"name": "Billing"})
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json() == first.get_json()  # the same application, the same key
    assert len(app.store.list_apps()) == 2
    keyed = dict(dev, **{"Idempotency-Key": "new-key"})
    made = client.post(f"/v1/applications/{creds.app_id}/apikeys", headers=keyed)
    assert client.post(f"/v1/applications/{creds.app_id}/apikeys", headers=keyed).get_json() == (
        made.get_json()
    )
    stored = [bytes(r["response_body"]) for r in app.store.all(
        "SELECT response_body FROM idempotency_keys")]  # fmt: skip
    assert len(stored) == 2 and all(b.startswith(b"kloudless-sealed:") for b in stored)
    assert not any(api_key.encode() in b or made.get_json()["key"].encode() in b for b in stored)
