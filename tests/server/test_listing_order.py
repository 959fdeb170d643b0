"""The order of folder listings comes from the stored ``objects.sort_key`` (migration 1400).

Folders first, then by lower-cased name (Python's ``str.lower()``, non-ASCII included), then by
id: every page, however the folder is cut, the full listing, renames, moves, copies, and rows
written before the migration (whose keys it fills in). Runs on SQLite and PostgreSQL (the key
must compare by code point there too, not by the database's locale).
"""

from __future__ import annotations

from typing import Any

from werkzeug.test import Client

from kloudless.server import Settings, create_app
from kloudless.server.app import ServerApp
from kloudless.server.connectors.local_storage import order_key
from kloudless.server.context import MAX_PAGE

from .conftest import BufferedClient, assert_error, mkdir, pg_collation, upload

S = "/v1/accounts/me/storage"

FILES = [
    "b.txt", "B.txt", "a.txt", "Ä.txt", "é.txt", "E.txt", "ab", "a b", "ab c", "a", "10", "9",
    "İstanbul", "istanbul", "ß", "ss", "z", "Zebra", "📁 emoji", "~tilde", "_under", "Ω", "ω",
]  # fmt: skip
FOLDERS = ["Zeta", "alpha", "Alpha", "é-dir", "0"]


def expected_order(objects: list[dict[str, Any]]) -> list[str]:
    """The documented order, computed in Python from the objects' JSON."""
    ordered = sorted(objects, key=lambda o: (o["type"] != "folder", o["name"].lower(), o["id"]))
    return [o["id"] for o in ordered]


def listing(client: Client, auth: dict[str, str], folder: str, page_size: int) -> list[Any]:
    """Every page of a folder, concatenated (bounded by the number of pages)."""
    objects: list[Any] = []
    for page in range(1, 200):
        answer = client.get(
            f"{S}/folders/{folder}/contents",
            headers=auth,
            query_string={"page": page, "page_size": page_size},
        )
        assert answer.status_code == 200, answer.get_data(as_text=True)
        body = answer.get_json()
        objects += body["objects"]
        if body["next_page"] is None:
            return objects
    raise AssertionError("the listing did not end")


def fill(client: Client, auth: dict[str, str], parent: str = "root") -> None:
    for name in FOLDERS:
        assert mkdir(client, auth, name, parent=parent).status_code == 201
    for name in FILES:
        assert upload(client, auth, name, name.encode(), parent=parent).status_code == 201


def test_every_page_follows_the_order(client: Client, auth: dict[str, str]) -> None:
    fill(client, auth)
    whole = listing(client, auth, "root", 1000)
    assert len(whole) == len(FILES) + len(FOLDERS)
    ids = [o["id"] for o in whole]
    assert ids == expected_order(whole)
    assert [o["type"] for o in whole[: len(FOLDERS)]] == ["folder"] * len(FOLDERS)
    for page_size in (1, 3, 7):
        assert [o["id"] for o in listing(client, auth, "root", page_size)] == ids
    # Names differing only in case follow each other (the id decides between them).
    names = [o["name"] for o in whole]
    assert abs(names.index("b.txt") - names.index("B.txt")) == 1
    assert names.index("a") < names.index("a b") < names.index("ab") < names.index("ab c")


def test_a_page_past_any_folder_is_not_found_not_a_500(
    client: Client, auth: dict[str, str]
) -> None:
    # Past the last page: 404, also past what any folder could hold (an offset beyond the
    # databases' 64-bit integers, found by the fuzz test), before the store is asked.
    fill(client, auth)
    url = "/v1/accounts/me/storage/folders/root/contents"
    for recursive in ("false", "true"):
        for page in (MAX_PAGE, MAX_PAGE + 1, 92233720368547760):
            query = {"page": page, "page_size": 1000, "recursive": recursive}
            body = assert_error(client.get(url, headers=auth, query_string=query), 404, "not_found")
            assert body["message"] == f"Page {page} does not exist."


def test_recursive_listing_follows_the_order(client: Client, auth: dict[str, str]) -> None:
    sub = mkdir(client, auth, "sub").get_json()["id"]
    fill(client, auth, parent=sub)
    upload(client, auth, "Top.txt", b"t")
    answer = client.get(
        f"{S}/folders/root/contents",
        headers=auth,
        query_string={"recursive": "true", "page_size": 1000},
    )
    objects = answer.get_json()["objects"]
    assert len(objects) == 2 + len(FILES) + len(FOLDERS)
    assert [o["id"] for o in objects] == expected_order(objects)


def test_rename_move_and_copy_take_their_place(client: Client, auth: dict[str, str]) -> None:
    fill(client, auth)
    last = upload(client, auth, "zzz last", b"z").get_json()["id"]
    renamed = client.patch(f"{S}/files/{last}", headers=auth, json={"name": "0 first"})
    assert renamed.status_code == 200
    whole = listing(client, auth, "root", 5)
    assert [o["id"] for o in whole] == expected_order(whole)
    assert whole[len(FOLDERS)]["id"] == last  # the first file now
    target = mkdir(client, auth, "target").get_json()["id"]
    moved = client.patch(f"{S}/files/{last}", headers=auth, json={"parent_id": target})
    assert moved.status_code == 200
    copied = client.post(
        f"{S}/files/{last}/copy", headers=auth, json={"parent_id": target, "name": "0 copy"}
    )
    assert copied.status_code == 201, copied.get_data(as_text=True)
    upload(client, auth, "middle", b"m", parent=target)
    inside = listing(client, auth, target, 1)
    assert [o["name"] for o in inside] == ["0 copy", "0 first", "middle"]
    folder = next(o["id"] for o in whole if o["name"] == "Zeta")
    assert client.patch(f"{S}/folders/{folder}", headers=auth, json={"name": "0 zeta"}).status_code
    again = listing(client, auth, "root", 4)
    assert again[0]["name"] == "0" and again[1]["name"] == "0 zeta"
    assert [o["id"] for o in again] == expected_order(again)


def test_migration_fills_the_keys_of_existing_rows(
    app: ServerApp, client: Client, auth: dict[str, str], settings: Settings
) -> None:
    fill(client, auth)
    before = [o["id"] for o in listing(client, auth, "root", 1000)]
    # The schema as it was before migration 1400, with the rows it had.
    app.store.execute("DROP INDEX objects_order")
    app.store.execute("ALTER TABLE objects DROP COLUMN sort_key")
    app.store.execute("DELETE FROM schema_versions WHERE version = 1400")
    app.close()
    reopened = create_app(settings)
    try:
        rows = reopened.store.all("SELECT id, kind, name, sort_key FROM objects")
        assert len(rows) == len(FILES) + len(FOLDERS)
        for row in rows:
            assert row["sort_key"] == order_key(row["kind"], row["name"], row["id"])
        after = listing(BufferedClient(reopened), auth, "root", 4)
        assert [o["id"] for o in after] == before == expected_order(after)
        if settings.database_url:
            # The test server's databases compare in C.UTF-8 anyway (no other locale is
            # installed here): check that the key does not depend on the database's locale.
            assert pg_collation(reopened.store, "objects", "sort_key") == "C"
    finally:
        reopened.close()
