"""HTTP layer: :class:`Session` (Kloudless headers, timeouts, retries) and :class:`Client`.

Thread safety: a client is a ``requests.Session``, which is not documented as thread-safe. Use one
client per thread (creating one is cheap), or share one only for plain requests made with per-call
options (``timeout=``, ``max_retries=``, ``headers=``...), never changing its ``headers``, ``auth``
or adapters while other threads use it. The SDK itself keeps no per-call state on the client
(per-call retry options live in a context variable), and :data:`kloudless.configuration` is copied
once when a client is created.
"""

from __future__ import annotations

import json
import re
import uuid
import warnings
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.exceptions import ChunkedEncodingError, ContentDecodingError
from urllib3.exceptions import MaxRetryError, ReadTimeoutError

from . import exceptions
from .auth import APIKeyAuth, BaseAuth, BearerTokenAuth
from .config import Settings, get_settings
from .environment import OriginEnvironment
from .exceptions import InvalidParameter
from .resources.base import (
    Resource,
    ResourceList,
    Response,
    ResponseJson,
    is_download_url,
    remember_caller_headers,
)
from .retry import BODY_ERRORS, CallPolicy, KloudlessAdapter, build_retry, call_policy
from .util import is_loopback_host, logger, origin_of, url_join
from .version import VERSION

__all__ = ["Client", "Session", "handle_response", "is_json_content_type"]

_UNSET: Any = object()
_VERSION_SEGMENT = re.compile(r"^(https?://[^/?#]+(?:/[^?#]*?)?)/v\d+(?=[/?#]|$)", re.IGNORECASE)


def handle_response(response: requests.Response) -> requests.Response:
    """Return ``response`` when its status is below 400, else raise the matching exception.

    :param response: the response.
    :returns: the same response.
    :raises kloudless.exceptions.APIException: or a subclass, chosen by status code.
    """
    if response.ok:
        logger.debug("Request to %s succeeded. Status code: %s", response.url, response.status_code)
        return response
    error = exceptions.from_response(response)
    logger.debug("Request to %s failed: %s", response.url, error.summary)
    raise error


def is_json_content_type(content_type: str | None) -> bool:
    """Tell whether a ``Content-Type`` is JSON (``application/json``, ``application/*+json``).

    :param content_type: the header value.
    :returns: ``True`` for JSON.
    """
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media in ("application/json", "text/json") or (
        media.startswith("application/") and media.endswith("+json")
    )


def _wrap_network_error(error: requests.RequestException) -> exceptions.KloudlessException:
    """Turn a requests connection/timeout error into the matching SDK exception."""
    reason: Any = error.args[0] if error.args else None
    if isinstance(reason, MaxRetryError):
        reason = reason.reason
    request = getattr(error, "request", None)
    response = getattr(error, "response", None)
    target = _target_of(getattr(request, "url", None))
    detail = f" ({type(reason).__name__ if reason is not None else type(error).__name__})"
    if isinstance(error, requests.ConnectTimeout):
        return exceptions.ConnectTimeoutException(
            _at(exceptions.ConnectTimeoutException.default_message, target) + detail,
            request,
            response,
        )
    if isinstance(error, requests.Timeout) or isinstance(reason, ReadTimeoutError):
        return exceptions.TimeoutException(
            _at(exceptions.TimeoutException.default_message, target) + detail, request, response
        )
    message = _at(exceptions.ConnectionException.default_message, target)
    if isinstance(error, (ChunkedEncodingError, ContentDecodingError)):
        message = "The connection to the Kloudless API broke while the response was read."
    return exceptions.ConnectionException(message + detail, request, response)


def _target_of(url: str | None) -> str | None:
    """:returns: ``scheme://host:port`` of ``url``: no credentials, path or query string (they
    may hold secrets), or None when unknown."""
    if not url:
        return None
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    if not parts.scheme or not host:
        return None
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    port = port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme}://{host}:{port}"


def _at(message: str, target: str | None) -> str:
    """:returns: ``message`` with `` at TARGET`` inserted before its final period."""
    if target is None:
        return message
    return f"{message.rstrip('.')} at {target}"


def _has_header(headers: Any, name: str) -> bool:
    lower = name.lower()
    return any(str(key).lower() == lower for key in headers)


