"""Upstream credentials of DAV accounts: validation and sealing at rest.

WebDAV and CalDAV accounts store ``{"url", "username", "password_sealed"}`` in the account's
``config``. The API never returns ``config``; on top of that the password is sealed with a key
derived from the server's secret (``Store.server_secret()``), so a copy of the accounts table
alone (an export, a log line, a backup of one table) does not reveal it. The secret lives in the
same database, so this is *not* protection against someone holding the whole data directory.

The standard library has no block cipher, so sealing uses a well-known composition of
HMAC-SHA256 only: a PRF in counter mode as the key stream (keyed with one derived key, a fresh
random 16-byte nonce per value) and encrypt-then-MAC with HMAC-SHA256 (another derived key)
over version, nonce and ciphertext. Tampered or foreign values are refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from kloudless.server.errors import ApiError, invalid_parameters
from kloudless.server.outbound import OutboundError, OutboundPolicy

_VERSION = b"kdav1"
_NONCE = 16
_TAG = 32
#: Longest accepted URL, user name and password (characters).
MAX_URL = 2048
MAX_FIELD = 1024


#: The fields a connection form (consent page, command line) asks for:
#: ``(name, label, HTML input type)``. ``url`` is pre-filled from ``extra_data``/``form_data``
#: (``domain`` or ``url``).
FORM_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("url", "Server URL", "url"),
    ("username", "User name", "text"),
    ("password", "Password", "password"),
)


def _keys(secret: bytes) -> tuple[bytes, bytes]:
    base = hmac.new(secret, b"kloudless dav credentials", hashlib.sha256).digest()
    enc = hmac.new(base, b"encrypt", hashlib.sha256).digest()
    mac = hmac.new(base, b"authenticate", hashlib.sha256).digest()
    return enc, mac


def _keystream(key: bytes, nonce: bytes, length: int) -> bytes:
    blocks = []
    for counter in range((length + 31) // 32):
        blocks.append(hmac.new(key, nonce + counter.to_bytes(8, "big"), hashlib.sha256).digest())
    return b"".join(blocks)[:length]


def seal(secret: bytes, plaintext: str) -> str:
    """Encrypt and authenticate a credential.

    :param secret: the server secret.
    :param plaintext: the value to protect.
    :returns: an ASCII token (``kdav1.<base64url>``) safe to store.
    """
    enc, mac = _keys(secret)
    nonce = os.urandom(_NONCE)
    data = plaintext.encode("utf-8")
    cipher = bytes(a ^ b for a, b in zip(data, _keystream(enc, nonce, len(data))))
    tag = hmac.new(mac, _VERSION + nonce + cipher, hashlib.sha256).digest()
    return _VERSION.decode() + "." + base64.urlsafe_b64encode(nonce + cipher + tag).decode()


def unseal(secret: bytes, token: str) -> str:
    """Decrypt a value made by :func:`seal`.

    :raises ValueError: if the token is malformed, tampered with or sealed with another secret.
    """
    prefix, _, body = token.partition(".")
    if prefix.encode() != _VERSION:
        raise ValueError("unknown credential format")
    try:
        raw = base64.urlsafe_b64decode(body.encode())
    except (ValueError, TypeError) as exc:
        raise ValueError("malformed credential") from exc
    if len(raw) < _NONCE + _TAG:
        raise ValueError("malformed credential")
    nonce, cipher, tag = raw[:_NONCE], raw[_NONCE:-_TAG], raw[-_TAG:]
    enc, mac = _keys(secret)
    expected = hmac.new(mac, _VERSION + nonce + cipher, hashlib.sha256).digest()
    if not hmac.compare_digest(tag, expected):
        raise ValueError("credential does not verify (wrong server secret or tampered)")
    plain = bytes(a ^ b for a, b in zip(cipher, _keystream(enc, nonce, len(cipher))))
    return plain.decode("utf-8")


def clean_settings(settings: Mapping[str, Any]) -> tuple[str, str, str]:
    """Validate the connection settings of a DAV account.

    Accepts ``url`` (or ``domain``, as pre-filled on the consent form from ``extra_data``),
    ``username`` and ``password``.

    :returns: ``(url, username, password)``.
    :raises ApiError: 400 ``invalid_parameters`` for a missing or malformed value.
    """
    url = settings.get("url") or settings.get("domain")
    username = settings.get("username")
    password = settings.get("password")
    if not isinstance(url, str) or not url.strip():
        raise invalid_parameters("'url' (the server's DAV address) is required.")
    url = url.strip()
    split = urlsplit(url)
    if len(url) > MAX_URL or split.scheme not in ("http", "https") or not split.hostname:
        raise invalid_parameters("'url' must be an http:// or https:// URL with a host.")
    if split.username or split.password:
        raise invalid_parameters("Give the credentials as 'username' and 'password', not in 'url'.")
    if split.fragment:
        raise invalid_parameters("'url' may not contain a '#fragment'.")
    if not isinstance(username, str) or not username or len(username) > MAX_FIELD:
        raise invalid_parameters("'username' is required as a non-empty string.")
    if not isinstance(password, str) or len(password) > MAX_FIELD:
        raise invalid_parameters("'password' is required as a string.")
    if ":" in username:
        raise invalid_parameters("'username' may not contain ':' (basic authentication).")
    return url, username, password


def check_address(url: str, policy: OutboundPolicy) -> None:
    """Check a connection URL's address with the outbound policy before connecting (the
    connection itself is checked again, see :mod:`kloudless.server.outbound`).

    :raises ApiError: 400 ``invalid_parameters`` naming why the address is refused, or that the
        host name does not resolve.
    """
    try:
        policy.check_url(url)
    except (OutboundError, ValueError) as exc:
        raise invalid_parameters(f"'url' cannot be used: {exc}.") from None


def imported_config(
    fields: Mapping[str, Any], secret: bytes, previous: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Build a DAV account config from Kloudless import fields, without contacting the server
    (migration scripts import thousands of accounts; the first call that fails upstream marks
    the account instead, see :mod:`kloudless.server.imported`).

    Kloudless import bodies name the server ``domain`` (or ``url``), the user ``username`` (or
    ``account``) and the password ``token`` (or ``password``). ``previous`` is the account's
    stored config when a ``PATCH`` replaces some of them.

    :returns: the config to store, with the password sealed and ``"imported": true``.
    :raises ApiError: 400 ``invalid_parameters`` naming a missing or malformed field.
    """
    old = dict(previous or {})
    settings = {
        "url": fields.get("url") or fields.get("domain") or old.get("url"),
        "username": fields.get("username") or fields.get("account") or old.get("username"),
        "password": fields.get("token", fields.get("password")),
    }
    if settings["password"] is None and old:
        settings["password"] = credentials(old, secret)[2]
    missing = [
        label
        for key, label in (
            ("url", "'domain' (the server's DAV URL)"),
            ("username", "'username' (or 'account')"),
            ("password", "'token' (the password)"),
        )
        if settings[key] in (None, "")
    ]
    if missing:
        raise invalid_parameters("Importing this account needs " + ", ".join(missing) + ".")
    url, username, password = clean_settings(settings)
    config = stored_config(url.rstrip("/") + "/", username, password, secret)
    config["imported"] = True
    return config


