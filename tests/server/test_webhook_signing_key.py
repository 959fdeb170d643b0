"""A Kloudless webhook receiver keeps working unchanged: the operator may sign notifications
with the API key it already verifies; keys are sealed at rest."""

from __future__ import annotations

import os
from typing import Any, Callable

from werkzeug.test import Client

from kloudless import webhooks as sdk_webhooks
from kloudless.server import webhooks
from kloudless.server.app import ServerApp
from kloudless.server.bootstrap import Credentials

from .conftest import assert_error

HOOK = "https://receiver.example/kloudless"


def test_signing_with_the_api_key_a_receiver_already_uses(
    client: Client, app: ServerApp, creds: Credentials, api_key_auth: dict[str, str]
) -> None:
    seen: list[tuple[bytes, dict[str, str]]] = []

    def receiver(url: str, body: bytes, headers: dict[str, str], timeout: float) -> Any:
        seen.append((body, headers))
        sdk_webhooks.verify_webhook(body, headers["X-Kloudless-Signature"], creds.api_key)
        return webhooks.DeliveryResult(200, creds.app_id)

    app.webhooks.sender = receiver
    url = f"/v1/meta/applications/{creds.app_id}"
    patched = client.patch(
        url, headers=api_key_auth, json={"webhook_url": HOOK, "webhook_signing_key": creds.api_key}
    )
    assert patched.status_code == 200, patched.get_data(as_text=True)
    assert "webhook_signing_key" not in patched.get_json()  # the operator knows it
    assert patched.get_json()["webhook_status"] == "valid" and len(seen) == 1
    stored = app.store.one("SELECT signing_key FROM webhooks")["signing_key"]
    assert creds.api_key not in stored and stored.startswith("kdav1.")
    assert webhooks.get_webhook(app.store, creds.app_id).signing_key == creds.api_key
    # Back to a whsec_ key by rotation: shown once, sealed too.
    rotated = client.patch(url, headers=api_key_auth, json={"rotate_webhook_signing_key": True})
    key = rotated.get_json()["webhook_signing_key"]
    assert key.startswith("whsec_")
    assert key not in app.store.one("SELECT signing_key FROM webhooks")["signing_key"]
    chosen = client.patch(url, headers=api_key_auth, json={"webhook_signing_key": "k" * 20})
    assert chosen.status_code == 200
    assert webhooks.get_webhook(app.store, creds.app_id).signing_key == "k" * 20


def test_bad_signing_keys_are_refused(
    client: Client, app: ServerApp, creds: Credentials, api_key_auth: dict[str, str]
) -> None:
    url = f"/v1/meta/applications/{creds.app_id}"
    for key in ("short", 5, "x" * 513, "tab\tkey-long-enough"):
        body = {"webhook_signing_key": key}
        assert_error(client.patch(url, headers=api_key_auth, json=body), 400, "invalid_parameters")
    no_hook = client.patch(url, headers=api_key_auth, json={"webhook_signing_key": "k" * 20})
    assert "no webhook" in assert_error(no_hook, 400, "invalid_parameters")["message"]
    assert app.store.one("SELECT COUNT(*) AS n FROM webhooks")["n"] == 0


def test_keys_stored_in_clear_by_older_versions_still_work(
    app: ServerApp, creds: Credentials
) -> None:
    now = "2026-01-01T00:00:00.000000Z"
    app.store.execute(
        "INSERT INTO webhooks (app_id, url, signing_key, state, created, modified)"
        " VALUES (?, ?, ?, 'valid', ?, ?)",
        (creds.app_id, HOOK, "whsec_old", now, now),
    )
    assert webhooks.get_webhook(app.store, creds.app_id).signing_key == "whsec_old"


def test_keys_an_older_version_stored_in_clear_are_sealed_on_upgrade(
    make_settings: Callable[..., Any], monkeypatch: Any
) -> None:
    from kloudless.server import create_app, store

    settings = make_settings(migrated=False)
    # The database as a version before migration 611 left it: the key in clear.
    older = [(v, m) for v, m in store.MIGRATIONS if v != 611]
    monkeypatch.setattr(store, "MIGRATIONS", older)
    old = store.Store(settings.db_path, settings.database_url)
    app_id, _ = old.create_app()
    now = "2026-01-01T00:00:00.000000Z"
    old.execute(
        "INSERT INTO webhooks (app_id, url, signing_key, state, created, modified)"
        " VALUES (?, ?, ?, 'valid', ?, ?)",
        (app_id, HOOK, "whsec_kept_in_clear_by_an_old_version", now, now),
    )
    assert old.get_kv("server_secret") is None  # older versions may not have made it yet
    old.close()
    monkeypatch.undo()

    upgraded = create_app(settings)
    try:
        stored = upgraded.store.one("SELECT signing_key FROM webhooks")["signing_key"]
        assert stored.startswith("kdav1.") and "kept_in_clear" not in stored
        config = webhooks.get_webhook(upgraded.store, app_id)
        assert config.signing_key == "whsec_kept_in_clear_by_an_old_version"
    finally:
        upgraded.close()
    for path in (settings.db_path, settings.db_path + "-wal"):
        if os.path.exists(path):
            with open(path, "rb") as handle:
                assert b"kept_in_clear" not in handle.read(), path
