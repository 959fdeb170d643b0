"""Attack cases for the server, through werkzeug's test client and the real store: account
isolation, hostile names, oversized and malformed input, credentials, OAuth, secrets at rest."""

from __future__ import annotations

import io
import json
import os
import re
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from werkzeug.test import EnvironBuilder, TestResponse, run_wsgi_app

from kloudless.server import Settings, create_app, invitations
from kloudless.server.bootstrap import bootstrap

from .conftest import RecordAll
from .server_world import VICTIM_CONTENT, VICTIM_NAME, BufferedClient, World, upload, world

__all__ = ["world"]  # the fixture, re-exported for pytest

S = "accounts/me/storage"
#: A file this big gets a blob file of its own (smaller ones keep their bytes in the database).
BLOB_SIZE = Settings.inline_file_bytes + 1
C = "accounts/me/cal/calendars"
REDIRECT = "http://localhost:8020/callback"


def assert_json_error(response: TestResponse, *statuses: int) -> dict[str, Any]:
    """A JSON error with the documented shape and one of ``statuses``."""
    assert response.status_code in statuses, (response.status_code, response.get_data())
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert body["status_code"] == response.status_code
    assert body["error_code"] and body["message"]
    assert body["id"] == response.headers["X-Request-Id"]
    return dict(body)


def assert_no_victim_data(response: TestResponse, world: World) -> None:
    raw = response.get_data()
    assert VICTIM_CONTENT not in raw and VICTIM_NAME.encode() not in raw
    for key in ("vdir", "vcal", "vevent"):
        assert f'"{key}"'.encode() not in raw


# -- account isolation ---------------------------------------------------------------------------
EVENT = {"name": "x", "start": "2030-01-01T10:00:00Z", "end": "2030-01-01T11:00:00Z"}
# (method, path under accounts/<acc>/, JSON body or None, raw data or None); {x} are victim ids.
BY_URL_ID: list[tuple[str, str, Any, bytes | None]] = [
    ("GET", "storage/files/{file}", None, None),
    ("GET", "storage/files/{file}/contents", None, None),
    ("PUT", "storage/files/{file}", None, b"overwrite"),
    ("PATCH", "storage/files/{file}", {"name": "stolen.txt"}, None),
    ("POST", "storage/files/{file}/copy", {"parent_id": "root"}, None),
    ("DELETE", "storage/files/{file}", None, None),
    ("GET", "storage/folders/{folder}", None, None),
    ("GET", "storage/folders/{folder}/contents", None, None),
    ("PATCH", "storage/folders/{folder}", {"name": "stolen"}, None),
    ("POST", "storage/folders/{folder}/copy", {"parent_id": "root"}, None),
    ("DELETE", "storage/folders/{folder}?recursive=true", None, None),
    ("GET", "storage/links/{link}", None, None),
    ("PATCH", "storage/links/{link}", {"active": False}, None),
    ("DELETE", "storage/links/{link}", None, None),
    ("GET", "storage/multipart/{multipart}", None, None),
    ("PUT", "storage/multipart/{multipart}?part_number=1", None, b"abcd"),
    ("POST", "storage/multipart/{multipart}/complete", {}, None),
    ("DELETE", "storage/multipart/{multipart}", None, None),
    ("GET", "cal/calendars/{calendar}", None, None),
    ("PATCH", "cal/calendars/{calendar}", {"name": "stolen"}, None),
    ("DELETE", "cal/calendars/{calendar}", None, None),
    ("GET", "cal/calendars/{calendar}/events", None, None),
    ("POST", "cal/calendars/{calendar}/events", EVENT, None),
    ("GET", "cal/calendars/{calendar}/events/{event}", None, None),
    ("GET", "cal/calendars/primary/events/{event}", None, None),
    ("PATCH", "cal/calendars/primary/events/{event}", {"name": "stolen"}, None),
    ("DELETE", "cal/calendars/primary/events/{event}", None, None),
    ("GET", "tasks/{task}", None, None),
    ("GET", "events/{activity}", None, None),
]


def _send(
    world: World, acc: str, headers: dict[str, str], case: tuple[str, str, Any, bytes | None]
) -> TestResponse:
    method, template, body, data = case
    path, _, query = template.format(**world.ids).partition("?")
    params = dict(parse_qs(query)) if query else {}
    flat = {k: v[0] for k, v in params.items()}
    return world.call(method, f"accounts/{acc}/{path}", headers, body, data, **flat)


def _victim_intact(world: World) -> None:
    b = world.bearer(world.tok_b)
    ids = world.ids
    got = world.call("GET", f"{S}/files/{ids['file']}/contents", b)
    assert got.status_code == 200 and got.get_data() == VICTIM_CONTENT
    assert world.call("GET", f"{S}/files/{ids['file']}", b).get_json()["name"] == VICTIM_NAME
    assert world.call("GET", f"{S}/folders/{ids['folder']}", b).get_json()["name"] == "vdir"
    assert world.call("GET", f"{S}/links/{ids['link']}", b).get_json()["active"] is True
    session = world.call("GET", f"{S}/multipart/{ids['multipart']}", b).get_json()
    assert session["parts"] == []
    assert world.call("GET", f"{C}/{ids['calendar']}", b).get_json()["name"] == "vcal"
    event = world.call("GET", f"{C}/{ids['calendar']}/events/{ids['event']}", b).get_json()
    assert event["name"] == "vevent"


