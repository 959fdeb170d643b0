"""Shared helpers: the SDK logger, secret redaction for logs, URL joining and origin checks.

Importing this module never configures logging for the application (the root logger is left
alone). The ``kloudless`` logger gets a :class:`RedactingFilter` and a fallback handler that prints
to stderr only while the application has configured no logging of its own, so the 2.x recipe still
shows every request URL during development::

    from kloudless.util import logger
    logger.setLevel('DEBUG')

Once the application configures logging (``logging.basicConfig()``, ``dictConfig``, a framework),
the fallback stays silent and the SDK's records go to the application's handlers.

Records logged through :data:`logger` pass through :class:`RedactingFilter`, so bearer tokens, API
keys, OAuth codes, client secrets, states and access tokens are replaced by ``[REDACTED]`` before
any handler sees them. The same filter is added to the two urllib3 loggers that print request URLs
(``urllib3.connectionpool``, ``urllib3.util.retry``); add ``RedactingFilter()`` to your handlers to
protect records of other libraries as well.
"""

from __future__ import annotations

import functools
import logging
import re
import sys
from typing import Any
from urllib.parse import urlsplit

from .config import get_config
from .redaction import REDACTED, redact, register_secret

__all__ = [
    "REDACTED",
    "RedactingFilter",
    "construct_kloudless_endpoint",
    "get_config",
    "is_loopback_host",
    "logger",
    "origin_of",
    "redact",
    "register_secret",
    "url_join",
]

_TRACEBACK_FORMATTER = logging.Formatter()


class RedactingFilter(logging.Filter):
    """A logging filter that redacts secrets from the formatted message of every record.

    It is installed on the ``kloudless`` logger; add it to your own handlers to protect records of
    other loggers as well (``handler.addFilter(RedactingFilter())``).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Replace the record's message by its redacted form; never drops a record.

        :param record: the log record.
        :returns: ``True``.
        """
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: keep the record, redact the raw template
            message = str(record.msg)
        record.msg = redact(message)
        record.args = None
        # Format the traceback now (handlers would do it later, unredacted) and cache it: the
        # standard Formatter uses a record's exc_text when it is set.
        if record.exc_info and not record.exc_text:
            record.exc_text = _TRACEBACK_FORMATTER.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def _install_filter(target: logging.Logger) -> None:
    if not any(isinstance(f, RedactingFilter) for f in target.filters):
        target.addFilter(RedactingFilter())


class FallbackHandler(logging.StreamHandler):
    """Prints the SDK's records to stderr while the application has configured no logging.

    Python's last-resort handler shows WARNING and above only; this one honours the ``kloudless``
    logger's own level, so ``logger.setLevel('DEBUG')`` shows every request URL as the 2.x docs
    promise, without touching the root logger. As soon as the root logger or the ``kloudless``
    logger has another handler, it stays silent so that nothing is printed twice.
    """

    def emit(self, record: logging.LogRecord) -> None:
        """Write ``record`` to the current ``sys.stderr`` unless logging is configured elsewhere.

        :param record: the log record.
        """
        if logging.getLogger().handlers or any(
            h is not self for h in logging.getLogger("kloudless").handlers
        ):
            return
        self.setStream(sys.stderr)
        super().emit(record)


#: The SDK logger (``logging.getLogger('kloudless')``). Set it to DEBUG to log every request.
logger = logging.getLogger("kloudless")
_install_filter(logger)
if not any(isinstance(h, FallbackHandler) for h in logger.handlers):
    logger.addHandler(FallbackHandler())
# urllib3 logs request URLs (query strings included) at DEBUG from these two loggers while it
# sends the SDK's requests; redact them too. Filters only rewrite secrets, they never drop records.
for _name in ("urllib3.connectionpool", "urllib3.util.retry"):
    _install_filter(logging.getLogger(_name))


def _has_absolute_scheme(url: str) -> bool:
    return bool(re.match(r"(?i)https?://", url))


def url_join(prefix: str, suffix: str | None) -> str:
    """Join ``suffix`` onto ``prefix`` the way the SDK builds request URLs.

    * An empty ``suffix`` returns ``prefix`` unchanged.
    * An absolute ``http(s)://`` URL is returned unchanged (the client then checks its host).
    * Otherwise leading slashes of ``suffix`` are dropped and it is appended after one ``/``;
      query strings and trailing slashes are kept, and nothing else in ``suffix`` is interpreted
      (a colon in an id is not a URL scheme, ``//host/x`` is the relative path ``host/x``).

    :param prefix: the base URL.
    :param suffix: a relative path (with optional query string) or an absolute URL.
    :returns: the joined URL.
    """
    if not suffix:
        return prefix
    if _has_absolute_scheme(suffix):
        return suffix
    return prefix.rstrip("/") + "/" + suffix.lstrip("/")


def construct_kloudless_endpoint(
    path: str = "", base_url: str | None = None, api_version: Any = None
) -> str:
    """Build ``{base_url}/v{api_version}/{path}``.

    Missing arguments come from :data:`kloudless.configuration`, and missing configuration keys
    from the built-in defaults.

    :param path: path after the version segment.
    :param base_url: overrides ``configuration['base_url']``.
    :param api_version: overrides ``configuration['api_version']``.
    :returns: the endpoint URL.
    """
    base = get_config("base_url", base_url)
    version = get_config("api_version", api_version)
    return url_join(url_join(str(base), f"v{version}"), path)


@functools.lru_cache(maxsize=256)  # called twice per request (URL check, auth) on few URLs
def origin_of(url: str) -> tuple[str, str, int]:
    """Return ``(scheme, host, port)`` of ``url``, lower-cased, with default ports filled in.

    :param url: an absolute URL.
    :returns: the origin tuple.
    :raises ValueError: when the URL has an invalid port.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or (443 if scheme == "https" else 80)
    return scheme, (parts.hostname or "").lower(), port


def is_loopback_host(host: str) -> bool:
    """Tell whether ``host`` names the local machine (``localhost``, ``127.x.x.x``, ``::1``).

    :param host: a host name or IP address.
    :returns: ``True`` for loopback hosts.
    """
    host = host.lower().strip("[]")
    return (
        host == "localhost"
        or host.endswith(".localhost")
        or host == "::1"
        or re.fullmatch(r"127(?:\.\d{1,3}){3}", host) is not None
    )
