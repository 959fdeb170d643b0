"""Quickstart: the Kloudless SDK's main job against a local Kloudless-compatible server.

Run it with ``make demo`` (which starts a throw-away server), or against your own server::

    kloudless serve --data-dir ./data          # prints a token on first start
    KLOUDLESS_BASE_URL=http://127.0.0.1:8002 KLOUDLESS_TOKEN=... python examples/quickstart.py
"""

from __future__ import annotations

import json
import os
import sys

from kloudless import Account, exceptions


def section(title: str) -> None:
    print(f"\n== {title} ==")


def main() -> int:
    token = os.environ.get("KLOUDLESS_TOKEN")
    if not token:
        print("Set KLOUDLESS_TOKEN (and KLOUDLESS_BASE_URL) first, or run `make demo`.")
        return 2
    account = Account(token=token)
    try:
        return tour(account)
    except exceptions.ConnectionException as error:
        # The server is down or elsewhere: one line with the address, no traceback.
        print(
            f"error: {error}. Is `kloudless serve` running? (KLOUDLESS_BASE_URL sets the address)",
            file=sys.stderr,
        )
        return 1
    finally:
        account.close()


def tour(account: Account) -> int:
    """Walk through storage, calendar, activity, raw data and pass-through.

    :param account: the account to use.
    :returns: the exit code.
    """
    section("Account")
    info = account.get().data
    print(
        f"Connected to account {info['id']} ({info['service_name']}: {info['account']}),"
        f" APIs: {', '.join(info['apis'])}"
    )

    section("Create a folder")
    folder = account.post("storage/folders", json={"name": "Quickstart", "parent_id": "root"})
    print(f"Folder {folder.data['name']!r} has id {folder.data['id']}")

    section("Upload a file with X-Kloudless-Metadata")
    content = b"Hello from the Kloudless quickstart!\n"
    headers = {
        "X-Kloudless-Metadata": json.dumps({"parent_id": folder.data["id"], "name": "hello.txt"})
    }
    uploaded = account.post("storage/files", data=content, headers=headers)
    print(
        f"Uploaded {uploaded.data['path']} ({uploaded.data['size']} bytes,"
        f" {uploaded.data['mime_type']})"
    )
    for n in range(3):
        account.post(
            "storage/files",
            data=b"note %d\n" % n,
            headers={
                "X-Kloudless-Metadata": json.dumps({"parent_id": "root", "name": f"note-{n}.txt"})
            },
        )

    section("List the root folder with the paging iterator (2 per page)")
    root = account.get("storage/folders/root/contents", params={"page_size": 2})
    for resource in root.get_paging_iterator():
        data = resource.data
        size = "" if data["type"] == "folder" else f" ({data['size']} bytes)"
        print(f"  {data['type']:<6} {data['name']}{size}")

    section("Download it back")
    downloaded = uploaded.get("contents")
    print(f"Downloaded {len(downloaded.content)} bytes: {downloaded.content.decode().strip()!r}")
    print("Contents match:", downloaded.content == content)

    section("Calendar: the primary calendar and its events")
    calendar = account.get("cal/calendars/primary")
    print(f"Primary calendar: {calendar.data['name']}")
    for day in (1, 2, 3):
        calendar.post(
            "events",
            json={
                "name": f"Planning #{day}",
                "start": f"2030-01-0{day}T09:00:00Z",
                "end": f"2030-01-0{day}T10:00:00Z",
            },
        )
    events = calendar.get("events", params={"page_size": 2})
    page_number = 1
    while True:
        for event in events:
            print(
                f"  page {page_number}: {event.data['name']}:"
                f" {event.data['start']} ~ {event.data['end']}"
            )
        try:
            events = events.get_next_page()
        except exceptions.NoNextPage:
            break
        page_number += 1

    section("Activity events after a change")
    cursor = account.get("events/latest").data["cursor"]
    print(f"Latest cursor: {cursor}")
    uploaded.patch(json={"name": "hello-renamed.txt"})
    activity = account.get("events", params={"cursor": cursor, "page_size": 50})
    for event in activity.get_paging_iterator():
        meta = event.data["metadata"]
        print(f"  {event.data['type']}: {meta['type']} {meta['name']!r}")
    print(f"Store this cursor for the next poll: {activity.latest_cursor}")

    section("Raw (native) data")
    raw = account.get(f"storage/files/{uploaded.data['id']}", get_raw_data=True)
    print("raw:", json.dumps(raw.data["raw"], sort_keys=True))

    section("Pass-through to the upstream API")
    try:
        account.raw("GET", "/drive/v2/about")
    except exceptions.APIException as error:
        print(
            f"The local service has no upstream API: HTTP {error.status}"
            f" {error.error_data.get('error_code')}: {error.error_data.get('message')}"
        )
    print("\nDone.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
