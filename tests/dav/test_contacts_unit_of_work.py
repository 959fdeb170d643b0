"""Contacts writes and the request's unit of work: a server that dies after a change but before
its idempotent answer is stored keeps neither (``local``), or finds the upstream change again on
the retry (CardDAV), so a retried request with the same ``Idempotency-Key`` changes once.

The "crash" is a :class:`Crash` (a ``BaseException``, like the end of a process) raised where
the idempotency layer stores the answer, once: everything of the first attempt that was to
commit with the answer is rolled back, as after ``kill -9``.
"""

from __future__ import annotations

from typing import Any

import pytest
from werkzeug.test import Client

from kloudless.server.idempotency import IdempotencyLayer

C = "/v1/accounts/me/crm"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


class Crash(BaseException):
    """The process ends here."""


#: Crashes to come: while not empty, storing an answer pops one and crashes.
ARMED: list[int] = []


@pytest.fixture(autouse=True)
def _crash_when_armed(monkeypatch: pytest.MonkeyPatch) -> None:
    original = IdempotencyLayer._finish

    def finish(self: IdempotencyLayer, *args: Any, **kwargs: Any) -> None:
        if ARMED:
            ARMED.pop()
            raise Crash()
        original(self, *args, **kwargs)

    monkeypatch.setattr(IdempotencyLayer, "_finish", finish)
    ARMED.clear()


def _events(api: Client, auth: dict[str, str], cursor: int) -> list[dict[str, Any]]:
    answer = api.get(f"/v1/accounts/me/events?cursor={cursor}", headers=auth).get_json()
    return list(answer["objects"])


def _cursor(api: Client, auth: dict[str, str]) -> int:
    return int(api.get("/v1/accounts/me/events/latest", headers=auth).get_json()["cursor"])


def _names(api: Client, auth: dict[str, str]) -> list[str]:
    objects = api.get(f"{C}/contacts?page_size=1000", headers=auth).get_json()["objects"]
    return sorted(o["name"] for o in objects)


def _retried(
    api: Client, method: str, path: str, auth: dict[str, str], key: str, **kwargs: Any
) -> Any:
    """Send a keyed request that crashes, then its retry. :returns: the retry's response."""
    headers = {**auth, "Idempotency-Key": key}
    ARMED.append(1)
    with pytest.raises(Crash):
        api.open(path, method=method, headers=headers, **kwargs)
    assert ARMED == []
    return api.open(path, method=method, headers=headers, **kwargs)


def test_a_crash_before_the_answer_keeps_nothing_of_a_local_create(api: Client, creds: Any) -> None:
    auth = {"Authorization": f"Bearer {creds.token}"}
    start = _cursor(api, auth)
    headers = {**auth, "Idempotency-Key": "create-1"}
    ARMED.append(1)
    with pytest.raises(Crash):
        api.post(f"{C}/contacts", headers=headers, json={"name": "Once"})
    # Rolled back with its answer: no contact, no event.
    assert _names(api, auth) == []
    assert _events(api, auth, start) == []
    again = api.post(f"{C}/contacts", headers=headers, json={"name": "Once"})
    assert again.status_code == 201 and ARMED == []
    assert _names(api, auth) == ["Once"]
    assert [(e["type"], e["id"]) for e in _events(api, auth, start)] == [
        ("add", again.get_json()["id"])
    ]
    replay = api.post(f"{C}/contacts", headers=headers, json={"name": "Once"})
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert _names(api, auth) == ["Once"]


def test_a_crash_before_the_answer_keeps_nothing_of_a_local_batch(
    api: Client, app: Any, creds: Any
) -> None:
    auth = {"Authorization": f"Bearer {creds.token}"}
    start = _cursor(api, auth)
    body = {
        "requests": [
            {"id": "a", "method": "POST", "path": "contacts", "data": {"name": "A"}},
            {"id": "b", "method": "POST", "path": "contacts", "data": {"name": "B"}},
            {"id": "g", "method": "POST", "path": "contact_groups", "data": {"name": "G"}},
        ]
    }
    answer = _retried(api, "POST", f"{C}/batch", auth, "batch-1", json=body).get_json()
    assert [r["status_code"] for r in answer["responses"]] == [201, 201, 201]
    assert _names(api, auth) == ["A", "B"]
    groups = api.get(f"{C}/contact_groups", headers=auth).get_json()["objects"]
    assert [g["name"] for g in groups] == ["G"]
    assert sorted(e["type"] for e in _events(api, auth, start)) == ["add", "add", "add"]


def test_a_crash_before_the_answer_keeps_nothing_of_a_local_patch_or_delete(
    api: Client, app: Any, creds: Any
) -> None:
    auth = {"Authorization": f"Bearer {creds.token}"}
    contact = api.post(f"{C}/contacts", headers=auth, json={"name": "Pic"}).get_json()
    url = f"{C}/contacts/{contact['id']}"
    start = _cursor(api, auth)
    patched = _retried(api, "PATCH", url, auth, "patch-1", json={"nickname": "P"})
    assert patched.status_code == 200 and patched.get_json()["nickname"] == "P"
    assert [e["type"] for e in _events(api, auth, start)] == ["update"]
    # A keyed DELETE that crashed left the contact; its retry deletes it once.
    start = _cursor(api, auth)
    assert _retried(api, "DELETE", url, auth, "delete-1").status_code == 204
    assert api.get(url, headers=auth).status_code == 404
    assert [e["type"] for e in _events(api, auth, start)] == ["delete"]
    assert app.store.all("SELECT * FROM blob_journal") == []


