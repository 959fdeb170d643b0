"""The rules for OAuth ``redirect_uri`` values (consent page, code and token flows, Deny).

* A redirect URI is an absolute ``http``/``https`` URL with a host and no user name or
  password, or a custom application scheme (``com.example.app:/callback``,
  ``ktester://kloudless/callback``: RFC 8252 native apps). Schemes a browser would run or read
  locally (``javascript:``, ``data:``, ``vbscript:``, ``file:``, ``blob:``, ``about:``, ...)
  are refused whatever is registered, and so are fragments (RFC 6749 §3.1.2), spaces and
  control characters.
* Once an application registers redirect URIs (``kloudless apps redirect-uri add URL``), only
  those, exactly, are accepted.
* Until then only loopback redirects work (``http(s)://localhost``, ``127.0.0.0/8``,
  ``[::1]``, any port): the server cannot tell an application's own address from an attacker's
  phishing page or open redirect. Every other target gets an error page instead of a redirect,
  for an Allow and for a Deny alike.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from urllib.parse import urlsplit

from .errors import invalid_parameters

__all__ = ["MAX_LENGTH", "check_redirect_uri", "is_loopback", "problem"]

MAX_LENGTH = 2000
#: Schemes that run code or read local data in a browser: never a redirect target.
FORBIDDEN_SCHEMES = frozenset(
    {
        "javascript",
        "vbscript",
        "livescript",
        "data",
        "file",
        "blob",
        "filesystem",
        "about",
        "view-source",
        "jar",
        "mhtml",
        "chrome",
        "chrome-extension",
        "resource",
        "moz-extension",
        "ms-browser-extension",
        "wyciwyg",
    }
)
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*$")


def problem(uri: str) -> str | None:
    """:returns: why ``uri`` can never be a redirect URI, or None (a pure function)."""
    if not uri or len(uri) > MAX_LENGTH:
        return f"redirect_uri must be an absolute URI of 1-{MAX_LENGTH} characters"
    if any(ord(c) <= 32 or ord(c) == 127 for c in uri):
        return "redirect_uri may not contain spaces or control characters"
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - raises ValueError for an invalid port
    except ValueError:
        return "redirect_uri is not a valid URI"
    scheme = parts.scheme.lower()
    if not scheme or not _SCHEME.match(scheme):
        return "redirect_uri must be an absolute URI with a scheme"
    if scheme in FORBIDDEN_SCHEMES:
        return f"redirect_uri may not use the {scheme}: scheme"
    if parts.fragment or uri.endswith("#"):
        return "redirect_uri may not contain a fragment"
    if scheme in ("http", "https"):
        if not parts.hostname:
            return "an http(s) redirect_uri needs a host"
        if parts.username is not None or parts.password is not None:
            return "redirect_uri may not contain a user name or password"
    return None


def is_loopback(uri: str) -> bool:
    """:returns: whether ``uri`` is an ``http(s)`` URL on this machine (localhost,
    ``127.0.0.0/8``, ``[::1]``)."""
    parts = urlsplit(uri)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return False
    host = parts.hostname.rstrip(".").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_redirect_uri(uri: str, registered: Sequence[str]) -> None:
    """Apply the rules of the module docstring.

    :param registered: the application's registered redirect URIs.
    :raises ApiError: 400 ``invalid_parameters`` saying which rule refused ``uri``.
    """
    reason = problem(uri)
    if reason is not None:
        raise invalid_parameters(reason[0].upper() + reason[1:] + ".")
    if registered:
        if uri not in registered:
            raise invalid_parameters("redirect_uri is not registered for this application.")
        return
    if not is_loopback(uri):
        raise invalid_parameters(
            "This application has no registered redirect URIs, so only loopback redirect_uri "
            "values (http://localhost, 127.0.0.1, [::1]) are accepted; register yours with "
            "`kloudless apps redirect-uri add URL`."
        )
