"""The API's own work per small upload: what it no longer does, and that the answers are the
same.

* A body of at most ``Settings.small_body_bytes`` is received in full before the app looks at
  the request (no preflight on the HTTP server's thread): the dispatch routes and
  authenticates it once and checks the room on the disk and the upload slot, and its answers,
  refusals included, are those of a preflighted upload.
* An upload builds its file's JSON once: its activity event records it, and the answer is
  that same JSON.
* A small upload over HTTP runs 7 SQL statements (8 when preflighted, 9 into a folder, 2 more
  with an ``Idempotency-Key``), one commit: a new file's name is taken by its insert, not
  looked up first; its folder's row, read in the unit of work, is the first step of its path.
* ``X-Kloudless-Metadata`` is encoded again (to refuse a lone surrogate) only when it holds a
  ``\\u`` escape, the one way JSON decoded from UTF-8 can hold one.
* The request's host URL (the ``href`` of every object) is werkzeug's ``Request.host_url``,
  remembered per scheme and host instead of quoted and IRI-decoded anew for every request.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, Callable

import pytest
import requests
from werkzeug.test import Client
from werkzeug.wrappers import Request

from kloudless.server import app as app_module
from kloudless.server import context
from kloudless.server.api import storage
from kloudless.server.app import ServerApp
from kloudless.server.context import host_url
from kloudless.server.runner import ServerThread
from kloudless.server.settings import Settings

from .conftest import upload

WAIT = 10.0  # seconds a request of these tests takes at most
SMALL = 64 * 1024  # Settings.small_body_bytes by default


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """:returns: how many times the app's preflight and authentication ran from now on."""
    seen = {"preflight": 0, "authenticate": 0}
    preflight, authenticate = ServerApp.preflight, app_module.authenticate

    def counting_preflight(self: ServerApp, environ: Any) -> Any:
        seen["preflight"] += 1
        return preflight(self, environ)

    def counting_authenticate(*args: Any) -> Any:
        seen["authenticate"] += 1
        return authenticate(*args)

    monkeypatch.setattr(ServerApp, "preflight", counting_preflight)
    monkeypatch.setattr(app_module, "authenticate", counting_authenticate)
    return seen


def _post(
    server: ServerThread, body: bytes, name: str, parent: str = "root", **headers: str
) -> requests.Response:
    assert server.credentials is not None
    return requests.post(
        f"{server.base_url}/v1/accounts/me/storage/files",
        data=body,
        headers={
            "Authorization": f"Bearer {server.credentials.token}",
            "X-Kloudless-Metadata": json.dumps({"name": name, "parent_id": parent}),
            **headers,
        },
        timeout=WAIT,
    )


def test_a_small_upload_is_not_preflighted_and_authenticated_once(
    make_settings: Callable[..., Settings], calls: dict[str, int]
) -> None:
    with ServerThread(make_settings(port=0)) as server:
        assert server.app.settings.small_body_bytes == SMALL
        small = _post(server, b"s" * SMALL, "small.bin")
        assert small.status_code == 201, small.text
        assert calls == {"preflight": 0, "authenticate": 1}
        larger = _post(server, b"l" * (SMALL + 1), "larger.bin")
        assert larger.status_code == 201, larger.text
        assert calls == {"preflight": 1, "authenticate": 2}  # by the preflight, handed over


@pytest.fixture
def both(make_settings: Callable[..., Settings], tmp_path: Any) -> Iterator[list[ServerThread]]:
    """Two servers alike but for the body size looked at first: 64 KiB (the default: a 4 KiB
    upload is received first) and 0 (every body is preflighted)."""
    servers = []
    try:
        for name, small in (("small", SMALL), ("preflighted", 0)):
            settings = make_settings(
                tmp_path / name, port=0, small_body_bytes=small, account_quota_bytes=8192
            )
            servers.append(ServerThread(settings).start())
        yield servers
    finally:
        for server in servers:
            server.stop()


def _shape(answer: requests.Response) -> tuple[Any, ...]:
    """What must be the same between the two paths: status, the header names, the JSON (of an
    error: its code and message; of a file: its keys, and its values but the ids and times)."""
    body = answer.json()
    if answer.status_code >= 400:
        assert body["id"] == answer.headers["X-Request-Id"]
        content: Any = (body["status_code"], body["error_code"], body["message"])
        # A preflight's refusal closes the connection; else it stays open: that may differ.
        names = sorted(set(answer.headers) - {"Connection"})
    else:
        varying = {"id", "href", "created", "modified", "ids", "raw_id"}
        content = {k: v for k, v in body.items() if k not in varying}
        names = sorted(answer.headers)
    return answer.status_code, names, content


