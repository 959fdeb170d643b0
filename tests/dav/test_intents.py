"""Keyed requests on remote backends: the intent recorded before the upstream change lets a
retry after a crash find what the first attempt created (no ``name (1)`` copy, no second
event). The crash is simulated at the worst moment: after the upstream change, before the
request's transaction (event, snapshot, stored answer) commits."""

from __future__ import annotations

import json
from typing import Any, Callable

import pytest
from werkzeug.test import Client
from werkzeug.wrappers import Response

S = "/v1/accounts/me/storage"
EVENTS = "/v1/accounts/me/cal/calendars/primary/events"
EVENT = {"name": "standup", "start": "2026-01-05T10:00:00Z", "end": "2026-01-05T10:15:00Z"}


def _lost_commit(ctx: Any, call_next: Callable[[], Response]) -> Response:
    call_next()  # the change is made (upstream: for good) ...
    raise RuntimeError("... and the server dies before the request commits")


def _root_names(api: Client, auth: dict[str, str]) -> list[str]:
    listing = api.get(f"{S}/folders/root/contents", headers=auth).get_json()
    return sorted(o["name"] for o in listing["objects"])


def test_a_keyed_upload_retried_after_a_lost_commit_finds_its_file(
    api: Client, app: Any, creds: Any, storage_auth: dict[str, str]
) -> None:
    headers = {
        **storage_auth,
        "X-Kloudless-Metadata": json.dumps({"name": "a.txt", "parent_id": "root"}),
        "Idempotency-Key": "upload-1",
    }
    app.handler_wrappers.append(_lost_commit)
    try:
        assert api.post(f"{S}/files", data=b"hello", headers=headers).status_code == 500
    finally:
        app.handler_wrappers.remove(_lost_commit)
    # A WebDAV upload recorded what it was about to create; a local one has no upstream.
    remote = storage_auth["Authorization"] != f"Bearer {creds.token}"
    assert len(app.store.all("SELECT * FROM upstream_intents")) == (1 if remote else 0)
    retried = api.post(f"{S}/files", data=b"hello", headers=headers)
    assert retried.status_code == 201, retried.get_data()
    assert retried.get_json()["name"] == "a.txt"
    # Done with once the answer is stored.
    assert app.store.all("SELECT * FROM upstream_intents") == []
    assert _root_names(api, storage_auth) == ["a.txt"]  # no "a (1).txt"
    file_id = retried.get_json()["id"]
    types = [
        r["type"]
        for r in app.store.all("SELECT type FROM activity WHERE object_id = ?", (file_id,))
    ]
    assert types == ["add"]
    # An unkeyed upload of the same name is a new file, as always.
    plain = {k: v for k, v in headers.items() if k != "Idempotency-Key"}
    assert api.post(f"{S}/files", data=b"hello", headers=plain).get_json()["name"] == "a (1).txt"


@pytest.fixture(params=["local", "caldav"])
def calendar_auth(request: pytest.FixtureRequest, creds: Any) -> dict[str, str]:
    if request.param == "local":
        return {"Authorization": f"Bearer {creds.token}"}
    return dict(request.getfixturevalue("caldav_auth"))


def test_a_keyed_event_retried_after_a_lost_answer_is_not_duplicated(
    api: Client, app: Any, calendar_auth: dict[str, str]
) -> None:
    headers = {**calendar_auth, "Idempotency-Key": "event-1"}
    first = api.post(EVENTS, json=EVENT, headers=headers)
    assert first.status_code == 201, first.get_data()
    # The answer is lost (on a remote calendar: the crash came after the upstream change).
    app.store.execute("DELETE FROM idempotency_keys")
    again = api.post(EVENTS, json=EVENT, headers=headers)
    assert again.status_code == 201, again.get_data()
    assert again.get_json()["id"] == first.get_json()["id"]
    listing = api.get(EVENTS, headers=calendar_auth).get_json()["objects"]
    assert [e["name"] for e in listing].count("standup") == 1
