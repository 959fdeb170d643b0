"""``requests`` authentication classes: ``Bearer`` tokens and ``APIKey`` keys.

An auth object can be bound to an origin (scheme, host, port): it then refuses, with
:class:`~kloudless.exceptions.InvalidParameter`, to put its credential on a request to any other
origin, before anything is sent. Clients bind their auth to the configured API URL.
"""

from __future__ import annotations

import requests

from .exceptions import InvalidParameter
from .util import origin_of, register_secret

__all__ = ["APIKeyAuth", "BaseAuth", "BearerTokenAuth"]


class BaseAuth(requests.auth.AuthBase):
    """Sets ``Authorization: <scheme> <key>`` on each request.

    :param key: the credential.
    :param allowed_origin: when given (``(scheme, host, port)``), requests to other origins are
        refused.
    """

    def __init__(self, key: str, allowed_origin: tuple[str, str, int] | None = None) -> None:
        self.key = key
        self.allowed_origin = allowed_origin
        register_secret(key)

    @property
    def scheme(self) -> str:
        """The authorization scheme (``Bearer`` or ``APIKey``)."""
        raise NotImplementedError

    @property
    def auth_header(self) -> str:
        """The ``Authorization`` header value."""
        return f"{self.scheme} {self.key}"

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        """Add the header to ``request``.

        :param request: the prepared request.
        :returns: the same request.
        :raises kloudless.exceptions.InvalidParameter: when the request goes to another origin.
        """
        if self.allowed_origin is not None:
            try:
                origin = origin_of(request.url or "")
            except ValueError:
                origin = None
            if origin != self.allowed_origin:
                raise InvalidParameter(
                    "Refusing to send credentials to a URL outside the configured API "
                    f"({self.allowed_origin[0]}://{self.allowed_origin[1]}:{self.allowed_origin[2]})."
                )
        request.headers["Authorization"] = self.auth_header
        return request

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.scheme} [REDACTED]>"


class APIKeyAuth(BaseAuth):
    """``Authorization: APIKey <api_key>`` (application-wide access)."""

    @property
    def scheme(self) -> str:
        """``APIKey``."""
        return "APIKey"


class BearerTokenAuth(BaseAuth):
    """``Authorization: Bearer <token>`` (one account's OAuth token)."""

    @property
    def scheme(self) -> str:
        """``Bearer``."""
        return "Bearer"