# -- CardDAV: the upstream change happened; the retry finds it (the request's intent) ----------


def _types_by_id(api: Client, auth: dict[str, str], cursor: int) -> list[tuple[str, str]]:
    return sorted((e["type"], e["id"]) for e in _events(api, auth, cursor))


def test_carddav_create_and_import_retried_after_a_crash_make_one_card_each(
    api: Client, carddav_auth: dict[str, str]
) -> None:
    auth = carddav_auth
    start = _cursor(api, auth)
    created = _retried(api, "POST", f"{C}/contacts", auth, "dav-create", json={"name": "Once"})
    assert created.status_code == 201
    assert _names(api, auth) == ["Once"]
    text = "".join(
        f"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:imp-{n}\r\nFN:Imported {n}\r\nEND:VCARD\r\n"
        for n in range(3)
    )
    imported = _retried(
        api,
        "POST",
        f"{C}/contacts/import",
        auth,
        "dav-import",
        data=text,
        content_type="text/vcard",
    )
    assert imported.status_code == 201
    assert _names(api, auth) == ["Imported 0", "Imported 1", "Imported 2", "Once"]
    ids = [created.get_json()["id"], *(o["id"] for o in imported.get_json()["objects"])]
    assert _types_by_id(api, auth, start) == sorted(("add", i) for i in ids)


def test_carddav_changes_retried_after_a_crash_are_not_refused_as_conflicts(
    api: Client, carddav_auth: dict[str, str]
) -> None:
    auth = carddav_auth
    contact = api.post(f"{C}/contacts", headers=auth, json={"name": "Dav"}).get_json()
    url = f"{C}/contacts/{contact['id']}"
    assert (
        api.put(f"{url}/photo", headers={**auth, "Content-Type": "image/png"}, data=PNG).status_code
        == 200
    )
    etag = api.get(url, headers=auth).get_json()["etag"]
    start = _cursor(api, auth)
    # The first attempt changed the card (its etag moved on); the retry, with the same
    # If-Match, is the same request and must not answer 412.
    patched = _retried(
        api, "PATCH", url, {**auth, "If-Match": f'"{etag}"'}, "dav-patch", json={"nickname": "D"}
    )
    assert patched.status_code == 200 and patched.get_json()["nickname"] == "D"
    etag = patched.get_json()["etag"]
    removed = _retried(api, "DELETE", f"{url}/photo", {**auth, "If-Match": etag}, "dav-unphoto")
    assert removed.status_code == 204
    assert api.get(f"{url}/photo", headers=auth).status_code == 404
    deleted = _retried(api, "DELETE", url, auth, "dav-delete")
    assert deleted.status_code == 204
    assert api.get(url, headers=auth).status_code == 404
    assert [e["type"] for e in _events(api, auth, start)] == ["update", "update", "delete"]


def test_carddav_group_rename_and_keyed_batch_retried_after_a_crash(
    api: Client, carddav_auth: dict[str, str]
) -> None:
    auth = carddav_auth
    group = api.post(f"{C}/contact_groups", headers=auth, json={"name": "Old"}).get_json()
    member = api.post(
        f"{C}/contacts", headers=auth, json={"name": "Member", "groups": [group["id"]]}
    ).get_json()
    etag = api.get(f"{C}/contact_groups/{group['id']}", headers=auth).get_json()["etag"]
    start = _cursor(api, auth)
    renamed = _retried(
        api,
        "PATCH",
        f"{C}/contact_groups/{group['id']}",
        {**auth, "If-Match": etag},
        "dav-rename",
        json={"name": "New"},
    )
    assert renamed.status_code == 200 and renamed.get_json()["name"] == "New"
    assert renamed.get_json()["count"] == 1
    # The member card was rewritten by the first attempt: its update is reported once (found
    # by the upstream sync, since the retry had nothing left to rewrite), the group's once.
    assert _types_by_id(api, auth, start) == sorted(
        [("update", group["id"]), ("update", member["id"])]
    )
    start = _cursor(api, auth)
    body = {
        "requests": [
            {"id": "a", "method": "POST", "path": "contacts", "data": {"name": "A"}},
            {"id": "b", "method": "POST", "path": "contacts", "data": {"name": "B"}},
        ]
    }
    answer = _retried(api, "POST", f"{C}/batch", auth, "dav-batch", json=body).get_json()
    assert [r["status_code"] for r in answer["responses"]] == [201, 201]
    assert _names(api, auth) == ["A", "B", "Member"]
    assert sorted(e["type"] for e in _events(api, auth, start)) == ["add", "add"]
