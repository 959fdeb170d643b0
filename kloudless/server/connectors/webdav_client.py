"""A small WebDAV client over ``requests`` for the WebDAV storage connector.

One :class:`WebDAVClient` talks to one WebDAV root URL with basic auth. Paths given to it are
POSIX-style and relative to that root (``"/"`` is the root, ``"/a b/ü.txt"`` a file); they are
percent-encoded on the wire and decoded back from ``href`` values. Bodies stream both ways:
downloads return the open :class:`requests.Response`, uploads read a file object in blocks.
Every upstream failure is raised as a :mod:`~kloudless.server.connectors.webdav_errors` type.
"""

from __future__ import annotations

import email.utils
import hashlib
import posixpath
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import IO, Any
from urllib.parse import quote, unquote, urlsplit

import requests
from urllib3.util.retry import Retry

from kloudless.server.connectors.pool import ClientPool
from kloudless.server.connectors.webdav_errors import (
    AddressRefused,
    BadGateway,
    GatewayTimeout,
    NamingConflict,
    ServiceNotAvailable,
    UpstreamError,
    error_for_status,
)
from kloudless.server.outbound import DEFAULT_POLICY, OutboundPolicy, OutboundRefused

DAV_NS = "DAV:"
#: (connect, read) timeouts in seconds for upstream requests.
DEFAULT_TIMEOUT: tuple[float, float] = (10.0, 60.0)
#: Properties asked for in PROPFIND (all in the DAV: namespace).
PROPFIND_PROPS = (
    "displayname",
    "getcontentlength",
    "getcontenttype",
    "getlastmodified",
    "getetag",
    "creationdate",
    "resourcetype",
    "quota-available-bytes",
    "quota-used-bytes",
)
#: Hop-by-hop headers (RFC 9110 §7.6.1) that a proxy must not forward.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
_CHUNK = 64 * 1024


@dataclass
class DAVResource:
    """One resource from a PROPFIND answer.

    :ivar path: decoded path relative to the client's root, ``"/"`` for the root; collections
        have no trailing slash (except the root).
    :ivar props: every property with a 200 status, as ``{"{ns}name": text}`` (the raw data).
    """

    path: str
    href: str
    is_collection: bool
    display_name: str | None = None
    size: int | None = None
    content_type: str | None = None
    etag: str | None = None
    last_modified: datetime | None = None
    created: datetime | None = None
    quota_used: int | None = None
    quota_available: int | None = None
    props: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """:returns: the last path segment (``""`` for the root)."""
        return posixpath.basename(self.path.rstrip("/"))


def normalize_path(path: str) -> str:
    """Normalise a root-relative path: leading slash, no trailing slash, no ``.``/``..``.

    :param path: a path such as ``"a/b/"`` or ``"/a/./b"``.
    :returns: e.g. ``"/a/b"``; ``"/"`` for the root.
    :raises ValueError: if the path climbs above the root.
    """
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise ValueError("path escapes the WebDAV root")
            parts.pop()
            continue
        parts.append(part)
    return "/" + "/".join(parts)


def _parse_http_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def _parse_iso_date(value: str | None) -> datetime | None:
    if not value:
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return _parse_http_date(value)  # some servers send an HTTP date here
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        when = _parse_http_date(value)
        if when is None:
            return None
        return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


