"""Routing, request ids, authentication, JSON errors, limits and the rate limit."""

from __future__ import annotations

from typing import Callable

import pytest
from werkzeug.test import Client

from kloudless.server import Settings, create_app
from kloudless.server.app import ServerApp
from kloudless.server.bootstrap import Credentials, bootstrap

from .conftest import BufferedClient, assert_error, stored_bytes


def test_every_response_has_a_request_id(client: Client, auth: dict[str, str]) -> None:
    first = client.get("/v1/accounts/me", headers=auth)
    second = client.get("/v1/accounts/me", headers=auth)
    assert first.status_code == 200
    assert first.headers["X-Request-Id"] != second.headers["X-Request-Id"]


def test_unknown_route_is_json_404(client: Client) -> None:
    assert_error(client.get("/v1/no/such/thing"), 404, "not_found")
    assert_error(client.get("/nowhere"), 404, "not_found")


def test_wrong_method_is_json_405(client: Client, auth: dict[str, str]) -> None:
    assert_error(client.put("/v1/accounts", headers=auth), 405, "method_not_allowed")


def test_trailing_slash_optional(client: Client, auth: dict[str, str]) -> None:
    assert client.get("/v1/accounts/me/", headers=auth).status_code == 200
    assert (
        client.get("/v1/accounts/me/storage/folders/root/contents/", headers=auth).status_code
        == 200
    )


def test_missing_auth(client: Client) -> None:
    assert_error(client.get("/v1/accounts/me"), 401, "authentication_required")


@pytest.mark.parametrize("header", ["Bearer nope", "APIKey nope", "Basic abc", "Bearer", "x"])
def test_bad_credentials(client: Client, creds: Credentials, header: str) -> None:
    response = client.get("/v1/accounts/me", headers={"Authorization": header})
    assert response.status_code == 401
    assert_error(response, 401, response.get_json()["error_code"])
    assert "nope" not in response.get_data(as_text=True)


def test_api_key_scheme_case_insensitive(client: Client, creds: Credentials) -> None:
    for scheme in ("APIKey", "ApiKey", "apikey"):
        response = client.get(
            f"/v1/accounts/{creds.account_id}",
            headers={"Authorization": f"{scheme} {creds.api_key}"},
        )
        assert response.status_code == 200
        assert response.get_json()["id"] == creds.account_id


def test_me_needs_bearer(client: Client, api_key_auth: dict[str, str]) -> None:
    assert_error(client.get("/v1/accounts/me", headers=api_key_auth), 400, "invalid_parameters")


@pytest.mark.parametrize("bad", ["abc", "-1", "1.5", "9" * 40])
def test_bad_account_ids(client: Client, auth: dict[str, str], bad: str) -> None:
    response = client.get(f"/v1/accounts/{bad}", headers=auth)
    assert response.status_code in (400, 404)
    assert_error(response, response.status_code, response.get_json()["error_code"])


def test_bearer_cannot_reach_other_account(
    client: Client, app: ServerApp, creds: Credentials, auth: dict[str, str]
) -> None:
    other = app.store.create_account(creds.app_id, "local", "other")
    assert_error(client.get(f"/v1/accounts/{other}", headers=auth), 404, "not_found")
    assert_error(
        client.get(f"/v1/accounts/{other}/storage/folders/root", headers=auth), 404, "not_found"
    )


def test_api_key_cannot_reach_other_app(client: Client, app: ServerApp, creds: Credentials) -> None:
    other_app, other_key = app.store.create_app("other")
    foreign = app.store.create_account(other_app, "local", "x")
    response = client.get(
        f"/v1/accounts/{foreign}", headers={"Authorization": f"APIKey {creds.api_key}"}
    )
    assert_error(response, 404, "not_found")
    mine = client.get(f"/v1/accounts/{foreign}", headers={"Authorization": f"APIKey {other_key}"})
    assert mine.status_code == 200


def test_revoked_token(client: Client, app: ServerApp, creds: Credentials) -> None:
    token = app.store.create_token(creds.app_id, creds.account_id)
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/v1/accounts/me", headers=headers).status_code == 200
    assert app.store.revoke_token(token)
    assert_error(client.get("/v1/accounts/me", headers=headers), 401, "invalid_token")


def test_secrets_are_stored_hashed(app: ServerApp, creds: Credentials) -> None:
    content = stored_bytes(app)
    assert creds.app_id.encode() in content  # the control case: the rows are there
    for secret in (creds.token, creds.api_key):
        assert secret.encode() not in content


def test_as_user_refused(client: Client, auth: dict[str, str]) -> None:
    headers = dict(auth, **{"X-Kloudless-As-User": "123"})
    assert_error(client.get("/v1/accounts/me", headers=headers), 403, "forbidden")


