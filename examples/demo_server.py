"""The three-legged OAuth flow with the Kloudless SDK, on the standard library's HTTP server.

1. ``/storage`` (or ``/calendar``) builds an authorization URL with
   :func:`kloudless.get_authorization_url`, keeps its ``state`` in this browser's session, and
   redirects the browser to the API's consent page.
2. The user picks or creates an account there; the API redirects back to ``/callback`` with a
   ``code`` and the ``state``.
3. ``/callback`` checks the state and trades the code for a bearer token with
   :func:`kloudless.get_token_from_code`, then shows the account and its root folder (or its
   primary calendar's events).

Each browser gets its own session (a random cookie keyed into a server-side store), so several
users can go through the flow at the same time; a state is used once. Errors (a refused consent, a
replayed callback, an API error) are shown as an error page, never a crash. The server listens on
127.0.0.1 only and never shows or logs the token or the code.

Run it against the local server (``kloudless serve`` prints the app id and API key)::

    KLOUDLESS_BASE_URL=http://localhost:8002 \\
        python examples/demo_server.py APP_ID API_KEY [--port 8020]

then open http://localhost:8020/ in a browser.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import secrets
import sys
import threading
import time
from collections import OrderedDict
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import requests

from kloudless import Account, get_authorization_url, get_token_from_code
from kloudless.exceptions import APIException, KloudlessException, OauthFlowFailed

COOKIE_NAME = "kloudless_demo_session"
#: Sessions kept at most (oldest dropped first) and their lifetime in seconds.
MAX_SESSIONS = 1000
SESSION_TTL = 600
#: Host names the callback URL may use; anything else falls back to ``localhost``.
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")

INDEX_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Kloudless OAuth demo</title></head>
<body>
<h1>Kloudless OAuth demo</h1>
<ul>
  <li><a href="/storage">Connect a storage account</a></li>
  <li><a href="/calendar">Connect a calendar account</a></li>
</ul>
</body></html>
"""


class SessionStore:
    """Per-browser state for the OAuth flow: session id -> pending authorization.

    Bounded in size and age so abandoned flows cannot fill memory. Thread-safe.
    """

    def __init__(self, max_sessions: int = MAX_SESSIONS, ttl: float = SESSION_TTL) -> None:
        self._data: OrderedDict[str, tuple[float, dict[str, str]]] = OrderedDict()
        self._lock = threading.Lock()
        self._max = max_sessions
        self._ttl = ttl

    def put(self, session_id: str, value: dict[str, str]) -> None:
        """Store the pending authorization of a session (replacing an older one).

        :param session_id: the cookie value.
        :param value: ``state``, ``redirect_uri`` and ``scope``.
        """
        with self._lock:
            self._data.pop(session_id, None)
            self._data[session_id] = (time.monotonic(), value)
            while len(self._data) > self._max:
                self._data.popitem(last=False)

    def pop(self, session_id: str | None) -> dict[str, str] | None:
        """Take (and forget) a session's pending authorization: a state is good for one callback.

        :param session_id: the cookie value, or None.
        :returns: the stored value, or None if there is none or it expired.
        """
        if not session_id:
            return None
        with self._lock:
            entry = self._data.pop(session_id, None)
        if entry is None or time.monotonic() - entry[0] > self._ttl:
            return None
        return entry[1]


class DemoServer(ThreadingHTTPServer):
    """The demo's HTTP server: the app credentials and the session store.

    :param address: ``(host, port)``; port 0 picks a free port.
    :param app_id: the application id.
    :param api_key: the application's API key (used only to exchange codes).
    """

    daemon_threads = True

    def __init__(self, address: tuple[str, int], app_id: str, api_key: str) -> None:
        super().__init__(address, DemoHandler)
        self.app_id = app_id
        self.api_key = api_key
        self.sessions = SessionStore()