class WebDAVClient:
    """WebDAV operations on one root URL with basic auth.

    :param root_url: the WebDAV root, e.g. ``https://cloud.example.com/remote.php/dav/files/me/``.
    :param username: basic-auth user name.
    :param password: basic-auth password (kept in memory only, sent only to ``root_url``'s host).
    :param timeout: ``(connect, read)`` timeouts in seconds.
    :param retries: how many times a failed *connection* is retried (never after a request
        reached the server, so non-idempotent calls are not repeated).
    :param policy: the outbound policy every request obeys (checked address, no redirects).
    """

    def __init__(
        self,
        root_url: str,
        username: str,
        password: str,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        retries: int = 1,
        policy: OutboundPolicy = DEFAULT_POLICY,
    ) -> None:
        split = urlsplit(root_url)
        if split.scheme not in ("http", "https") or not split.hostname:
            raise ValueError("the WebDAV URL must be an http(s) URL with a host")
        if split.username or split.password:
            raise ValueError("put credentials in the username/password fields, not in the URL")
        self.root_url = root_url if root_url.endswith("/") else root_url + "/"
        self._root_path = unquote(urlsplit(self.root_url).path)
        self._origin = f"{split.scheme}://{split.netloc}"
        self.timeout = timeout
        # Retry only connections that failed before reaching the server; statuses (including
        # 429/503 with Retry-After) go back to the caller as typed errors.
        retry = Retry(
            total=retries,
            connect=retries,
            read=0,
            status=0,
            other=0,
            backoff_factor=0.05,
            respect_retry_after_header=False,
            raise_on_status=False,
        )
        # Checked, pinned addresses; no redirects; no proxies or .netrc from the environment.
        self.session = policy.session(max_retries=retry)
        self.session.auth = (username, password)

    def close(self) -> None:
        """Close the pooled connections."""
        self.session.close()

    def __enter__(self) -> WebDAVClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- URLs -------------------------------------------------------------------------------

    def url_for(self, path: str, collection: bool = False) -> str:
        """:returns: the absolute, percent-encoded URL of a root-relative ``path``."""
        norm = normalize_path(path)
        encoded = quote(norm.lstrip("/"), safe="/")
        if collection and encoded:
            encoded += "/"
        return self.root_url + encoded

    def path_from_href(self, href: str) -> str:
        """Turn an ``href`` from a multistatus answer into a root-relative path.

        :raises BadGateway: if the href lies outside the root.
        """
        decoded = unquote(urlsplit(href).path)
        root = self._root_path
        if decoded.rstrip("/") == root.rstrip("/"):
            return "/"
        if not decoded.startswith(root):
            raise BadGateway("the WebDAV server listed a resource outside the account's root")
        return normalize_path(decoded[len(root) :])

    # -- transport --------------------------------------------------------------------------

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        params: Any = None,
        data: Any = None,
        stream: bool = False,
        ok: Iterable[int] = (),
    ) -> requests.Response:
        """Send one request and raise a typed error for failures.

        :param ok: extra statuses >= 400 that are returned instead of raised.
        :returns: the response (open if ``stream``).
        :raises UpstreamError: for transport failures and error statuses.
        """
        try:
            response = self.session.request(
                method,
                url,
                headers=dict(headers or {}),
                params=params,
                data=data,
                stream=stream,
                timeout=self.timeout,
                allow_redirects=False,
            )
        except OutboundRefused as exc:
            raise AddressRefused(f"the WebDAV server's address is refused: {exc}") from None
        except requests.Timeout as exc:
            raise GatewayTimeout(f"the WebDAV server did not answer {method} in time") from exc
        except requests.ConnectionError as exc:
            raise ServiceNotAvailable(
                f"cannot connect to the WebDAV server at {self._origin}"
            ) from exc
        except requests.RequestException as exc:
            raise BadGateway(f"{method} to the WebDAV server failed") from exc
        if response.status_code >= 400 and response.status_code not in ok:
            status, reason = response.status_code, response.reason or ""
            retry_after = _retry_after(response)
            response.close()
            raise error_for_status(
                status,
                f"WebDAV server answered {status} {reason} to {method} "
                f"{self.path_for_message(url)}".rstrip(),
                retry_after,
            )
        return response

    def path_for_message(self, url: str) -> str:
        """:returns: the decoded path of ``url`` for error messages (no host, no query)."""
        return unquote(urlsplit(url).path)

    # -- PROPFIND ---------------------------------------------------------------------------

    def propfind(self, path: str, depth: int = 1) -> list[DAVResource]:
        """List a resource (depth 0) or a collection and its members (depth 1).

        :param path: root-relative path.
        :param depth: 0 or 1 (``infinity`` is not used: many servers refuse it).
        :returns: the resources, the requested one first.
        :raises NotFound: if the path does not exist.
        """
        if depth not in (0, 1):
            raise ValueError("depth must be 0 or 1")
        props = "".join(f"<d:{name}/>" for name in PROPFIND_PROPS)
        body = (
            '<?xml version="1.0" encoding="utf-8"?>'
            f'<d:propfind xmlns:d="DAV:"><d:prop>{props}</d:prop></d:propfind>'
        ).encode()
        response = self.request(
            "PROPFIND",
            self.url_for(path),
            headers={"Depth": str(depth), "Content-Type": "application/xml; charset=utf-8"},
            data=body,
        )
        if response.status_code != 207:
            raise BadGateway(
                f"the WebDAV server answered {response.status_code} to PROPFIND instead of 207"
            )
        resources = self.parse_multistatus(response.content)
        wanted = normalize_path(path)
        # The requested resource first, members after, in server order.
        resources.sort(key=lambda res: res.path != wanted)
        if not resources or resources[0].path != wanted:
            raise BadGateway("the WebDAV server's PROPFIND answer lacks the requested resource")
        return resources

    def stat(self, path: str) -> DAVResource:
        """:returns: the properties of one resource (PROPFIND depth 0)."""
        return self.propfind(path, depth=0)[0]

    def list_folder(self, path: str) -> tuple[DAVResource, list[DAVResource]]:
        """:returns: the collection itself and its direct members (PROPFIND depth 1)."""
        resources = self.propfind(path, depth=1)
        return resources[0], resources[1:]

    def parse_multistatus(self, content: bytes) -> list[DAVResource]:
        """Parse a ``207 Multi-Status`` body.

        :raises BadGateway: if the body is not a multistatus document.
        """
        try:
            tree = ET.fromstring(content)
        except ET.ParseError as exc:
            raise BadGateway("the WebDAV server sent malformed XML") from exc
        if tree.tag != f"{{{DAV_NS}}}multistatus":
            raise BadGateway("the WebDAV server's answer is not a multistatus document")
        resources = []
        for node in tree.findall(f"{{{DAV_NS}}}response"):
            href = node.findtext(f"{{{DAV_NS}}}href")
            if not href:
                continue
            props: dict[str, str] = {}
            is_collection = False
            for propstat in node.findall(f"{{{DAV_NS}}}propstat"):
                status = propstat.findtext(f"{{{DAV_NS}}}status") or ""
                if " 200 " not in f"{status} ":
                    continue
                prop = propstat.find(f"{{{DAV_NS}}}prop")
                for child in prop if prop is not None else ():
                    if child.tag == f"{{{DAV_NS}}}resourcetype":
                        is_collection = child.find(f"{{{DAV_NS}}}collection") is not None
                        props[child.tag] = " ".join(sub.tag for sub in child)
                    else:
                        props[child.tag] = (child.text or "").strip()
            resources.append(self._resource(href, is_collection, props))
        return resources

    def _resource(self, href: str, is_collection: bool, props: dict[str, str]) -> DAVResource:
        def dav(name: str) -> str | None:
            return props.get(f"{{{DAV_NS}}}{name}")

        return DAVResource(
            path=self.path_from_href(href),
            href=href,
            is_collection=is_collection,
            display_name=dav("displayname") or None,
            size=None if is_collection else _int_or_none(dav("getcontentlength")),
            content_type=dav("getcontenttype") or None,
            etag=dav("getetag") or None,
            last_modified=_parse_http_date(dav("getlastmodified")),
            created=_parse_iso_date(dav("creationdate")),
            quota_used=_int_or_none(dav("quota-used-bytes")),
            quota_available=_int_or_none(dav("quota-available-bytes")),
            props=props,
        )

    # -- contents ---------------------------------------------------------------------------

    def get(self, path: str, byte_range: tuple[int, int | None] | None = None) -> requests.Response:
        """Start downloading a file; the caller iterates and closes the response.

        :param byte_range: ``(first, last)`` inclusive byte offsets (``last`` may be ``None``).
        :returns: the open streamed response (status 200, or 206 for a range).
        :raises RangeNotSatisfiable: if the range lies outside the file.
        """
        headers = {"Accept-Encoding": "identity"}
        if byte_range is not None:
            first, last = byte_range
            headers["Range"] = f"bytes={first}-{'' if last is None else last}"
        return self.request("GET", self.url_for(path), headers=headers, stream=True)

    def put(
        self,
        path: str,
        body: IO[bytes] | bytes,
        content_type: str | None = None,
        length: int | None = None,
    ) -> str | None:
        """Upload a file, streaming ``body`` (a binary file object, read in blocks).

        :param length: the body size; taken from the file when omitted (sent as
            ``Content-Length`` so servers need not support chunked uploads).
        :returns: the new ETag if the server sent one.
        :raises InvalidParentFolder: if the parent collection does not exist.
        """
        headers = {"Content-Type": content_type or "application/octet-stream"}
        if length is not None:
            headers["Content-Length"] = str(length)
        response = self.request("PUT", self.url_for(path), headers=headers, data=body)
        response.close()
        return response.headers.get("ETag")

    def mkcol(self, path: str) -> None:
        """Create a collection.

        :raises NamingConflict: if something exists at ``path`` (405 upstream).
        :raises InvalidParentFolder: if the parent does not exist (409 upstream).
        """
        url = self.url_for(path, collection=True)
        response = self.request("MKCOL", url, ok=(405,))
        response.close()
        if response.status_code == 405:
            raise NamingConflict(f"{normalize_path(path)} already exists on the WebDAV server", 405)

    def delete(self, path: str, collection: bool = False) -> None:
        """Delete a resource (a collection with everything in it)."""
        self.request("DELETE", self.url_for(path, collection=collection)).close()

    def move(self, src: str, dst: str, overwrite: bool = False, collection: bool = False) -> None:
        """Move/rename ``src`` to ``dst``.

        :raises NamingConflict: if ``dst`` exists and ``overwrite`` is false (412 upstream).
        """
        self._transfer("MOVE", src, dst, overwrite, collection)

    def copy(self, src: str, dst: str, overwrite: bool = False, collection: bool = False) -> None:
        """Copy ``src`` (recursively for a collection) to ``dst``.

        :raises NamingConflict: if ``dst`` exists and ``overwrite`` is false (412 upstream).
        """
        self._transfer("COPY", src, dst, overwrite, collection)

    def _transfer(self, method: str, src: str, dst: str, overwrite: bool, collection: bool) -> None:
        headers = {
            "Destination": self.url_for(dst, collection=collection),
            "Overwrite": "T" if overwrite else "F",
        }
        if collection:
            headers["Depth"] = "infinity"
        self.request(method, self.url_for(src, collection=collection), headers=headers).close()

    # -- pass-through -----------------------------------------------------------------------

    def resolve_raw_uri(self, uri: str) -> str:
        """Turn a pass-through URI into an upstream URL that keeps the credentials on our host.

        A path (``"/folder/x.txt"`` or ``"folder/x.txt"``) is taken relative to the WebDAV root
        and must stay below it; a full URL must be on the root's own scheme, host and port.
        A query string in ``uri`` is kept. The path is sent as given (already percent-encoded
        by the caller when needed).

        :raises ValueError: for a URL on another host or a path escaping the root.
        """
        split = urlsplit(uri)
        if split.scheme or split.netloc:
            if f"{split.scheme}://{split.netloc}".lower() != self._origin.lower():
                raise ValueError("the raw URI must be on the account's WebDAV host")
            return uri
        raw_path = split.path
        normalize_path(unquote(raw_path))  # raises if it climbs above the root
        url = self.root_url + raw_path.lstrip("/")
        return f"{url}?{split.query}" if split.query else url

    def forward(
        self,
        method: str,
        uri: str,
        headers: Mapping[str, str] | None = None,
        params: Any = None,
        body: IO[bytes] | bytes | Iterable[bytes] | None = None,
    ) -> requests.Response:
        """Forward a pass-through request with the stored credentials.

        Upstream error statuses are *returned*, not raised: the caller relays them unchanged.
        Only transport failures raise.

        :param method: the raw HTTP method (``PROPFIND``, ``GET``, ...).
        :param uri: see :meth:`resolve_raw_uri`.
        :param headers: headers to send (``Authorization``, ``Host`` and hop-by-hop headers are
            dropped: the stored credentials authenticate the call).
        :param params: extra query parameters.
        :param body: the request body (bytes, a file object, or an iterable of chunks).
        :returns: the open streamed response; iterate :func:`iter_raw` and close it.
        :raises ValueError: for a URI outside the account's host or root.
        :raises UpstreamError: for connection failures and timeouts.
        """
        method = method.upper()
        if not method.isalpha() or len(method) > 32:
            raise ValueError("invalid raw method")
        url = self.resolve_raw_uri(uri)
        dropped = HOP_BY_HOP | {"authorization", "host", "content-length", "cookie"}
        clean = {k: v for k, v in (headers or {}).items() if k.lower() not in dropped}
        if not any(k.lower() == "accept-encoding" for k in clean):
            # requests would ask for gzip; the body is relayed undecoded, so ask for what the
            # caller asked for (nothing: identity).
            clean["Accept-Encoding"] = "identity"
        ok = range(400, 600)
        return self.request(
            method, url, headers=clean, params=params, data=body, stream=True, ok=ok
        )