@pytest.mark.parametrize("case", BY_URL_ID, ids=[f"{m} {p}" for m, p, _, _ in BY_URL_ID])
def test_bearer_of_a_cannot_reach_b_ids_through_me(world: World, case: Any) -> None:
    response = _send(world, "me", world.bearer(world.tok_a), case)
    assert_json_error(response, 404)
    assert_no_victim_data(response, world)
    _victim_intact(world)


@pytest.mark.parametrize("case", BY_URL_ID, ids=[f"{m} {p}" for m, p, _, _ in BY_URL_ID])
def test_bearer_of_a_on_b_account_url(world: World, case: Any) -> None:
    response = _send(world, str(world.acc_b), world.bearer(world.tok_a), case)
    assert_json_error(response, 404, 403)
    assert_no_victim_data(response, world)
    _victim_intact(world)


@pytest.mark.parametrize("case", BY_URL_ID, ids=[f"{m} {p}" for m, p, _, _ in BY_URL_ID])
def test_api_key_of_another_app_on_b_account_url(world: World, case: Any) -> None:
    response = _send(world, str(world.acc_b), world.apikey(world.key_y), case)
    assert_json_error(response, 404, 403)
    assert_no_victim_data(response, world)
    _victim_intact(world)


def test_control_the_owner_reaches_everything(world: World) -> None:
    # The isolation tests above could pass on a broken server that answers 404 to everyone.
    for case in BY_URL_ID:
        if case[0] != "GET" or "primary" in case[1]:  # the event lives in "vcal"
            continue
        response = _send(world, str(world.acc_b), world.apikey(world.key_x), case)
        assert response.status_code == 200, (case, response.get_data())


@pytest.mark.parametrize(
    "path",
    [
        "accounts/{b}",
        "accounts/{b}/storage/quota",
        "accounts/{b}/storage/recent",
        "accounts/{b}/storage/search?q=victim",
        "accounts/{b}/storage/links",
        "accounts/{b}/events",
        "accounts/{b}/events/latest",
        "accounts/{b}/cal/calendars",
        "accounts/{a},{b}/events",
        "accounts/{c}",
    ],
)
def test_account_level_reads_are_isolated(world: World, path: str) -> None:
    target, _, query = path.format(a=world.acc_a, b=world.acc_b, c=world.acc_c).partition("?")
    flat = {k: v[0] for k, v in parse_qs(query).items()}
    for headers in (world.bearer(world.tok_a), world.apikey(world.key_y)):
        response = world.client.get("/v1/" + target, headers=headers, query_string=flat)
        if target.endswith(f"accounts/{world.acc_c}") and "APIKey" in headers["Authorization"]:
            assert response.status_code == 200  # app Y's own account: the control case
            continue
        assert_json_error(response, 404, 403, 400)
        assert_no_victim_data(response, world)


def test_listings_never_include_other_accounts(world: World) -> None:
    a = world.bearer(world.tok_a)
    listed = world.call("GET", "accounts", a).get_json()
    assert [o["id"] for o in listed["objects"]] == [world.acc_a]
    other_app = world.call("GET", "accounts", world.apikey(world.key_y)).get_json()
    assert [o["id"] for o in other_app["objects"]] == [world.acc_c]
    for path in (f"{S}/search", f"{S}/recent", f"{S}/links", "accounts/me/events", C):
        response = world.call("GET", path, a, q="victim", parents=world.ids["folder"])
        assert response.status_code in (200, 400, 404), response.get_data()
        assert_no_victim_data(response, world)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", f"{S}/folders", {"name": "x", "parent_id": "{folder}"}),
        ("PATCH", f"{S}/files/{{own_file}}", {"parent_id": "{folder}"}),
        ("POST", f"{S}/files/{{own_file}}/copy", {"parent_id": "{folder}"}),
        ("PATCH", f"{S}/folders/{{own_folder}}", {"parent_id": "{folder}"}),
        ("POST", f"{S}/multipart", {"name": "m", "size": 1, "parent_id": "{folder}"}),
        ("POST", f"{S}/links", {"file_id": "{file}"}),
        ("POST", f"{S}/files/{{own_file}}/copy", {"parent_id": "root", "account": "{acc_b}"}),
    ],
)
def test_victim_ids_in_bodies_are_refused(
    world: World, method: str, path: str, body: dict[str, Any]
) -> None:
    a = world.bearer(world.tok_a)
    own_file = world.ok(upload(world, a, "mine.txt", b"mine"))["id"]
    own_folder = world.ok(world.call("POST", f"{S}/folders", a, {"name": "mine"}))["id"]
    values = dict(world.ids, own_file=own_file, own_folder=own_folder, acc_b=str(world.acc_b))
    filled = {k: v.format(**values) if isinstance(v, str) else v for k, v in body.items()}
    response = world.call(method, path.format(**values), a, filled)
    assert_json_error(response, 400, 404, 501)
    assert_no_victim_data(response, world)
    # The upload-into-victim-folder variant through the metadata header too.
    meta_up = upload(world, a, "intruder.txt", b"x", world.ids["folder"])
    assert_json_error(meta_up, 400, 404)
    listing = world.call(
        "GET", f"{S}/folders/{world.ids['folder']}/contents", world.bearer(world.tok_b)
    )
    assert [o["name"] for o in listing.get_json()["objects"]] == [VICTIM_NAME]
    _victim_intact(world)


