"""kloudless.webhooks: signature checks, the validation ping and notification parsing."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from kloudless import webhooks
from kloudless.exceptions import KloudlessException
from kloudless.webhooks import (
    InvalidSignature,
    compute_signature,
    is_validation_request,
    parse_notification,
    validation_response,
    verify_signature,
    verify_webhook,
)

KEY = "api-key-current"
OLD_KEY = "api-key-previous"
BODY = b"account=1234567890"


def _sign(body: bytes, key: str) -> str:
    # Independent of the module: the sender side as documented (base64 of HMAC-SHA256).
    return base64.b64encode(hmac.new(key.encode(), body, hashlib.sha256).digest()).decode()


def test_compute_signature_matches_the_documented_scheme() -> None:
    assert compute_signature(BODY, KEY) == _sign(BODY, KEY)
    assert compute_signature(bytearray(BODY), KEY.encode()) == _sign(BODY, KEY)


def test_valid_signature_accepted() -> None:
    assert verify_signature(BODY, _sign(BODY, KEY), KEY) is True
    assert verify_signature(memoryview(BODY), _sign(BODY, KEY).encode(), KEY) is True
    # Surrounding whitespace from a header value is tolerated.
    assert verify_signature(BODY, " " + _sign(BODY, KEY) + "\n", KEY) is True


def test_key_rotation_accepts_any_listed_key() -> None:
    signature = _sign(BODY, OLD_KEY)
    assert verify_signature(BODY, signature, [KEY, OLD_KEY]) is True
    assert verify_signature(BODY, signature, (k for k in [OLD_KEY, KEY])) is True
    assert verify_signature(BODY, signature, [KEY]) is False


@pytest.mark.parametrize(
    "signature",
    [
        None,
        "",
        _sign(BODY, "wrong-key"),
        _sign(b"account=1", KEY),
        "not base64 at all!",
        "é",
        base64.b64encode(b"short").decode(),
    ],
)
def test_bad_or_missing_signature_rejected(signature: str | None) -> None:
    assert verify_signature(BODY, signature, KEY) is False
    with pytest.raises(InvalidSignature) as info:
        verify_webhook(BODY, signature, KEY)
    assert isinstance(info.value, KloudlessException)
    assert "signature" in str(info.value)


def test_tampered_body_rejected() -> None:
    signature = _sign(BODY, KEY)
    assert verify_signature(BODY + b"0", signature, KEY) is False


def test_verify_webhook_passes_silently_when_valid() -> None:
    signature = _sign(BODY, KEY)
    verify_webhook(BODY, signature, [KEY])  # raises on failure
    assert verify_signature(BODY, signature, [KEY])


@pytest.mark.parametrize(
    ("body", "hint"),
    [(BODY.decode(), "decoded str"), ({"account": "1"}, "dict"), (12, "int"), (None, "NoneType")],
)
def test_body_must_be_raw_bytes(body: object, hint: str) -> None:
    with pytest.raises(TypeError, match=hint) as info:
        verify_signature(body, "sig", KEY)  # type: ignore[arg-type]
    assert "raw request body" in str(info.value)
    with pytest.raises(TypeError):
        verify_webhook(body, "sig", KEY)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        compute_signature(body, KEY)  # type: ignore[arg-type]


def test_keys_are_required_and_typed() -> None:
    with pytest.raises(ValueError, match="API key"):
        verify_signature(BODY, "x", [])
    with pytest.raises(ValueError, match="API key"):
        verify_signature(BODY, "x", "")
    with pytest.raises(TypeError, match="int"):
        verify_signature(BODY, "x", [KEY, 5])  # type: ignore[list-item]
    # An empty key next to a real one is ignored, not used.
    assert verify_signature(BODY, _sign(BODY, KEY), ["", KEY]) is True


def test_validation_ping() -> None:
    assert is_validation_request(b"") is True
    assert is_validation_request(b"  \r\n") is True
    assert is_validation_request(BODY) is False
    with pytest.raises(TypeError):
        is_validation_request("")  # type: ignore[arg-type]
    # The validation request is signed too, over the empty body.
    assert verify_signature(b"", _sign(b"", KEY), KEY) is True


def test_validation_response_carries_the_app_id() -> None:
    response = validation_response("app-123")
    assert response == (200, {"Content-Type": "text/plain; charset=utf-8"}, b"app-123")
    assert response.status == 200
    assert response.body == b"app-123"
    assert validation_response(42).body == b"42"
    with pytest.raises(ValueError, match="application id"):
        validation_response("")


def test_parse_notification() -> None:
    assert parse_notification(BODY) == "1234567890"
    assert parse_notification(b"account=42\n") == "42"
    assert parse_notification("account=abc") == "abc"
    assert parse_notification(bytearray(b"foo=1&account=7")) == "7"


@pytest.mark.parametrize("body", [b"", b"account=", b"acct=1", b"account=1&account=2", b"\xff"])
def test_parse_notification_rejects_malformed_bodies(body: bytes) -> None:
    with pytest.raises(ValueError, match="account="):
        parse_notification(body)


def test_parse_notification_refuses_parsed_forms() -> None:
    with pytest.raises(TypeError, match="dict"):
        parse_notification({"account": "1"})  # type: ignore[arg-type]


def test_header_name_constant() -> None:
    assert webhooks.SIGNATURE_HEADER == "X-Kloudless-Signature"
