"""Receive Kloudless webhook notifications and check their signatures.

The API notifies your application of new activity with a ``POST`` whose body is
``account=<account id>`` and whose ``X-Kloudless-Signature`` header is the base64 HMAC-SHA256 of the
raw body keyed with the server's signing key. It expects ``200`` with your application id as the
body; the first request (the validation ping) has an empty body.

Which key: the local server (``kloudless serve``) signs with a separate **webhook signing key**
(``whsec_...``) that ``kloudless apps webhook set URL`` prints once; pass it with
``--signing-key`` or ``KLOUDLESS_WEBHOOK_SIGNING_KEY``. A Kloudless-style service that signs with
the application's API key works too: ``--api-key KEY`` is an alias of ``--signing-key``.

This receiver uses only the standard library's HTTP server and :mod:`kloudless.webhooks`, listens
on 127.0.0.1, refuses requests with a bad signature (401), and prints each notification. React to a
notification by reading the account's activity from your stored cursor (see ``watch_events.py``).

Run it with the local server, started with ``KLOUDLESS_ALLOW_UPSTREAM=127.0.0.1:8030`` in its
environment (the server sends nothing to loopback addresses unless allowed)::

    export KLOUDLESS_ALLOW_UPSTREAM=127.0.0.1:8030
    kloudless apps webhook set http://127.0.0.1:8030/    # prints the signing key (shown once)
    export KLOUDLESS_WEBHOOK_SIGNING_KEY=whsec_...
    KLOUDLESS_APP_ID=app_... python examples/webhook_receiver.py --port 8030
    kloudless apps webhook set http://127.0.0.1:8030/    # again: the ping now validates

During a key rotation (``kloudless apps webhook rotate-key``), pass the old key too:
``--signing-key OLD --signing-key NEW``.
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
    """An HTTP server that knows the application id and the keys to check signatures with.

    :param address: ``(host, port)`` to listen on; port 0 picks a free port.
    :param app_id: the application id, sent back in every successful answer.
    :param signing_keys: the keys whose signatures are accepted (several during a rotation).
    """

    daemon_threads = True

    def __init__(self, address: tuple[str, int], app_id: str, signing_keys: list[str]) -> None:
        super().__init__(address, WebhookHandler)
        self.app_id = app_id
        self.signing_keys = signing_keys
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
        if not webhooks.verify_signature(body, signature, self.server.signing_keys):
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
    app_id: str, signing_keys: list[str], host: str = "127.0.0.1", port: int = 8030
) -> WebhookServer:
    """Create (but do not start) the webhook server.

    :param app_id: the application id.
    :param signing_keys: the accepted signing keys (the API key for a Kloudless-style service).
    :param host: the address to bind (loopback by default).
    :param port: the port; 0 picks a free one.
    :returns: the server; call ``serve_forever()`` and later ``shutdown()``/``server_close()``.
    """
    if not app_id:
        raise ValueError("the application id is required")
    if not signing_keys:
        raise ValueError("at least one signing key is required")
    return WebhookServer((host, port), app_id, signing_keys)


def main(argv: list[str] | None = None) -> int:
    """Run the receiver until Ctrl-C.

    :param argv: command-line arguments (default ``sys.argv[1:]``).
    :returns: the exit code.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--app-id", default=os.environ.get("KLOUDLESS_APP_ID"))
    parser.add_argument(
        "--signing-key",
        "--api-key",
        dest="signing_keys",
        action="append",
        metavar="KEY",
        help="key to check signatures with: the whsec_... key printed by `kloudless apps webhook "
        "set URL` (repeat during a rotation; default $KLOUDLESS_WEBHOOK_SIGNING_KEY). "
        "--api-key is an alias, for services that sign with the API key",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8030)
    args = parser.parse_args(argv)
    keys = args.signing_keys or [k for k in [os.environ.get("KLOUDLESS_WEBHOOK_SIGNING_KEY")] if k]
    if not args.app_id or not keys:
        parser.error(
            "set KLOUDLESS_APP_ID and KLOUDLESS_WEBHOOK_SIGNING_KEY (or pass --app-id and "
            "--signing-key; `kloudless apps webhook set URL` prints the signing key)"
        )
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