@pytest.mark.parametrize("ref", ["\u00b9", "\u0663", "\uff11", "1\u00b2", " 1", "+1", "1.0"])
def test_non_ascii_digit_account_ids_are_4xx(world: World, ref: str) -> None:
    response = world.call("GET", f"accounts/{ref}/storage/quota", world.apikey(world.key_x))
    assert_json_error(response, 400, 404)
    client = BufferedClient(world.app)
    form = dict(_consent_form(world, client), account_id=ref)
    assert_json_error(client.post("/v1/oauth", data=form), 400)


# -- credentials ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "header",
    [
        "Bearer nope",
        "Bearer ",
        "Bearer",
        "bearer tok_" + "A" * 43,
        "Basic dXNlcjpwYXNz",
        "Token abc",
        "APIKey nope",
        "APIKey ",
        "Bearer \x00",
        "Bearer " + "x" * 10000,
        "Bearer ,,,",
        "Bearer a,b,c",
        "{token} ",  # the raw token without a scheme
    ],
)
def test_invalid_credentials_are_401(world: World, header: str) -> None:
    value = header.format(token=world.tok_a)
    response = world.call("GET", "accounts/me/storage/quota", {"Authorization": value})
    assert_json_error(response, 401)


def test_mixed_tokens_cannot_widen_access(world: World) -> None:
    # A valid token plus an invalid one, or tokens of different apps, are refused as a whole.
    for value in (
        f"Bearer {world.tok_a},nope",
        f"Bearer {world.tok_a},{world.tok_c}",
    ):
        response = world.call("GET", f"accounts/{world.acc_b}", {"Authorization": value})
        assert_json_error(response, 401)


def test_revoked_token_is_401(world: World) -> None:
    a = world.bearer(world.tok_a)
    assert world.call("GET", f"{S}/quota", a).status_code == 200
    assert world.app.store.revoke_token(world.tok_a)
    assert_json_error(world.call("GET", f"{S}/quota", a), 401)
    assert_json_error(world.call("GET", "oauth/token", a), 400)


def test_token_of_deleted_account_is_401(world: World) -> None:
    b = world.bearer(world.tok_b)
    deleted = world.call("DELETE", f"accounts/{world.acc_b}", world.apikey(world.key_x))
    assert deleted.status_code == 204
    for path in (f"{S}/quota", "accounts/me", f"{S}/files/{world.ids['file']}"):
        assert_json_error(world.call("GET", path, b), 401)
    # Its files are gone from the disk too.
    assert not os.path.exists(os.path.join(world.data_dir, "accounts", str(world.acc_b)))


def test_deleted_api_key_is_401(world: World) -> None:
    world.app.store.execute("DELETE FROM api_keys WHERE app_id = ?", (world.app_y,))
    assert_json_error(world.call("GET", "accounts", world.apikey(world.key_y)), 401)


def test_bearer_cannot_use_app_level_endpoints(world: World) -> None:
    a = world.bearer(world.tok_a)
    assert_json_error(world.call("GET", "meta/applications", a), 403)
    response = world.call("POST", "accounts", a, {"service": "local", "account": "x"})
    assert_json_error(response, 403)
    response = world.call("GET", f"meta/applications/{world.app_y}", world.apikey(world.key_x))
    assert_json_error(response, 404)
    response = world.call(
        "PATCH", f"meta/applications/{world.app_y}", world.apikey(world.key_x), {"name": "pwn"}
    )
    assert_json_error(response, 404)
    assert world.app.store.get_app(world.app_y)["name"] == "other app"  # type: ignore[index]


# -- names and the disk --------------------------------------------------------------------------
BAD_NAMES = [
    "",
    ".",
    "..",
    "a/b",
    "../escape",
    "a\\b",
    "..\\..\\escape",
    "nul\x00byte",
    "tab\tname",
    "new\nline",
    "bell\x07",
    "del\x7f",
    "x" * 256,
    "é" * 128,  # 256 bytes of UTF-8
    "/",
    "/etc/passwd",
]


def _disk_snapshot(root: str) -> set[str]:
    found = set()
    for base, dirs, files in os.walk(root):
        for name in dirs + files:
            found.add(os.path.relpath(os.path.join(base, name), root))
    return found


def _outside_names(world: World, before: set[str], root: str) -> set[str]:
    """New entries outside the server's account folders (and its own db/multipart files)."""
    allowed = ("data/accounts/", "data/multipart/", "data/kloudless.sqlite3")
    return {p for p in _disk_snapshot(root) - before if not p.startswith(allowed)}