class Session(requests.Session):
    """A ``requests.Session`` that adds the Kloudless headers, a default timeout and retries.

    :param settings: the timeout and retry settings; a snapshot of
        :data:`kloudless.configuration` when omitted.
    """

    def __init__(self, settings: Settings | None = None) -> None:
        super().__init__()
        self.settings = settings or get_settings()
        self.headers["User-Agent"] = f"kloudless-python/{VERSION}"
        #: The default timeout of this session's requests (``None``: wait forever).
        self.timeout = self.settings.timeout
        adapter = KloudlessAdapter(
            build_retry(
                self.settings.max_retries,
                self.settings.backoff_factor,
                self.settings.backoff_max,
                self.settings.backoff_jitter,
                self.settings.retry_after_max,
            )
        )
        self.mount("https://", adapter)
        self.mount("http://", adapter)

    @staticmethod
    def _update_kloudless_headers(
        headers: Any,
        get_raw_data: bool | None = None,
        raw_headers: dict[str, Any] | None = None,
        impersonate_user_id: Any = None,
    ) -> None:
        """Set ``X-Kloudless-Raw-Data``, ``-Raw-Headers`` and ``-As-User`` on ``headers``.

        :param headers: the dict to update.
        :param get_raw_data: a ``bool`` sets ``'true'``/``'false'``; anything else is ignored.
        :param raw_headers: a non-empty dict, sent JSON-encoded.
        :param impersonate_user_id: a truthy user id.
        """
        if isinstance(get_raw_data, bool):
            headers["X-Kloudless-Raw-Data"] = str(get_raw_data).lower()
        if isinstance(raw_headers, dict) and raw_headers:
            headers["X-Kloudless-Raw-Headers"] = json.dumps(raw_headers)
        if impersonate_user_id:
            headers["X-Kloudless-As-User"] = str(impersonate_user_id)

    def request(  # type: ignore[override]
        self,
        method: str,
        url: str,
        api_version: Any = None,
        get_raw_data: bool | None = None,
        raw_headers: dict[str, Any] | None = None,
        impersonate_user_id: Any = None,
        *,
        idempotency_key: str | bool | None = None,
        max_retries: int | None = None,
        retry: bool | None = None,
        _key_allows_retry: bool = True,
        **kwargs: Any,
    ) -> requests.Response:
        """Send a request with the Kloudless headers, the default timeout and the retry policy.

        :param method: HTTP method.
        :param url: request URL.
        :param api_version: replaces the ``/v<n>`` segment of ``url`` (e.g. ``2``).
        :param get_raw_data: ``X-Kloudless-Raw-Data`` (only a real ``bool`` is sent).
        :param raw_headers: ``X-Kloudless-Raw-Headers`` (a dict, JSON-encoded).
        :param impersonate_user_id: ``X-Kloudless-As-User``.
        :param idempotency_key: the ``Idempotency-Key`` of a POST/PATCH. By default a new UUID4 is
            sent (unless ``headers`` has one); ``False`` sends none. All retries reuse the key.
        :param max_retries: retries for this call (``0`` disables them); the client's otherwise.
        :param retry: ``True`` retries this call on every retryable condition even when its
            method is not idempotent; ``False`` disables retries.
        :param kwargs: passed to ``requests.Session.request``; ``timeout`` defaults to the client's
            (``timeout=None`` waits forever). The ``headers`` dict is copied, never changed.
        :returns: the ``requests.Response``.
        :raises kloudless.exceptions.APIException: (or a subclass) for an error status.
        :raises kloudless.exceptions.ConnectionException: when the connection fails.
        :raises kloudless.exceptions.TimeoutException: when the server does not answer in time.
        """
        if api_version is not None:
            url = _VERSION_SEGMENT.sub(lambda m: f"{m.group(1)}/v{api_version}", url, count=1)
        headers = dict(kwargs.get("headers") or {})
        self._update_kloudless_headers(headers, get_raw_data, raw_headers, impersonate_user_id)
        if method.upper() in ("POST", "PATCH") and idempotency_key is not False:
            if idempotency_key:
                headers["Idempotency-Key"] = str(idempotency_key)
            elif not _has_header(headers, "Idempotency-Key") and not _has_header(
                self.headers, "Idempotency-Key"
            ):
                headers["Idempotency-Key"] = str(uuid.uuid4())
        # An empty dict would make requests merge it with the session's headers for nothing.
        kwargs["headers"] = headers or None
        if "timeout" not in kwargs:
            kwargs["timeout"] = self.timeout
        if max_retries is not None and (isinstance(max_retries, bool) or max_retries < 0):
            raise InvalidParameter("max_retries must be a non-negative integer.")
        policy = CallPolicy(max_retries, retry, key_allows_retry=_key_allows_retry)
        token = call_policy.set(policy)
        try:
            response = super().request(method, url, **kwargs)
        except (*BODY_ERRORS, requests.Timeout) as error:
            raise _wrap_network_error(error) from error
        finally:
            call_policy.reset(token)
        remember_caller_headers(response, headers)
        return handle_response(response)


