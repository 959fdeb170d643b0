"""Webhook notifications: tell an application's webhook URL that an account has new activity.

When an application has a webhook configured, every change recorded through
:meth:`ActivityLog.record <kloudless.server.activity.ActivityLog.record>` makes the server
send, from a background thread::

    POST <webhook URL>
    Content-Type: application/x-www-form-urlencoded
    X-Kloudless-Signature: <base64 HMAC-SHA256 of the raw body, keyed with the signing key>

account=<account id>

The receiver answers ``200`` (with the application id as the body, see
:func:`kloudless.webhooks.validation_response`) and then reads the account's events.

**Signing key.** API keys are stored hashed, so the server cannot sign with them. Each
application with a webhook gets its own *webhook signing key* (``whsec_...``) instead, shown
when the webhook is configured and when the key is rotated (or the operator chooses one, such as
the API key a Kloudless receiver verifies with). It is kept in the database sealed with the
server secret (the server must compute HMACs with it, so it cannot be hashed; migration 611
sealed the keys older versions kept in clear), grants no API access (a leaked signing key lets
someone forge "account X changed" pings, never read data), and receivers pass it to
:func:`kloudless.webhooks.verify_signature` where the hosted Kloudless API used the API key.
During a rotation receivers accept the old and the new key.

**Validation.** Before the first notification (and whenever the URL changes) the server sends the
same request with an empty body; the endpoint must answer ``200`` with the application id as the
body. Otherwise the webhook is marked ``invalid`` and not used until it is configured again.

**Delivery.** :meth:`WebhookDispatcher.enqueue` (an activity writer, see
:class:`~kloudless.server.activity.ActivityLog`) queues the account in the database table
``webhook_queue`` inside the transaction that records the change (one small write, and none
when the application has no webhook): the queue row commits with the change or not at all, so
a process that dies right after the commit leaves the notification queued for any other (or
the next) process. After the commit :meth:`WebhookDispatcher.wake` only wakes the worker (and
only when something was queued); API
requests never wait for a receiver. A worker thread in every server
process claims due rows (a claim expires, so a row of a process that died is sent by another),
sends one notification per account however many changes happened meanwhile (coalescing),
retries connection errors, timeouts, ``408``, ``429`` and ``5xx`` with exponential backoff
(:class:`urllib3.util.Retry` computes the delays; bounded attempts, counted in the row), and
gives up on other answers. Each notification carries ``X-Kloudless-Delivery-Id``, the same on
its retries: a process killed between sending and recording it leaves it to be sent again, so
a receiver that must see each one once drops repeats of an id it has answered. Redirects are
not followed, and the receiver's address must pass the server's outbound policy
(:mod:`kloudless.server.outbound`: no loopback, private or link-local addresses unless
``Settings.allow_upstream`` permits them); a refused address fails validation.

Notifications still queued when the server stops stay queued for the next start (or any
other process sharing the database). Delivery is *at least once*: every committed change
leads to a notification (coalesced per account), and a notification may arrive twice when a
process dies after sending it and before recording that (same delivery id); receivers read
``events`` from their stored cursor, so a repeat costs one empty read.
"""

from __future__ import annotations

import functools
import logging
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol
from urllib.parse import urlsplit

from urllib3.exceptions import MaxRetryError
from urllib3.util import Retry

from ..webhooks import SIGNATURE_HEADER, compute_signature
from .connectors.webdav_auth import seal, unseal
from .errors import invalid_parameters
from .outbound import DEFAULT_POLICY, OutboundPolicy, OutboundRefused, policy_for
from .settings import Settings
from .store import Store, new_secret, now_iso, register_migration

__all__ = [
    "DeliveryResult",
    "attach",
    "WebhookConfig",
    "WebhookDispatcher",
    "configure_webhook",
    "get_webhook",
    "remove_webhook",
    "rotate_signing_key",
    "send_http",
    "validate_webhook",
    "validate_webhook_url",
]

log = logging.getLogger("kloudless.server.webhooks")

#: Schema version of the ``webhooks`` table (webhook range: 400-499).
MIGRATION_VERSION = 400
register_migration(
    MIGRATION_VERSION,
    """
    CREATE TABLE webhooks (
        app_id TEXT PRIMARY KEY REFERENCES apps(id) ON DELETE CASCADE,
        url TEXT NOT NULL, signing_key TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'pending', error TEXT, checked TEXT,
        created TEXT NOT NULL, modified TEXT NOT NULL)
    """,
)

