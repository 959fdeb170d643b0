"""Secret redaction: the one function that removes credentials from text (logs, errors, reprs).

It has no dependency inside the SDK, so :mod:`kloudless.exceptions` and :mod:`kloudless.util`
can both use it. The public names are re-exported by :mod:`kloudless.util`.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict

__all__ = ["REDACTED", "redact", "register_secret"]

#: Replacement text for anything secret.
REDACTED = "[REDACTED]"

# Names whose values are secret wherever they appear (query strings, form bodies, JSON, reprs).
_SECRET_NAMES = (
    r"access_token|refresh_token|id_token|client_secret|api_key|apikey|token|password|secret"
    r"|code|state"
)
# name=value in query strings and form bodies (not preceded by a word char, so "barcode=" is kept).
_KV_RE = re.compile(r"(?i)(?<![\w-])((?:" + _SECRET_NAMES + r")=)([^&\s#'\"]+)")
# "name": "value" / 'name': 'value' in JSON and dict reprs (the key must be quoted, so plain prose
# such as "status code: 404" is left alone).
# An optional backslash before each quote also catches JSON quoted inside a JSON string.
_JSON_RE = re.compile(
    r"""(?i)(\\?["'](?:""" + _SECRET_NAMES + r""")\\?["']\s*:\s*\\?["']?)([^"',}\s\\]+)"""
)
# Authorization headers in any form, and bare "Bearer <token>" / "APIKey <key>" values.
_AUTH_HEADER_RE = re.compile(r"""(?i)(["']?authorization["']?\s*[:=]\s*["']?)([^"'\r\n,}]+)""")
_SCHEME_RE = re.compile(r"(?i)\b(Bearer|APIKey|ApiKey|DeveloperKey|Basic)(\s+)([^\s\"',}]+)")
# Words that follow a scheme name in prose ("The Bearer token is invalid"): not credentials.
_SCHEME_PROSE_WORDS = frozenset(
    [
        "token",
        "tokens",
        "key",
        "keys",
        "credential",
        "credentials",
        "header",
        "headers",
        "scheme",
        "schemes",
        "auth",
        "authentication",
        "authorization",
        "is",
        "was",
        "are",
        "must",
        "required",
        "missing",
        "invalid",
        "expired",
        "revoked",
        "or",
        "and",
        "not",
    ]
)


def _redact_scheme(match: re.Match[str]) -> str:
    """:returns: ``scheme + space + [REDACTED]``, or the match as is when the value is a word
    of prose (e.g. "Bearer token") rather than a credential."""
    if match.group(3).rstrip(".;:!?)").lower() in _SCHEME_PROSE_WORDS:
        return match.group(0)
    return match.group(1) + match.group(2) + REDACTED


# Credentials known to the process (set by clients when created): replaced verbatim wherever they
# appear. Bounded, so a long-running process creating many clients does not grow without limit.
_KNOWN_SECRETS: OrderedDict[str, None] = OrderedDict()
_KNOWN_LOCK = threading.Lock()
_MAX_KNOWN = 256
_MIN_SECRET_LEN = 6


def register_secret(value: str | None) -> None:
    """Remember a credential so that :func:`redact` removes it wherever it appears.

    Values shorter than 6 characters are ignored (they would redact ordinary words).

    :param value: a token, API key or other secret; ``None`` is ignored.
    """
    if not value or len(value) < _MIN_SECRET_LEN:
        return
    with _KNOWN_LOCK:
        _KNOWN_SECRETS[value] = None
        _KNOWN_SECRETS.move_to_end(value)
        while len(_KNOWN_SECRETS) > _MAX_KNOWN:
            _KNOWN_SECRETS.popitem(last=False)


def redact(text: str) -> str:
    """Return ``text`` with secrets replaced by ``[REDACTED]``.

    Covers ``Authorization`` headers, ``Bearer``/``APIKey`` values, and the values of
    ``access_token``, ``refresh_token``, ``client_secret``, ``api_key``, ``token``, ``code``,
    ``state`` (and a few more) in URLs, form bodies, JSON and dict reprs, plus every credential
    registered with :func:`register_secret`.

    :param text: any text.
    :returns: the redacted text.
    """
    with _KNOWN_LOCK:
        known = list(_KNOWN_SECRETS)
    for secret in known:
        if secret in text:
            text = text.replace(secret, REDACTED)
    text = _AUTH_HEADER_RE.sub(lambda m: m.group(1) + REDACTED, text)
    text = _SCHEME_RE.sub(_redact_scheme, text)
    text = _KV_RE.sub(lambda m: m.group(1) + REDACTED, text)
    return _JSON_RE.sub(lambda m: m.group(1) + REDACTED, text)
