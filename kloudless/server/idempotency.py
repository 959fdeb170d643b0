"""Idempotency keys: a POST, PATCH or DELETE carrying ``Idempotency-Key`` runs at most once.

The first request with a key runs; its response (status, body and the headers that matter:
``Content-Type``, ``Location``, ``Retry-After``, ``ETag``) is stored in the server's SQLite for
``Settings.idempotency_key_ttl`` seconds (24 hours by default). A repeat with the same key, method
and path gets the stored response back, marked ``Idempotent-Replayed: true`` (and
``Original-Request-Id``), without running again. Keys are scoped per application and account.

* Same key, different method, path (including the query string), body or
  ``X-Kloudless-Metadata``/``X-Kloudless-Raw-*`` headers: ``422 invalid_parameters``.
* Same key while the first request is still running: the repeat waits up to ``wait_seconds``
  (``Settings.idempotency_wait_seconds``, polling every ``poll_interval``) and then replays the
  first one's stored response (or runs, if the first released the key); if the first is still
  running after that, ``409 idempotency_key_in_use`` with ``Retry-After: 1``. The lock is the
  key's row, inserted in a ``BEGIN IMMEDIATE`` transaction together with the check for an
  existing row, so two requests can never both run.
* Where no other process shares the database (``fold``: not ``Settings.shared_state``), the
  keys of requests in this process are also held in memory while they run, which is what
  makes a repeat wait (or get its 409 or 422) here. A request that runs as one unit of work
  (``ctx.atomic``) then writes its key's row only with its answer, inside that unit: no
  ``running`` row committed on its own first, which saves a small upload a commit (a sync)
  of its own. Its change and its answer still commit together, and the key's primary key
  still lets only one of two requests with the same key commit: should another process
  have stored the key meanwhile, the request rolls back and answers ``409`` (its retry
  replays the stored answer).
* An answer that shows a secret once (``ctx.secret_answer``: a new API key or signing key) is
  stored sealed with the server secret, so the secret is never in the database in clear.
* Only 2xx and 4xx responses are stored. A 5xx, an exception, a streamed or very large response
  releases the key (the row is deleted), so a retry runs the request again. A row left ``running``
  by a server process that died is stale (it records the process instance that owns it, see
  :mod:`~kloudless.server.instances`) and the next request with that key runs; a repeat sent to
  another live process waits for the first like a repeat on the same one.
* Expired rows are ignored and pruned in bounded batches, opportunistically when a key is
  claimed (at most once per ``prune_interval``), so no background thread needs stopping.

Body hashing: the request body is hashed (SHA-256) *while the handler streams it*: the layer puts
a hashing wrapper around the body stream (``ctx.body_override`` and ``request.stream``), so a
large upload is never buffered in memory or copied to a temporary file. Whatever the handler did
not read is drained through the wrapper afterwards (up to ``drain_limit`` bytes; beyond that the
response is not stored). A repeated request's body is read and hashed before its stored response
is replayed, and compared with the first one's digest and size.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import re
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass, replace
from typing import IO, TYPE_CHECKING, Callable, Protocol, cast

from werkzeug.wrappers import Response

from .connectors.webdav_auth import seal, unseal
from .errors import ApiError
from .instances import is_alive
from .intents import forget_intent, prune_intents
from .responses import error_response
from .settings import Settings
from .spool import HashingStream
from .store import Store, register_migration

if TYPE_CHECKING:
    from .context import HandlerWrapper, RequestContext

log = logging.getLogger("kloudless.server")

__all__ = [
    "DEFAULT_TTL",
    "IDEMPOTENT_METHODS",
    "MAX_KEY_LENGTH",
    "IdempotencyLayer",
    "install",
]

#: Default lifetime of a stored response, seconds (24 hours).
DEFAULT_TTL = 24 * 60 * 60
#: Methods whose ``Idempotency-Key`` is honoured.
IDEMPOTENT_METHODS = frozenset({"POST", "PATCH", "DELETE"})
#: Longest accepted key (printable ASCII).
MAX_KEY_LENGTH = 255
#: Response headers stored and replayed.
STORED_HEADERS = ("Content-Type", "Location", "Retry-After", "ETag")
#: Request headers that select what a POST does besides its body (upload name, pass-through).
FINGERPRINT_HEADERS = ("X-Kloudless-Metadata", "X-Kloudless-Raw-Method", "X-Kloudless-Raw-URI")
#: Responses with a larger body are not stored (the key is released).
MAX_STORED_BODY = 1024 * 1024
#: Unread request body bytes drained (and hashed) after the handler ran, at most.
DRAIN_LIMIT = 64 * 1024 * 1024

_KEY_CHARS = re.compile(r"^[\x20-\x7e]+$")
_ACCOUNT_PATH = re.compile(r"^(/v\d+/accounts/)([^/]+)(/.*)?$")
_BLOCK = 64 * 1024

register_migration(
    300,
    """
    CREATE TABLE idempotency_keys (
        scope TEXT NOT NULL, key_hash TEXT NOT NULL,
        method TEXT NOT NULL, path TEXT NOT NULL, headers_sha256 TEXT NOT NULL,
        body_sha256 TEXT, body_size INTEGER,
        state TEXT NOT NULL, instance TEXT NOT NULL, claim TEXT NOT NULL,
        created REAL NOT NULL, expires REAL NOT NULL,
        status INTEGER, response_headers TEXT, response_body BLOB, request_id TEXT,
        PRIMARY KEY (scope, key_hash));
    CREATE INDEX idempotency_keys_expires ON idempotency_keys(expires);
    """,
)


@dataclass(frozen=True)
class _Request:
    """What identifies one keyed request."""

    scope: str
    key_hash: str
    method: str
    path: str
    headers_sha256: str
    #: An intent may be recorded under the key (see :mod:`~kloudless.server.intents`): not
    #: for an account whose connector never records one.
    intents: bool = True


#: How a stored answer that holds a secret starts (``RequestContext.secret_answer``).
SEALED_ANSWER = b"kloudless-sealed:"


@dataclass(frozen=True)
class _Stored:
    """A response worth storing."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes


class IdempotencyLayer:
    """The handler wrapper that honours ``Idempotency-Key`` (see the module docstring).

    :param store: the server's store (the ``idempotency_keys`` table, migration 300).
    :param ttl: seconds a stored response is kept (and replayed).
    :param clock: returns the current time in seconds (injectable for tests).
    :param prune_interval: least seconds between two pruning passes.
    :param prune_batch: most expired rows deleted per pass.
    :param drain_limit: most unread body bytes drained after a handler to finish the body hash.
    :param wait_seconds: how long a repeat waits for a still-running first request (0: no wait).
    :param poll_interval: seconds between two looks at the first request's row while waiting.
    :param instance: this process's instance id (:attr:`Core.instance_id
        <kloudless.server.core.Core.instance_id>`); default: a fresh one.
    :param fold: no other process shares the store: hold running keys in memory and store
        the key of an atomic request only with its answer, in its unit of work.
    """

    def __init__(
        self,
        store: Store,
        ttl: float = DEFAULT_TTL,
        *,
        clock: Callable[[], float] = time.time,
        prune_interval: float = 300.0,
        prune_batch: int = 500,
        drain_limit: int = DRAIN_LIMIT,
        wait_seconds: float = 2.0,
        poll_interval: float = 0.05,
        instance: str | None = None,
        fold: bool = False,
    ) -> None:
        if ttl <= 0:
            raise ValueError("the idempotency key TTL must be positive")
        if wait_seconds < 0 or poll_interval <= 0:
            raise ValueError("the idempotency wait must be >= 0 and its poll interval positive")
        self.store = store
        self.ttl = float(ttl)
        self.clock = clock
        self.prune_interval = prune_interval
        self.prune_batch = prune_batch
        self.drain_limit = drain_limit
        self.wait_seconds = float(wait_seconds)
        self.poll_interval = float(poll_interval)
        #: Identifies this server process (its id in :mod:`~kloudless.server.instances`):
        #: ``running`` rows of instances that are no longer alive are stale.
        self.instance = instance or uuid.uuid4().hex
        #: Claim the keys of atomic requests inside their unit of work (see the module
        #: docstring); only where no other process shares the database.
        self.fold = fold
        self._prune_lock = threading.Lock()
        self._last_prune = float("-inf")
        #: The keys of this process's requests that are running (and what they are).
        self._running: dict[tuple[str, str], _Request] = {}
        self._running_lock = threading.Lock()

    # -- the wrapper ---------------------------------------------------------------------------
    def __call__(self, ctx: RequestContext, call_next: Callable[[], Response]) -> Response:
        """Run ``call_next`` at most once per key, or replay its stored response.

        :param ctx: the request context (authenticated).
        :param call_next: runs the handler (and inner wrappers).
        :returns: the handler's response, a replayed one, or raises an error.
        :raises ApiError: 400 for a malformed key, 409 while the key's request runs, 422 when
            the key was used for another request.
        """
        request = ctx.request
        raw_key = request.environ.get("HTTP_IDEMPOTENCY_KEY")  # request.headers' source
        if raw_key is None or request.method not in IDEMPOTENT_METHODS or ctx.auth is None:
            return call_next()
        key = _check_key(raw_key)
        try:
            scope, path, intents = self._scope_and_path(ctx)
        except ApiError:
            # The handler reports the same account error; there is nothing to key.
            return call_next()
        fingerprint = json.dumps([request.headers.get(h) for h in FINGERPRINT_HEADERS])
        req = _Request(
            scope=scope,
            key_hash=hashlib.sha256(key.encode("ascii")).hexdigest(),
            method=request.method,
            path=path,
            headers_sha256=hashlib.sha256(fingerprint.encode("utf-8", "replace")).hexdigest(),
            intents=intents,
        )
        if not self.fold:
            return self._claim_and_run(ctx, req, call_next)
        self._enter(req)
        try:
            if ctx.atomic and self._find(req) is None:
                self._maybe_prune()
                return self._run_folded(ctx, req, call_next)
            return self._claim_and_run(ctx, req, call_next)
        finally:
            with self._running_lock:
                del self._running[(req.scope, req.key_hash)]

    def _claim_and_run(
        self, ctx: RequestContext, req: _Request, call_next: Callable[[], Response]
    ) -> Response:
        """Claim the key with a row of its own (committed), then run or replay."""
        claim, row = self._claim(req)
        self._maybe_prune()
        if row is not None:
            return self._replay(ctx, row)
        return self._run(ctx, req, claim, call_next)

    def _enter(self, req: _Request) -> None:
        """Hold the key in this process, waiting up to :attr:`wait_seconds` while another of
        its requests with the key runs.

        :raises ApiError: 422 when that request is another one (method, path, headers), 409
            when it still runs after the wait.
        """
        polls = math.ceil(self.wait_seconds / self.poll_interval)
        for attempt in range(polls + 1):
            if attempt:
                time.sleep(self.poll_interval)
            with self._running_lock:
                other = self._running.get((req.scope, req.key_hash))
                if other is None:
                    self._running[(req.scope, req.key_hash)] = req
                    return
            _check_same(other.method, other.path, other.headers_sha256, req)
        raise _in_use()

    def _find(self, req: _Request) -> sqlite3.Row | None:
        """:returns: the key's row (stored answer, or a request of another process), if any."""
        return self.store.one(
            "SELECT state FROM idempotency_keys WHERE scope = ? AND key_hash = ?",
            (req.scope, req.key_hash),
        )

    def _run_folded(
        self, ctx: RequestContext, req: _Request, call_next: Callable[[], Response]
    ) -> Response:
        """Run an atomic handler whose key is held in this process only, and store its answer
        (the key's first row) inside its unit of work."""
        ctx.request_key = f"{req.scope}:{req.key_hash}"
        body = HashingStream(ctx.body_stream())
        ctx.body_override = cast(IO[bytes], body)
        ctx.request.stream = cast(IO[bytes], body)
        try:
            try:
                with self.store.unit_of_work():
                    response = call_next()
                    self._store_answer(ctx, req, "", body, response)
            except ApiError as exc:
                if exc.status >= 500:
                    raise
                response = error_response(exc, ctx.request_id)
                self._store_answer(ctx, req, "", body, response)
        except _KeyTaken:
            # Another process stored this key first: this request's change rolled back.
            raise _in_use() from None
        return response

    def _scope_and_path(self, ctx: RequestContext) -> tuple[str, str, bool]:
        """Scope (app + account), the normalized path (``me`` resolved, with the query) and
        whether an intent may be recorded under the key (:attr:`_Request.intents`)."""
        auth = ctx.require_auth()
        path = ctx.request.path
        account = "-"
        intents = True
        match = _ACCOUNT_PATH.match(path)
        if match is not None:
            # Also checks that the caller may use this account: a stored response is never
            # replayed to a credential that could not have made the request.
            rows = dict(auth.account_rows)
            row = ctx.account(match.group(2))
            account = str(row["id"])
            # Unchanged since the token was read: the handler takes them without reading again.
            auth.account_rows.update(rows)
            path = f"{match.group(1)}{account}{match.group(3) or ''}"
            # An account's service never changes: nor does whether its requests record
            # intents (an unknown service's are assumed to).
            with contextlib.suppress(ApiError):
                intents = ctx.connector(row).records_intents
        query = ctx.request.query_string.decode("latin-1")
        if query:
            path += "?" + query
        return f"{auth.app_id}:{account}", path, intents

    def _run(
        self, ctx: RequestContext, req: _Request, claim: str, call_next: Callable[[], Response]
    ) -> Response:
        """Run the handler with a hashing body stream, then store or release the key."""
        ctx.request_key = f"{req.scope}:{req.key_hash}"
        body = HashingStream(ctx.body_stream())
        ctx.body_override = cast(IO[bytes], body)
        ctx.request.stream = cast(IO[bytes], body)  # handlers that read request.stream directly
        unit = self.store.unit_of_work() if ctx.atomic else contextlib.nullcontext()
        try:
            try:
                # The answer is stored inside the handler's unit of work: after a crash the
                # change and its answer both exist or neither does.
                with unit:
                    response = call_next()
                    self._store_answer(ctx, req, claim, body, response)
            except ApiError as exc:
                if exc.status >= 500:
                    raise
                # Rolled back: nothing changed, and the refusal is stored on its own.
                response = error_response(exc, ctx.request_id)
                self._store_answer(ctx, req, claim, body, response)
        except BaseException:
            self._release(req, claim)
            raise
        return response

    def _store_answer(
        self,
        ctx: RequestContext,
        req: _Request,
        claim: str,
        body: HashingStream,
        response: Response,
    ) -> None:
        """Store ``response`` as the key's answer, or release the key when it must not be.

        :param claim: the key's ``running`` row, or ``""`` for a key held in this process
            only: the answer is then the key's first row.
        """
        stored = self._storable(response)
        if stored is not None and ctx.secret_answer:
            # The answer shows a new secret once: stored sealed, for the replay only.
            sealed = seal(self.store.server_secret(), stored.body.decode("utf-8"))
            stored = replace(stored, body=SEALED_ANSWER + sealed.encode("ascii"))
        if stored is not None and body.drain(self.drain_limit):
            self._finish(req, claim, body, stored, ctx.request_id)
        elif claim:
            self._release(req, claim)

    def _replay(self, ctx: RequestContext, row: sqlite3.Row) -> Response:
        """Check the repeated request's body against the first one's and replay the response."""
        body = HashingStream(ctx.body_stream())
        expected = int(row["body_size"])
        while not body.eof and body.size <= expected:
            body.read(_BLOCK)
        if body.size != expected or body.hexdigest() != row["body_sha256"]:
            raise ApiError(
                422,
                "invalid_parameters",
                "This Idempotency-Key was already used for a request with a different body "
                f"({expected} bytes before, {'more than ' if not body.eof else ''}{body.size} "
                "now). Use a new key for a different request.",
            )
        headers = [(str(k), str(v)) for k, v in json.loads(row["response_headers"])]
        headers.append(("Idempotent-Replayed", "true"))
        if row["request_id"]:
            headers.append(("Original-Request-Id", str(row["request_id"])))
        answer = bytes(row["response_body"] or b"")
        if answer.startswith(SEALED_ANSWER):
            sealed = answer[len(SEALED_ANSWER) :].decode("ascii")
            answer = unseal(self.store.server_secret(), sealed).encode("utf-8")
        return Response(answer, status=int(row["status"]), headers=headers)

    # -- the key store -------------------------------------------------------------------------
    def _claim(self, req: _Request) -> tuple[str, sqlite3.Row | None]:
        """Claim the key, waiting up to :attr:`wait_seconds` while an earlier request runs.

        :returns: ``(claim id, None)`` when this request runs, or ``("", row)`` to replay.
        :raises ApiError: 409 while still running after the wait, 422 for another
            method/path/headers.
        """
        polls = math.ceil(self.wait_seconds / self.poll_interval)
        for attempt in range(polls + 1):
            if attempt:
                time.sleep(self.poll_interval)
            claim, row = self._claim_once(req)
            if row is None or row["state"] != "running":
                return claim, row
        raise _in_use()

    def _claim_once(self, req: _Request) -> tuple[str, sqlite3.Row | None]:
        """Insert the key's ``running`` row, or find the earlier request's.

        :returns: ``(claim id, None)`` when this request runs, or ``("", row)`` with the earlier
            request's row (``running`` or ``done``).
        :raises ApiError: 422 for another method/path/headers.
        """
        now = self.clock()
        with self.store.transaction() as conn:
            row: sqlite3.Row | None = conn.execute(
                "SELECT * FROM idempotency_keys WHERE scope = ? AND key_hash = ?",
                (req.scope, req.key_hash),
            ).fetchone()
            if row is not None and (
                float(row["expires"]) <= now
                or (
                    row["state"] == "running"
                    and row["instance"] != self.instance
                    and not is_alive(self.store, str(row["instance"]))
                )
            ):
                conn.execute(
                    "DELETE FROM idempotency_keys WHERE scope = ? AND key_hash = ?",
                    (req.scope, req.key_hash),
                )
                row = None
            if row is None:
                claim = uuid.uuid4().hex
                conn.execute(
                    "INSERT INTO idempotency_keys (scope, key_hash, method, path,"
                    " headers_sha256, state, instance, claim, created, expires)"
                    " VALUES (?, ?, ?, ?, ?, 'running', ?, ?, ?, ?)",
                    (
                        req.scope,
                        req.key_hash,
                        req.method,
                        req.path,
                        req.headers_sha256,
                        self.instance,
                        claim,
                        now,
                        now + self.ttl,
                    ),
                )
                return claim, None
        _check_same(str(row["method"]), str(row["path"]), str(row["headers_sha256"]), req)
        return "", row

    def _storable(self, response: Response) -> _Stored | None:
        """The response to store, or None when it must not be (5xx/3xx, streamed, too large)."""
        status = response.status_code
        if not (200 <= status < 300 or 400 <= status < 500) or response.is_streamed:
            return None
        body = response.get_data()
        if len(body) > MAX_STORED_BODY:
            return None
        headers = [(h, v) for h in STORED_HEADERS if (v := response.headers.get(h)) is not None]
        return _Stored(status, headers, body)

    def _finish(
        self, req: _Request, claim: str, body: HashingStream, stored: _Stored, request_id: str
    ) -> None:
        # A transaction of its own joins the request's unit of work; the request's upstream
        # intent (if any) is done with once its answer is stored. A failure here fails the
        # request (its unit rolls back whole): no savepoint needed.
        with self.store.transaction(savepoint=False):
            if req.intents:
                forget_intent(self.store, f"{req.scope}:{req.key_hash}")
            if not claim:
                self._insert_answer(req, body, stored, request_id)
                return
            self.store.execute(
                "UPDATE idempotency_keys SET state = 'done', body_sha256 = ?, body_size = ?,"
                " status = ?, response_headers = ?, response_body = ?, request_id = ?"
                " WHERE scope = ? AND key_hash = ? AND claim = ? AND state = 'running'",
                (
                    body.hexdigest(),
                    body.size,
                    stored.status,
                    json.dumps(stored.headers),
                    stored.body,
                    request_id,
                    req.scope,
                    req.key_hash,
                    claim,
                ),
            )

    def _insert_answer(
        self, req: _Request, body: HashingStream, stored: _Stored, request_id: str
    ) -> None:
        """Write the key's row with its answer (a key held in this process only).

        :raises _KeyTaken: another process stored the key first.
        """
        now = self.clock()
        try:
            self.store.execute(
                "INSERT INTO idempotency_keys (scope, key_hash, method, path, headers_sha256,"
                " body_sha256, body_size, state, instance, claim, created, expires, status,"
                " response_headers, response_body, request_id)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, 'done', ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    req.scope,
                    req.key_hash,
                    req.method,
                    req.path,
                    req.headers_sha256,
                    body.hexdigest(),
                    body.size,
                    self.instance,
                    "",
                    now,
                    now + self.ttl,
                    stored.status,
                    json.dumps(stored.headers),
                    stored.body,
                    request_id,
                ),
            )
        except sqlite3.IntegrityError:
            raise _KeyTaken() from None

    def _release(self, req: _Request, claim: str) -> None:
        try:
            with self.store.transaction():  # joins the request's unit of work, if any
                self.store.execute(
                    "DELETE FROM idempotency_keys"
                    " WHERE scope = ? AND key_hash = ? AND claim = ? AND state = 'running'",
                    (req.scope, req.key_hash, claim),
                )
        except sqlite3.Error:  # the row stays 'running' until this process restarts or expiry
            log.exception("could not release an idempotency key")

    def _maybe_prune(self) -> None:
        now = self.clock()
        with self._prune_lock:
            if now - self._last_prune < self.prune_interval:
                return
            self._last_prune = now
        try:
            self.prune()
        except sqlite3.Error:
            log.exception("pruning idempotency keys failed")

    def prune(self) -> int:
        """Delete up to ``prune_batch`` expired keys.

        :returns: the number of keys deleted.
        """
        # By primary key, not SQLite's rowid (PostgreSQL has none).
        cur = self.store.execute(
            "DELETE FROM idempotency_keys WHERE (scope, key_hash) IN (SELECT scope, key_hash"
            " FROM idempotency_keys WHERE expires <= ? LIMIT ?)",
            (self.clock(), self.prune_batch),
        )
        prune_intents(self.store, self.ttl)  # their keys have expired too
        return int(cur.rowcount)