PENDING, VALID, INVALID = "pending", "valid", "invalid"
MAX_URL_LENGTH = 2000
#: Bytes of a receiver's answer that are read (the application id fits easily).
MAX_ANSWER_BYTES = 4096


@dataclass(frozen=True)
class DeliveryResult:
    """What a receiver answered: ``status`` (None when no HTTP answer came) and the body text."""

    status: int | None
    body: str = ""
    error: str | None = None

    @property
    def ok(self) -> bool:
        """:returns: True for a 2xx answer."""
        return self.status is not None and 200 <= self.status < 300

    @property
    def retryable(self) -> bool:
        """:returns: True when trying again later may help (no answer, 408, 429, 5xx)."""
        return self.status is None or self.status in (408, 429) or self.status >= 500


#: ``sender(url, body, headers, timeout) -> DeliveryResult``; replaceable for tests.
Sender = Callable[[str, bytes, "dict[str, str]", float], DeliveryResult]


@dataclass(frozen=True)
class WebhookConfig:
    """An application's webhook. ``signing_key`` is left out of the repr."""

    app_id: str
    url: str
    state: str
    error: str | None
    checked: str | None
    signing_key: str = field(repr=False)


def send_http(
    url: str,
    body: bytes,
    headers: dict[str, str],
    timeout: float,
    *,
    policy: OutboundPolicy = DEFAULT_POLICY,
) -> DeliveryResult:
    """POST ``body`` to ``url`` through the outbound ``policy`` (no redirects followed, no
    proxies from the environment, only addresses the policy permits); read at most
    :data:`MAX_ANSWER_BYTES` of the answer.

    :returns: the answer; a refused address, a connection failure or a timeout gives
        ``status=None``.
    """
    import requests

    with policy.session() as session:
        try:
            with session.post(
                url,
                data=body,
                headers=headers,
                timeout=timeout,
                allow_redirects=False,
                stream=True,
            ) as response:
                raw = response.raw.read(MAX_ANSWER_BYTES, decode_content=True) or b""
                return DeliveryResult(response.status_code, raw.decode("utf-8", "replace"))
        except OutboundRefused as exc:
            return DeliveryResult(None, error=f"address refused: {exc.reason}")
        except requests.RequestException as exc:
            return DeliveryResult(None, error=type(exc).__name__)


# -- configuration -------------------------------------------------------------------------------
def validate_webhook_url(url: object) -> str:
    """Check a webhook URL: absolute ``http(s)``, a host, no credentials, no fragment.

    :returns: the URL. :raises ApiError: 400 ``invalid_parameters`` otherwise.
    """
    if not isinstance(url, str) or not url or len(url) > MAX_URL_LENGTH:
        raise invalid_parameters(f"The webhook URL must be a string of 1-{MAX_URL_LENGTH} chars.")
    if any(ord(c) < 33 or ord(c) == 127 for c in url):
        raise invalid_parameters("The webhook URL may not contain spaces or control characters.")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for an invalid port
    except ValueError:
        raise invalid_parameters("The webhook URL is not a valid URL.") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise invalid_parameters("The webhook URL must be an absolute http:// or https:// URL.")
    if parts.username is not None or parts.password is not None:
        raise invalid_parameters("The webhook URL may not contain credentials.")
    if parts.fragment:
        raise invalid_parameters("The webhook URL may not contain a fragment.")
    return url


#: How a sealed value starts (:func:`~kloudless.server.connectors.webdav_auth.seal`).
SEALED_PREFIX = "kdav1."
#: Shortest and longest signing key an operator may choose (an API key fits).
MIN_KEY, MAX_KEY = 16, 512


def _seal_key(store: Store, key: str) -> str:
    """:returns: a signing key sealed for storage (never kept in clear)."""
    return seal(store.server_secret(), key)


def _unseal_key(store: Store, stored: str) -> str:
    # Migration 611 sealed the keys older versions stored in clear; a row an older server
    # wrote since (after a downgrade) still holds the key itself (whsec_...).
    return unseal(store.server_secret(), stored) if stored.startswith(SEALED_PREFIX) else stored


