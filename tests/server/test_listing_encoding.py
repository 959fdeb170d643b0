"""The fast listing path gives the same JSON as the per-object one.

A page of folder contents shares the ancestors of siblings (``serialize_many``), is built from
one read of the page and one row more (no count of the folder: the extra row says whether
another page follows), leaves the objects' ``raw`` records out unless the request asks for them,
and is encoded with orjson when it is installed; all must be invisible to clients: every listed
object equals the object's own ``GET`` (with and without ``X-Kloudless-Raw-Data``), the pages
end where they did, and :func:`responses.dumps` gives the values :mod:`json` gives, with or
without orjson.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from werkzeug.test import Client

from kloudless.server import responses
from kloudless.server.app import ServerApp

from .conftest import assert_error, mkdir, upload

S = "/v1/accounts/me/storage"


def test_every_listed_object_equals_its_own_get(client: Client, auth: dict[str, str]) -> None:
    outer = mkdir(client, auth, "Déjà vu").get_json()["id"]
    inner = mkdir(client, auth, "inner 📁", parent=outer).get_json()["id"]
    for index in range(5):
        created = upload(client, auth, f"f-{index}-é.txt", b"x" * index, parent=inner)
        assert created.status_code == 201
    mkdir(client, auth, "sub", parent=inner)
    for folder in ("root", outer, inner):
        listing = client.get(f"{S}/folders/{folder}/contents", headers=auth)
        assert listing.status_code == 200
        objects = listing.get_json()["objects"]
        assert objects
        for obj in objects:
            single = client.get(f"{S}/{obj['type']}s/{obj['id']}", headers=auth)
            assert single.status_code == 200
            assert obj == single.get_json()
    deep = client.get(f"{S}/folders/{inner}/contents", headers=auth).get_json()["objects"]
    assert {o["path"] for o in deep} >= {"/Déjà vu/inner 📁/sub", "/Déjà vu/inner 📁/f-0-é.txt"}
    assert all([a["id"] for a in o["ancestors"]] == ["root", outer, inner] for o in deep)


def test_listed_raw_records_equal_their_get(client: Client, auth: dict[str, str]) -> None:
    raw = dict(auth, **{"X-Kloudless-Raw-Data": "true"})
    folder = mkdir(client, auth, "with raw").get_json()["id"]
    mkdir(client, auth, "child", parent=folder)
    for index in range(3):
        upload(client, auth, f"r-{index}.txt", b"r" * index, parent=folder)
    for recursive in ("false", "true"):
        url = f"{S}/folders/{folder}/contents?recursive={recursive}"
        objects = client.get(url, headers=raw).get_json()["objects"]
        assert len(objects) == 4
        for obj in objects:
            single = client.get(f"{S}/{obj['type']}s/{obj['id']}", headers=raw).get_json()
            assert obj == single and obj["raw"]["id"] == obj["id"]
        plain = client.get(url, headers=auth).get_json()["objects"]
        assert [o["id"] for o in plain] == [o["id"] for o in objects]
        assert all("raw" not in o for o in plain)


def test_pages_end_where_the_folder_does(client: Client, auth: dict[str, str]) -> None:
    empty = mkdir(client, auth, "empty").get_json()["id"]
    first = client.get(f"{S}/folders/{empty}/contents", headers=auth)
    assert first.status_code == 200
    assert (first.get_json()["objects"], first.get_json()["next_page"]) == ([], None)
    assert_error(client.get(f"{S}/folders/{empty}/contents?page=2", headers=auth), 404, "not_found")
    folder = mkdir(client, auth, "six").get_json()["id"]
    for index in range(6):
        upload(client, auth, f"s-{index}.txt", b"s", parent=folder)

    def page(number: int, size: int) -> Any:
        return client.get(
            f"{S}/folders/{folder}/contents",
            headers=auth,
            query_string={"page": number, "page_size": size},
        )

    for size, last in ((3, 2), (4, 2), (6, 1), (7, 1)):
        for number in range(1, last + 1):
            body = page(number, size).get_json()
            expected = min(size, 6 - (number - 1) * size)
            assert (body["count"], body["page"]) == (expected, number)
            assert body["next_page"] == (None if number == last else number + 1)
            assert "total" not in body
        assert_error(page(last + 1, size), 404, "not_found")


@pytest.mark.only_config("sqlite-files", reason="counts statements with SQLite's tracing")
def test_a_page_is_one_read_without_a_count(
    app: ServerApp, client: Client, auth: dict[str, str]
) -> None:
    folder = mkdir(client, auth, "counted").get_json()["id"]
    for index in range(5):
        upload(client, auth, f"c-{index}.txt", b"c", parent=folder)
    seen: list[str] = []
    app.store.conn.set_trace_callback(seen.append)
    try:
        answer = client.get(f"{S}/folders/{folder}/contents?page_size=2", headers=auth)
    finally:
        app.store.conn.set_trace_callback(None)
    assert answer.status_code == 200 and answer.get_json()["next_page"] == 2
    reads = [s for s in seen if "FROM objects" in s]
    assert not [s for s in reads if "COUNT(" in s.upper()]
    pages = [s for s in reads if "ORDER BY sort_key LIMIT" in s]
    assert len(pages) == 1 and "LIMIT 3 OFFSET 0" in pages[0]


VALUES: list[Any] = [
    {"name": "Déjà vu 📁", "size": 0, "nested": [1, 2.5, None, True, False, "\u2028"]},
    {"big": 2**70, "negative": -(2**63)},  # beyond 64 bits: orjson refuses, json is used
    {1: "int key", "s": "str key"},
    [],
    {"control": '\x00\x1f"\\/'},
    {"float": 1e16, "small": 1e-7, "third": 1 / 3},
]


@pytest.mark.parametrize("value", VALUES)
@pytest.mark.parametrize("with_orjson", [True, False])
def test_dumps_gives_the_json_values(
    monkeypatch: pytest.MonkeyPatch, value: Any, with_orjson: bool
) -> None:
    if not with_orjson:
        monkeypatch.setattr(responses, "orjson", None)
    else:
        assert responses.orjson is not None, "the server extra installs orjson"
    encoded = responses.dumps(value)
    assert isinstance(encoded, bytes)
    assert json.loads(encoded) == json.loads(json.dumps(value))


def test_dumps_refuses_what_json_refuses() -> None:
    with pytest.raises(TypeError):
        responses.dumps({"x": object()})


def test_dumps_takes_orjson_options_only_when_needed() -> None:
    orjson = pytest.importorskip("orjson")
    page = {"objects": [{"id": "x", "size": 1, "ids": {"default": "x"}}], "next_page": None}
    assert (
        responses.dumps(page)
        == orjson.dumps(page)
        == b'{"objects":[{"id":"x","size":1,"ids":{"default":"x"}}],"next_page":null}'
    )
    assert responses.dumps({1: "int key", "s": [2]}) == b'{"1":"int key","s":[2]}'
