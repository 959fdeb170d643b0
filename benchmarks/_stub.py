"""A minimal WSGI server for the benchmarks' baselines (run in its own process).

Usage: ``python -m benchmarks._stub TOTAL_ITEMS``. Serves on a free 127.0.0.1 port (waitress):

* ``GET /v1/accounts/1/storage/folders/root/contents?page=N&page_size=M``: the ``object_list``
  pages of a folder holding ``TOTAL_ITEMS`` files shaped like the local server's file objects.
  Page bodies are encoded once and cached, so serving costs next to nothing and the client's
  work is what gets measured.
* ``GET /static``: 4 KiB of fixed bytes (the ceiling of waitress itself).

Prints ``READY <base_url>`` and exits when its stdin closes.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from typing import Any, Callable
from urllib.parse import parse_qs

STATIC = b"x" * 4096
LIST_PATH = "/v1/accounts/1/storage/folders/root/contents"


def file_object(base: str, index: int) -> dict[str, Any]:
    """:returns: a file object like the local server's, for item ``index``."""
    file_id = f"file_{index:012d}"
    name = f"report-{index:06d}.txt"
    return {
        "id": file_id,
        "name": name,
        "type": "file",
        "api": "storage",
        "href": f"{base}/v1/accounts/1/storage/files/{file_id}",
        "account": 1,
        "size": 1000 + index % 5000,
        "created": "2026-01-01T00:00:00.000000Z",
        "modified": "2026-01-02T00:00:00.000000Z",
        "path": f"/{name}",
        "parent": {"type": "folder", "id": "root", "name": "", "id_type": "default"},
        "ancestors": [{"type": "folder", "id": "root", "name": "", "id_type": "default"}],
        "ids": {"default": file_id},
        "id_type": "default",
        "raw_id": file_id,
        "mime_type": "text/plain",
        "downloadable": True,
    }


class PagingApp:
    """The stub WSGI application.

    :param total: number of items in the listed folder.
    """

    def __init__(self, total: int) -> None:
        self.total = total
        self.base = ""
        self._pages: dict[tuple[int, int], bytes] = {}

    def page(self, number: int, size: int) -> bytes | None:
        """:returns: the encoded page, or None past the end."""
        key = (number, size)
        body = self._pages.get(key)
        if body is None:
            start = (number - 1) * size
            if number < 1 or (number > 1 and start >= self.total):
                return None
            stop = min(self.total, start + size)
            objects = [file_object(self.base, i) for i in range(start, stop)]
            envelope = {
                "api": "storage",
                "type": "object_list",
                "page": number,
                "next_page": number + 1 if stop < self.total else None,
                "count": len(objects),
                "objects": objects,
            }
            body = self._pages[key] = json.dumps(envelope, separators=(",", ":")).encode()
        return body

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        path = environ.get("PATH_INFO", "")
        if path == "/static":
            start_response(
                "200 OK",
                [("Content-Type", "application/octet-stream"), ("Content-Length", "4096")],
            )
            return [STATIC]
        if path.rstrip("/") == LIST_PATH:
            query = parse_qs(environ.get("QUERY_STRING", ""))
            number = int(query.get("page", ["1"])[-1])
            size = int(query.get("page_size", ["100"])[-1])
            body = self.page(number, min(max(size, 1), 1000))
            if body is not None:
                start_response(
                    "200 OK",
                    [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
                )
                return [body]
        body = b'{"status_code":404,"error_code":"not_found","message":"Not found","id":"x"}'
        start_response(
            "404 Not Found",
            [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
        )
        return [body]


def serve(
    app: Any, threads: int, ident: str, ready: Callable[[str], str] = str, **options: Any
) -> None:
    """Serve ``app`` on waitress on a free 127.0.0.1 port, print ``READY <ready(base URL)>``,
    and exit when stdin closes. :param options: more waitress settings. :returns: never."""
    from waitress import create_server

    server = create_server(app, host="127.0.0.1", port=0, threads=threads, ident=ident, **options)
    base = f"http://127.0.0.1:{server.effective_port}"
    if isinstance(app, PagingApp):
        app.base = base
        for number in range(1, app.total // 1000 + 2):  # warm the cache of the usual page size
            app.page(number, 1000)

    def watch() -> None:
        sys.stdin.read()
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()
    sys.stdout.write(f"READY {ready(base)}\n")
    sys.stdout.flush()
    server.run()


def main(argv: list[str]) -> int:
    """:param argv: ``[total_items]``. :returns: never (exits when stdin closes)."""
    serve(PagingApp(int(argv[0]) if argv else 100_000), 4, "stub")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