def _seal_clear_keys(conn: sqlite3.Connection) -> None:
    """Migration 611: seal the signing keys that older versions stored in clear."""
    rows = conn.execute("SELECT app_id, signing_key FROM webhooks").fetchall()
    clear = [(str(r[0]), str(r[1])) for r in rows if not str(r[1]).startswith(SEALED_PREFIX)]
    if not clear:
        return
    found = conn.execute("SELECT value FROM kv WHERE key = 'server_secret'").fetchone()
    if found is None:  # as Store.server_secret() would create it
        secret = new_secret()
        conn.execute("INSERT INTO kv (key, value) VALUES ('server_secret', ?)", (secret,))
    else:
        secret = str(found[0])
    if isinstance(conn, sqlite3.Connection):
        # Overwrite the clear values' old bytes in the file too, not only unlink them.
        conn.execute("PRAGMA secure_delete = ON")
    for app_id, key in clear:
        conn.execute(
            "UPDATE webhooks SET signing_key = ? WHERE app_id = ?",
            (seal(secret.encode(), key), app_id),
        )


register_migration(611, _seal_clear_keys)


def check_signing_key(key: object) -> str:
    """Validate a signing key the operator chose (e.g. the API key a Kloudless receiver
    already verifies with). :raises ApiError: 400 ``invalid_parameters``."""
    if (
        not isinstance(key, str)
        or not MIN_KEY <= len(key) <= MAX_KEY
        or not key.isascii()
        or not key.isprintable()
    ):
        raise invalid_parameters(
            f"A webhook signing key must be {MIN_KEY} to {MAX_KEY} printable ASCII characters."
        )
    return key


def set_signing_key(store: Store, app_id: str, key: str) -> None:
    """Sign the application's notifications with ``key`` from now on (stored sealed).

    :raises ApiError: 400 for a malformed key or when the app has no webhook."""
    cur = store.execute(
        "UPDATE webhooks SET signing_key = ?, modified = ? WHERE app_id = ?",
        (_seal_key(store, check_signing_key(key)), now_iso(), app_id),
    )
    if cur.rowcount == 0:
        raise invalid_parameters("This application has no webhook.")


def get_webhook(store: Store, app_id: str) -> WebhookConfig | None:
    """:returns: the application's webhook, or None when it has none."""
    row = store.one("SELECT * FROM webhooks WHERE app_id = ?", (app_id,))
    if row is None:
        return None
    return WebhookConfig(
        str(row["app_id"]),
        str(row["url"]),
        str(row["state"]),
        row["error"],
        row["checked"],
        _unseal_key(store, str(row["signing_key"])),
    )


def configure_webhook(store: Store, app_id: str, url: str) -> tuple[WebhookConfig, str | None]:
    """Set (or change) the application's webhook URL; it is validated before first use.

    :returns: ``(config, new signing key or None)``: the key is returned only when it was
        created now, to be shown once. :raises ApiError: 400 for a bad URL or unknown app.
    """
    validate_webhook_url(url)
    now = now_iso()
    created: str | None = None
    with store.transaction():
        if store.get_app(app_id) is None:
            raise invalid_parameters(f"Unknown application: {app_id[:100]}")
        if get_webhook(store, app_id) is None:
            created = "whsec_" + new_secret()
            store.execute(
                "INSERT INTO webhooks (app_id, url, signing_key, state, created, modified)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (app_id, url, _seal_key(store, created), PENDING, now, now),
            )
        else:
            store.execute(
                "UPDATE webhooks SET url = ?, state = ?, error = NULL, checked = NULL,"
                " modified = ? WHERE app_id = ?",
                (url, PENDING, now, app_id),
            )
    config = get_webhook(store, app_id)
    assert config is not None
    return config, created


def rotate_signing_key(store: Store, app_id: str) -> str:
    """Replace the signing key (the server signs with the new one at once).

    :returns: the new key, shown once. :raises ApiError: 400 when the app has no webhook.
    """
    key = "whsec_" + new_secret()
    cur = store.execute(
        "UPDATE webhooks SET signing_key = ?, modified = ? WHERE app_id = ?",
        (_seal_key(store, key), now_iso(), app_id),
    )
    if cur.rowcount == 0:
        raise invalid_parameters("This application has no webhook.")
    return key


def remove_webhook(store: Store, app_id: str) -> bool:
    """Remove the application's webhook (and its signing key). :returns: True if it existed."""
    return store.execute("DELETE FROM webhooks WHERE app_id = ?", (app_id,)).rowcount > 0


def _headers(body: bytes, key: str) -> dict[str, str]:
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        SIGNATURE_HEADER: compute_signature(body, key),
        "User-Agent": "kloudless-server-webhooks",
    }


