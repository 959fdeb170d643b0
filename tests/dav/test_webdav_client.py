"""WebDAVClient against a real WsgiDAV server (see conftest.py)."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from typing import Any

import pytest

from kloudless.server.connectors import webdav_errors as errors
from kloudless.server.connectors.webdav_client import (
    WebDAVClient,
    forwardable_headers,
    iter_raw,
    normalize_path,
)

from .servers import LOOPBACK_POLICY, DavServer, ServerThread


@pytest.fixture
def client(webdav_folder: DavServer) -> Iterator[WebDAVClient]:
    with WebDAVClient(
        webdav_folder.url, webdav_folder.username, webdav_folder.password, policy=LOOPBACK_POLICY
    ) as dav:
        yield dav


def test_normalize_path() -> None:
    assert normalize_path("") == "/"
    assert normalize_path("a//b/./c/") == "/a/b/c"
    assert normalize_path("/a/b/../c") == "/a/c"
    with pytest.raises(ValueError):
        normalize_path("/a/../../etc")


def test_rejects_credentials_in_url_and_bad_scheme() -> None:
    with pytest.raises(ValueError):
        WebDAVClient("http://u:p@127.0.0.1/dav/", "u", "p")
    with pytest.raises(ValueError):
        WebDAVClient("ftp://127.0.0.1/dav/", "u", "p")


def test_url_quoting(client: WebDAVClient) -> None:
    url = client.url_for("/a b/ü#?.txt")
    assert url.endswith("/a%20b/%C3%BC%23%3F.txt")
    assert client.url_for("/x", collection=True).endswith("/x/")
    assert client.path_from_href(url) == "/a b/ü#?.txt"


def test_root_propfind_lists_members(client: WebDAVClient, webdav_folder: DavServer) -> None:
    (webdav_folder.data_dir / "sub").mkdir()
    (webdav_folder.data_dir / "a b ü.txt").write_bytes(b"hello")
    root, members = client.list_folder("/")
    assert root.path == "/" and root.is_collection
    by_name = {m.name: m for m in members}
    assert set(by_name) == {"sub", "a b ü.txt"}
    sub, fil = by_name["sub"], by_name["a b ü.txt"]
    assert sub.is_collection and sub.size is None and sub.path == "/sub"
    assert not fil.is_collection and fil.size == 5 and fil.path == "/a b ü.txt"
    assert fil.content_type is not None and fil.content_type.startswith("text/plain")
    assert fil.etag and fil.last_modified is not None and fil.last_modified.tzinfo is not None
    assert fil.created is not None
    assert "{DAV:}getetag" in fil.props


def test_quota_properties(client: WebDAVClient) -> None:
    root = client.stat("/")
    assert root.quota_available is not None and root.quota_available > 0
    assert root.quota_used is not None and root.quota_used >= 0


def test_put_streams_file_and_get_with_range(client: WebDAVClient) -> None:
    data = bytes(range(256)) * 1000
    etag = client.put("/dir less.bin", io.BytesIO(data), "application/octet-stream")
    assert etag
    info = client.stat("/dir less.bin")
    assert info.size == len(data)
    with client.get("/dir less.bin") as resp:
        assert resp.status_code == 200
        assert b"".join(resp.iter_content(8192)) == data
    with client.get("/dir less.bin", (10, 19)) as resp:
        assert resp.status_code == 206
        assert resp.content == data[10:20]
        assert resp.headers["Content-Range"] == f"bytes 10-19/{len(data)}"
    with client.get("/dir less.bin", (len(data) - 3, None)) as resp:
        assert resp.content == data[-3:]


def test_put_from_real_file_sends_length(client: WebDAVClient, tmp_path: object) -> None:
    import pathlib

    src = pathlib.Path(str(tmp_path)) / "big.bin"
    src.write_bytes(b"x" * 300_000)
    with src.open("rb") as fh:
        client.put("/big.bin", fh)
    assert client.stat("/big.bin").size == 300_000


def test_range_outside_file(client: WebDAVClient) -> None:
    client.put("/r.txt", b"abc")
    with pytest.raises(errors.RangeNotSatisfiable) as info:
        client.get("/r.txt", (100, 200))
    assert info.value.status_code == 416


def test_mkcol_move_copy_delete(client: WebDAVClient) -> None:
    client.mkcol("/f")
    with pytest.raises(errors.NamingConflict):
        client.mkcol("/f")
    with pytest.raises(errors.InvalidParentFolder):
        client.mkcol("/missing/child")
    client.put("/f/x.txt", b"one")
    client.copy("/f", "/g", collection=True)
    assert client.stat("/g/x.txt").size == 3
    client.move("/g/x.txt", "/f/y.txt")
    names = sorted(m.name for m in client.list_folder("/f")[1])
    assert names == ["x.txt", "y.txt"]
    with pytest.raises(errors.NamingConflict):
        client.move("/f/x.txt", "/f/y.txt")
    client.move("/f/x.txt", "/f/y.txt", overwrite=True)
    with client.get("/f/y.txt") as resp:
        assert resp.content == b"one"
    client.delete("/f", collection=True)
    with pytest.raises(errors.NotFound) as info:
        client.stat("/f")
    assert info.value.error_code == "not_found" and info.value.upstream_status == 404


def test_wrong_password(webdav_folder: DavServer) -> None:
    with WebDAVClient(
        webdav_folder.url, webdav_folder.username, "wrong", policy=LOOPBACK_POLICY
    ) as dav:
        with pytest.raises(errors.ServiceUnauthorized) as info:
            dav.stat("/")
    err = info.value
    assert (err.status_code, err.error_code) == (401, "service_unauthorized")
    assert "wrong" not in err.message


def test_upstream_down(closed_port_url: str) -> None:
    with WebDAVClient(closed_port_url, "u", "p", timeout=(2, 2), policy=LOOPBACK_POLICY) as dav:
        with pytest.raises(errors.ServiceNotAvailable) as info:
            dav.stat("/")
    assert info.value.to_dict()["error_code"] == "service_not_available"
    assert info.value.status_code == 503


def test_error_mapping_table() -> None:
    cases = {
        401: "service_unauthorized",
        403: "service_forbidden",
        404: "not_found",
        412: "naming_conflict",
        429: "too_many_service_requests",
        500: "bad_gateway",
        502: "bad_gateway",
        503: "service_not_available",
        507: "insufficient_storage",
        418: "request_failed",
    }
    for status, code in cases.items():
        assert errors.error_for_status(status, "m").error_code == code
    assert errors.error_for_status(429, "m", 3.0).retry_after == 3.0


def test_forward_relays_status_headers_and_body(
    client: WebDAVClient, webdav_folder: DavServer
) -> None:
    (webdav_folder.data_dir / "p.txt").write_bytes(b"pass-through")
    resp = client.forward("GET", "/p.txt", headers={"Range": "bytes=0-3", "Connection": "x"})
    assert resp.status_code == 206
    headers = dict(forwardable_headers(resp))
    assert "Content-Range" in headers
    assert b"".join(iter_raw(resp)) == b"pass"

    missing = client.forward("GET", "nope.txt")
    assert missing.status_code == 404  # relayed, not raised
    missing.close()

    prop = client.forward(
        "PROPFIND",
        "/",
        headers={"Depth": "1"},
        body=b'<?xml version="1.0"?><propfind xmlns="DAV:"><allprop/></propfind>',
    )
    assert prop.status_code == 207
    assert b"p.txt" in b"".join(iter_raw(prop))


def test_forward_streams_upload_body(client: WebDAVClient) -> None:
    chunks = iter([b"ab", b"cd", b"ef"])
    resp = client.forward("PUT", "/chunked.txt", body=chunks)
    resp.close()
    assert resp.status_code in (201, 204)
    with client.get("/chunked.txt") as got:
        assert got.content == b"abcdef"


def test_forward_keeps_credentials_on_host(client: WebDAVClient) -> None:
    with pytest.raises(ValueError):
        client.forward("GET", "http://example.invalid/steal")
    with pytest.raises(ValueError):
        client.forward("GET", "/../../outside")
    with pytest.raises(ValueError):
        client.forward("GE T", "/")
    same_host = client.root_url + "x.txt"
    assert client.resolve_raw_uri(same_host) == same_host
    assert client.resolve_raw_uri("a%20b?x=1") == client.root_url + "a%20b?x=1"


def test_forward_drops_authorization_header(client: WebDAVClient) -> None:
    resp = client.forward(
        "PROPFIND", "/", headers={"Authorization": "Basic Zm9vOmJhcg==", "Depth": "0"}
    )
    assert resp.status_code == 207  # our stored credentials were used, not the caller's
    resp.close()


def test_malformed_multistatus(client: WebDAVClient) -> None:
    with pytest.raises(errors.BadGateway):
        client.parse_multistatus(b"<not-xml")
    with pytest.raises(errors.BadGateway):
        client.parse_multistatus(b"<html/>")


# -- a misbehaving upstream -----------------------------------------------------------------------


def _flaky_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """Answers with the status named by the first path segment; ``/slow`` never answers in time."""
    segment = environ["PATH_INFO"].strip("/").split("/")[0]
    if segment == "slow":
        time.sleep(1.5)
        segment = "200"
    if segment == "garbage":
        start_response("207 Multi-Status", [("Content-Type", "application/xml")])
        return [b"<not xml"]
    status = int(segment) if segment.isdigit() else 404
    headers = [("Content-Type", "text/plain")]
    if status in (429, 503):
        headers.append(("Retry-After", "7"))
    start_response(f"{status} Whatever", headers)
    return [b"upstream says no"]


@pytest.fixture(scope="module")
def flaky_url() -> Iterator[str]:
    runner = ServerThread(_flaky_app)
    url = f"http://127.0.0.1:{runner.port}/"
    runner.start(url, ("u", "p"))
    yield url
    runner.stop()


@pytest.mark.parametrize(
    ("status", "error_type", "api_status", "code"),
    [
        (403, errors.ServiceForbidden, 403, "service_forbidden"),
        (423, errors.ServiceForbidden, 403, "service_forbidden"),
        (429, errors.TooManyServiceRequests, 429, "too_many_service_requests"),
        (500, errors.BadGateway, 502, "bad_gateway"),
        (503, errors.ServiceNotAvailable, 503, "service_not_available"),
        (507, errors.InsufficientStorage, 507, "insufficient_storage"),
    ],
)
def test_upstream_statuses(
    flaky_url: str, status: int, error_type: type, api_status: int, code: str
) -> None:
    with WebDAVClient(f"{flaky_url}{status}/", "u", "p", policy=LOOPBACK_POLICY) as dav:
        with pytest.raises(error_type) as info:
            dav.put("/x.txt", b"data")
    err = info.value
    assert (err.status, err.error_code, err.upstream_status) == (api_status, code, status)
    if status in (429, 503):
        assert err.retry_after == 7.0 and err.headers["Retry-After"] == "7"


def test_upstream_timeout(flaky_url: str) -> None:
    with WebDAVClient(
        f"{flaky_url}slow/", "u", "p", timeout=(2, 0.3), policy=LOOPBACK_POLICY
    ) as dav:
        with pytest.raises(errors.GatewayTimeout) as info:
            dav.stat("/")
    assert (info.value.status, info.value.error_code) == (504, "gateway_timeout")


def test_upstream_garbage(flaky_url: str) -> None:
    with WebDAVClient(f"{flaky_url}garbage/", "u", "p", policy=LOOPBACK_POLICY) as dav:
        with pytest.raises(errors.BadGateway):
            dav.stat("/")
    with WebDAVClient(f"{flaky_url}200/", "u", "p", policy=LOOPBACK_POLICY) as dav:
        with pytest.raises(errors.BadGateway):  # 200 instead of 207
            dav.stat("/")


def test_remote_file_seeks_with_range(client: WebDAVClient) -> None:
    from kloudless.server.connectors.webdav_streams import RemoteFile

    data = bytes(range(256)) * 300
    client.put("/seek.bin", data)
    with RemoteFile(client, "/seek.bin", len(data)) as remote:
        assert remote.seekable() and remote.readable()
        remote.seek(70000)
        assert remote.read(10) == data[70000:70010] and remote.tell() == 70010
        remote.seek(-5, io.SEEK_END)
        assert remote.read() == data[-5:]
        assert remote.read(1) == b""
        remote.seek(0)
        assert remote.read() == data
