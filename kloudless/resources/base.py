"""Response wrappers: ``Response``, ``ResponseJson``, ``Resource`` and ``ResourceList``.

Every wrapper can send further requests relative to its own URL (``resource.get('contents')``,
``folder.patch(json=...)``, ``calendar.get('events?page_size=5')``) through the client that made
it, so the same credential and origin rules apply.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qs, quote, urlsplit, urlunsplit

from ..exceptions import InvalidParameter, NoNextPage, NotFoundException
from ..util import url_join

if TYPE_CHECKING:  # pragma: no cover
    import requests


class ResourceClient(Protocol):
    """What a resource needs from its client (a :class:`kloudless.client.Client` or a
    :class:`kloudless.account.Account`): the five verbs, each joining ``path`` onto the
    client's URL and wrapping the response."""

    def get(self, path: str = "", **kwargs: Any) -> Any: ...

    def post(self, path: str = "", data: Any = None, json: Any = None, **kwargs: Any) -> Any: ...

    def put(self, path: str = "", data: Any = None, **kwargs: Any) -> Any: ...

    def patch(self, path: str = "", data: Any = None, **kwargs: Any) -> Any: ...

    def delete(self, path: str = "", **kwargs: Any) -> Any: ...


__all__ = [
    "Empty",
    "Resource",
    "ResourceList",
    "Response",
    "ResponseJson",
    "empty",
    "is_download_url",
]

# Account activity lists (``accounts/<id>/events``) page by cursor.
events_pattern = re.compile(r"/accounts/[^/?#]+/events/?$")
# The account prefix of a URL: ``.../v<n>/accounts/<id>``.
account_prefix_pattern = re.compile(r"^https?://.+?/v\d+/accounts/[^/?#]+", re.IGNORECASE)
# A URL that *is* an account (``.../accounts/<id>``): Account.get() keeps it as the resource URL.
account_url_pattern = re.compile(r"/v\d+/accounts/[^/?#]+/?$")
# File-content downloads: always returned as a streamed Response, whatever the content type.
download_file_patterns = re.compile(
    r"storage/files/[^?#]+?/contents|storage/files/[^?#]+?/thumbnail|meta/licenses/[^?#]+?/contents"
)
primary_calendar_alias = re.compile(r"cal/calendars/primary/?$")

# Headers worth repeating on the next page or a refresh when the caller's own headers are not
# known (a wrapper built around a response the SDK did not send): the Kloudless per-call options.
_REPLAYED_HEADER_PREFIX = "x-kloudless-"
#: Caller headers a next page or ``refresh()`` never repeats: the credentials (the client's
#: current ones are attached instead), and those that belong to one request only.
NOT_REPLAYED_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "idempotency-key",
        "content-length",
        "content-type",
        "content-encoding",
        "content-md5",
        "transfer-encoding",
        "expect",
        "host",
    }
)
# The attribute of a requests.Response holding the headers its caller passed.
_CALLER_HEADERS = "_kloudless_caller_headers"


def remember_caller_headers(response: Any, headers: Any) -> None:
    """Keep the headers a caller passed for a request on its response, minus
    :data:`NOT_REPLAYED_HEADERS`, so that the next page and ``refresh()`` send them again (as
    2.x did).

    :param response: the ``requests.Response``.
    :param headers: the headers the caller passed (with the SDK's ``X-Kloudless-*`` options).
    """
    kept = {
        str(key): value
        for key, value in dict(headers or {}).items()
        if value is not None and str(key).lower() not in NOT_REPLAYED_HEADERS
    }
    setattr(response, _CALLER_HEADERS, kept)


# Characters kept as-is when an id becomes a path segment.
_ID_SAFE = ":@!$&'()*+,;=-._~"


def is_download_url(url: str) -> bool:
    """Tell whether ``url`` is a file-content download (``storage/files/<id>/contents`` ...).

    :param url: a URL or path.
    :returns: ``True`` for downloads.
    """
    return download_file_patterns.search(urlsplit(url).path) is not None


class Empty:
    """Marks a key missing from the JSON (distinct from JSON ``null``)."""

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "empty"


#: The :class:`Empty` singleton.
empty = Empty()


def _quote_id(object_id: Any) -> str:
    return quote(str(object_id), safe=_ID_SAFE)