def account_label(url: str, username: str) -> str:
    """:returns: a display name for the account (the API's ``account`` field), ``user@host``."""
    return f"{username}@{urlsplit(url).hostname or ''}"[:255]


def stored_config(url: str, username: str, password: str, secret: bytes | None) -> dict[str, Any]:
    """:returns: the account ``config`` to store (the password sealed when ``secret`` is given)."""
    config: dict[str, Any] = {"url": url, "username": username}
    if secret is None:
        config["password"] = password
    else:
        config["password_sealed"] = seal(secret, password)
    return config


def credentials(config: Mapping[str, Any], secret: bytes) -> tuple[str, str, str]:
    """Read ``(url, username, password)`` back from a stored account ``config``.

    :raises ApiError: 500 ``internal_error`` when the stored settings are unusable (for example
        the data directory's secret changed); the message names no secret.
    """
    url, username = config.get("url"), config.get("username")
    sealed, plain = config.get("password_sealed"), config.get("password")
    try:
        if isinstance(sealed, str):
            password = unseal(secret, sealed)
        elif isinstance(plain, str):
            password = plain
        else:
            raise ValueError("no password stored")
    except ValueError as exc:
        raise ApiError(
            500, "internal_error", f"The account's stored upstream credentials are unusable: {exc}."
        ) from None
    if not isinstance(url, str) or not isinstance(username, str):
        raise ApiError(500, "internal_error", "The account has no upstream URL or user name.")
    return url, username, password
