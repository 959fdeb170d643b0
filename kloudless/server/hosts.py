"""Host names: which ``Host`` headers the server answers to, and request-log redaction."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from .errors import ApiError
from .settings import Settings

#: Credentials this server issues (``tok_...``, ``key_...``, ``dev_...``), should a client put
#: one in a path.
_SECRET_IN_PATH = re.compile(r"\b(tok_|key_|dev_)[A-Za-z0-9_-]{16,}")
#: Public link ids (``/l/<id>``) are capabilities: whoever has one can download the file.
_LINK_IN_PATH = re.compile(r"^/l/[^/]+")

#: Host names every server accepts (loopback), besides the bound host.
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
#: Bind addresses meaning "every interface".
WILDCARD_HOSTS = ("", "0.0.0.0", "::")

__all__ = ["LOOPBACK_HOSTS", "WILDCARD_HOSTS", "HostCheck", "host_name", "log_path"]


def log_path(path: str) -> str:
    """:returns: ``path`` with credentials and public link ids replaced by ``[REDACTED]``."""
    if not (path.startswith("/l/") or "tok_" in path or "key_" in path or "dev_" in path):
        return path  # nothing to redact (most paths): no regular expression run
    return _LINK_IN_PATH.sub("/l/[REDACTED]", _SECRET_IN_PATH.sub(r"\1[REDACTED]", path))


def host_name(host: str) -> str:
    """:returns: the lower-case name of a ``Host`` header value, without port or brackets."""
    host = host.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        return host[1:end] if end > 0 else host
    if host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.rstrip(".")


class HostCheck:
    """Refuses ``Host`` names this server does not answer to (DNS rebinding: a web page whose
    name resolves to 127.0.0.1 must not reach the API). A server bound to every interface also
    answers IP-literal hosts (they cannot be rebound).

    :param settings: the bound host, ``public_base_url`` and ``allowed_hosts``.
    """

    def __init__(self, settings: Settings) -> None:
        self.bound = settings.host
        names = {host_name(settings.host), *LOOPBACK_HOSTS}
        if settings.public_base_url:
            names.add(host_name(urlsplit(settings.public_base_url).netloc))
        names.update(h if h == "*" else host_name(h) for h in settings.allowed_hosts)
        #: The accepted names (``*`` = any).
        self.allowed = frozenset(names)

    def __call__(self, host: str) -> None:
        """:raises ApiError: 400 ``bad_request`` for an unknown host."""
        if "*" in self.allowed:
            return
        name = host_name(host)
        if name in self.allowed:
            return
        if self.bound in WILDCARD_HOSTS:
            try:
                ipaddress.ip_address(name)
                return
            except ValueError:
                pass
        raise ApiError(
            400,
            "bad_request",
            "Unknown host; add it to the server's allowed hosts (--allowed-host).",
        )