def test_small_and_preflighted_uploads_answer_alike(both: list[ServerThread]) -> None:
    shapes = []
    for server in both:
        assert server.credentials is not None
        base = f"{server.base_url}/v1/accounts"
        token = {"Authorization": f"Bearer {server.credentials.token}"}
        # One fault per refused request (with several, the preflight may name another first:
        # it checks the quota before the handler reads the metadata).
        answers = [
            _post(server, b"d" * 10, "bad-token.bin", Authorization="Bearer nope"),  # 401
            requests.post(f"{base}/999/storage/files", data=b"e", headers=token, timeout=WAIT),
            requests.post(f"{base}/me/storage/files", data=b"f", headers=token, timeout=WAIT),
            _post(server, b"a" * 4096, "same.bin"),
            _post(server, b"b" * 4096, "same.bin"),  # a free name is found
            _post(server, b"c" * 100, "over-quota.bin"),  # 507 past the account's quota
        ]
        shapes.append([_shape(answer) for answer in answers])
    small, preflighted = shapes
    assert [shape[0] for shape in small] == [401, 404, 400, 201, 201, 507]
    assert small == preflighted


def test_a_small_upload_keeps_the_room_on_the_disk(
    make_settings: Callable[..., Settings], calls: dict[str, int]
) -> None:
    # More free space kept than any disk has: every upload is refused, without a preflight.
    with ServerThread(make_settings(port=0, min_free_bytes=1 << 60)) as server:
        refused = _post(server, b"r" * 4096, "no-room.bin")
    assert refused.status_code == 507, refused.text
    assert refused.json()["error_code"] == "insufficient_storage"
    assert calls["preflight"] == 0


@pytest.mark.parametrize(
    ("scheme", "host"),
    [
        ("http", "localhost:8002"),
        ("https", "api.example.com"),
        ("http", "[::1]:8080"),
        ("https", "xn--bcher-kva.example"),  # IDNA: werkzeug shows it decoded
        ("http", "127.0.0.1"),
    ],
)
def test_the_host_url_is_werkzeugs(scheme: str, host: str) -> None:
    environ = {
        "wsgi.url_scheme": scheme,
        "HTTP_HOST": host,
        "SERVER_NAME": "unused",
        "SERVER_PORT": "80",
    }
    request = Request(environ)
    assert host_url(request.scheme, request.host) == request.host_url