@pytest.mark.parametrize("name", BAD_NAMES, ids=[repr(n)[:20] for n in BAD_NAMES])
def test_hostile_names_are_400_and_nothing_is_created(
    world: World, tmp_path: Any, name: str
) -> None:
    a = world.bearer(world.tok_a)
    own_file = world.ok(upload(world, a, "mine.txt", b"mine"))["id"]
    own_folder = world.ok(world.call("POST", f"{S}/folders", a, {"name": "mine"}))["id"]
    before = _disk_snapshot(str(tmp_path))
    count = world.app.store.one("SELECT COUNT(*) AS n FROM objects")["n"]  # type: ignore[index]
    attempts = [
        world.call("POST", f"{S}/folders", a, {"name": name, "parent_id": "root"}),
        world.client.post(
            "/v1/accounts/me/storage/files",
            headers=dict(
                a, **{"X-Kloudless-Metadata": json.dumps({"name": name, "parent_id": "root"})}
            ),
            data=b"payload",
        ),
        world.call("PATCH", f"{S}/files/{own_file}", a, {"name": name}),
        world.call("PATCH", f"{S}/folders/{own_folder}", a, {"name": name}),
        world.call("POST", f"{S}/files/{own_file}/copy", a, {"parent_id": "root", "name": name}),
        world.call("POST", f"{S}/multipart", a, {"name": name, "size": 1}),
    ]
    for response in attempts:
        assert_json_error(response, 400)
    after = world.app.store.one("SELECT COUNT(*) AS n FROM objects")["n"]  # type: ignore[index]
    assert after == count
    assert _outside_names(world, before, str(tmp_path)) == set()
    names = {r["name"] for r in world.app.store.all("SELECT name FROM objects")}
    assert name not in names


def test_names_never_become_paths_on_disk(world: World, tmp_path: Any) -> None:
    a = world.bearer(world.tok_a)
    tricky = ["..dots..", "CON", "~root", "$HOME", "%2e%2e%2f", "…", " lead", "trail ."]
    for name in tricky:
        world.ok(upload(world, a, name, b"ok"))
    on_disk = {os.path.basename(p) for p in _disk_snapshot(str(tmp_path))}
    for name in tricky:
        assert name not in on_disk
    assert os.path.realpath(str(tmp_path)) == os.path.realpath(str(tmp_path))
    for path in _disk_snapshot(world.data_dir):
        real = os.path.realpath(os.path.join(world.data_dir, path))
        assert real.startswith(os.path.realpath(world.data_dir) + os.sep)


def test_symlinked_blob_is_not_followed_out_of_the_data_dir(world: World, tmp_path: Any) -> None:
    a = world.bearer(world.tok_a)
    outside = tmp_path / "outside-secret"
    outside.write_bytes(b"OUTSIDE-SECRET")
    file = world.ok(upload(world, a, "innocent.txt", b"innocent".ljust(BLOB_SIZE, b".")))
    row = world.app.store.one("SELECT blob FROM objects WHERE id = ?", (file["id"],))
    assert row is not None
    blobs = os.path.join(world.data_dir, "accounts", str(world.acc_a), "blobs")
    blob = os.path.join(blobs, str(row["blob"]))
    assert os.path.isfile(blob)
    os.unlink(blob)
    os.symlink(outside, blob)
    response = world.call("GET", f"{S}/files/{file['id']}/contents", a)
    assert b"OUTSIDE-SECRET" not in response.get_data()
    assert response.status_code >= 400 and response.mimetype == "application/json"
    # Replacing the contents must not write through the link either.
    world.call("PUT", f"{S}/files/{file['id']}", a, data=b"overwritten")
    assert outside.read_bytes() == b"OUTSIDE-SECRET"


def test_symlinked_account_folder_is_refused(world: World, tmp_path: Any) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    fresh = world.app.store.create_account(world.app_x, "local", "fresh")
    token = world.app.store.create_token(world.app_x, fresh)
    os.makedirs(os.path.join(world.data_dir, "accounts"), exist_ok=True)
    os.symlink(outside, os.path.join(world.data_dir, "accounts", str(fresh)))
    response = upload(world, world.bearer(token), "f.txt", b"should not land outside")
    assert response.status_code >= 400 and response.mimetype == "application/json"
    assert _disk_snapshot(str(outside)) == set()


def test_symlinked_tmp_dir_is_not_written_through(world: World, tmp_path: Any) -> None:
    outside = tmp_path / "elsewhere-tmp"
    outside.mkdir()
    world.ok(upload(world, world.bearer(world.tok_a), "first.txt", b"creates the folders"))
    tmp_dir = os.path.join(world.data_dir, "accounts", str(world.acc_a), "tmp")
    os.rmdir(tmp_dir)
    os.symlink(outside, tmp_dir)
    # An upload is written in place in the blob folder (the temp folder is not used: it is
    # checked when first written into); a copy links its blob there first, and is refused.
    made = upload(
        world, world.bearer(world.tok_a), "f.txt", b"should not land outside".ljust(BLOB_SIZE)
    )
    assert made.status_code == 201, made.get_data(as_text=True)
    response = world.client.post(
        f"/v1/accounts/{world.acc_a}/storage/files/{made.get_json()['id']}/copy",
        json={"parent_id": "root", "name": "copy.txt"},
        headers=world.bearer(world.tok_a),
    )
    assert response.status_code >= 400 and response.mimetype == "application/json"
    assert _disk_snapshot(str(outside)) == set()