class Response:
    """Base wrapper of an API response.

    Attributes not defined here are read from the ``requests.Response`` (``status_code``,
    ``headers``, ``content``, ``text``, ``json()``, ``iter_content()``, ``raw``...).

    :param client: the client that made the request.
    :param url: the request URL; its query string goes to :attr:`query_params`.
    :param response: the ``requests.Response``, if any.

    :ivar str url: URL of this object, used as the prefix of its own requests.
    :ivar dict query_params: the query parameters of the request (a dict of lists, blank values
        kept).
    :ivar client: :class:`kloudless.client.Client` or :class:`kloudless.account.Account`.
    :ivar response: ``requests.Response`` if available.
    """

    def __init__(
        self, client: ResourceClient, url: str, response: requests.Response | None = None
    ) -> None:
        parts = urlsplit(url)
        request = getattr(response, "request", None)
        self._set_fields(
            client,
            urlunsplit(parts._replace(query="")),
            parse_qs(parts.query, keep_blank_values=True),
            response,
            request.url if request is not None and request.method == "GET" else None,
        )

    def _set_fields(
        self,
        client: ResourceClient,
        url: str,
        query_params: dict[str, list[str]],
        response: requests.Response | None,
        request_url: str | None,
    ) -> None:
        """Set the attributes every wrapper has (the one place that lists them)."""
        self.client = client
        self.url = url
        self.query_params = query_params
        self.response = response
        # The URL (query included) to GET again on refresh(); None when the object did not come
        # from a GET of its own.
        self._request_url = request_url

    def __getattr__(self, name: str) -> Any:
        # Only called for missing attributes. Looking in __dict__ directly avoids recursion while
        # the object is being copied or unpickled (no 'response' yet).
        response = self.__dict__.get("response")
        if response is None or name.startswith("__"):
            raise AttributeError(name)
        return getattr(response, name)

    def __copy__(self) -> Response:
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        return new

    def __deepcopy__(self, memo: dict[int, Any]) -> Response:
        # Data is copied; the client (a connection pool) and the raw response are shared.
        new = object.__new__(type(self))
        memo[id(self)] = new
        for key, value in self.__dict__.items():
            if key in ("client", "response"):
                new.__dict__[key] = value
            else:
                new.__dict__[key] = copy.deepcopy(value, memo)
        return new

    def _replay_headers(self) -> dict[str, str]:
        """The headers the caller passed for the original request (see
        :func:`remember_caller_headers`; never ``Authorization``), or, for a response the SDK
        did not send, its ``X-Kloudless-*`` headers."""
        kept = getattr(self.response, "__dict__", {}).get(_CALLER_HEADERS)
        if kept is not None:
            return dict(kept)
        request = getattr(self.response, "request", None)
        if request is None:
            return {}
        return {
            key: value
            for key, value in request.headers.items()
            if key.lower().startswith(_REPLAYED_HEADER_PREFIX)
        }

    def get(self, path: str = "", **kwargs: Any) -> Any:
        """GET ``self.url`` + ``path`` through ``self.client.get``.

        :returns: :class:`Response` or a subclass.
        """
        return self.client.get(url_join(self.url, path), **kwargs)

    def post(self, path: str = "", data: Any = None, json: Any = None, **kwargs: Any) -> Any:
        """POST to ``self.url`` + ``path`` through ``self.client.post``.

        :returns: :class:`Response` or a subclass.
        """
        return self.client.post(url_join(self.url, path), data=data, json=json, **kwargs)

    def put(self, path: str = "", data: Any = None, **kwargs: Any) -> Any:
        """PUT to ``self.url`` + ``path`` through ``self.client.put``.

        :returns: :class:`Response` or a subclass.
        """
        return self.client.put(url_join(self.url, path), data=data, **kwargs)

    def patch(self, path: str = "", data: Any = None, **kwargs: Any) -> Any:
        """PATCH ``self.url`` + ``path`` through ``self.client.patch``.

        :returns: :class:`Response` or a subclass.
        """
        return self.client.patch(url_join(self.url, path), data=data, **kwargs)

    def delete(self, path: str = "", **kwargs: Any) -> Any:
        """DELETE ``self.url`` + ``path`` through ``self.client.delete``.

        :returns: :class:`Response` or a subclass.
        """
        return self.client.delete(url_join(self.url, path), **kwargs)

    def download(
        self,
        dest: Any,
        chunk_size: int = 1024 * 1024,
        progress: Any = None,
        resume: bool = True,
        keep_partial: bool = False,
        continue_partial: bool = False,
    ) -> Any:
        """Stream this file's contents to ``dest``.

        See :func:`kloudless.transfer.download_resource`. On an answer with a body instead of a
        file object (such as ``file.get("contents")``), save that body
        (:func:`kloudless.transfer.save_body`).

        :param dest: a path, a folder, or a binary file object.
        :param chunk_size: bytes per read.
        :param progress: ``callback(bytes_done, total)``.
        :param resume: resume with ``Range`` after a dropped connection.
        :param keep_partial: keep the bytes of a failed download to continue later.
        :param continue_partial: continue from such kept bytes when still valid.
        :returns: what :func:`~kloudless.transfer.download_resource` returns.
        """
        from ..transfer import download_resource

        return download_resource(
            self,
            dest,
            chunk_size=chunk_size,
            progress=progress,
            resume=resume,
            keep_partial=keep_partial,
            continue_partial=continue_partial,
        )

    def _get_self(self) -> Response:
        if self._request_url is not None:
            return self.client.get(self._request_url, headers=self._replay_headers())
        return self.client.get(self.url)

    def refresh(self) -> None:
        """GET this object again and update ``self`` in place (its class too, if it changed).

        The original query parameters and the caller's headers are reused when the object came
        from a GET (not ``Authorization``, ``Idempotency-Key`` or body headers); the client's
        current credentials are sent.
        """
        new = self._get_self()
        self.__dict__.clear()
        self.__dict__.update(new.__dict__)
        self.__class__ = type(new)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url}>"


