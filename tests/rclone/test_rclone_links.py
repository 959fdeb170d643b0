"""Links on rclone accounts: the service's own public links (``"upstream": true``, rclone's
``operations/publiclink``) where the backend has them (S3: presigned URLs, fetched here from the
real ``rclone serve s3``), the clear 501 where it has none (SFTP), and this server's own links,
which work on every backend."""

from __future__ import annotations

import datetime as dt
import math
import time
import urllib.request
from urllib.parse import parse_qs, urlsplit

from werkzeug.test import Client

from kloudless.server.app import ServerApp
from kloudless.server.bootstrap import Credentials

from .servers import Upstream, Upstreams
from .test_rclone_api import connect
from .test_rclone_failures import _bearer, _upload

LINKS = "/v1/accounts/me/storage/links"


def _in_hours(hours: float) -> str:
    moment = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=hours)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _hours_left(stamp: str) -> float:
    moment = dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)
    return (moment - dt.datetime.now(dt.timezone.utc)).total_seconds() / 3600


def _file_on(
    client: Client, creds: Credentials, upstream: Upstream, data: bytes
) -> tuple[dict[str, str], str]:
    """:returns: the bearer header of a new account of ``upstream`` and a file's id in it."""
    _, token = connect(client, creds, upstream)
    uploaded = _upload(client, token, "shared.txt", data)
    assert uploaded.status_code == 201, uploaded.get_json()
    return _bearer(token), str(uploaded.get_json()["id"])


def test_s3_public_links_made_by_the_service(
    client: Client, app: ServerApp, creds: Credentials, upstreams: Upstreams
) -> None:
    s3 = upstreams.make("s3")
    auth, file_id = _file_on(client, creds, s3, b"shared bytes")
    made = client.post(LINKS, json={"file_id": file_id, "upstream": True}, headers=auth)
    link = made.get_json()
    assert made.status_code == 201, link
    assert link["upstream"] is True and link["url"].startswith(s3.options["endpoint"] + "/")
    assert 6.9 * 24 < _hours_left(link["expiration"]) <= 7 * 24  # S3's default and cap
    with urllib.request.urlopen(link["url"], timeout=30) as answer:  # noqa: S310 - loopback
        assert answer.read() == b"shared bytes"
    # The URL is stored sealed, and this server does not serve the link at /l/<id>.
    row = app.store.one("SELECT upstream_url FROM links WHERE id = ?", (link["id"],))
    assert row is not None and "X-Amz-Signature" not in str(row["upstream_url"])
    assert client.get(f"/l/{link['id']}").status_code == 404
    assert client.get(f"{LINKS}/{link['id']}", headers=auth).get_json()["url"] == link["url"]

    asked = time.monotonic()
    hour = client.post(
        LINKS,
        json={"file_id": file_id, "upstream": True, "expiration": _in_hours(1)},
        headers=auth,
    ).get_json()
    took = time.monotonic() - asked
    # What is left of the hour when the URL is signed: a second less per second the request
    # took (a busy machine), and one for the rounding down to whole seconds.
    expires = int(parse_qs(urlsplit(hour["url"]).query)["X-Amz-Expires"][0])
    assert 3600 - math.ceil(took) - 1 <= expires <= 3600, (expires, took)
    assert 0.9 < _hours_left(hour["expiration"]) <= 1.0

    refused = [
        ({"file_id": file_id, "upstream": True, "password": "pw"}, 400),
        ({"file_id": file_id, "upstream": True, "expiration": _in_hours(-1)}, 400),
        ({"file_id": file_id, "upstream": "yes"}, 400),
        ({"file_id": "Fnope", "upstream": True}, 400),
    ]
    for body, status in refused:
        answer = client.post(LINKS, json=body, headers=auth)
        assert answer.status_code == status, (body, answer.get_json())
    changed = client.patch(f"{LINKS}/{link['id']}", json={"active": False}, headers=auth)
    assert changed.status_code == 400 and "cannot be changed" in changed.get_json()["message"]
    assert (
        client.patch(f"{LINKS}/{link['id']}", json={"active": True}, headers=auth).status_code
        == 200
    )

    assert client.delete(f"{LINKS}/{link['id']}", headers=auth).status_code == 204
    assert client.get(f"{LINKS}/{link['id']}", headers=auth).status_code == 404


def test_no_public_links_is_a_clear_501_and_server_links_still_work(
    client: Client, creds: Credentials, upstreams: Upstreams
) -> None:
    auth, file_id = _file_on(client, creds, upstreams.make("sftp"), b"served here")
    answer = client.post(LINKS, json={"file_id": file_id, "upstream": True}, headers=auth)
    error = answer.get_json()
    assert (answer.status_code, error["error_code"]) == (501, "not_implemented"), error
    assert "without 'upstream'" in error["message"]
    assert client.get(LINKS, headers=auth).get_json()["objects"] == []

    own = client.post(LINKS, json={"file_id": file_id, "direct": True}, headers=auth).get_json()
    assert own["upstream"] is False and own["url"].endswith(f"/l/{own['id']}")
    served = client.get(f"/l/{own['id']}")
    assert (served.status_code, served.data) == (200, b"served here")