# -- limits --------------------------------------------------------------------------------------
@pytest.fixture
def small(tmp_path: Any) -> Any:
    settings = Settings(
        data_dir=str(tmp_path / "small"),
        max_upload_bytes=1000,
        max_json_bytes=2000,
        max_metadata_header_bytes=300,
        multipart_part_size=400,
    )
    app = create_app(settings)
    creds = bootstrap(app.store)
    assert creds is not None
    yield BufferedClient(app), {"Authorization": f"Bearer {creds.token}"}, app
    app.close()


def _count_files(app: Any) -> int:
    row = app.store.one("SELECT COUNT(*) AS n FROM objects WHERE kind = 'file'")
    return int(row["n"])


def test_oversized_metadata_header(small: Any) -> None:
    client, auth, app = small
    meta = json.dumps({"name": "a.txt", "parent_id": "root", "pad": "x" * 400})
    response = client.post(
        "/v1/accounts/me/storage/files",
        headers=dict(auth, **{"X-Kloudless-Metadata": meta}),
        data=b"x",
    )
    assert_json_error(response, 431, 413, 400)
    assert _count_files(app) == 0


def test_oversized_json_body(small: Any) -> None:
    client, auth, _ = small
    body = json.dumps({"name": "x", "pad": "y" * 5000})
    response = client.post(
        "/v1/accounts/me/storage/folders", headers=auth, data=body, content_type="application/json"
    )
    assert_json_error(response, 413)


def test_oversized_json_body_without_content_length(small: Any) -> None:
    client, auth, _ = small
    body = json.dumps({"name": "x", "pad": "y" * 5000}).encode()
    headers = dict(auth, **{"Content-Type": "application/json"})
    response = _unsized(
        client.application, "POST", "/v1/accounts/me/storage/folders", headers, body
    )
    assert_json_error(response, 413)


def _unsized(
    app: Any, method: str, path: str, headers: dict[str, str], body: bytes, **query: str
) -> TestResponse:
    """Send a body without Content-Length (as with chunked transfer encoding)."""
    builder = EnvironBuilder(
        path=path, method=method, headers=list(headers.items()), query_string=query
    )
    environ = builder.get_environ()
    environ.pop("CONTENT_LENGTH", None)
    environ["wsgi.input"] = io.BytesIO(body)
    environ["wsgi.input_terminated"] = True
    app_iter, status, response_headers = run_wsgi_app(app, environ, buffered=True)
    try:
        data = b"".join(app_iter)
    finally:
        close = getattr(app_iter, "close", None)
        if close is not None:
            close()
    return TestResponse([data], status, response_headers, request=builder.get_request())


@pytest.mark.parametrize("declared", [True, False])
def test_upload_over_the_limit(small: Any, declared: bool, tmp_path: Any) -> None:
    client, auth, app = small
    headers = dict(auth, **{"X-Kloudless-Metadata": json.dumps({"name": "big.bin"})})
    payload = b"z" * 5000
    if declared:
        response = client.post("/v1/accounts/me/storage/files", headers=headers, data=payload)
    else:
        response = _unsized(
            client.application, "POST", "/v1/accounts/me/storage/files", headers, payload
        )
    assert_json_error(response, 413)
    assert _count_files(app) == 0
    leftovers = [p for p in _disk_snapshot(str(tmp_path / "small")) if os.sep + "tmp" + os.sep in p]
    assert leftovers == []


