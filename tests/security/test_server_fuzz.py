"""Property tests: random paths, headers, ids, query values and JSON bodies thrown at the server.

Every answer must be JSON with a status below 500 (the one documented exception is
``501 not_implemented`` for features this server does not offer), arrive within the
hypothesis deadline, and leave the server consistent: read-only fuzzing changes no count, and
after write fuzzing the tree has no orphans, every file has its blob, and listings still work.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from werkzeug.test import TestResponse

from kloudless.server import Settings, create_app
from kloudless.server.app import ServerApp
from kloudless.server.bootstrap import bootstrap
from kloudless.server.connectors.local_storage import is_inline

from .server_world import BufferedClient

FUZZ = settings(
    max_examples=200,
    deadline=timedelta(seconds=3),
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

TABLES = ("objects", "links", "multipart", "multipart_parts", "tasks", "accounts", "apps")


@dataclass
class Target:
    app: ServerApp
    client: BufferedClient
    data_dir: str
    auth: dict[str, str]
    apikey: dict[str, str]
    ids: dict[str, str]

    def counts(self) -> dict[str, int]:
        result = {}
        for table in TABLES:
            row = self.app.store.one(f"SELECT COUNT(*) AS n FROM {table}")
            assert row is not None
            result[table] = int(row["n"])
        return result


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    data_dir = str(tmp_path_factory.mktemp("fuzz") / "data")
    # The brute-force guard would lock the fuzzer out after its garbage credentials: off here.
    settings = Settings(data_dir=data_dir, multipart_part_size=4, max_json_bytes=65536)
    settings = settings.replace(auth_failures_per_minute=0)
    app = create_app(settings)
    creds = bootstrap(app.store)
    assert creds is not None
    client = BufferedClient(app)
    auth = {"Authorization": f"Bearer {creds.token}"}
    folder = client.post("/v1/accounts/me/storage/folders", headers=auth, json={"name": "d"})
    meta = json.dumps({"name": "f.txt", "parent_id": folder.get_json()["id"]})
    file = client.post(
        "/v1/accounts/me/storage/files",
        headers=dict(auth, **{"X-Kloudless-Metadata": meta}),
        data=b"hello",
    )
    link = client.post(
        "/v1/accounts/me/storage/links", headers=auth, json={"file_id": file.get_json()["id"]}
    )
    calendar = client.post("/v1/accounts/me/cal/calendars", headers=auth, json={"name": "c"})
    ids = {
        "folder": folder.get_json()["id"],
        "file": file.get_json()["id"],
        "link": link.get_json()["id"],
        "calendar": calendar.get_json()["id"],
        "account": str(creds.account_id),
    }
    try:
        yield Target(app, client, data_dir, auth, {"Authorization": f"APIKey {creds.api_key}"}, ids)
    finally:
        app.close()


def check_answer(response: TestResponse, what: Any) -> None:
    status = response.status_code
    body = response.get_data()
    if status == 501:
        assert response.get_json()["error_code"] == "not_implemented", what
        return
    assert status < 500, (what, status, body[:300])
    if status == 204 or (200 <= status < 300 and response.mimetype != "application/json"):
        return  # file contents, empty answers
    if status in (301, 302, 303, 304):
        return
    assert response.mimetype in ("application/json", "text/html"), (what, response.mimetype)
    if status >= 400:
        assert response.mimetype == "application/json", what
        error = response.get_json()
        assert error["status_code"] == status and error["error_code"] and error["message"]
        if response.headers.get("Idempotent-Replayed") != "true":  # replays keep the original
            assert error["id"] == response.headers["X-Request-Id"]


def check_consistent(target: Target) -> None:
    store = target.app.store
    orphans = store.one(
        "SELECT COUNT(*) AS n FROM objects o WHERE o.parent_id != 'root' AND NOT EXISTS"
        " (SELECT 1 FROM objects p WHERE p.id = o.parent_id AND p.kind = 'folder')"
    )
    assert orphans is not None and orphans["n"] == 0
    for row in store.all(
        "SELECT account_id, blob FROM objects WHERE kind = 'file' AND blob IS NOT NULL"
    ):
        if is_inline(row["blob"]):  # the bytes are in the database, with the row
            assert store.one(
                "SELECT 1 FROM inline_blobs WHERE account_id = ? AND blob = ?",
                (row["account_id"], row["blob"]),
            )
            continue
        path = os.path.join(
            target.data_dir, "accounts", str(row["account_id"]), "blobs", row["blob"]
        )
        assert os.path.isfile(path) and not os.path.islink(path)
    listing = target.client.get(
        "/v1/accounts/me/storage/folders/root/contents", headers=target.auth
    )
    assert listing.status_code == 200 and listing.get_json()["type"] == "object_list"
    real = os.path.realpath(target.data_dir)
    for base, dirs, files in os.walk(target.data_dir):
        for name in dirs + files:
            assert os.path.realpath(os.path.join(base, name)).startswith(real + os.sep)


# -- strategies ----------------------------------------------------------------------------------
text_segment = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), min_size=0, max_size=16)
nasty_segment = st.sampled_from(
    ["..", ".", "%2e%2e", "%00", "\x00", "me", "-1", "0", "1" * 30, "root", "a/b", "\\", "~", "*"]
)
segment = st.one_of(text_segment, nasty_segment)
PREFIXES = [
    "v1/accounts/me/storage/files",
    "v1/accounts/me/storage/folders",
    "v1/accounts/me/storage/links",
    "v1/accounts/me/storage/multipart",
    "v1/accounts/me/cal/calendars",
    "v1/accounts/me/events",
    "v1/accounts/me/tasks",
    "v1/accounts",
    "v1/oauth",
    "v1/meta/applications",
    "l",
    "v1",
    "",
]
AUTHS = st.sampled_from(["bearer", "apikey", "none", "garbage"])
header_text = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, blacklist_characters="\x7f"),
    max_size=60,
)


def _auth(target: Target, kind: str) -> dict[str, str]:
    return {
        "bearer": target.auth,
        "apikey": target.apikey,
        "none": {},
        "garbage": {"Authorization": "Bearer \u00ff\u00fe garbage"},
    }[kind]


@FUZZ
@given(
    prefix=st.sampled_from(PREFIXES),
    tail=st.lists(segment, max_size=4),
    method=st.sampled_from(["GET", "HEAD", "DELETE", "OPTIONS"]),
    auth=AUTHS,
)
def test_random_paths_read_only(
    target: Target, prefix: str, tail: list[str], method: str, auth: str
) -> None:
    before = target.counts()
    path = "/" + prefix + "".join("/" + quote(seg, safe="") for seg in tail)
    path = "/" + path.lstrip("/")  # "//host..." would be a network path for the test client
    if method == "DELETE":
        # Deleting with a bad credential or an id that cannot exist must change nothing.
        auth = "garbage" if auth == "bearer" else auth
    response = target.client.open(path, method=method, headers=_auth(target, auth))
    if method != "HEAD":
        check_answer(response, (method, path))
    else:
        assert response.status_code < 500
    assert target.counts() == before


ROUTE_TEMPLATES = [
    "accounts/{acc}/storage/files/{id}",
    "accounts/{acc}/storage/files/{id}/contents",
    "accounts/{acc}/storage/folders/{id}",
    "accounts/{acc}/storage/folders/{id}/contents",
    "accounts/{acc}/storage/links/{id}",
    "accounts/{acc}/storage/multipart/{id}",
    "accounts/{acc}/cal/calendars/{id}",
    "accounts/{acc}/cal/calendars/{id}/events",
    "accounts/{acc}/cal/calendars/primary/events/{id}",
    "accounts/{acc}/tasks/{id}",
    "accounts/{acc}/events/{id}",
    "accounts/{acc}",
    "meta/applications/{id}",
]


@FUZZ
@example(template=ROUTE_TEMPLATES[0], acc="\u00b9", object_id="0")  # found: int("¹") was a 500
@example(template=ROUTE_TEMPLATES[-2], acc="\u0663", object_id="x")
@example(template=ROUTE_TEMPLATES[-3], acc="me", object_id="1" * 30)  # found: SQLite overflow
@given(
    template=st.sampled_from(ROUTE_TEMPLATES),
    acc=st.one_of(st.sampled_from(["me", "1", "2", "0", "-1", "1,2", "me,me", "9" * 25]), segment),
    object_id=st.one_of(segment, st.sampled_from(["root", "primary", "1", "0"])),
)
def test_random_ids(target: Target, template: str, acc: str, object_id: str) -> None:
    before = target.counts()
    path = "/v1/" + template.format(acc=quote(acc, safe=","), id=quote(object_id, safe=""))
    response = target.client.get(path, headers=target.auth)
    check_answer(response, path)
    assert target.counts() == before


QUERY_KEYS = [
    "page",
    "page_size",
    "cursor",
    "recursive",
    "q",
    "after",
    "parents",
    "start",
    "end",
    "retrieve_full",
    "active",
    "search",
    "overwrite",
    "permanent",
    "conflict_if_exists",
    "part_number",
]
LISTINGS = [
    "accounts/me/storage/folders/root/contents",
    "accounts/me/storage/folders/{folder}/contents",
    "accounts/me/storage/search",
    "accounts/me/storage/recent",
    "accounts/me/storage/links",
    "accounts/me/events",
    "accounts/me/events/latest",
    "accounts/me/cal/calendars",
    "accounts/me/cal/calendars/{calendar}/events",
    "accounts/me/cal/calendars/primary/events",
    "accounts/me/storage/files/{file}/contents",
    "accounts",
    "accounts/me",
]
query_value = st.one_of(
    text_segment,
    st.integers(min_value=-(10**20), max_value=10**20).map(str),
    st.sampled_from(["true", "false", "", "null", "2019-01-01T00:00:00Z", "9999-99-99", "1e309"]),
)


@FUZZ
@example(listing="accounts/me/events", query={"cursor": "9" * 25})
@example(listing="accounts/me/storage/recent", query={"page": "9" * 25})
@example(listing="accounts/me/storage/folders/root/contents", query={"page": "92233720368547760"})
@given(
    listing=st.sampled_from(LISTINGS),
    query=st.dictionaries(st.sampled_from(QUERY_KEYS), query_value, max_size=4),
)
def test_random_query_values(target: Target, listing: str, query: dict[str, str]) -> None:
    before = target.counts()
    path = "/v1/" + listing.format(**target.ids)
    response = target.client.get(path, headers=target.auth, query_string=query)
    check_answer(response, (path, query))
    assert target.counts() == before


HEADER_NAMES = [
    "X-Kloudless-Metadata",
    "X-Kloudless-Raw-Data",
    "X-Kloudless-Async",
    "X-Kloudless-As-User",
    "X-Kloudless-Raw-Headers",
    "Range",
    "If-Range",
    "If-None-Match",
    "If-Modified-Since",
    "Content-Type",
    "Accept",
    "Idempotency-Key",
    "Authorization",
    "Host",
    "X-Forwarded-For",
]
HEADER_TARGETS = [
    ("GET", "accounts/me/storage/files/{file}/contents"),
    ("GET", "accounts/me/storage/folders/root/contents"),
    ("GET", "accounts/me"),
    ("GET", "accounts/me/cal/calendars"),
    ("POST", "accounts/me/storage/files"),
]


@FUZZ
@given(
    target_route=st.sampled_from(HEADER_TARGETS),
    headers=st.dictionaries(st.sampled_from(HEADER_NAMES), header_text, max_size=4),
)
def test_random_headers(
    target: Target, target_route: tuple[str, str], headers: dict[str, str]
) -> None:
    method, route = target_route
    path = "/v1/" + route.format(**target.ids)
    sent = dict(target.auth)
    sent.update(headers)
    before = target.counts()
    if method == "POST" and "X-Kloudless-Metadata" not in headers:
        sent["X-Kloudless-Metadata"] = json.dumps(
            {"name": "h.txt", "parent_id": target.ids["folder"]}
        )
    response = target.client.open(path, method=method, headers=sent, data=b"hdr")
    check_answer(response, (method, path, headers))
    if method == "GET":
        assert target.counts() == before
    check_consistent(target)


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=30),
    st.sampled_from(["root", "primary", "..", "a/b", "2030-01-01T10:00:00Z", "2030-01-01", "PT1H"]),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=10,
)
BODY_KEYS = [
    "name",
    "parent_id",
    "file_id",
    "size",
    "account",
    "service",
    "active",
    "direct",
    "expiration",
    "password",
    "start",
    "end",
    "description",
    "location",
    "timezone",
    "calendars",
    "meeting_duration",
    "constraints",
    "custom_properties",
    "attendees",
    "recurrence",
]
json_bodies = st.one_of(
    st.dictionaries(st.sampled_from(BODY_KEYS), json_values, max_size=5),
    json_values,
)
WRITE_ROUTES = [
    ("POST", "accounts/me/storage/folders"),
    ("PATCH", "accounts/me/storage/folders/{folder}"),
    ("PATCH", "accounts/me/storage/files/{file}"),
    ("POST", "accounts/me/storage/files/{file}/copy"),
    ("POST", "accounts/me/storage/links"),
    ("PATCH", "accounts/me/storage/links/{link}"),
    ("POST", "accounts/me/storage/multipart"),
    ("POST", "accounts/me/cal/calendars"),
    ("PATCH", "accounts/me/cal/calendars/{calendar}"),
    ("POST", "accounts/me/cal/calendars/{calendar}/events"),
    ("POST", "accounts/me/cal/availability"),
    ("PATCH", "accounts/me"),
    ("POST", "accounts"),
    ("PATCH", "meta/applications/{app}"),
]


@FUZZ
@example(route=WRITE_ROUTES[0], body={"name": "\ud800"}, raw=False)  # found: lone surrogate 500
@example(route=WRITE_ROUTES[7], body=[[[[[[[[]]]]]]]], raw=True)
@given(route=st.sampled_from(WRITE_ROUTES), body=json_bodies, raw=st.booleans())
def test_random_json_bodies(target: Target, route: tuple[str, str], body: Any, raw: bool) -> None:
    method, template = route
    app_id = target.app.store.list_apps()[0]["id"]
    path = "/v1/" + template.format(app=app_id, **target.ids)
    headers = (
        target.apikey
        if template.startswith(("accounts", "meta")) and "/me" not in template
        else target.auth
    )
    data = json.dumps(body).encode() if not raw else json.dumps(body)[:-1].encode() + b"\xff"
    response = target.client.open(
        path, method=method, headers=headers, data=data, content_type="application/json"
    )
    check_answer(response, (method, path, body))
    check_consistent(target)
    # The seeded objects are still there (a PATCH may have renamed them, never destroyed them).
    for kind in ("file", "folder"):
        got = target.client.get(
            f"/v1/accounts/me/storage/{kind}s/{target.ids[kind]}", headers=target.auth
        )
        assert got.status_code == 200, got.get_data()