class DemoHandler(BaseHTTPRequestHandler):
    """Routes: ``/``, ``/storage``, ``/calendar``, ``/callback``."""

    server: DemoServer
    #: Seconds a client may stay silent before it is dropped.
    timeout = 30

    # -- routing ----------------------------------------------------------------------------

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        """Dispatch a GET request."""
        path = urlsplit(self.path).path.rstrip("/") or "/"
        if path == "/":
            self._send(200, INDEX_PAGE.encode(), "text/html; charset=utf-8")
        elif path in ("/storage", "/calendar"):
            self._start_flow(scope=path.lstrip("/"))
        elif path == "/callback":
            self._callback()
        else:
            self._error(404, "not_found", "No such page.")

    # -- the flow ---------------------------------------------------------------------------

    def _redirect_uri(self) -> str:
        """The callback URL on the host name the browser used (a loopback name only)."""
        host = (self.headers.get("Host") or "").strip().lower()
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if name not in LOOPBACK_NAMES:
            name = "localhost"
        return f"http://{name}:{self.server.server_address[1]}/callback"

    def _session_id(self) -> str | None:
        try:
            cookie = SimpleCookie(self.headers.get("Cookie") or "")
        except CookieError:
            return None
        morsel = cookie.get(COOKIE_NAME)
        return morsel.value if morsel is not None else None

    def _start_flow(self, scope: str) -> None:
        redirect_uri = self._redirect_uri()
        url, state = get_authorization_url(
            self.server.app_id, redirect_uri=redirect_uri, scope=scope
        )
        session_id = secrets.token_urlsafe(24)
        self.server.sessions.put(
            session_id, {"state": state, "redirect_uri": redirect_uri, "scope": scope}
        )
        self.send_response(302)
        self.send_header("Location", url)
        self.send_header("Cache-Control", "no-store, must-revalidate")
        self.send_header(
            "Set-Cookie", f"{COOKIE_NAME}={session_id}; Path=/; HttpOnly; SameSite=Lax"
        )
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _callback(self) -> None:
        params = dict(parse_qsl(urlsplit(self.path).query, keep_blank_values=True))
        pending = self.server.sessions.pop(self._session_id())
        if pending is None:
            self._error(
                400,
                "no_pending_authorization",
                "No authorization is in progress in this browser (or it was already used). "
                "Start again from the home page.",
            )
            return
        try:
            token = get_token_from_code(
                self.server.app_id,
                self.server.api_key,
                pending["state"],
                pending["redirect_uri"],
                **params,
            )
            result = self._describe_account(token, pending["scope"])
        except OauthFlowFailed as exc:
            self._error(400, "oauth_flow_failed", str(exc))
        except APIException as exc:
            data = exc.error_data or {}
            message = str(data.get("message") or exc)
            self._error(exc.status or 502, str(data.get("error_code") or "api_error"), message)
        except (KloudlessException, requests.RequestException) as exc:
            self._error(
                502, "api_unreachable", f"The API could not be reached: {type(exc).__name__}"
            )
        except KeyError as exc:
            self._error(400, "bad_callback", f"The callback is missing {exc}.")
        else:
            self._send(200, json.dumps(result, indent=2).encode(), "application/json")

    @staticmethod
    def _describe_account(token: str, scope: str) -> dict[str, Any]:
        with Account(token=token) as account:
            info = account.get().data
            result: dict[str, Any] = {"msg": "Account connected.", "account": info}
            if scope == "calendar":
                events = account.get("cal/calendars/primary/events", params={"page_size": 10})
                result["primary_calendar_events"] = [e.data for e in events]
            else:
                contents = account.get("storage/folders/root/contents", params={"page_size": 100})
                result["root_folder_contents"] = [r.data for r in contents]
        return result

    # -- responses --------------------------------------------------------------------------

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, code: str, message: str) -> None:
        """Answer an error as HTML for browsers and JSON for everything else."""
        if "text/html" in (self.headers.get("Accept") or ""):
            page = (
                "<!doctype html><html><head><meta charset='utf-8'><title>Error</title></head>"
                f"<body><h1>{html.escape(code)}</h1><p>{html.escape(message)}</p>"
                "<p><a href='/'>Start again</a></p></body></html>"
            )
            self._send(status, page.encode(), "text/html; charset=utf-8")
        else:
            body = json.dumps({"error": code, "message": message}).encode()
            self._send(status, body, "application/json")

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        """Log without query strings: the callback's carries the OAuth code and state."""
        sys.stderr.write(f"{self.address_string()} {self.command} {self.path.split('?')[0]}\n")


def make_server(app_id: str, api_key: str, host: str = "127.0.0.1", port: int = 8020) -> DemoServer:
    """Create (but do not start) the demo server.

    :param app_id: the application id.
    :param api_key: the application's API key.
    :param host: the address to bind (loopback by default).
    :param port: the port; 0 picks a free one.
    :returns: the server; call ``serve_forever()`` and later ``shutdown()``/``server_close()``.
    """
    return DemoServer((host, port), app_id, api_key)


def main(argv: list[str] | None = None) -> int:
    """Run the demo server until Ctrl-C.

    :param argv: command-line arguments (default ``sys.argv[1:]``).
    :returns: the exit code.
    """
    parser = argparse.ArgumentParser(description="Kloudless OAuth demo server.")
    parser.add_argument(
        "app_id", nargs="?", default=os.environ.get("KLOUDLESS_APP_ID"), help="[KLOUDLESS_APP_ID]"
    )
    parser.add_argument(
        "api_key",
        nargs="?",
        default=os.environ.get("KLOUDLESS_API_KEY"),
        help="[KLOUDLESS_API_KEY]",
    )
    parser.add_argument("--port", type=int, default=8020)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    args = parser.parse_args(argv)
    if not args.app_id or not args.api_key:
        parser.error("APP_ID and API_KEY are required (or KLOUDLESS_APP_ID/KLOUDLESS_API_KEY)")
    server = make_server(args.app_id, args.api_key, args.host, args.port)
    print(f"Listening on http://localhost:{server.server_address[1]}/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