class _KeyTaken(Exception):
    """The key's row appeared while a request holding the key in this process ran."""


def _in_use() -> ApiError:
    return ApiError(
        409,
        "idempotency_key_in_use",
        "A request with this Idempotency-Key is still being processed; retry after 1 second.",
        headers={"Retry-After": "1"},
    )


def _check_same(method: str, path: str, headers_sha256: str, req: _Request) -> None:
    """:raises ApiError: 422 when the key's first request (``method``, ``path``, fingerprint
    headers) is not ``req``."""
    if method != req.method or path != req.path:
        raise ApiError(
            422,
            "invalid_parameters",
            f"This Idempotency-Key was already used for {method} "
            f"{_short(path)}; it cannot be reused for {req.method} "
            f"{_short(req.path)}. Use a new key for a different request.",
        )
    if headers_sha256 != req.headers_sha256:
        raise ApiError(
            422,
            "invalid_parameters",
            "This Idempotency-Key was already used for a request with different "
            f"{', '.join(FINGERPRINT_HEADERS)} headers. Use a new key for a different request.",
        )


def _check_key(value: str) -> str:
    key = value.strip()
    if not key or len(key) > MAX_KEY_LENGTH or not _KEY_CHARS.match(key):
        raise ApiError(
            400,
            "invalid_parameters",
            f"The Idempotency-Key header must be 1 to {MAX_KEY_LENGTH} printable ASCII "
            "characters (a UUID is a good key).",
        )
    return key


def _short(path: str) -> str:
    return path if len(path) <= 200 else path[:200] + "..."


class WrapperHost(Protocol):
    """Where the layer plugs in (a :class:`~kloudless.server.app.ServerApp`)."""

    store: Store
    settings: Settings
    handler_wrappers: list[HandlerWrapper]

    @property
    def instance_id(self) -> str: ...


def install(app: WrapperHost) -> IdempotencyLayer:
    """Create the layer for ``app`` and append it to ``app.handler_wrappers``.

    :param app: the server application (its store must be open).
    :returns: the layer.
    """
    layer = IdempotencyLayer(
        app.store,
        app.settings.idempotency_key_ttl,
        wait_seconds=app.settings.idempotency_wait_seconds,
        instance=app.instance_id,
        fold=not app.settings.shared_state,
    )
    app.handler_wrappers.append(layer)
    return layer