def test_multipart_over_the_limit_and_bad_parts(small: Any) -> None:
    client, auth, app = small
    big = client.post(
        "/v1/accounts/me/storage/multipart", headers=auth, json={"name": "b", "size": 5000}
    )
    assert_json_error(big, 413)
    session = client.post(
        "/v1/accounts/me/storage/multipart", headers=auth, json={"name": "m", "size": 500}
    ).get_json()
    url = f"/v1/accounts/me/storage/multipart/{session['id']}"
    assert_json_error(
        client.put(url, headers=auth, query_string={"part_number": "1"}, data=b"a" * 401), 400
    )
    assert_json_error(
        client.put(url, headers=auth, query_string={"part_number": "3"}, data=b"a"), 400
    )
    assert_json_error(
        client.put(url, headers=auth, query_string={"part_number": "0"}, data=b"a"), 400
    )
    assert_json_error(
        client.put(url, headers=auth, query_string={"part_number": "x"}, data=b"a"), 400
    )
    assert_json_error(client.put(url, headers=auth, data=b"a"), 400)
    assert_json_error(client.post(url + "/complete", headers=auth), 400)
    chunked = _unsized(client.application, "PUT", url, auth, b"q" * 1000, part_number="2")
    assert_json_error(chunked, 400, 413)
    assert client.get(url, headers=auth).get_json()["parts"] == []
    assert _count_files(app) == 0


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"{", "application/json"),
        (b'{"name": "x",}', "application/json"),
        (b"[1, 2]", "application/json"),
        (b'"just a string"', "application/json"),
        (b"null", "application/json"),
        (b"\xff\xfe{}", "application/json"),
        (b'{"name": "\xed\xa0\x80"}', "application/json"),
        (b"NaN", "application/json"),
        (b'{"name": ' * 3000 + b"1" + b"}" * 3000, "application/json"),
        (
            b"--b\r\nContent-Disposition: form-data; name=x\r\n\r\nv\r\n",
            "multipart/form-data; boundary=b",
        ),
        (b"garbage", "multipart/form-data"),
        (b"garbage", "multipart/form-data; boundary="),
    ],
)
def test_malformed_bodies_are_400(world: World, body: bytes, content_type: str) -> None:
    a = world.bearer(world.tok_a)
    for path in (f"{S}/folders", f"{S}/links", f"{S}/multipart", C, "accounts"):
        headers = world.apikey(world.key_x) if path == "accounts" else a
        response = world.client.post(
            "/v1/" + path, headers=headers, data=body, content_type=content_type
        )
        assert_json_error(response, 400, 413)


@pytest.mark.parametrize(
    "meta",
    ["{", "[]", '"x"', "null", '{"name": 5}', '{"name": "a", "parent_id": 5}', "\udcff"],
)
def test_malformed_metadata_header_is_400(world: World, meta: str) -> None:
    a = world.bearer(world.tok_a)
    response = world.client.post(
        "/v1/accounts/me/storage/files",
        headers=dict(
            a, **{"X-Kloudless-Metadata": meta.encode("utf-8", "surrogateescape").decode("latin-1")}
        ),
        data=b"x",
    )
    assert_json_error(response, 400)


def test_malformed_multipart_form_to_the_consent_page(world: World) -> None:
    response = world.client.post(
        "/v1/oauth",
        data=b'--zz\r\nContent-Disposition: form-data; name="client_id"\r\n\r\n',
        content_type="multipart/form-data; boundary=zz",
    )
    assert_json_error(response, 400, 403)


# -- OAuth ---------------------------------------------------------------------------------------
def _consent_form(world: World, client: Any, **params: str) -> dict[str, str]:
    query = {
        "client_id": world.app_x,
        "response_type": "code",
        "redirect_uri": REDIRECT,
        "state": "plain",
    }
    query.update(params)
    page = client.get("/v1/oauth", query_string=query)
    assert page.status_code == 200, page.get_data()
    token = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page.get_data(as_text=True))
    assert token is not None
    # The existing account is reached with an operator's invitation code (the default rule).
    code = invitations.create(world.app.store, world.acc_a)
    return dict(
        query,
        csrf_token=token.group(1),
        decision="allow",
        account_id="invitation",
        invitation=code,
    )


def _code(world: World, **params: str) -> tuple[str, dict[str, list[str]]]:
    client = BufferedClient(world.app)
    response = client.post("/v1/oauth", data=_consent_form(world, client, **params))
    assert response.status_code == 302, response.get_data()
    query = parse_qs(urlsplit(response.headers["Location"]).query, keep_blank_values=True)
    return query["code"][0], query


def _exchange(world: World, the_code: str, **override: str) -> TestResponse:
    form = {
        "grant_type": "authorization_code",
        "code": the_code,
        "redirect_uri": REDIRECT,
        "client_id": world.app_x,
        "client_secret": world.key_x,
    }
    form.update(override)
    return world.client.post(
        "/v1/oauth/token", data=urlencode(form), content_type="application/x-www-form-urlencoded"
    )


def test_reused_code_is_invalid_grant(world: World) -> None:
    code, _ = _code(world)
    first = _exchange(world, code)
    assert first.status_code == 200
    assert assert_json_error(_exchange(world, code), 400)["error_code"] == "invalid_grant"
    # A failed replay does not revoke a different, fresh code.
    fresh, _ = _code(world)
    assert _exchange(world, fresh).status_code == 200


def test_expired_code_is_invalid_grant(world: World) -> None:
    code, _ = _code(world)
    world.app.store.execute("UPDATE oauth_codes SET expires = expires - 100000")
    assert assert_json_error(_exchange(world, code), 400)["error_code"] == "invalid_grant"


@pytest.mark.parametrize(
    "override",
    [
        {"redirect_uri": REDIRECT + "/"},
        {"redirect_uri": REDIRECT + "?x=1"},
        {"redirect_uri": REDIRECT.upper()},
        {"redirect_uri": ""},
        {"code": "made-up-code"},
        {"code": "x" * 5000},
    ],
)
def test_wrong_redirect_uri_or_code_is_invalid_grant(
    world: World, override: dict[str, str]
) -> None:
    code, _ = _code(world)
    response = _exchange(world, code, **override)
    assert assert_json_error(response, 400)["error_code"] == "invalid_grant"
    assert "access_token" not in response.get_data(as_text=True)


