"""CardDAV (RFC 6352) requests over the WebDAV client's transport.

:class:`CardDAVClient` finds address books from a server URL (the URL itself when it is an
address book, else ``current-user-principal`` → ``addressbook-home-set`` → the home's address
book collections), reads cards with ``addressbook-multiget``, writes them with conditional
``PUT``/``DELETE`` (``If-Match``, ``If-None-Match: *``), and follows upstream changes with
``sync-collection`` (RFC 6578) where the server supports it.

Transport, credentials, timeouts and error mapping are the
:class:`~kloudless.server.connectors.webdav_client.WebDAVClient`'s (so credentials never leave
the account's host); XML answers are parsed with ElementTree, which does not fetch external
entities.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urljoin, urlsplit

from kloudless.server.connectors.webdav_client import WebDAVClient
from kloudless.server.connectors.webdav_errors import BadGateway, UpstreamError
from kloudless.server.errors import ApiError

DAV = "DAV:"
CARD = "urn:ietf:params:xml:ns:carddav"
#: Cards fetched per ``addressbook-multiget`` request.
MULTIGET_BATCH = 200
#: Most responses read from one multistatus answer (a bound on hostile servers).
MAX_RESPONSES = 20000
#: Largest multistatus body read (bytes).
MAX_XML_BYTES = 64 * 1024 * 1024

ET.register_namespace("d", DAV)
ET.register_namespace("card", CARD)


class SyncUnsupported(Exception):
    """The server does not offer ``sync-collection`` (or refused the token)."""


@dataclass
class Card:
    """One address object: its resource name in the book, etag and (when read) text."""

    name: str
    etag: str
    text: str | None = None


@dataclass
class AddressBook:
    """An address book collection: its absolute URL, last path segment and display name."""

    url: str
    name: str
    display_name: str | None
    supports_sync: bool


def _tag(ns: str, name: str) -> str:
    return f"{{{ns}}}{name}"


def _segment(url: str) -> str:
    return unquote(urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1])


def _etag(value: str | None) -> str:
    """:returns: an etag without quotes or the weak prefix."""
    text = (value or "").strip()
    if text.startswith("W/"):
        text = text[2:]
    return text.strip('"')


def _body(*parts: str) -> bytes:
    return ('<?xml version="1.0" encoding="utf-8"?>' + "".join(parts)).encode("utf-8")


_NS = f'xmlns:d="{DAV}" xmlns:card="{CARD}"'


class CardDAVClient:
    """CardDAV operations for one account.

    :param client: the (pooled) WebDAV transport rooted at the account's URL.
    """

    def __init__(self, client: WebDAVClient) -> None:
        self.client = client
        self.origin = "{0.scheme}://{0.netloc}".format(urlsplit(client.root_url))

    # -- plumbing ------------------------------------------------------------------------------
    def _absolute(self, href: str) -> str:
        url = urljoin(self.client.root_url, href)
        split = urlsplit(url)
        if f"{split.scheme}://{split.netloc}" != self.origin:
            # Credentials stay on the account's host, whatever the server's answers say.
            raise BadGateway("The CardDAV server pointed at another host.")
        return url

    def _multistatus(self, method: str, url: str, body: bytes, depth: str) -> list[ET.Element]:
        response = self.client.request(
            method,
            url,
            headers={"Depth": depth, "Content-Type": 'application/xml; charset="utf-8"'},
            data=body,
            stream=True,
        )
        try:
            content = _bounded(response)
        finally:
            response.close()
        return _responses(content)

    @staticmethod
    def _props(node: ET.Element) -> dict[str, ET.Element]:
        props: dict[str, ET.Element] = {}
        for propstat in node.findall(_tag(DAV, "propstat")):
            status = propstat.findtext(_tag(DAV, "status")) or ""
            if " 200 " not in f"{status} ":
                continue
            for prop in propstat.findall(_tag(DAV, "prop")):
                for child in prop:
                    props[child.tag] = child
        return props

    def _propfind(self, url: str, props: list[tuple[str, str]], depth: str) -> list[Any]:
        wanted = "".join(f"<{'d' if ns == DAV else 'card'}:{name}/>" for ns, name in props)
        body = _body(f"<d:propfind {_NS}><d:prop>{wanted}</d:prop></d:propfind>")
        out = []
        for node in self._multistatus("PROPFIND", url, body, depth):
            href = node.findtext(_tag(DAV, "href"))
            if href:
                out.append((self._absolute(href.strip()), self._props(node)))
        return out

    @staticmethod
    def _href(prop: ET.Element | None) -> str | None:
        if prop is None:
            return None
        text = prop.findtext(_tag(DAV, "href"))
        return text.strip() if text else None

    # -- discovery -----------------------------------------------------------------------------
    def _book(self, url: str, props: dict[str, ET.Element]) -> AddressBook | None:
        kind = props.get(_tag(DAV, "resourcetype"))
        if kind is None or kind.find(_tag(CARD, "addressbook")) is None:
            return None
        reports = props.get(_tag(DAV, "supported-report-set"))
        sync = (
            reports is not None and reports.find(f".//{_tag(DAV, 'sync-collection')}") is not None
        )
        name = props.get(_tag(DAV, "displayname"))
        return AddressBook(
            url=url if url.endswith("/") else url + "/",
            name=_segment(url),
            display_name=(name.text or "").strip() or None if name is not None else None,
            supports_sync=sync,
        )

    _BOOK_PROPS = [(DAV, "resourcetype"), (DAV, "displayname"), (DAV, "supported-report-set")]

    def home(self) -> str:
        """:returns: the address book home URL of the account's user.

        :raises ApiError: 501 when the server has no CardDAV home for the user.
        """
        start = self.client.root_url
        found = self._propfind(
            start,
            [(DAV, "current-user-principal"), (CARD, "addressbook-home-set"), *self._BOOK_PROPS],
            "0",
        )
        props = found[0][1] if found else {}
        home = self._href(props.get(_tag(CARD, "addressbook-home-set")))
        if home is None:
            principal = self._href(props.get(_tag(DAV, "current-user-principal")))
            if principal is not None:
                answer = self._propfind(
                    self._absolute(principal), [(CARD, "addressbook-home-set")], "0"
                )
                home = (
                    self._href(answer[0][1].get(_tag(CARD, "addressbook-home-set")))
                    if answer
                    else None
                )
        if home is None:
            raise ApiError(
                501, "not_implemented", "The server at this URL offers no CardDAV address books."
            )
        return self._absolute(home)

    def address_books(self) -> list[AddressBook]:
        """:returns: the address books at the account's URL (the URL itself when it is one),
        by collection name."""
        own = self._propfind(self.client.root_url, self._BOOK_PROPS, "0")
        if own:
            book = self._book(self.client.root_url, own[0][1])
            if book is not None:
                return [book]
        home = self.home()
        books = [
            book
            for url, props in self._propfind(home, self._BOOK_PROPS, "1")
            if url.rstrip("/") != home.rstrip("/")
            for book in [self._book(url, props)]
            if book is not None
        ]
        return sorted(books, key=lambda b: b.name)

    def book(self, url: str) -> AddressBook:
        """:returns: the address book at ``url``. :raises ApiError: 404 when it is not one."""
        found = self._propfind(self._absolute(url), self._BOOK_PROPS, "0")
        book = self._book(self._absolute(url), found[0][1]) if found else None
        if book is None:
            raise ApiError(404, "not_found", "The account's address book no longer exists.")
        return book

    def make_book(self, name: str, display_name: str) -> AddressBook:
        """Create an address book in the home (extended ``MKCOL``, RFC 5689)."""
        url = self.home().rstrip("/") + "/" + quote(name, safe="") + "/"
        body = _body(
            f"<d:mkcol {_NS}><d:set><d:prop><d:resourcetype><d:collection/>"
            "<card:addressbook/></d:resourcetype>"
            f"<d:displayname>{_xml_text(display_name)}</d:displayname>"
            "</d:prop></d:set></d:mkcol>"
        )
        self.client.request(
            "MKCOL", url, headers={"Content-Type": "application/xml"}, data=body
        ).close()
        return self.book(url)

    # -- cards ---------------------------------------------------------------------------------
    def card_url(self, book: AddressBook, name: str) -> str:
        """:returns: the URL of the card resource ``name`` in ``book``."""
        return book.url + quote(name, safe="")

    def list_cards(self, book: AddressBook) -> list[Card]:
        """:returns: every card's name and etag (a depth-1 PROPFIND)."""
        cards = []
        for url, props in self._propfind(book.url, [(DAV, "getetag"), (DAV, "resourcetype")], "1"):
            if url.rstrip("/") == book.url.rstrip("/"):
                continue
            kind = props.get(_tag(DAV, "resourcetype"))
            if kind is not None and kind.find(_tag(DAV, "collection")) is not None:
                continue
            etag = props.get(_tag(DAV, "getetag"))
            cards.append(Card(_segment(url), _etag(etag.text if etag is not None else "")))
        return cards

    def read_cards(self, book: AddressBook, names: list[str]) -> list[Card]:
        """:returns: the named cards with their text (``addressbook-multiget``); missing ones
        are left out."""
        out: list[Card] = []
        for start in range(0, len(names), MULTIGET_BATCH):
            chunk = names[start : start + MULTIGET_BATCH]
            hrefs = "".join(
                f"<d:href>{_xml_text(urlsplit(self.card_url(book, n)).path)}</d:href>"
                for n in chunk
            )
            body = _body(
                f"<card:addressbook-multiget {_NS}><d:prop><d:getetag/><card:address-data/>"
                f"</d:prop>{hrefs}</card:addressbook-multiget>"
            )
            for node in self._multistatus("REPORT", book.url, body, "1"):
                href = node.findtext(_tag(DAV, "href"))
                props = self._props(node)
                data = props.get(_tag(CARD, "address-data"))
                if not href or data is None:
                    continue
                etag = props.get(_tag(DAV, "getetag"))
                out.append(
                    Card(
                        _segment(href.strip()),
                        _etag(etag.text if etag is not None else ""),
                        data.text or "",
                    )
                )
        return out

    def get_card(self, book: AddressBook, name: str) -> Card:
        """:returns: one card. :raises ApiError: 404 when it does not exist."""
        response = self.client.request("GET", self.card_url(book, name))
        try:
            text = response.content.decode("utf-8", errors="replace")
            return Card(name, _etag(response.headers.get("ETag")), text)
        finally:
            response.close()

    def put_card(self, book: AddressBook, name: str, text: str, etag: str | None) -> str:
        """Write a card: a new one (``etag`` None: ``If-None-Match: *``) or a replacement of
        version ``etag`` (``If-Match``).

        :returns: the new etag.
        :raises ApiError: 412 ``precondition_failed`` when the card changed (or exists).
        """
        headers = {"Content-Type": "text/vcard; charset=utf-8"}
        if etag is None:
            headers["If-None-Match"] = "*"
        else:
            headers["If-Match"] = f'"{etag}"'
        url = self.card_url(book, name)
        response = self.client.request(
            "PUT", url, headers=headers, data=text.encode("utf-8"), ok=(412,)
        )
        response.close()
        if response.status_code == 412:
            raise ApiError(412, "precondition_failed", "The contact changed on the CardDAV server.")
        new = _etag(response.headers.get("ETag"))
        if not new:
            # Servers may change the card as they store it and then send no ETag (RFC 6352
            # §6.3.2.3): ask for the stored version's.
            found = self._propfind(url, [(DAV, "getetag")], "0")
            prop = found[0][1].get(_tag(DAV, "getetag")) if found else None
            new = _etag(prop.text if prop is not None else "")
        return new

    def delete_card(self, book: AddressBook, name: str, etag: str | None) -> None:
        """:raises ApiError: 404, or 412 when the card changed since version ``etag``."""
        headers = {} if etag is None else {"If-Match": f'"{etag}"'}
        response = self.client.request(
            "DELETE", self.card_url(book, name), headers=headers, ok=(412,)
        )
        response.close()
        if response.status_code == 412:
            raise ApiError(412, "precondition_failed", "The contact changed on the CardDAV server.")

    # -- sync ----------------------------------------------------------------------------------
    def sync(self, book: AddressBook, token: str | None) -> tuple[list[Card], list[str], str]:
        """Changes since ``token`` (all cards for None): ``sync-collection`` (RFC 6578).

        :returns: ``(changed cards with etags, names of removed cards, new token)``.
        :raises SyncUnsupported: when the server does not support it or refused the token.
        """
        if not book.supports_sync:
            raise SyncUnsupported(book.url)
        body = _body(
            f"<d:sync-collection {_NS}><d:sync-token>{_xml_text(token or '')}</d:sync-token>"
            "<d:sync-level>1</d:sync-level><d:prop><d:getetag/></d:prop></d:sync-collection>"
        )
        try:
            response = self.client.request(
                "REPORT",
                book.url,
                headers={"Content-Type": 'application/xml; charset="utf-8"'},
                data=body,
                ok=(400, 403, 409, 412, 501),
                stream=True,
            )
        except UpstreamError:
            raise SyncUnsupported(book.url) from None
        try:
            if response.status_code != 207:
                raise SyncUnsupported(book.url)
            content = _bounded(response)
        finally:
            response.close()
        changed, removed = [], []
        tree = _multistatus_tree(content)
        for node in tree.findall(_tag(DAV, "response"))[:MAX_RESPONSES]:
            href = (node.findtext(_tag(DAV, "href")) or "").strip()
            if not href or self._absolute(href).rstrip("/") == book.url.rstrip("/"):
                continue
            status = node.findtext(_tag(DAV, "status")) or ""
            if " 404 " in f"{status} ":
                removed.append(_segment(href))
                continue
            etag = self._props(node).get(_tag(DAV, "getetag"))
            changed.append(Card(_segment(href), _etag(etag.text if etag is not None else "")))
        new_token = (tree.findtext(_tag(DAV, "sync-token")) or "").strip()
        if not new_token:
            raise SyncUnsupported(book.url)
        return changed, removed, new_token


def _multistatus_tree(content: bytes) -> ET.Element:
    """:returns: the parsed ``multistatus`` document. :raises BadGateway: for anything else."""
    try:
        tree = ET.fromstring(content)
    except ET.ParseError:
        raise BadGateway("The CardDAV server sent malformed XML.") from None
    if tree.tag != _tag(DAV, "multistatus"):
        raise BadGateway("The CardDAV server's answer is not a multistatus document.")
    return tree


def _responses(content: bytes) -> list[ET.Element]:
    """:returns: the ``response`` elements of a multistatus body (at most MAX_RESPONSES)."""
    return _multistatus_tree(content).findall(_tag(DAV, "response"))[:MAX_RESPONSES]


def _bounded(response: Any) -> bytes:
    """:returns: the response body. :raises BadGateway: past :data:`MAX_XML_BYTES`."""
    content = response.raw.read(MAX_XML_BYTES + 1, decode_content=True)
    if len(content) > MAX_XML_BYTES:
        raise BadGateway("The CardDAV server's answer is too large.")
    return bytes(content)


def _xml_text(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
