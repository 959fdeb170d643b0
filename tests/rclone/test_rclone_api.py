"""rclone accounts through the API: ``POST /v1/accounts`` with each upstream kind, the account
object, storage calls, the checks made before an account exists, and the policy for remotes
made through the API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from werkzeug.test import Client

from kloudless.server import Settings, create_app
from kloudless.server.app import ServerApp
from kloudless.server.bootstrap import Credentials, bootstrap
from tests.server.conftest import BufferedClient as _Buffered

from .servers import PASSWORD, Upstream, Upstreams


def _key(creds: Credentials) -> dict[str, str]:
    return {"Authorization": f"APIKey {creds.api_key}"}


def connect(client: Client, creds: Credentials, upstream: Upstream) -> tuple[dict[str, Any], str]:
    """:returns: the new account's JSON and a bearer token for it."""
    body = {"service": "rclone", **upstream.account_settings()}
    created = client.post("/v1/accounts", json=body, headers=_key(creds))
    assert created.status_code == 201, created.get_json()
    account = created.get_json()
    app: ServerApp = client.application  # type: ignore[assignment]
    return account, app.store.create_token(creds.app_id, account["id"])


EXPECTED_SERVICES = {
    "local": ("rclone_local", "local (rclone)"),
    "s3": ("s3_compatible", "S3-compatible storage"),
    "sftp": ("sftp", "SFTP"),
    "webdav": ("rclone_webdav", "webdav (rclone)"),
    "ftp": ("ftp", "FTP"),
    "crypt": ("rclone_crypt", "crypt (rclone)"),
}


def test_account_of_each_kind(client: Client, creds: Credentials, upstream: Upstream) -> None:
    account, token = connect(client, creds, upstream)
    assert (account["service"], account["service_name"]) == EXPECTED_SERVICES[upstream.kind]
    auth = {"Authorization": f"Bearer {token}"}
    full = client.get(f"/v1/accounts/{account['id']}?retrieve_full=true", headers=auth).get_json()
    capabilities = full["properties"]["capabilities"]
    assert capabilities["can_upload_file"] == {"value": True}
    meta = json.dumps({"parent_id": "root", "name": "api.txt"})
    uploaded = client.post(
        "/v1/accounts/me/storage/files",
        data=b"through the API",
        headers={**auth, "X-Kloudless-Metadata": meta},
    )
    assert uploaded.status_code == 201, uploaded.get_json()
    file_id = uploaded.get_json()["id"]
    renamed = client.patch(
        f"/v1/accounts/me/storage/files/{file_id}", json={"name": "renamed.txt"}, headers=auth
    )
    assert renamed.get_json()["id"] == file_id
    part = client.get(
        f"/v1/accounts/me/storage/files/{file_id}/contents", headers={**auth, "Range": "bytes=8-10"}
    )
    assert (part.status_code, part.data) == (206, b"the")
    listing = client.get("/v1/accounts/me/storage/folders/root/contents", headers=auth).get_json()
    assert [o["name"] for o in listing["objects"]] == ["renamed.txt"]
    stored = client.application.store.get_account(account["id"])  # type: ignore[attr-defined]
    for secret in (PASSWORD, "s3-secret-key", "crypt-secret-pw"):
        assert secret not in stored["config"]
    assert "config" not in full and PASSWORD not in json.dumps(full)


def test_bad_credentials_are_refused_before_the_account_exists(
    client: Client, creds: Credentials, upstreams: Upstreams
) -> None:
    before = len(client.application.store.list_accounts())  # type: ignore[attr-defined]
    for kind, key in (("sftp", "pass"), ("ftp", "pass"), ("webdav", "pass")):
        upstream = upstreams.make(kind)
        upstream.options[key] = "wrong-password-123"
        body = {"service": "rclone", **upstream.account_settings()}
        answer = client.post("/v1/accounts", json=body, headers=_key(creds))
        error = answer.get_json()
        assert answer.status_code == 401, (kind, error)
        assert error["error_code"] == "service_unauthorized"
        assert "wrong-password-123" not in answer.get_data(as_text=True)
    s3 = upstreams.make("s3")
    s3.options["secret_access_key"] = "not-the-secret-key"
    answer = client.post(
        "/v1/accounts", json={"service": "rclone", **s3.account_settings()}, headers=_key(creds)
    )
    assert 400 <= answer.status_code < 500, answer.get_json()
    assert "not-the-secret-key" not in answer.get_data(as_text=True)
    assert len(client.application.store.list_accounts()) == before  # type: ignore[attr-defined]


def test_unreachable_upstream_and_bad_settings(
    client: Client, creds: Credentials, upstreams: Upstreams
) -> None:
    from .servers import free_port

    sftp = upstreams.make("sftp")
    sftp.options["port"] = str(free_port())
    answer = client.post(
        "/v1/accounts", json={"service": "sftp", **sftp.account_settings()}, headers=_key(creds)
    )
    assert (answer.status_code, answer.get_json()["error_code"]) == (503, "service_not_available")
    cases = [
        ({"rclone_type": "no-such-type!"}, 400),
        ({"rclone_type": "nosuchbackend"}, 400),
        ({"rclone_type": "sftp", "rclone_options": {"bogus option": "x"}}, 400),
        ({"rclone_type": "sftp", "rclone_options": ["host"]}, 400),
        ({"rclone_remote": "gd", "rclone_config": "[other]\ntype = local\n"}, 400),
    ]
    for body, status in cases:
        answer = client.post(
            "/v1/accounts", json={"service": "rclone", **body}, headers=_key(creds)
        )
        assert answer.status_code == status, (body, answer.get_json())
    missing = upstreams.make("sftp")
    missing.path = missing.path + "/not-there"
    answer = client.post(
        "/v1/accounts",
        json={"service": "rclone", **missing.account_settings()},
        headers=_key(creds),
    )
    assert answer.status_code == 400 and "no folder" in answer.get_json()["message"]