class ResponseJson(Response):
    """A JSON response.

    :param data: the parsed JSON (normally a dict).
    :param kwargs: ``client``, ``url``, ``response``.

    :ivar data: the JSON data.
    """

    def __init__(self, data: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.data = data


class Resource(ResponseJson):
    """A resource object (it has an ``id`` or ``href``) whose :attr:`url` addresses it.

    URL rules: the ``href`` when given; ``.../cal/calendars/primary`` stays the alias; storage files
    and folders get ``{account URL}/storage/{files|folders}/{id}``; an account object keeps its
    account URL; otherwise ``{url}/{id}`` unless the last segment already is that id.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.url = self._construct_url(self.data, self.url)

    @classmethod
    def _list_item(
        cls,
        data: Any,
        list_url: str,
        query_params: dict[str, list[str]],
        client: ResourceClient,
        response: requests.Response | None,
    ) -> Resource:
        """Build one item of a list page from the list's already parsed URL.

        A 1000-item page would otherwise split and parse the same URL a thousand times. The item
        shares the list's response but is not what that request returned, so it has no
        request URL of its own to refresh from.
        """
        item = cls.__new__(cls)
        item._set_fields(
            client, list_url, {k: list(v) for k, v in query_params.items()}, response, None
        )
        item.data = data
        item.url = cls._construct_url(data, list_url)
        return item

    @staticmethod
    def _construct_url(data: Any, url: str) -> str:
        if not isinstance(data, dict):
            return url
        href = data.get("href")
        if href:
            return url_join(_origin_url(url), str(href)) if str(href).startswith("/") else str(href)
        if primary_calendar_alias.search(url):
            return url
        object_id = data.get("id")
        if data.get("api") == "storage" and data.get("type") in ("file", "folder"):
            prefix = account_prefix_pattern.match(url)
            if prefix and object_id not in (None, ""):
                return f"{prefix.group(0)}/storage/{data['type']}s/{_quote_id(object_id)}"
        if account_url_pattern.search(url) and data.get("type", "account") == "account":
            return url
        if object_id is None or object_id == "":
            return url
        quoted = _quote_id(object_id)
        if url.rstrip("/").rsplit("/", 1)[-1] == quoted:
            return url
        return url_join(url, quoted)

    def __repr__(self) -> str:
        data = self.data if isinstance(self.data, dict) else {}
        api = data.get("api") or ""
        kind = str(data.get("type") or "").capitalize()
        return f"<Resource({api} {kind}): {data}>"


def _origin_url(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class ResourceList(ResponseJson):
    """A list of resources (``type == 'object_list'``); iterable, sized and indexable.

    Non-event lists page by ``next_page`` (or ``page + 1``); account activity lists
    (``accounts/<id>/events``, or a list with a ``cursor`` and no page keys) page by ``cursor``
    and end on an empty page, a ``cursor`` of ``-1`` or missing, or ``remaining == 0``.

    :ivar objects: the :class:`Resource` items of this page.
    :ivar api: the ``api`` of the list, or ``empty``.
    :ivar type: the ``type`` of the list, or ``empty``.
    :ivar page: page mode: the ``page`` value, or ``empty``.
    :ivar next_page: page mode: the ``next_page`` value, or ``empty``.
    :ivar cursor: cursor mode: the ``cursor`` value, or ``empty``.
    :ivar latest_cursor: cursor mode: after a full :meth:`get_paging_iterator` run, the cursor to
        use next time.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        data = self.data if isinstance(self.data, dict) else {}
        self.api = data.get("api", empty)
        self.type = data.get("type", empty)
        self.is_retrieving_events = bool(events_pattern.search(self.url)) or (
            "cursor" in data and "page" not in data and "next_page" not in data
        )
        if self.is_retrieving_events:
            self.cursor = data.get("cursor", empty)
            self.latest_cursor: Any = None
        else:
            self.page = data.get("page", empty)
            self.next_page = data.get("next_page", empty)
        objects = data.get("objects") or []
        self.objects: list[Resource] = [
            Resource._list_item(o, self.url, self.query_params, self.client, self.response)
            for o in objects
        ]

    def __iter__(self) -> Iterator[Resource]:
        return iter(self.objects)

    def __len__(self) -> int:
        return len(self.objects)

    def __getitem__(self, index: Any) -> Any:
        return self.objects[index]

    def __bool__(self) -> bool:
        return bool(self.objects)

    def __repr__(self) -> str:
        return f"<ResourceList {self.url} ({len(self.objects)} objects)>"

    def _get_next_page_identifier(self) -> Any:
        if not self.objects:
            return None  # an empty page ends the list
        if self.next_page is not empty:
            return self.next_page if self.next_page not in (None, "") else None
        if isinstance(self.page, int) and not isinstance(self.page, bool):
            return self.page + 1
        return None

    def _get_query_params_for_pagination(self) -> dict[str, list[str]]:
        key = "cursor" if self.is_retrieving_events else "page"
        return {k: list(v) for k, v in self.query_params.items() if k != key}

    def get_next_page(self) -> ResourceList:
        """Get the resources of the next page, if any.

        :returns: the next :class:`ResourceList`.
        :raises kloudless.exceptions.NoNextPage: when there is none (no identifier, an empty page,
            a ``404``, a cursor of ``-1``, or a page that repeats the current one).
        """
        params: dict[str, Any] = self._get_query_params_for_pagination()
        if self.is_retrieving_events:
            if self.cursor is empty or self.cursor is None or str(self.cursor) == "-1":
                raise NoNextPage(cursor=self.cursor)
            if not self.objects or (
                isinstance(self.data, dict) and self.data.get("remaining") == 0
            ):
                raise NoNextPage(cursor=self.cursor)  # empty page, or the server says no more
            current = self.query_params.get("cursor")
            if current and current[-1] == str(self.cursor):
                raise NoNextPage(cursor=self.cursor)  # the server repeated the cursor
            params["cursor"] = self.cursor
        else:
            identifier = self._get_next_page_identifier()
            if identifier is None:
                raise NoNextPage()
            current = self.query_params.get("page")
            if current and current[-1] == str(identifier):
                raise NoNextPage()  # the server repeated the page
            params["page"] = identifier
        try:
            new = self.client.get(self.url, params=params, headers=self._replay_headers())
        except NotFoundException:
            raise NoNextPage(cursor=getattr(self, "cursor", None)) from None
        if not isinstance(new, ResourceList):
            raise NoNextPage(cursor=getattr(self, "cursor", None))
        if self.is_retrieving_events and not new.objects:
            raise NoNextPage(cursor=self.cursor)
        return new

    def get_paging_iterator(self, max_resources: int | None = None) -> Iterator[Resource]:
        """Iterate over the resources of this page and of the following pages (fetched lazily).

        For event lists, :attr:`latest_cursor` is set when the iteration reaches the end (not when
        it stops at ``max_resources`` or the consumer stops early).

        :param max_resources: the most resources to yield (``0`` yields none); ``None``: all.
        :returns: a generator of :class:`Resource`.
        :raises kloudless.exceptions.InvalidParameter: for a negative ``max_resources``.
        """
        if max_resources is not None and (
            isinstance(max_resources, bool) or int(max_resources) < 0
        ):
            raise InvalidParameter("max_resources must be None or a non-negative integer.")
        return self._iterate(max_resources)

    def _iterate(self, max_resources: int | None) -> Iterator[Resource]:
        if max_resources == 0:
            return
        count = 0
        page: ResourceList = self
        seen: set[str] = set()
        while True:
            for resource in page:
                yield resource
                count += 1
                if max_resources is not None and count >= max_resources:
                    return
            marker = repr(
                page.cursor if page.is_retrieving_events else page._get_next_page_identifier()
            )
            if marker in seen:  # the server sent the same page pointer twice: stop
                if self.is_retrieving_events:
                    self.latest_cursor = page.cursor
                return
            seen.add(marker)
            try:
                page = page.get_next_page()
            except NoNextPage as error:
                if self.is_retrieving_events:
                    self.latest_cursor = error.cursor
                return
