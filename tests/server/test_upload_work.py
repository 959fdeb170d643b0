"""The API's own work per small upload: what it no longer does, and that the answers are the
same.

* The request's host URL (the ``href`` of every object) is werkzeug's ``Request.host_url``,
  remembered per scheme and host instead of quoted and IRI-decoded anew for every request.
"""

from __future__ import annotations

from typing import Any

import pytest
from werkzeug.test import Client
from werkzeug.wrappers import Request

from kloudless.server import context
from kloudless.server.context import host_url

from .conftest import upload


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