def _set_state(store: Store, app_id: str, url: str, state: str, error: str | None) -> None:
    # Only if the URL is still the one that was checked (it may have changed meanwhile).
    store.execute(
        "UPDATE webhooks SET state = ?, error = ?, checked = ? WHERE app_id = ? AND url = ?",
        (state, error, now_iso(), app_id, url),
    )


def validate_webhook(
    store: Store, app_id: str, *, timeout: float = 5.0, sender: Sender = send_http
) -> WebhookConfig:
    """Send the validation ping (empty body) and record the outcome (``valid``/``invalid``).

    :returns: the updated config. :raises ApiError: 400 when the app has no webhook.
    """
    config = get_webhook(store, app_id)
    if config is None:
        raise invalid_parameters("This application has no webhook.")
    answer = sender(config.url, b"", _headers(b"", config.signing_key), timeout)
    if answer.status == 200 and answer.body.strip() == app_id:
        _set_state(store, app_id, config.url, VALID, None)
    else:
        if answer.status is None:
            reason = f"no answer ({answer.error})"
        elif answer.status != 200:
            reason = f"answered HTTP {answer.status}, not 200"
        else:
            reason = "the answer body was not the application id"
        log.warning("webhook of application %s failed validation: %s", app_id, reason)
        _set_state(store, app_id, config.url, INVALID, reason)
    result = get_webhook(store, app_id)
    assert result is not None
    return result


# -- delivery ------------------------------------------------------------------------------------
# The queue: one row per account with a notification to send (coalescing), shared by every
# process using the database. ``seq`` counts the notifications folded into the row (a change
# while a delivery is in flight re-arms it); ``holder``/``held_until`` is the claim of the
# process sending it; ``delivery`` names one notification across its retries.
register_migration(
    1103,
    """
    CREATE TABLE webhook_queue (
        account_id INTEGER PRIMARY KEY, delivery TEXT NOT NULL, seq INTEGER NOT NULL,
        due REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, holder TEXT,
        held_until REAL NOT NULL DEFAULT 0);
    CREATE INDEX webhook_queue_due ON webhook_queue(due)
    """,
)

#: The header naming one notification (the same on its retries), so a receiver can drop a
#: repeat: a process that dies after sending but before recording it leaves it to be sent again.
DELIVERY_HEADER = "X-Kloudless-Delivery-Id"


@dataclass(frozen=True)
class _Claimed:
    account_id: int
    delivery: str
    seq: int
    attempts: int