def test_wrong_client_id_is_refused(world: World) -> None:
    code, _ = _code(world)
    other = _exchange(world, code, client_id=world.app_y, client_secret=world.key_y)
    assert assert_json_error(other, 400)["error_code"] == "invalid_grant"
    mismatched = _exchange(world, code, client_id=world.app_y)  # X's key with Y's id
    assert_json_error(mismatched, 400, 401)
    no_secret = _exchange(world, code, client_secret="")
    assert_json_error(no_secret, 400, 401)
    assert _exchange(world, code).status_code == 200


def test_consent_csrf(world: World) -> None:
    client = BufferedClient(world.app)
    form = _consent_form(world, client)
    assert_json_error(client.post("/v1/oauth", data=dict(form, csrf_token="")), 403)
    assert_json_error(client.post("/v1/oauth", data=dict(form, csrf_token="0" * 64)), 403)
    no_token = {k: v for k, v in form.items() if k != "csrf_token"}
    assert_json_error(client.post("/v1/oauth", data=no_token), 403)
    # The right token without the cookie (a cross-site post), and with another browser's cookie.
    assert_json_error(BufferedClient(world.app).post("/v1/oauth", data=form), 403)
    other = BufferedClient(world.app)
    _consent_form(world, other)
    assert_json_error(other.post("/v1/oauth", data=form), 403)
    codes = world.app.store.one("SELECT COUNT(*) AS n FROM oauth_codes")
    assert codes is not None and codes["n"] == 0
    assert client.post("/v1/oauth", data=form).status_code == 302  # the control case


def test_consent_page_headers(world: World) -> None:
    page = BufferedClient(world.app).get(
        "/v1/oauth", query_string={"client_id": world.app_x, "redirect_uri": REDIRECT}
    )
    assert page.headers["X-Frame-Options"] == "DENY"
    assert "no-store" in page.headers["Cache-Control"]
    cookie = page.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie


WEIRD_STATES = [
    "a&b=c#d",
    "<script>alert(1)</script>",
    "\"'><img src=x onerror=alert(1)>",
    "100%25 %00 +plus+ space",
    "ünïcødé-ß-✓-𝄞",
    "?redirect_uri=http://evil.example/",
    "x" * 1000,
    "=",
    "  padded  ",
]


@pytest.mark.parametrize("state", WEIRD_STATES, ids=range(len(WEIRD_STATES)))
@pytest.mark.parametrize("response_type", ["code", "token"])
def test_state_passes_through_untouched(world: World, state: str, response_type: str) -> None:
    client = BufferedClient(world.app)
    query = {
        "client_id": world.app_x,
        "response_type": response_type,
        "redirect_uri": REDIRECT,
        "state": state,
    }
    page = client.get("/v1/oauth", query_string=query)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "<script>alert" not in html and "<img src=x" not in html
    form = _consent_form(world, client, state=state, response_type=response_type)
    response = client.post("/v1/oauth", data=form)
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
    raw = location.fragment if response_type == "token" else location.query
    assert parse_qs(raw, keep_blank_values=True)["state"] == [state]
    denied = client.post("/v1/oauth", data=dict(form, decision="deny"))
    denied_loc = urlsplit(denied.headers["Location"])
    raw = denied_loc.fragment if response_type == "token" else denied_loc.query
    assert parse_qs(raw, keep_blank_values=True)["state"] == [state]


def test_redirect_uri_cannot_be_smuggled(world: World) -> None:
    world.app.store.execute(
        "UPDATE apps SET redirect_uris = ? WHERE id = ?", (json.dumps([REDIRECT]), world.app_x)
    )
    client = BufferedClient(world.app)
    for uri in (
        "http://evil.example/callback",
        REDIRECT + ".evil.example",
        REDIRECT + "/../steal",
        "http://localhost:8020@evil.example/callback",
        "javascript:alert(1)",
    ):
        response = client.get(
            "/v1/oauth", query_string={"client_id": world.app_x, "redirect_uri": uri}
        )
        assert_json_error(response, 400)
    assert (
        client.get(
            "/v1/oauth", query_string={"client_id": world.app_x, "redirect_uri": REDIRECT}
        ).status_code
        == 200
    )


