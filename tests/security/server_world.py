"""A populated server for the server security tests: two applications, three accounts, and one
of every resource type owned by the victim account."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from werkzeug.test import Client, TestResponse

from kloudless.server import Settings, create_app
from kloudless.server.app import ServerApp
from kloudless.server.bootstrap import bootstrap

#: Content and names only the victim owns: they must never appear in an attacker's response.
VICTIM_CONTENT = b"VICTIM-SECRET-CONTENT-0042"
VICTIM_NAME = "victim-secret-name.txt"


class BufferedClient(Client):
    """A test client that reads and closes every response body."""

    def open(self, *args: Any, **kwargs: Any) -> TestResponse:
        kwargs.setdefault("buffered", True)
        return super().open(*args, **kwargs)


@dataclass
class World:
    app: ServerApp
    client: Client
    data_dir: str
    app_x: str
    key_x: str
    app_y: str
    key_y: str
    #: attacker account A (app X), victim B (app X), C (app Y)
    acc_a: int
    acc_b: int
    acc_c: int
    tok_a: str
    tok_b: str
    tok_c: str
    ids: dict[str, str] = field(default_factory=dict)

    def bearer(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    def apikey(self, key: str) -> dict[str, str]:
        return {"Authorization": f"APIKey {key}"}

    def call(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        body: Any = None,
        data: bytes | None = None,
        **query: str,
    ) -> TestResponse:
        all_headers = dict(headers)
        if body is not None:
            data = json.dumps(body).encode()
            all_headers["Content-Type"] = "application/json"
        return self.client.open(
            "/v1/" + path.lstrip("/"),
            method=method,
            headers=all_headers,
            data=data,
            query_string=query,
        )

    def ok(self, response: TestResponse, *statuses: int) -> dict[str, Any]:
        assert response.status_code in (statuses or (200, 201)), response.get_data(as_text=True)
        return dict(response.get_json())


def upload(
    world: World, headers: dict[str, str], name: str, data: bytes, parent: str = "root"
) -> TestResponse:
    meta = {"X-Kloudless-Metadata": json.dumps({"name": name, "parent_id": parent})}
    return world.client.post(
        "/v1/accounts/me/storage/files", headers=dict(headers, **meta), data=data
    )


def seed_victim(world: World) -> None:
    """Create one of each resource type in account B."""
    b = world.bearer(world.tok_b)
    folder = world.ok(world.call("POST", "accounts/me/storage/folders", b, {"name": "vdir"}))
    file = world.ok(upload(world, b, VICTIM_NAME, VICTIM_CONTENT, folder["id"]))
    link = world.ok(world.call("POST", "accounts/me/storage/links", b, {"file_id": file["id"]}))
    session = world.ok(
        world.call("POST", "accounts/me/storage/multipart", b, {"name": "m.bin", "size": 8})
    )
    calendar = world.ok(world.call("POST", "accounts/me/cal/calendars", b, {"name": "vcal"}))
    event = world.ok(
        world.call(
            "POST",
            f"accounts/me/cal/calendars/{calendar['id']}/events",
            b,
            {"name": "vevent", "start": "2030-01-01T10:00:00Z", "end": "2030-01-01T11:00:00Z"},
        )
    )
    task = world.ok(
        world.call(
            "POST",
            f"accounts/me/storage/files/{file['id']}/copy",
            dict(b, **{"X-Kloudless-Async": "true"}),
            {"parent_id": "root", "name": "copy.txt"},
        ),
        202,
    )
    for _ in range(200):  # bounded wait for the background copy (at most ~10 s)
        state = world.call("GET", f"accounts/me/tasks/{task['id']}", b).get_json()
        if state.get("state") != "PENDING":
            break
        time.sleep(0.05)
    activity = world.ok(world.call("GET", "accounts/me/events", b, cursor="0"))
    world.ids.update(
        folder=folder["id"],
        file=file["id"],
        link=link["id"],
        multipart=session["id"],
        calendar=calendar["id"],
        event=event["id"],
        task=task["id"],
        activity=str(activity["objects"][0]["event_id"]),
    )


@pytest.fixture
def world(tmp_path: Any) -> Iterator[World]:
    data_dir = str(tmp_path / "data")
    app = create_app(Settings(data_dir=data_dir, multipart_part_size=4))
    try:
        creds = bootstrap(app.store)
        assert creds is not None
        store = app.store
        acc_b = store.create_account(creds.app_id, "local", "victim")
        app_y, key_y = store.create_app("other app")
        acc_c = store.create_account(app_y, "local", "other-app-account")
        world = World(
            app=app,
            client=BufferedClient(app),
            data_dir=data_dir,
            app_x=creds.app_id,
            key_x=creds.api_key,
            app_y=app_y,
            key_y=key_y,
            acc_a=creds.account_id,
            acc_b=acc_b,
            acc_c=acc_c,
            tok_a=creds.token,
            tok_b=store.create_token(creds.app_id, acc_b),
            tok_c=store.create_token(app_y, acc_c),
        )
        seed_victim(world)
        yield world
    finally:
        app.close()
