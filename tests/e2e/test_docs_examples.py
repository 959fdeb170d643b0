"""The original documentation's examples (readme / core concepts), run unchanged through the SDK
against a real local server. Placeholders (tokens, ids, file names) are filled from the server."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests

from kloudless import exceptions

from .conftest import LiveServer


def test_storage_readme_example(
    account: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "upload-me.txt").write_bytes(b"readme upload")
    seen: list[dict[str, Any]] = []

    # -- from the README, unchanged except the file name placeholder --
    file_name = "upload-me.txt"
    headers = {"X-Kloudless-Metadata": json.dumps({"parent_id": "root", "name": file_name})}
    with open(file_name, "rb") as f:
        file_resource = account.post("storage/files", data=f, headers=headers)

    root_folder_contents = account.get("storage/folders/root/contents")
    for resource in root_folder_contents.get_paging_iterator():
        seen.append(resource.data)

    (tmp_path / "dl").mkdir()
    monkeypatch.chdir(tmp_path / "dl")
    for resource in root_folder_contents:
        if resource.data["type"] == "file":
            filename = resource.data["name"]
            response = resource.get("contents")
            with open(filename, "wb") as f:
                f.write(response.content)
            break
    # -- end of example --
    assert file_resource.data["name"] == "upload-me.txt"
    assert any(d["id"] == file_resource.data["id"] for d in seen)
    assert (tmp_path / "dl" / "upload-me.txt").read_bytes() == b"readme upload"


def test_paging_iterator_over_many_pages(account: Any) -> None:
    folder = account.post("storage/folders", json={"name": "paged", "parent_id": "root"})
    for i in range(7):
        account.post(
            "storage/files",
            data=b"x",
            headers={
                "X-Kloudless-Metadata": json.dumps(
                    {"name": f"f{i}", "parent_id": folder.data["id"]}
                )
            },
        )
    listing = folder.get("contents", params={"page_size": 3})
    names = [r.data["name"] for r in listing.get_paging_iterator()]
    assert sorted(names) == [f"f{i}" for i in range(7)]


def test_events_example(account: Any) -> None:
    # -- from core concepts, unchanged --
    cursor = account.get("events/latest").data["cursor"]
    # (a change happens)
    account.post("storage/folders", json={"name": "events-demo", "parent_id": "root"})
    events = account.get("events", params={"cursor": cursor, "page_size": 50})
    collected = []
    for event in events.get_paging_iterator():
        collected.append(event.data)
    latest_cursor = events.latest_cursor
    # -- end --
    assert [e["type"] for e in collected] == ["add"]
    assert collected[0]["metadata"]["name"] == "events-demo"
    assert latest_cursor is not None and int(latest_cursor) > cursor


def test_raw_data_example(account: Any) -> None:
    response = account.get("storage/folders/root", get_raw_data=True)
    assert response.data["raw"]["id"] == "root"
    account.headers["X-Kloudless-Raw-Data"] = "true"
    assert "raw" in account.get("storage/folders/root").data


def test_passthrough_example(account: Any) -> None:
    with pytest.raises(exceptions.APIException) as info:
        account.raw("GET", "/drive/v2/about")
    assert info.value.status == 501
    assert info.value.error_data["error_code"] == "not_implemented"


def test_verify_token_example(live_server: LiveServer) -> None:
    from kloudless import verify_token

    app_id = live_server.creds.app_id
    token = live_server.creds.token
    token_info = verify_token(app_id, token)
    assert token_info["account_id"] == live_server.creds.account_id
    with pytest.raises(exceptions.TokenVerificationFailed):
        verify_token("someone-else", token)


def test_application_level_examples(live_server: LiveServer) -> None:
    from kloudless import Client

    client = Client(api_key=live_server.creds.api_key)
    accounts = client.get("accounts")
    assert live_server.creds.account_id in [a["id"] for a in accounts.data["objects"]]
    meta_token = live_server.thread.app.store.create_token(live_server.creds.app_id, None)
    meta_client = Client(token=meta_token)
    applications = meta_client.get("meta/applications")
    assert applications.data["objects"][0]["id"] == live_server.creds.app_id
    client.close()
    meta_client.close()


def test_oauth_code_flow(live_server: LiveServer) -> None:
    from kloudless import Account, get_authorization_url, get_token_from_code

    app_id, api_key = live_server.creds.app_id, live_server.creds.api_key
    redirect_uri = "http://localhost:8020/callback"
    url, state = get_authorization_url(app_id=app_id, redirect_uri=redirect_uri, scope="storage")
    with requests.Session() as browser:
        page = browser.get(url, timeout=10)
        assert page.status_code == 200
        import re

        csrf = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page.text)
        assert csrf is not None
        form = dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))
        form.update(
            csrf_token=csrf.group(1), decision="allow", account_id="new", new_account="oauth-user"
        )
        answer = browser.post(url.split("?")[0], data=form, allow_redirects=False, timeout=10)
    assert answer.status_code == 302
    params = dict(parse_qsl(urlsplit(answer.headers["Location"]).query))
    token = get_token_from_code(
        app_id=app_id, api_key=api_key, orig_state=state, orig_redirect_uri=redirect_uri, **params
    )
    with Account(token=token) as acc:
        assert acc.get().data["account"] == "oauth-user"
    with pytest.raises(exceptions.APIException):  # codes are single use
        get_token_from_code(
            app_id=app_id,
            api_key=api_key,
            orig_state=state,
            orig_redirect_uri=redirect_uri,
            **params,
        )


def test_async_copy_task(account: Any) -> None:
    import time

    f = account.post(
        "storage/files",
        data=b"copy me",
        headers={"X-Kloudless-Metadata": json.dumps({"name": "async.txt", "parent_id": "root"})},
    )
    task = account.post(
        f"storage/files/{f.data['id']}/copy",
        json={"parent_id": "root"},
        headers={"X-Kloudless-Async": "true"},
    )
    assert task.data["type"] == "task"
    result = task.data
    deadline = time.monotonic() + 60  # generous: rclone accounts copy through upstreams
    for _ in range(3000):  # bounded in count and in time
        result = account.get(f"tasks/{task.data['id']}").data
        if result["id"] != task.data["id"] or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert result["type"] == "file" and result["size"] == 7


def test_calendar_readme_example(account: Any) -> None:
    printed: list[str] = []

    # -- from the README, unchanged (print collected instead of written) --
    calendar = account.get("cal/calendars/primary")
    printed.append("Primary Calendar: {}".format(calendar.data["name"]))
    for n in range(7):
        calendar.post(
            "events",
            json={
                "start": f"2019-01-0{n + 1}T12:30:00Z",
                "end": f"2019-01-0{n + 1}T13:30:00Z",
                "name": f"e{n}",
            },
        )
    events = calendar.get("events?page_size=5")
    for e in events:
        data = e.data
        printed.append("{}: {}~{}".format(data["name"], data["start"], data["end"]))
    next_page_events = events.get_next_page()
    for e in next_page_events:
        data = e.data
        printed.append("{}: {}~{}".format(data["name"], data["start"], data["end"]))
    event = events.post(
        json={"start": "2019-01-01T12:30:00Z", "end": "2019-01-01T13:30:00Z", "name": "Event test"}
    )
    # -- end --
    assert len(printed) == 1 + 7
    assert event.data["name"] == "Event test"
    assert event.data["start"] == "2019-01-01T12:30:00Z"


def test_chunked_upload_and_ranged_download(live_server: LiveServer, token: str) -> None:
    def chunks() -> Any:
        for i in range(10):
            yield bytes([i]) * 1000

    meta = json.dumps({"name": "chunked.bin", "parent_id": "root"})
    headers = {"Authorization": f"Bearer {token}", "X-Kloudless-Metadata": meta}
    base = f"{live_server.base_url}/v1/accounts/me/storage"
    created = requests.post(f"{base}/files", data=chunks(), headers=headers, timeout=10)
    assert created.status_code == 201 and created.json()["size"] == 10000
    part = requests.get(
        f"{base}/files/{created.json()['id']}/contents",
        timeout=10,
        headers={"Authorization": f"Bearer {token}", "Range": "bytes=1000-1999"},
    )
    assert part.status_code == 206 and part.content == bytes([1]) * 1000