class WebhookDispatcher:
    """Delivers notifications from a queue in the database (``webhook_queue``), so that every
    process sharing it delivers any account's notifications once; plug :meth:`enqueue` into
    the activity log's writers (:func:`attach` does): it wakes the worker after the commit of
    what it queued.

    :param store: the server store.
    :param timeout: seconds for each HTTP request to a receiver.
    :param max_retries: retries after the first failed attempt (then the notification is dropped).
    :param backoff_factor: first retry delay in seconds; it doubles with every retry.
    :param backoff_max: longest delay between two attempts.
    :param sender: how requests are sent (:func:`send_http`).
    :param holder: who claims queue rows (the process's instance id); default: a fresh id.
    :param poll_interval: most seconds between two looks at the queue (other processes' rows,
        retries that became due).
    """

    def __init__(
        self,
        store: Store,
        *,
        timeout: float = 5.0,
        max_retries: int = 5,
        backoff_factor: float = 1.0,
        backoff_max: float = 120.0,
        sender: Sender = send_http,
        holder: str | None = None,
        poll_interval: float = 1.0,
    ) -> None:
        self.store = store
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_factor = backoff_factor
        self.backoff_max = backoff_max
        self.sender = sender
        self.holder = holder or uuid.uuid4().hex
        self.poll_interval = poll_interval
        self._cond = threading.Condition()
        self._woken = False
        self._stopping = False
        self._thread: threading.Thread | None = None

    def _new_retry(self) -> Retry:
        return Retry(
            total=self.max_retries,
            backoff_factor=self.backoff_factor,
            backoff_max=self.backoff_max,
            raise_on_status=False,
        )

    @property
    def _lease(self) -> float:
        # Long enough for a validation ping and a notification, each up to ``timeout``.
        return 2 * self.timeout + 10.0

    # -- API used by the application -----------------------------------------------------------
    def enqueue(self, account_id: int, cursor: int) -> bool:
        """Queue a notification for ``account_id`` in the caller's transaction (an activity
        writer: the row commits or rolls back with the change it announces). One small write
        when the account's application has a usable webhook, nothing otherwise; an account
        already queued is not queued twice. Queued even while stopping (the next process, or
        another one, delivers it). The worker is woken after the commit only when something
        was queued: a change of an account without a webhook costs the worker nothing (no
        transaction of its own on the write lock after every upload).

        :returns: True if a notification is queued.
        """
        try:
            with self.store.transaction():  # a savepoint inside the request's unit of work
                hooked = self.store.one(
                    "SELECT 1 FROM accounts a JOIN webhooks w ON w.app_id = a.app_id"
                    " WHERE a.id = ? AND w.state != ?",
                    (account_id, INVALID),
                )
                if hooked is None:
                    return False
                self.store.execute(
                    "INSERT INTO webhook_queue (account_id, delivery, seq, due) VALUES (?, ?, 1, ?)"
                    " ON CONFLICT (account_id) DO UPDATE SET seq = webhook_queue.seq + 1",
                    (account_id, uuid.uuid4().hex, time.time()),
                )
        except Exception:  # a notification must never fail the request that changed something
            log.exception("cannot queue a webhook notification for account %s", account_id)
            return False
        self.store.after_commit(lambda: self.wake(account_id, cursor))
        return True

    def wake(self, account_id: int, cursor: int) -> None:
        """Wake the worker (after the commit of what :meth:`enqueue` queued): queued rows are
        sent now instead of at the next poll. Never waits for a receiver."""
        with self._cond:
            if self._stopping:
                return
            self._ensure_thread()
            self._woken = True
            self._cond.notify_all()

    def notify(self, account_id: int, cursor: int) -> None:
        """Queue a notification for ``account_id`` and wake the worker (outside the activity
        log: :meth:`enqueue` in the caller's transaction, :meth:`wake` after it)."""
        self.enqueue(account_id, cursor)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until the queue is empty (tests, orderly shutdown).

        :returns: True if it is empty within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            if self.store.one("SELECT 1 FROM webhook_queue LIMIT 1") is None:
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(left, 0.02))

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the worker; queued notifications stay in the database for the next process
        (or another one) to deliver. Safe to call twice."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)

    # -- worker --------------------------------------------------------------------------------
    def _ensure_thread(self) -> None:
        if self._thread is None and not self._stopping:
            self._thread = threading.Thread(
                target=self._run, name="kloudless-webhooks", daemon=True
            )
            self._thread.start()

    def start(self) -> None:
        """Start the worker now (it also starts on the first :meth:`notify`), so that rows
        queued by other (or earlier) processes are delivered."""
        with self._cond:
            self._ensure_thread()

    def _claim(self) -> tuple[_Claimed | None, float]:
        """Claim the queue row due first. :returns: ``(row, None)`` or ``(None, seconds until
        the next row may be due)``."""
        now = time.time()
        with self.store.transaction(standalone=True):
            row = self.store.one(
                "SELECT account_id, delivery, seq, attempts FROM webhook_queue"
                " WHERE due <= ? AND held_until <= ? ORDER BY due LIMIT 1",
                (now, now),
            )
            if row is None:
                nxt = self.store.one(
                    "SELECT MIN(CASE WHEN held_until > due THEN held_until ELSE due END) AS t"
                    " FROM webhook_queue"
                )
                wait = self.poll_interval
                if nxt is not None and nxt["t"] is not None:
                    wait = min(wait, max(0.0, float(nxt["t"]) - now))
                return None, wait
            self.store.execute(
                "UPDATE webhook_queue SET holder = ?, held_until = ? WHERE account_id = ?",
                (self.holder, now + self._lease, row["account_id"]),
            )
        claimed = _Claimed(
            int(row["account_id"]), str(row["delivery"]), int(row["seq"]), int(row["attempts"])
        )
        return claimed, 0.0

    def _settle(self, item: _Claimed, retry_at: float | None) -> None:
        """Record the outcome of a claimed row's attempt: retry it at ``retry_at``, or it is
        done (delivered or given up), unless new activity re-armed it meanwhile."""
        with self.store.transaction(standalone=True):
            if retry_at is not None:
                self.store.execute(
                    "UPDATE webhook_queue SET holder = NULL, held_until = 0, attempts = ?,"
                    " due = ? WHERE account_id = ? AND holder = ?",
                    (item.attempts + 1, retry_at, item.account_id, self.holder),
                )
                return
            done = self.store.execute(
                "DELETE FROM webhook_queue WHERE account_id = ? AND seq = ? AND holder = ?",
                (item.account_id, item.seq, self.holder),
            ).rowcount
            if not done:  # changed while in flight: one more notification, from scratch
                self.store.execute(
                    "UPDATE webhook_queue SET holder = NULL, held_until = 0, attempts = 0,"
                    " due = ?, delivery = ? WHERE account_id = ? AND holder = ?",
                    (time.time(), uuid.uuid4().hex, item.account_id, self.holder),
                )

    def _run(self) -> None:
        while True:
            with self._cond:
                if self._stopping:
                    return
            try:
                item, wait = self._claim()
            except Exception:  # e.g. a busy or closing database: look again later
                log.exception("cannot read the webhook queue")
                item, wait = None, self.poll_interval
            if item is None:
                with self._cond:
                    if not self._woken and not self._stopping:
                        self._cond.wait(wait)
                    self._woken = False
                continue
            retry_at: float | None = None
            try:
                retry_at = self._attempt(item)
            except Exception:  # the worker must survive anything (e.g. a closed store)
                log.exception("webhook delivery for account %s failed", item.account_id)
            try:
                self._settle(item, retry_at)
            except Exception:  # the claim expires and the row is tried again
                log.exception("cannot record a webhook delivery for account %s", item.account_id)

    def _attempt(self, item: _Claimed) -> float | None:
        """Deliver one notification. :returns: when to retry, or None when done or given up."""
        account_id = item.account_id
        account = self.store.get_account(account_id)
        if account is None:
            return None
        app_id = str(account["app_id"])
        config = get_webhook(self.store, app_id)
        if config is None or config.state == INVALID:
            return None
        if config.state == PENDING:
            config = validate_webhook(self.store, app_id, timeout=self.timeout, sender=self.sender)
            if config.state != VALID:
                return None
        body = f"account={account_id}".encode("ascii")
        headers = _headers(body, config.signing_key)
        headers[DELIVERY_HEADER] = item.delivery
        answer = self.sender(config.url, body, headers, self.timeout)
        if answer.ok:
            return None
        reason = f"HTTP {answer.status}" if answer.status is not None else str(answer.error)
        if not answer.retryable:
            log.warning("webhook of application %s refused a notification: %s", app_id, reason)
            return None
        retry = self._new_retry()
        try:
            for _ in range(item.attempts + 1):
                retry = retry.increment(
                    method="POST", url=config.url, error=_DeliveryFailed(reason)
                )
        except MaxRetryError:
            log.warning(
                "webhook of application %s: giving up on account %s after %d attempts (%s)",
                app_id,
                account_id,
                self.max_retries + 1,
                reason,
            )
            return None
        delay = max(self.backoff_factor, retry.get_backoff_time())
        return time.time() + min(delay, self.backoff_max)