def test_uploads_build_the_host_url_once(
    client: Client, auth: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[tuple[Any, ...]] = []
    real = context.get_current_url

    def counting(*args: Any) -> str:
        built.append(args)
        return real(*args)

    monkeypatch.setattr(context, "get_current_url", counting)
    host_url.cache_clear()
    hrefs = []
    for number in range(3):
        answer = upload(client, auth, f"href-{number}.bin", b"h" * 4096)
        assert answer.status_code == 201, answer.get_data(as_text=True)
        hrefs.append(answer.get_json()["href"])
    assert len(built) == 1
    assert all(href.startswith("http://localhost/v1/accounts/") for href in hrefs), hrefs


def test_an_upload_builds_its_json_once(
    app: ServerApp, client: Client, auth: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[str] = []
    real = storage._Serializer.__call__

    def counting(self: Any, obj: Any, ancestry: Any = None) -> dict[str, Any]:
        built.append(obj.id)
        return real(self, obj, ancestry)

    monkeypatch.setattr(storage._Serializer, "__call__", counting)
    for overwrite in ("false", "true"):  # a new file, then a new version of it
        built.clear()
        answer = upload(client, auth, "once.bin", b"o" * 4096, overwrite=overwrite)
        assert answer.status_code in (200, 201), answer.get_data(as_text=True)
        body = answer.get_json()
        assert built == [body["id"]]
        event = app.store.one("SELECT type, metadata FROM activity ORDER BY id DESC LIMIT 1")
        assert event is not None
        assert event["type"] == ("add" if overwrite == "false" else "update")
        assert json.loads(event["metadata"]) == body
    # A later request of the same file builds it anew.
    built.clear()
    again = client.get(f"/v1/accounts/me/storage/files/{body['id']}", headers=auth)
    assert again.get_json() == body and built == [body["id"]]


@pytest.mark.parametrize(
    ("name", "status"),
    [
        ("caf\u00e9.bin", 201),  # UTF-8, no escape: not encoded again to check it
        ("\\u00e9t\\u00e9.bin", 201),  # escapes of real characters
        ("\\ud800.bin", 400),  # a lone surrogate, only possible as an escape
    ],
)
def test_metadata_without_a_lone_surrogate_is_taken(
    client: Client, auth: dict[str, str], name: str, status: int
) -> None:
    meta = '{"name": "' + name + '", "parent_id": "root"}'
    answer = client.post(
        "/v1/accounts/me/storage/files",
        headers={**auth, "X-Kloudless-Metadata": meta.encode("utf-8").decode("latin-1")},
        data=b"m",
    )
    assert answer.status_code == status, answer.get_data(as_text=True)
    if status == 201:
        assert answer.get_json()["name"] == json.loads(meta)["name"]
    else:
        assert answer.get_json()["error_code"] == "bad_request"


@pytest.mark.only_config("sqlite-files", reason="counts statements with SQLite's tracing")
@pytest.mark.parametrize(
    ("small_body", "folder", "keyed", "expected"),
    [
        # Received first: the upload's unit of work (BEGIN, the quota, the file's bytes (4 KiB:
        # kept in the database, Settings.inline_file_bytes), its row (its insert finds out
        # whether the name is free), its event, the webhook check, COMMIT). The token and its
        # account are not read: the warm-up's lookup is remembered
        # (kloudless.server.credential_cache), and an upload changes no credential.
        (SMALL, False, False, 7),
        # Preflighted: the preflight reads the quota, the dispatch the rest.
        (0, False, False, 8),
        # Into a folder: the folder's row before the body is read and again in the unit,
        # where it is also the first step of the file's path (not read a third time).
        (SMALL, True, False, 9),
        # With an Idempotency-Key: the key looked up first, its row written with the answer
        # in the same unit (no intent to delete: a local account records none).
        (SMALL, False, True, 9),
        (SMALL, True, True, 11),
    ],
)
def test_statements_of_a_small_upload_over_http(
    make_settings: Callable[..., Settings],
    small_body: int,
    folder: bool,
    keyed: bool,
    expected: int,
) -> None:
    # One worker thread: the warm-up gives it its connection (with several, a busy machine may
    # hand a counted upload to a thread that has none yet).
    settings = make_settings(port=0, small_body_bytes=small_body, threads=1)
    with ServerThread(settings) as server:
        assert server.credentials is not None
        parent = "root"
        if folder:
            made = requests.post(
                f"{server.base_url}/v1/accounts/me/storage/folders",
                json={"name": "into", "parent_id": "root"},
                headers={"Authorization": f"Bearer {server.credentials.token}"},
                timeout=WAIT,
            )
            assert made.status_code == 201, made.text
            parent = made.json()["id"]

        def post(name: str) -> requests.Response:
            key = {"Idempotency-Key": f"key-{name}"} if keyed else {}
            return _post(server, b"c" * 4096, name, parent=parent, **key)

        for number in range(3):  # every thread that serves them has its connection
            assert post(f"warm-{number}.bin").status_code == 201
        seen: list[str] = []
        connections = list(server.app.store._all)
        for connection in connections:
            connection.set_trace_callback(seen.append)
        try:
            for number in range(5):
                answer = post(f"counted-{number}.bin")
                assert answer.status_code == 201, answer.text
                assert answer.json()["name"] == f"counted-{number}.bin"
        finally:
            for connection in connections:
                connection.set_trace_callback(None)
        assert list(server.app.store._all) == connections  # no statement ran untraced
    assert len(seen) == expected * 5, seen[: expected + 2]
    assert sum(s.startswith("COMMIT") for s in seen) == 5
    assert not any("upstream_intents" in s or "token_hash" in s for s in seen)
    assert sum(s.startswith("INSERT INTO idempotency_keys") for s in seen) == (5 if keyed else 0)
    assert sum(s.startswith("INSERT INTO inline_blobs") for s in seen) == 5


@pytest.mark.parametrize("overwrite", ["false", "true"])
def test_an_upload_of_a_taken_name(client: Client, auth: dict[str, str], overwrite: str) -> None:
    folder = client.post(
        "/v1/accounts/me/storage/folders", json={"name": f"taken-{overwrite}"}, headers=auth
    ).get_json()["id"]
    first = upload(client, auth, "a.bin", b"1" * 10, parent=folder)
    assert first.status_code == 201, first.get_data(as_text=True)
    second = upload(client, auth, "a.bin", b"2" * 20, parent=folder, overwrite=overwrite)
    assert second.status_code in (200, 201), second.get_data(as_text=True)
    body, was = second.get_json(), first.get_json()
    if overwrite == "true":  # the same file, its new contents
        assert (body["id"], body["name"], body["size"]) == (was["id"], "a.bin", 20)
    else:  # a new file under the first free name, as one looked up before inserting
        assert body["id"] != was["id"] and body["name"] == "a (1).bin"
        third = upload(client, auth, "a.bin", b"3", parent=folder).get_json()
        assert third["name"] == "a (2).bin"
    assert body["path"] == f"/taken-{overwrite}/{body['name']}"
    assert body["parent"]["id"] == folder and [a["id"] for a in body["ancestors"]] == [
        "root",
        folder,
    ]
    names = client.get(
        f"/v1/accounts/me/storage/folders/{folder}/contents", headers=auth
    ).get_json()["objects"]
    assert sorted(item["name"] for item in names) == (
        ["a.bin"] if overwrite == "true" else ["a (1).bin", "a (2).bin", "a.bin"]
    )