# -- secrets: logs, responses, disk --------------------------------------------------------------
def test_secrets_absent_from_logs_and_responses(world: World, all_logs: RecordAll) -> None:
    bodies: list[bytes] = []

    def keep(response: TestResponse) -> TestResponse:
        bodies.append(response.get_data())
        bodies.append(str(response.headers).encode())
        return response

    code, query = _code(world, state="st-SECRET-STATE")
    token = _exchange(world, code).get_json()["access_token"]
    t = world.bearer(token)
    keep(world.call("GET", "accounts", world.apikey(world.key_x), retrieve_tokens="true"))
    keep(world.call("GET", "accounts/me", t, retrieve_full="true", retrieve_tokens="true"))
    keep(world.call("GET", "meta/applications", world.apikey(world.key_x)))
    keep(world.call("GET", f"meta/applications/{world.app_x}", world.apikey(world.key_x)))
    keep(world.call("GET", "oauth/token", t))
    keep(world.call("GET", f"{S}/quota", t, access_token=token, code=code))
    keep(world.call("GET", f"{S}/quota", {"Authorization": "Bearer wrong-SECRET-TOKEN"}))
    keep(world.call("GET", f"{S}/quota", {"Authorization": "APIKey wrong-SECRET-KEY"}))
    keep(_exchange(world, code))  # replay
    keep(world.call("GET", f"{S}/nope/{token}", t))
    keep(world.call("GET", f"{S}/files/{token}", t))
    secrets = {
        "new token": token,
        "bootstrap token": world.tok_a,
        "api key": world.key_x,
        "code": code,
        "state": "st-SECRET-STATE",
        "wrong token": "wrong-SECRET-TOKEN",
        "wrong key": "wrong-SECRET-KEY",
    }
    text = all_logs.text
    assert any(r.name == "kloudless.server" for r in all_logs.records)
    for label, secret in secrets.items():
        assert secret not in text, label
    joined = b"\n".join(bodies)
    for label in ("bootstrap token", "api key", "code", "wrong token", "wrong key"):
        assert secrets[label].encode() not in joined, label


def test_secrets_stored_hashed(world: World) -> None:
    code, _ = _code(world)
    fresh_code, _ = _code(world)
    token = _exchange(world, code).get_json()["access_token"]
    implicit = BufferedClient(world.app)
    response = implicit.post(
        "/v1/oauth", data=_consent_form(world, implicit, response_type="token")
    )
    implicit_token = parse_qs(urlsplit(response.headers["Location"]).fragment)["access_token"][0]
    world.app.close()  # checkpoint nothing on purpose: read the WAL too
    plain = [
        world.key_x,
        world.key_y,
        world.tok_a,
        world.tok_b,
        world.tok_c,
        token,
        implicit_token,
        code,
        fresh_code,
    ]
    files = [
        os.path.join(world.data_dir, name)
        for name in os.listdir(world.data_dir)
        if name.startswith("kloudless.sqlite3")
    ]
    assert files
    chunks = []
    for path in files:
        with open(path, "rb") as fh:
            chunks.append(fh.read())
    blob = b"".join(chunks)
    assert len(blob) > 4096
    for secret in plain:
        assert secret.encode() not in blob
    import hashlib

    assert hashlib.sha256(world.tok_a.encode()).hexdigest().encode() in blob


def test_server_log_lines_carry_no_query_strings(world: World, all_logs: RecordAll) -> None:
    world.call("GET", f"{S}/quota", world.bearer(world.tok_a), access_token="qs-SECRET-1")
    world.client.get("/v1/oauth", query_string={"client_id": "nope", "state": "qs-SECRET-2"})
    assert "qs-SECRET" not in all_logs.text
    assert any("/storage/quota" in line for line in all_logs.lines)


# -- public links --------------------------------------------------------------------------------
def test_public_links_respect_state_expiry_and_password(world: World) -> None:
    a = world.bearer(world.tok_a)
    file = world.ok(upload(world, a, "<script>x.txt", b"LINKED-CONTENT"))

    def make(**body: Any) -> dict[str, Any]:
        return world.ok(world.call("POST", f"{S}/links", a, dict(file_id=file["id"], **body)))

    open_link = make()
    landing = world.client.get(f"/l/{open_link['id']}")
    assert landing.status_code == 200 and b"<script>x" not in landing.get_data()
    assert world.client.get(f"/l/{open_link['id']}?download=1").get_data() == b"LINKED-CONTENT"

    inactive = make(active=False, direct=True)
    expired = make(expiration="2000-01-01T00:00:00Z", direct=True)
    for link in (inactive, expired):
        response = world.client.get(f"/l/{link['id']}")
        assert_json_error(response, 404)
        assert b"LINKED-CONTENT" not in response.get_data()

    locked = make(password="hunter2-SECRET", direct=True)
    assert locked["password"] is True and "hunter2" not in json.dumps(locked)
    assert b"LINKED-CONTENT" not in world.client.get(f"/l/{locked['id']}").get_data()
    wrong = world.client.post(f"/l/{locked['id']}", data={"password": "nope"})
    assert wrong.status_code == 403 and b"LINKED-CONTENT" not in wrong.get_data()
    right = world.client.post(f"/l/{locked['id']}", data={"password": "hunter2-SECRET"})
    assert right.status_code == 200 and right.get_data() == b"LINKED-CONTENT"
    stored = world.app.store.one("SELECT password_hash FROM links WHERE id = ?", (locked["id"],))
    assert stored is not None and "hunter2" not in str(stored["password_hash"])

    world.call("DELETE", f"{S}/files/{file['id']}", a, permanent="true")
    gone = world.client.get(f"/l/{open_link['id']}?download=1")
    assert_json_error(gone, 404)
    for bogus in ("nope", "..", "%00", "x" * 300):
        assert_json_error(world.client.get(f"/l/{bogus}"), 404)