class _DeliveryFailed(Exception):
    """A failed attempt, as the error urllib3's :class:`Retry` counts."""


class ActivitySource(Protocol):
    """Where a dispatcher plugs in: a store, its activity writers and the settings (for the
    outbound policy) (a :class:`~kloudless.server.core.Core`)."""

    store: Store
    settings: Settings

    @property
    def activity_writers(self) -> list[Callable[[int, int], object]]: ...

    @property
    def instance_id(self) -> str: ...


def attach(app: ActivitySource, **options: Any) -> WebhookDispatcher:
    """Create a dispatcher for ``app`` and register it as an activity writer.

    :param options: passed to :class:`WebhookDispatcher` (``timeout``, ``backoff_factor``, ...).
    :returns: the dispatcher; call ``stop()`` before closing the store.
    """
    options.setdefault("sender", functools.partial(send_http, policy=policy_for(app.settings)))
    options.setdefault("holder", app.instance_id)
    dispatcher = WebhookDispatcher(app.store, **options)
    # Queued in the change's transaction; the worker is woken after the commit (by enqueue,
    # only when something was queued).
    app.activity_writers.append(dispatcher.enqueue)
    if dispatcher.store.one("SELECT 1 FROM webhook_queue LIMIT 1") is not None:
        dispatcher.start()  # notifications queued by an earlier (or another) process
    return dispatcher