def test_policy_for_remotes_made_through_the_api(tmp_path: Path, upstreams: Upstreams) -> None:
    # No --rclone-allow-local; loopback upstreams allowed (the test servers).
    app = create_app(Settings(data_dir=str(tmp_path / "strict"), allow_upstream=["127.0.0.1"]))
    try:
        client = _Buffered(app)
        creds = bootstrap(app.store)
        assert creds is not None
        refused = [
            {"rclone_type": "local", "rclone_path": "/etc"},
            {"rclone_type": "crypt", "rclone_options": {"remote": "/etc", "password": "x"}},
            {"rclone_type": "alias", "rclone_options": {"remote": ":local:/etc"}},
            {"rclone_type": "sftp", "rclone_options": {"host": "h", "key_file": "/etc/shadow"}},
            {"rclone_type": "sftp", "rclone_options": {"host": "h", "ssh": "sh -c id"}},
            {"rclone_type": "s3", "rclone_options": {"env_auth": "true"}},
        ]
        for body in refused:
            answer = client.post(
                "/v1/accounts", json={"service": "rclone", **body}, headers=_key(creds)
            )
            assert (answer.status_code, answer.get_json()["error_code"]) == (403, "forbidden"), body
        sftp = upstreams.make("sftp")  # a host the outbound policy allows is fine
        answer = client.post(
            "/v1/accounts",
            json={"service": "rclone", **sftp.account_settings()},
            headers=_key(creds),
        )
        assert answer.status_code == 201
    finally:
        app.close()
    # Without --allow-upstream, loopback hosts are refused before rclone connects anywhere.
    app = create_app(Settings(data_dir=str(tmp_path / "default")))
    try:
        client = _Buffered(app)
        creds = bootstrap(app.store)
        assert creds is not None
        for kind in ("sftp", "s3", "webdav"):
            body = {"service": "rclone", **upstreams.make(kind).account_settings()}
            answer = client.post("/v1/accounts", json=body, headers=_key(creds))
            assert answer.status_code == 400, (kind, answer.get_json())
            assert "not allowed" in answer.get_json()["message"]
    finally:
        app.close()


def test_import_a_remote_from_config_text(
    client: Client, creds: Credentials, upstreams: Upstreams, tmp_path: Path
) -> None:
    """A crypt remote wrapping another remote of the same config: both are imported."""
    folder = tmp_path / "wrapped"
    folder.mkdir()
    config = (
        f"[plain]\ntype = alias\nremote = {folder}\n\n"
        "[secret]\ntype = crypt\nremote = plain:\n"
        "password = HDYC-umZDFVFC9he3iNqsFpqLYcvJjg\n"  # `rclone obscure hunter2`
    )
    answer = client.post(
        "/v1/accounts",
        json={"service": "rclone", "rclone_remote": "secret", "rclone_config": config},
        headers=_key(creds),
    )
    assert answer.status_code == 201, answer.get_json()
    account = answer.get_json()
    assert account["service"] == "rclone_crypt" and account["account"] == "secret (crypt)"
    token = client.application.store.create_token(creds.app_id, account["id"])  # type: ignore[attr-defined]
    meta = json.dumps({"parent_id": "root", "name": "hidden.txt"})
    up = client.post(
        "/v1/accounts/me/storage/files",
        data=b"sealed",
        headers={"Authorization": f"Bearer {token}", "X-Kloudless-Metadata": meta},
    )
    assert up.status_code == 201, up.get_json()
    on_disk = [p.name for p in folder.iterdir()]
    assert len(on_disk) == 1 and "hidden" not in on_disk[0]


def test_kloudless_s3_import_is_stored_untried(
    client: Client, creds: Credentials, upstreams: Upstreams
) -> None:
    from .servers import ACCESS_KEY, SECRET_KEY

    s3 = upstreams.make("s3")
    body = {
        "service": "s3_compatible",
        "token": ACCESS_KEY,
        "token_secret": SECRET_KEY,
        "endpoint": s3.options["endpoint"],
        "bucket": s3.path,
    }
    created = client.post("/v1/accounts", json=body, headers=_key(creds))
    assert created.status_code == 201, created.get_json()
    account = created.get_json()
    assert account["service"] == "s3_compatible"
    store = client.application.store  # type: ignore[attr-defined]
    assert SECRET_KEY not in store.get_account(account["id"])["config"]
    token = store.create_token(creds.app_id, account["id"])
    meta = json.dumps({"parent_id": "root", "name": "imported.txt"})
    up = client.post(
        "/v1/accounts/me/storage/files",
        data=b"imported",
        headers={"Authorization": f"Bearer {token}", "X-Kloudless-Metadata": meta},
    )
    assert up.status_code == 201, up.get_json()
    assert (s3.folder / "imported.txt").read_bytes() == b"imported"