def test_unexpected_exception_is_json_500(
    client: Client, app: ServerApp, auth: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret detail")

    monkeypatch.setattr(app.store, "latest_cursor", boom)
    response = client.get("/v1/accounts/me/events/latest", headers=auth)
    body = assert_error(response, 500, "internal_error")
    assert "secret detail" not in body["message"]


def test_json_body_limit(tmp_path: object, client: Client, auth: dict[str, str]) -> None:
    big = {"name": "x" * (2 * 1024 * 1024), "parent_id": "root"}
    response = client.post("/v1/accounts/me/storage/folders", headers=auth, json=big)
    assert_error(response, 413, "request_too_large")


@pytest.mark.parametrize("body", ["{bad", "[1, 2]", '"text"', "\xff"])
def test_malformed_json(client: Client, auth: dict[str, str], body: str) -> None:
    response = client.post(
        "/v1/accounts/me/storage/folders",
        headers=auth,
        data=body.encode("latin-1"),
        content_type="application/json",
    )
    assert response.status_code == 400
    assert_error(response, 400, response.get_json()["error_code"])


@pytest.mark.usefixtures("still_rate_window")
def test_rate_limit(make_settings: Callable[..., Settings]) -> None:
    app = create_app(make_settings(rate_limit_per_minute=3))
    try:
        creds = bootstrap(app.store)
        assert creds is not None
        client = BufferedClient(app)
        headers = {"Authorization": f"Bearer {creds.token}"}
        statuses = [client.get("/v1/accounts/me", headers=headers).status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        limited = client.get("/v1/accounts/me", headers=headers)
        assert_error(limited, 429, "too_many_requests")
        assert 1 <= int(limited.headers["Retry-After"]) <= 60
    finally:
        app.close()


def test_rate_limit_off_by_default(client: Client, auth: dict[str, str]) -> None:
    assert all(client.get("/v1/accounts/me", headers=auth).status_code == 200 for _ in range(50))


def test_handler_wrapper_hook(client: Client, app: ServerApp, auth: dict[str, str]) -> None:
    seen: list[str] = []

    def wrapper(ctx, call_next):  # type: ignore[no-untyped-def]
        seen.append(ctx.request.path)
        response = call_next()
        response.headers["X-Wrapped"] = "1"
        return response

    app.handler_wrappers.append(wrapper)
    response = client.get("/v1/accounts/me", headers=auth)
    assert response.headers["X-Wrapped"] == "1"
    assert seen == ["/v1/accounts/me"]


def test_activity_listener_hook(client: Client, app: ServerApp, auth: dict[str, str]) -> None:
    calls: list[tuple[int, int]] = []
    app.activity_listeners.append(lambda account, cursor: calls.append((account, cursor)))
    response = client.post(
        "/v1/accounts/me/storage/folders", headers=auth, json={"name": "x", "parent_id": "root"}
    )
    assert response.status_code == 201
    assert len(calls) == 1 and calls[0][1] > 0


def test_migrations_are_idempotent(settings: Settings) -> None:
    first = create_app(settings)
    creds = bootstrap(first.store)
    first.close()
    second = create_app(settings)
    try:
        assert bootstrap(second.store) is None
        assert creds is not None
        assert second.store.get_account(creds.account_id) is not None
    finally:
        second.close()


def test_wrapper_can_consume_and_replace_body(
    client: Client, app: ServerApp, auth: dict[str, str]
) -> None:
    import hashlib
    import io
    import json

    digests: list[str] = []

    def wrapper(ctx, call_next):  # type: ignore[no-untyped-def]
        data = ctx.body_stream().read()
        digests.append(hashlib.sha256(data).hexdigest())
        ctx.body_override = io.BytesIO(data)
        return call_next()

    app.handler_wrappers.append(wrapper)
    meta = json.dumps({"name": "w.txt", "parent_id": "root"})
    created = client.post(
        "/v1/accounts/me/storage/files",
        data=b"payload",
        headers=dict(auth, **{"X-Kloudless-Metadata": meta}),
    )
    assert created.status_code == 201 and created.get_json()["size"] == 7
    folder = client.post(
        "/v1/accounts/me/storage/folders", headers=auth, json={"name": "f", "parent_id": "root"}
    )
    assert folder.status_code == 201
    assert digests[0] == hashlib.sha256(b"payload").hexdigest() and len(digests) == 2


def test_nul_characters_are_refused_alike_on_every_database(
    client: Client, auth: dict[str, str]
) -> None:
    # PostgreSQL text cannot hold U+0000: refused up front, so SQLite answers the same.
    contacts = "/v1/accounts/me/crm/contacts"
    body = client.post(contacts, headers=auth, json={"name": "a\u0000b"})
    assert_error(body, 400, "invalid_parameters")
    nested = client.post(contacts, headers=auth, json={"emails": [{"address": "\u0000@x"}]})
    assert_error(nested, 400, "invalid_parameters")
    query = client.get(contacts, headers=auth, query_string={"q": "a\u0000"})
    assert_error(query, 400, "invalid_parameters")
    assert_error(client.get(f"{contacts}/con_%00x", headers=auth), 404, "not_found")
    # The control case: the same requests without the NUL.
    assert client.post(contacts, headers=auth, json={"name": "ab"}).status_code == 201
    found = client.get(contacts, headers=auth, query_string={"q": "ab"}).get_json()
    assert [o["name"] for o in found["objects"]] == ["ab"]
