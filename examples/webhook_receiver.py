"""Receive Kloudless webhook notifications and check their signatures.

The API notifies your application of new activity with a ``POST`` whose body is
``account=<account id>`` and whose ``X-Kloudless-Signature`` header is the base64 HMAC-SHA256 of the
raw body keyed with your API key. It expects ``200`` with your application id as the body; the
first request (the validation ping) has an empty body.

This receiver uses only the standard library's HTTP server and :mod:`kloudless.webhooks`, listens
on 127.0.0.1, refuses requests with a bad signature (401), and prints each notification. React to a
notification by reading the account's activity from your stored cursor (see ``watch_events.py``).

Run it::

    KLOUDLESS_APP_ID=... KLOUDLESS_API_KEY=... python examples/webhook_receiver.py --port 8030

During an API key rotation, pass the old key too: ``--api-key OLD --api-key NEW``.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from kloudless import webhooks

#: Notifications are tiny (``account=123``); anything much larger is not one.
MAX_BODY_BYTES = 64 * 1024


class WebhookServer(ThreadingHTTPServer):
    """An HTTP server that knows the application id and the API keys to check signatures with.

    :param address: ``(host, port)`` to listen on; port 0 picks a free port.
    :param app_id: the application id, sent back in every successful answer.
    :param api_keys: the API keys whose signatures are accepted (several during a rotation).
    """

    daemon_threads = True

    def __init__(self, address: tuple[str, int], app_id: str, api_keys: list[str]) -> None:
        super().__init__(address, WebhookHandler)
        self.app_id = app_id
        self.api_keys = api_keys
        #: Account ids of the verified notifications received so far (for callers and tests).
        self.notifications: list[str] = []
        self.lock = threading.Lock()

    def on_notification(self, account_id: str) -> None:
        """Handle a verified notification: here, record and print it.

        A real application would queue a job that reads ``accounts/<id>/events`` from its stored
        cursor, and answer quickly.

        :param account_id: the account with new activity.
        """
        with self.lock:
            self.notifications.append(account_id)
        print(f"new activity on account {account_id}", flush=True)


class WebhookHandler(BaseHTTPRequestHandler):
    """Answer webhook POSTs; everything else gets 405."""

    server: WebhookServer
    protocol_version = "HTTP/1.1"
    #: Seconds a client may stay silent (a short body, an idle keep-alive) before it is dropped.
    timeout = 30

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        """Verify the signature, then answer with the application id."""
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY_BYTES:
            # The body stays unread, so this connection cannot carry another request.
            self.close_connection = True
            status, text = (
                (413, b"request body too large\n") if length > 0 else (400, b"bad length\n")
            )
            self._reply(status, text, {"Content-Type": "text/plain", "Connection": "close"})
            return
        body = self.rfile.read(length)
        signature = self.headers.get(webhooks.SIGNATURE_HEADER)
        if not webhooks.verify_signature(body, signature, self.server.api_keys):
            self._reply(401, b"invalid signature\n")
            return
        if not webhooks.is_validation_request(body):
            try:
                account_id = webhooks.parse_notification(body)
            except ValueError as exc:
                self._reply(400, f"{exc}\n".encode())
                return
            self.server.on_notification(account_id)
        status, headers, payload = webhooks.validation_response(self.server.app_id)
        self._reply(status, payload, headers)

    def do_GET(self) -> None:  # noqa: N802
        """Webhooks are POSTs only."""
        self._reply(405, b"POST only\n", {"Allow": "POST"})

    do_PUT = do_DELETE = do_PATCH = do_GET  # noqa: N815

    def _reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {"Content-Type": "text/plain; charset=utf-8"}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        """Log to stderr without query strings (they could hold secrets)."""
        sys.stderr.write(f"{self.address_string()} {self.command} {self.path.split('?')[0]}\n")


def make_server(
    app_id: str, api_keys: list[str], host: str = "127.0.0.1", port: int = 8030
) -> WebhookServer:
    """Create (but do not start) the webhook server.

    :param app_id: the application id.
    :param api_keys: the accepted API keys.
    :param host: the address to bind (loopback by default).
    :param port: the port; 0 picks a free one.
    :returns: the server; call ``serve_forever()`` and later ``shutdown()``/``server_close()``.
    """
    if not app_id:
        raise ValueError("the application id is required")
    if not api_keys:
        raise ValueError("at least one API key is required")
    return WebhookServer((host, port), app_id, api_keys)


def main(argv: list[str] | None = None) -> int:
    """Run the receiver until Ctrl-C.

    :param argv: command-line arguments (default ``sys.argv[1:]``).
    :returns: the exit code.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--app-id", default=os.environ.get("KLOUDLESS_APP_ID"))
    parser.add_argument(
        "--api-key",
        action="append",
        help="API key to check signatures with (repeat for rotation; default KLOUDLESS_API_KEY)",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8030)
    args = parser.parse_args(argv)
    keys = args.api_key or [k for k in [os.environ.get("KLOUDLESS_API_KEY")] if k]
    if not args.app_id or not keys:
        parser.error("set KLOUDLESS_APP_ID and KLOUDLESS_API_KEY (or pass --app-id/--api-key)")
    server = make_server(args.app_id, keys, args.host, args.port)
    print(f"Listening on http://{args.host}:{server.server_address[1]}/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