def iter_raw(response: requests.Response, chunk_size: int = _CHUNK) -> Iterator[bytes]:
    """Yield a streamed response's body bytes exactly as sent (no content decoding), then close.

    :raises BadGateway: if the upstream connection breaks mid-body.
    """
    try:
        yield from response.raw.stream(chunk_size, decode_content=False)
    except Exception as exc:  # urllib3 raises several types for a broken body
        raise BadGateway("the WebDAV server broke off the response") from exc
    finally:
        response.close()


def forwardable_headers(response: requests.Response) -> list[tuple[str, str]]:
    """:returns: the upstream response headers minus hop-by-hop ones, for relaying."""
    # raw.headers keeps repeated headers (Set-Cookie, ...) apart; requests' view merges them.
    return [(k, v) for k, v in response.raw.headers.items() if k.lower() not in HOP_BY_HOP]


# -- a pool of clients, one per set of credentials ---------------------------------------------

MAX_CACHED_CLIENTS = 64
_CLIENTS: ClientPool[WebDAVClient] = ClientPool(MAX_CACHED_CLIENTS)


def client_for(
    url: str, username: str, password: str, policy: OutboundPolicy = DEFAULT_POLICY
) -> WebDAVClient:
    """:returns: a pooled :class:`WebDAVClient` for these settings (connections are reused)."""
    key = (url, username, hashlib.sha256(password.encode()).hexdigest(), policy)
    return _CLIENTS.get(key, lambda: WebDAVClient(url, username, password, policy=policy))


def close_clients() -> None:
    """Close every pooled client (tests and server shutdown)."""
    _CLIENTS.close_all()


__all__ = [
    "DAVResource",
    "UpstreamError",
    "WebDAVClient",
    "client_for",
    "close_clients",
    "forwardable_headers",
    "iter_raw",
    "normalize_path",
]