class Client(Session):
    """Base client: sends every request below its :attr:`url` with the client's credentials.

    Either ``api_key`` or ``token`` is needed; when both are given the Bearer token is used.
    Credentials are sent only to the configured API origin (scheme, host and port of
    ``base_url``): an absolute URL elsewhere (as ``path``, a resource ``href`` or a next page) is
    refused with :class:`~kloudless.exceptions.InvalidParameter` before anything is sent.

    Every request has a timeout (``configuration['timeout']``, per client ``timeout=``, per call
    ``timeout=``; ``None`` waits forever) and is retried per :mod:`kloudless.retry` (per call
    ``max_retries=``, ``retry=``); POST and PATCH carry an ``Idempotency-Key`` (per call
    ``idempotency_key=``). Thread safety: use one client per thread, or share one only for requests
    whose options are passed per call, without changing its ``headers``, ``auth`` or adapters.

    :param api_key: API key (``Authorization: APIKey ...``).
    :param token: Bearer token (``Authorization: Bearer ...``); wins over ``api_key``.
    :param base_url: overrides ``configuration['base_url']`` for this client.
    :param api_version: overrides ``configuration['api_version']``.
    :param timeout: overrides ``configuration['timeout']`` (``None`` waits forever).
    :param max_retries: overrides ``configuration['max_retries']``.
    :param settings: other configuration keys (``backoff_factor``, ``retry_after_max``...).

    :ivar str url: base URL used as the prefix of every call.
    :ivar token: the Bearer token, or ``None``.
    :ivar api_key: the API key, or ``None``.
    """

    def __init__(
        self,
        api_key: str | None = None,
        token: str | None = None,
        *,
        base_url: str | None = None,
        api_version: Any = None,
        timeout: Any = _UNSET,
        max_retries: int | None = None,
        **settings: Any,
    ) -> None:
        if not token and not api_key:
            raise InvalidParameter(
                "An API Key or Bearer Token must be provided. Please check api_key and token "
                "parameters."
            )
        overrides: dict[str, Any] = dict(settings)
        overrides.update(base_url=base_url, api_version=api_version, max_retries=max_retries)
        if timeout is not _UNSET:
            overrides["timeout"] = timeout
        unknown = set(settings) - {
            "backoff_factor",
            "backoff_max",
            "backoff_jitter",
            "retry_after_max",
        }
        if unknown:
            raise InvalidParameter(f"Unknown client settings: {', '.join(sorted(unknown))}.")
        resolved = get_settings(**overrides)
        super().__init__(resolved)
        self.token: str | None = token or None
        self.api_key: str | None = api_key or None
        try:
            self._origin = origin_of(resolved.base_url)
        except ValueError as error:
            raise InvalidParameter(f"Invalid base_url: {error}") from None
        if self._origin[0] not in ("http", "https") or not self._origin[1]:
            raise InvalidParameter("base_url must be an absolute http:// or https:// URL.")
        if self._origin[0] == "http" and not is_loopback_host(self._origin[1]):
            warnings.warn(
                f"The Kloudless API URL {resolved.base_url} uses plain http on a non-loopback "
                "host: credentials and data travel unencrypted. Use https.",
                exceptions.InsecureBaseURLWarning,
                stacklevel=3,
            )
        auth: BaseAuth
        if token:
            auth = BearerTokenAuth(token, allowed_origin=self._origin)
        else:
            auth = APIKeyAuth(str(api_key), allowed_origin=self._origin)
        self.auth = auth
        self.url = url_join(resolved.base_url, f"v{resolved.api_version}")
        #: Proxies and CA bundle from the environment for the API origin, read once (see
        #: :mod:`kloudless.environment`): environment changes after this need a new client.
        self.environment = OriginEnvironment.resolve(self.url)

    def merge_environment_settings(
        self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> Any:
        """``requests``' per-request merge of the environment, with the environment of the API
        origin resolved when the client was created (the same values, without scanning
        ``os.environ`` on every call).

        Requests elsewhere (none are sent with the client's credentials) or with per-call
        ``proxies`` take ``requests``' own path.
        """
        env = self.environment
        if not self.trust_env or proxies or not isinstance(url, str) or not env.covers(url):
            return super().merge_environment_settings(url, proxies, stream, verify, cert)
        if (verify is True or verify is None) and env.ca_bundle:
            verify = env.ca_bundle
        return {
            "proxies": requests.sessions.merge_setting(dict(env.proxies), self.proxies),
            "stream": requests.sessions.merge_setting(stream, self.stream),
            "verify": requests.sessions.merge_setting(verify, self.verify),
            "cert": requests.sessions.merge_setting(cert, self.cert),
        }

    def _compose_url(self, path: str | None) -> str:
        """Join ``path`` onto :attr:`url`, refusing other origins and ``.``/``..`` segments.

        :param path: relative path or absolute URL on the API origin.
        :returns: the URL.
        :raises kloudless.exceptions.InvalidParameter: for another origin or a dot segment.
        """
        url = url_join(self.url, path)
        try:
            origin = origin_of(url)
        except ValueError:
            origin = None
        if origin != self._origin:
            raise InvalidParameter(
                "Refusing to send a request with the client's credentials to a URL outside the "
                f"configured API ({self._origin[0]}://{self._origin[1]}:{self._origin[2]})."
            )
        segments = urlsplit(url).path.split("/")
        if any(segment in (".", "..") for segment in segments):
            raise InvalidParameter("A request path must not contain '.' or '..' segments.")
        return url

    def _create_response_object(
        self, response: requests.Response, download: bool = False
    ) -> Response:
        """Wrap ``response`` in :class:`Response`, :class:`ResponseJson`, :class:`Resource` or
        :class:`ResourceList`.

        :param response: the raw response.
        :param download: the URL is a file-content download: always a streamed :class:`Response`.
        :returns: the wrapper.
        :raises kloudless.exceptions.JSONDecodeException: for an invalid JSON body.
        """
        url = response.url
        if download or not is_json_content_type(response.headers.get("Content-Type")):
            return Response(self, url, response)
        if not response.content:
            return Response(self, url, response)
        try:
            data = response.json()
        except ValueError:
            logger.debug("Response from %s is not valid JSON", url)
            raise exceptions.JSONDecodeException(response) from None
        if isinstance(data, dict):
            if data.get("type") == "object_list":
                return ResourceList(data=data, url=url, client=self, response=response)
            if "id" in data or "href" in data:
                return Resource(data=data, url=url, client=self, response=response)
        return ResponseJson(data=data, url=url, client=self, response=response)

    def request(  # type: ignore[override]
        self, method: str, path: str = "", get_raw_response: bool = False, **kwargs: Any
    ) -> Any:
        """Send a request to ``self.url`` + ``path`` and wrap the response.

        :param method: HTTP method.
        :param path: path below :attr:`url` (``'storage/files/x'``), or an absolute URL on the
            API origin.
        :param get_raw_response: return the ``requests.Response`` itself.
        :param kwargs: see :meth:`Session.request` (``api_version``, ``get_raw_data``,
            ``raw_headers``, ``impersonate_user_id``, ``idempotency_key``, ``max_retries``,
            ``retry``, ``timeout``, ``params``, ``data``, ``json``, ``headers``, ``stream``...).
        :returns: ``requests.Response`` if ``get_raw_response``, else a :class:`Response` subclass.
        :raises kloudless.exceptions.InvalidParameter: for a URL outside the API origin.
        """
        url = self._compose_url(path)
        download = method.upper() == "GET" and is_download_url(url)
        response = Session.request(self, method, url, **kwargs)
        if get_raw_response:
            return response
        return self._create_response_object(response, download=download)

    def get(self, path: str = "", **kwargs: Any) -> Any:  # type: ignore[override]
        """HTTP GET below :attr:`url`. File-content URLs stream (``stream=True``) by default.

        :param path: request path.
        :param kwargs: see :meth:`request`.
        :returns: :class:`~kloudless.resources.base.Response` or a subclass.
        """
        if is_download_url(url_join(self.url, path)):
            kwargs.setdefault("stream", True)
        kwargs.setdefault("allow_redirects", True)
        return self.request("GET", path, **kwargs)

    def post(  # type: ignore[override]
        self, path: str = "", data: Any = None, json: Any = None, **kwargs: Any
    ) -> Any:
        """HTTP POST below :attr:`url` (carries an ``Idempotency-Key``).

        :param path: request path.
        :param data: form dict, bytes or file object.
        :param json: JSON body.
        :param kwargs: see :meth:`request`.
        :returns: :class:`~kloudless.resources.base.Response` or a subclass.
        """
        return self.request("POST", path, data=data, json=json, **kwargs)

    def put(self, path: str = "", data: Any = None, **kwargs: Any) -> Any:  # type: ignore[override]
        """HTTP PUT below :attr:`url`.

        :param path: request path.
        :param data: body.
        :param kwargs: see :meth:`request`.
        :returns: :class:`~kloudless.resources.base.Response` or a subclass.
        """
        return self.request("PUT", path, data=data, **kwargs)

    def patch(  # type: ignore[override]
        self, path: str = "", data: Any = None, **kwargs: Any
    ) -> Any:
        """HTTP PATCH below :attr:`url` (carries an ``Idempotency-Key``).

        :param path: request path.
        :param data: body.
        :param kwargs: see :meth:`request` (``json=`` too).
        :returns: :class:`~kloudless.resources.base.Response` or a subclass.
        """
        return self.request("PATCH", path, data=data, **kwargs)

    def delete(self, path: str = "", **kwargs: Any) -> Any:  # type: ignore[override]
        """HTTP DELETE below :attr:`url`.

        :param path: request path.
        :param kwargs: see :meth:`request`.
        :returns: :class:`~kloudless.resources.base.Response` or a subclass.
        """
        return self.request("DELETE", path, **kwargs)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url}>"
