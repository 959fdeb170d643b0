"""Receive Kloudless webhook notifications safely, with any web framework.

When an account linked to your application has new activity, the API sends::

    POST <your webhook URL>
    Content-Type: application/x-www-form-urlencoded
    X-Kloudless-Signature: <base64 of HMAC-SHA256(key=<API key>, message=<raw body>)>

    account=<account id>

and expects ``200`` with your **application id** as the response body. When the webhook is first
configured, a validation request with an empty body is sent the same way.

The key: the hosted Kloudless service signed with the application's API key. The local server
(``kloudless serve``) stores API keys only as hashes, so it signs with a separate **webhook signing
key** (``whsec_...``) that it shows once when the webhook URL is set (``kloudless apps webhook
set URL``) and again when it is rotated. Wherever this module says "API key", pass the key your
server signs with: the API key for a Kloudless-style service, the signing key for the local server.

A receiver therefore does three things, all offered here without any framework dependency::

    from kloudless import webhooks

    def handle(raw_body: bytes, signature: str | None):
        webhooks.verify_webhook(raw_body, signature, [API_KEY, OLD_API_KEY])  # raises if forged
        if not webhooks.is_validation_request(raw_body):
            queue_sync(webhooks.parse_notification(raw_body))  # the account id
        return webhooks.validation_response(APP_ID)  # (200, headers, body)

Pass the *raw* request body (``request.body`` in Django, ``request.get_data()`` in Flask/werkzeug),
never a decoded string or a parsed form: the signature is computed over the exact bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable
from typing import NamedTuple, Union
from urllib.parse import parse_qs

from .exceptions import KloudlessException

__all__ = [
    "SIGNATURE_HEADER",
    "InvalidSignature",
    "WebhookResponse",
    "compute_signature",
    "is_validation_request",
    "parse_notification",
    "validation_response",
    "verify_signature",
    "verify_webhook",
]

#: The request header that carries the signature.
SIGNATURE_HEADER = "X-Kloudless-Signature"

_Key = Union[str, bytes]
_Body = Union[bytes, bytearray, memoryview]


class InvalidSignature(KloudlessException):
    """A webhook request whose ``X-Kloudless-Signature`` does not match any API key given."""

    default_message = "The webhook signature is missing or does not match the API key."


class WebhookResponse(NamedTuple):
    """A framework-neutral HTTP response: build your framework's response from these fields."""

    status: int
    headers: dict[str, str]
    body: bytes


def _raw_body(body: object) -> bytes:
    """Return ``body`` as bytes, refusing anything that is not the raw request body."""
    if isinstance(body, (bytes, bytearray, memoryview)):
        return bytes(body)
    if isinstance(body, str):
        hint = "a decoded str"
    elif isinstance(body, dict):
        hint = "a parsed form or JSON (dict)"
    else:
        hint = type(body).__name__
    raise TypeError(
        f"the webhook body must be the raw request body as bytes, got {hint}; pass e.g. "
        "request.body (Django) or request.get_data() (Flask/werkzeug), unmodified"
    )


def _key_list(api_keys: _Key | Iterable[_Key]) -> list[bytes]:
    """Normalise one key or an iterable of keys to a non-empty list of bytes."""
    keys: Iterable[_Key] = [api_keys] if isinstance(api_keys, (str, bytes)) else api_keys
    result = []
    for key in keys:
        if isinstance(key, str):
            key = key.encode("utf-8")
        if not isinstance(key, bytes):
            raise TypeError(f"API keys must be str or bytes, not {type(key).__name__}")
        if key:
            result.append(key)
    if not result:
        raise ValueError("at least one non-empty API key is required to verify a webhook")
    return result


def compute_signature(body: _Body, api_key: _Key) -> str:
    """Compute the ``X-Kloudless-Signature`` value for a body, as the API does.

    Useful to sign test requests or to build a sender.

    :param body: the raw request body.
    :param api_key: the application's API key.
    :returns: the base64 text of HMAC-SHA256(key=api_key, message=body).
    :raises TypeError: if ``body`` is not bytes.
    """
    (key,) = _key_list(api_key)
    digest = hmac.new(key, _raw_body(body), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def verify_signature(
    body: _Body, signature: str | bytes | None, api_keys: _Key | Iterable[_Key]
) -> bool:
    """Check a webhook signature in constant time.

    Every key is tried (without stopping at the first match), so during a key rotation both the
    old and the new API key can be given.

    :param body: the raw request body, exactly as received.
    :param signature: the ``X-Kloudless-Signature`` header value; ``None`` or empty when absent.
    :param api_keys: one API key or an iterable of API keys.
    :returns: ``True`` if the signature matches one of the keys, else ``False``.
    :raises TypeError: if ``body`` is not bytes (a str or dict was given) or a key is not str/bytes.
    :raises ValueError: if no non-empty API key is given.
    """
    raw = _raw_body(body)
    keys = _key_list(api_keys)
    if not signature:
        return False
    if isinstance(signature, str):
        signature = signature.encode("utf-8")
    try:
        received = base64.b64decode(signature.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    matched = False
    for key in keys:
        expected = hmac.new(key, raw, hashlib.sha256).digest()
        matched |= hmac.compare_digest(expected, received)
    return matched


def verify_webhook(
    body: _Body, signature: str | bytes | None, api_keys: _Key | Iterable[_Key]
) -> None:
    """Like :func:`verify_signature`, but raise when the signature does not match.

    :param body: the raw request body, exactly as received.
    :param signature: the ``X-Kloudless-Signature`` header value.
    :param api_keys: one API key or an iterable of API keys.
    :raises InvalidSignature: if the signature is missing or matches none of the keys.
    :raises TypeError: if ``body`` is not bytes.
    :raises ValueError: if no non-empty API key is given.
    """
    if not verify_signature(body, signature, api_keys):
        raise InvalidSignature()


def is_validation_request(body: _Body) -> bool:
    """Tell whether a (verified) webhook request is the validation ping, whose body is empty.

    :param body: the raw request body.
    :returns: ``True`` for an empty (or whitespace-only) body.
    :raises TypeError: if ``body`` is not bytes.
    """
    return not _raw_body(body).strip()


def validation_response(app_id: str | int) -> WebhookResponse:
    """Build the answer every webhook request expects: ``200`` with the application id as body.

    :param app_id: your application id.
    :returns: a :class:`WebhookResponse` ``(200, {"Content-Type": "text/plain; ..."}, app id)``.
    :raises ValueError: if ``app_id`` is empty.
    """
    text = str(app_id)
    if not text:
        raise ValueError("the application id is required to answer a webhook")
    return WebhookResponse(200, {"Content-Type": "text/plain; charset=utf-8"}, text.encode("utf-8"))


def parse_notification(body: _Body | str) -> str:
    """Return the account id announced by a webhook notification (``account=<id>``).

    Call it after :func:`verify_webhook`; then fetch the account's new activity with
    ``GET accounts/<id>/events?cursor=...``.

    :param body: the raw request body (a str is accepted here too, the signature being checked).
    :returns: the account id, as a string.
    :raises TypeError: if ``body`` is neither bytes nor str.
    :raises ValueError: if the body does not hold exactly one non-empty ``account`` field.
    """
    text = body if isinstance(body, str) else _raw_body(body).decode("utf-8", errors="replace")
    values = parse_qs(text.strip(), keep_blank_values=True).get("account", [])
    if len(values) != 1 or not values[0].strip():
        raise ValueError("a webhook notification body must be 'account=<account id>'")
    return values[0].strip()
