"""What ``requests`` takes from the environment for one origin, resolved once.

With ``trust_env`` on, ``requests`` looks up the proxy variables (``HTTP_PROXY``,
``HTTPS_PROXY``, ``ALL_PROXY``, ``NO_PROXY``) and the CA bundle (``REQUESTS_CA_BUNDLE``,
``CURL_CA_BUNDLE``) on every request, which scans ``os.environ`` twice per call: the largest
CPU cost of a call on a fast transport. A :class:`~kloudless.client.Client` talks to one origin
only, so it resolves them once, when it is created, with the same functions ``requests`` uses,
and passes the result explicitly on each request to that origin. Environment changes made
after a client is created need a new client.

netrc is not part of it: ``requests`` reads ``~/.netrc`` only for a request without
credentials, and a client always has its own (its API key or token).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from requests import PreparedRequest
from requests.utils import get_environ_proxies

__all__ = ["OriginEnvironment"]


@dataclass(frozen=True)
class OriginEnvironment:
    """The proxies and CA bundle ``requests`` would take from the environment for an origin.

    :ivar prefix: the origin as it starts a prepared request URL (``https://host:port``).
    :ivar proxies: the proxies for that origin (empty when ``NO_PROXY`` bypasses it).
    :ivar ca_bundle: ``REQUESTS_CA_BUNDLE`` or ``CURL_CA_BUNDLE``, or ``None``.
    """

    prefix: str
    proxies: dict[str, str]
    ca_bundle: str | None

    @classmethod
    def resolve(cls, url: str) -> OriginEnvironment:
        """Read the environment now for the origin of ``url``.

        :param url: an absolute URL on the origin (the client's API URL).
        :returns: the resolved settings.
        """
        prepared = PreparedRequest()
        prepared.prepare_url(url, None)  # the form requests sends (IDNA host, quoting)
        full = prepared.url or url
        scheme, _, rest = full.partition("://")
        prefix = f"{scheme}://{rest.split('/', 1)[0]}"
        return cls(
            prefix=prefix,
            proxies=dict(get_environ_proxies(full, no_proxy=None)),
            ca_bundle=os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE"),
        )

    def covers(self, url: str) -> bool:
        """Tell whether ``url`` (a prepared request URL) is on this origin.

        :param url: the URL.
        :returns: ``True`` when the resolved settings apply to it.
        """
        return url.startswith(self.prefix) and url[len(self.prefix) : len(self.prefix) + 1] in (
            "",
            "/",
            "?",
        )
