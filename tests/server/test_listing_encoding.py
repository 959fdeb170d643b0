"""The fast listing path gives the same JSON as the per-object one.

A page of folder contents shares the ancestors of siblings (``serialize_many``) and is encoded
with orjson when it is installed; both must be invisible to clients: every listed object equals
the object's own ``GET``, and :func:`responses.dumps` gives the values :mod:`json` gives, with or
without orjson.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from werkzeug.test import Client

from kloudless.server import responses

from .conftest import mkdir, upload

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
