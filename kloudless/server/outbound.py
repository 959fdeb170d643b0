"""The outbound-request policy: where the server may connect on behalf of a user.

Every connection the server opens because of something a caller supplied (a WebDAV or CalDAV
account's URL at creation and on every call, pass-through, webhook deliveries, upload from a
URL, remotes and provider endpoints) goes through this module, so that an API caller or a
visitor of the consent page cannot make the server reach addresses only the server can reach
(server-side request forgery: ``http://127.0.0.1:…/admin``, the cloud metadata service at
``169.254.169.254``, a database on the LAN).

The rules
    1. The host is resolved once (IP literals in any spelling libc accepts, such as ``2130706433``
       or ``0177.0.0.1``, are parsed, not looked up).
    2. Every resolved address must be a public one: loopback, link-local, private (RFC 1918 and
       IPv6 unique-local ``fc00::/7``), shared (``100.64.0.0/10``), multicast, unspecified
       (``0.0.0.0``, ``::``), reserved and other non-global ranges are refused, and so are
       IPv4-mapped IPv6 addresses (``::ffff:127.0.0.1``) and IPv6 forms embedding a refused
       IPv4 address (6to4, NAT64), unless the operator's allowlist permits them.
    3. The connection goes to the address that was checked, never to a second resolution of the
       name (a DNS-rebinding name that resolves to a public address for the check and to
       ``127.0.0.1`` a moment later never reaches ``127.0.0.1``); TLS still verifies the
       certificate for the name and sends it as SNI, and ``Host`` carries the name.
    4. Redirects are not followed (the ``3xx`` answer is returned as is), or, where a caller
       asks for them, every hop is checked again by the same rules.
    5. No proxies or ``.netrc`` credentials from the environment.

The allowlist (``Settings.allow_upstream``, ``kloudless serve --allow-upstream ENTRY``,
``$KLOUDLESS_ALLOW_UPSTREAM``) holds entries of these forms:

=========================  ==========================================================
``nextcloud.lan``          this host name, on any port, whatever it resolves to
``nextcloud.lan:8443``     this host name on this port only
``10.1.2.3``, ``[fd00::5]``  this address, any port (``10.1.2.3:8080``, ``[fd00::5]:80``)
``192.168.0.0/16``         every address in this network (CIDR), any port
=========================  ==========================================================

Use
    .. code-block:: python

        from kloudless.server.outbound import OutboundRefused, policy_for

        policy = policy_for(settings)  # or OutboundPolicy.from_entries(["10.0.0.0/8"])
        target = policy.check_url("https://dav.example.com/remote.php/dav/")  # resolves, checks
        with policy.session() as session:  # a requests.Session pinned to checked addresses
            response = session.get("https://dav.example.com/x", timeout=10)

    ``check_url`` raises :class:`OutboundRefused` (a :class:`requests.ConnectionError`, so code
    handling connection failures also handles refusals) for a refused address, and
    ``ValueError`` for a URL that is not ``http(s)`` with a host. A session's requests raise
    the same :class:`OutboundRefused` before any connection is made.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Union
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.utils import select_proxy

if TYPE_CHECKING:
    from urllib3 import HTTPConnectionPool

    from .settings import Settings

__all__ = [
    "AllowRule",
    "OutboundError",
    "OutboundPolicy",
    "OutboundRefused",
    "OutboundSession",
    "PinnedAdapter",
    "Target",
    "blocked_reason",
    "parse_allow",
    "parse_ip",
    "policy_for",
]

Address = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
#: ``resolver(host, port) -> addresses`` (strings); the default asks the system (getaddrinfo).
Resolver = Callable[[str, int], Sequence[str]]

#: Environment variable read by the command line when no ``--allow-upstream`` is given.
ENV_ALLOW_UPSTREAM = "KLOUDLESS_ALLOW_UPSTREAM"
#: Attribute of a prepared request holding its checked :class:`Target` (adapter internal).
_TARGET = "_kloudless_outbound_target"
_NAME = re.compile(r"^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*$")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")

if not hasattr(HTTPAdapter, "get_connection_with_tls_context"):  # pragma: no cover
    # Older requests would connect to the name itself: the pinning below needs this hook.
    raise ImportError("kloudless.server.outbound needs requests >= 2.32.3")


class OutboundError(requests.exceptions.ConnectionError):
    """An outbound request that was not sent (base class)."""


class OutboundRefused(OutboundError):
    """The policy refuses to connect to this address.

    :ivar host: the host name (or IP literal) of the URL.
    :ivar address: the refused address.
    :ivar reason: why, e.g. ``"a loopback address"``.
    """

    def __init__(self, host: str, address: Address, reason: str) -> None:
        self.host = host
        self.address = address
        self.reason = reason
        shown = host if host == str(address) else f"{host} ({address})"
        super().__init__(
            f"{shown} is {reason}; this server does not connect there unless the operator "
            "allows it (kloudless serve --allow-upstream)"
        )


# -- the pure decisions --------------------------------------------------------------------------


def parse_ip(host: str) -> Address | None:
    """Parse an IP literal the way the C library would when connecting.

    :param host: a URL's host: ``127.0.0.1``, ``[::1]``, and also the legacy IPv4 spellings
        ``2130706433``, ``0x7f.1``, ``0177.0.0.1`` or ``127.1``.
    :returns: the address, or None for a host name.
    """
    text = host.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    if text and all(c in "0123456789abcdefABCDEFxX." for c in text) and text[0].isdigit():
        try:
            return ipaddress.IPv4Address(socket.inet_aton(text))
        except OSError:
            return None
    return None


def blocked_reason(address: Address) -> str | None:
    """:returns: why the policy refuses ``address`` by default (``"a loopback address"``, ...),
    or None for a public address. A pure function: nothing is resolved or contacted."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return "an IPv4-mapped IPv6 address"
        embedded = address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None and blocked_reason(embedded):
            return f"an IPv6 address embedding {blocked_reason(embedded)}"
        if address.teredo is not None:
            return "a Teredo address"
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if isinstance(address, ipaddress.IPv6Address) and address in ipaddress.ip_network("fc00::/7"):
        return "a unique-local (private) address"
    if address.is_private:
        return "a private address"
    if address.is_reserved:
        return "a reserved address"
    if not address.is_global:
        return "not a public address"
    return None


@dataclass(frozen=True)
class AllowRule:
    """One allowlist entry (see the module docstring); build it with :func:`parse_allow`."""

    text: str
    name: str | None = None
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None
    port: int | None = None

    def matches(self, host: str, address: Address, port: int) -> bool:
        """:returns: whether this entry permits ``address`` reached as ``host:port``."""
        if self.port is not None and port != self.port:
            return False
        if self.name is not None:
            return _name(host) == self.name
        assert self.network is not None
        return address.version == self.network.version and address in self.network


def _name(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()


def _port(text: str, entry: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"invalid port in allowlist entry {entry!r}")
    return int(text)


def parse_allow(entry: str) -> AllowRule:
    """Parse one allowlist entry: ``HOST``, ``HOST:PORT``, an IP (``[IPv6]:PORT``) or a CIDR.

    :raises ValueError: for a malformed entry.
    """
    text = entry.strip()
    if not text:
        raise ValueError("empty allowlist entry")
    if "/" in text:
        try:
            return AllowRule(text, network=ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise ValueError(f"invalid network in allowlist entry {entry!r}") from None
    port: int | None = None
    host = text
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or (end + 1 < len(text) and text[end + 1] != ":"):
            raise ValueError(f"invalid allowlist entry {entry!r}")
        host = text[1:end]
        if end + 1 < len(text):
            port = _port(text[end + 2 :], entry)
    elif text.count(":") == 1:
        host, port_text = text.split(":")
        port = _port(port_text, entry)
    address = parse_ip(host)
    if address is not None:
        return AllowRule(text, network=ipaddress.ip_network(address), port=port)
    name = _name(host)
    if not _NAME.match(name):
        raise ValueError(f"invalid host name in allowlist entry {entry!r}")
    return AllowRule(text, name=name, port=port)


def system_resolver(host: str, port: int) -> list[str]:
    """:returns: the addresses ``host`` resolves to (``getaddrinfo``), in preference order.

    :raises OutboundError: when the name does not resolve.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise OutboundError(f"cannot resolve {host}") from exc
    seen: list[str] = []
    for info in infos:
        address = str(info[4][0])
        if address not in seen:
            seen.append(address)
    return seen


@dataclass(frozen=True)
class Target:
    """A checked destination: connect to :attr:`address`, name the host :attr:`host`."""

    scheme: str
    host: str
    port: int
    address: Address

    @property
    def host_header(self) -> str:
        """:returns: the ``Host`` header value (the name, with the port unless default)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


@dataclass(frozen=True)
class OutboundPolicy:
    """The policy: refuse non-public addresses unless :attr:`allow` permits them.

    Frozen and hashable, so pooled clients can be keyed by the policy they were built with.

    :param allow: the allowlist rules.
    :param resolver: how names are resolved (tests inject one; default: the system's).
    """

    allow: tuple[AllowRule, ...] = ()
    resolver: Resolver | None = None

    @classmethod
    def from_entries(
        cls, entries: Iterable[str], resolver: Resolver | None = None
    ) -> OutboundPolicy:
        """:returns: a policy allowing ``entries`` (see :func:`parse_allow`).

        :raises ValueError: for a malformed entry."""
        return cls(tuple(parse_allow(e) for e in entries), resolver)

    def refusal(self, host: str, address: Address, port: int) -> str | None:
        """The decision for one address, as a pure function (nothing is contacted).

        :returns: why ``address`` (reached as ``host:port``) is refused, or None if allowed.
        """
        reason = blocked_reason(address)
        if reason is None or any(rule.matches(host, address, port) for rule in self.allow):
            return None
        return reason

    def resolve(self, host: str, port: int) -> Address:
        """Resolve ``host`` once and check every address it resolves to.

        :returns: the address to connect to (the first one).
        :raises OutboundRefused: when any address is refused.
        :raises OutboundError: when the name does not resolve.
        """
        literal = parse_ip(host)
        if literal is not None:
            addresses: list[Address] = [literal]
        else:
            names = (self.resolver or system_resolver)(host, port)
            addresses = []
            for text in names:
                address = parse_ip(text.split("%", 1)[0])  # drop an IPv6 zone id
                if address is None:
                    raise OutboundError(f"cannot resolve {host}")
                addresses.append(address)
        if not addresses:
            raise OutboundError(f"cannot resolve {host}")
        for address in addresses:
            reason = self.refusal(host, address, port)
            if reason is not None:
                raise OutboundRefused(host, address, reason)
        return addresses[0]

    def check_url(self, url: str, schemes: Sequence[str] = ("http", "https")) -> Target:
        """Check a URL before using it: scheme, host, and the addresses it resolves to.

        :returns: the checked :class:`Target`.
        :raises ValueError: when the URL is not one of ``schemes`` with a host.
        :raises OutboundRefused: when the policy refuses its address.
        """
        split = urlsplit(url)
        scheme = split.scheme.lower()
        try:
            port = split.port
        except ValueError:
            raise ValueError("the URL has an invalid port") from None
        if scheme not in schemes or not split.hostname:
            raise ValueError(f"the URL must be a {'/'.join(schemes)} URL with a host")
        port = port or (443 if scheme == "https" else 80)
        host = split.hostname.rstrip(".") if not split.hostname.startswith("[") else split.hostname
        return Target(scheme, host, port, self.resolve(host, port))

    def adapter(self, **kwargs: Any) -> PinnedAdapter:
        """:returns: a requests transport adapter enforcing this policy (``kwargs`` go to
        :class:`requests.adapters.HTTPAdapter`, e.g. ``max_retries``)."""
        return PinnedAdapter(self, **kwargs)

    def session(self, *, max_redirects: int = 0, **adapter_kwargs: Any) -> OutboundSession:
        """:param max_redirects: 0 (default): redirects are returned, not followed; N: follow up
            to N, every hop checked again.
        :returns: a :class:`requests.Session` whose every request obeys this policy."""
        return OutboundSession(self, max_redirects=max_redirects, **adapter_kwargs)


class PinnedAdapter(HTTPAdapter):
    """A requests adapter that checks every request's URL with the policy and connects to the
    checked address (the pool is keyed by that address; ``Host`` and TLS SNI/verification keep
    the name). Proxies are refused: they would resolve the name themselves."""

    def __init__(self, policy: OutboundPolicy, **kwargs: Any) -> None:
        self.policy = policy
        super().__init__(**kwargs)

    def send(
        self, request: requests.PreparedRequest, *args: Any, **kwargs: Any
    ) -> requests.Response:
        """Check and send one request (every hop of a redirect chain comes through here)."""
        try:
            target = self.policy.check_url(request.url or "")
        except ValueError as exc:
            raise requests.exceptions.InvalidURL(str(exc), request=request) from None
        request.headers["Host"] = target.host_header
        setattr(request, _TARGET, target)
        return super().send(request, *args, **kwargs)

    def get_connection_with_tls_context(
        self,
        request: requests.PreparedRequest,
        verify: Any,
        proxies: Any = None,
        cert: Any = None,
    ) -> HTTPConnectionPool:
        """:returns: the connection pool of the checked address (see the class docstring)."""
        target: Target | None = getattr(request, _TARGET, None)
        if target is None:
            raise OutboundError("request was not checked by the outbound policy", request=request)
        if select_proxy(request.url or "", proxies):
            raise OutboundError("proxies are not used for outbound requests", request=request)
        host_params, key_kwargs = self.build_connection_pool_key_attributes(request, verify, cert)
        pool_kwargs: dict[str, Any] = dict(key_kwargs)
        host_params["host"] = str(target.address)
        host_params["port"] = target.port
        if target.scheme == "https":
            pool_kwargs["server_hostname"] = target.host
        pool: HTTPConnectionPool = self.poolmanager.connection_from_host(
            **host_params, pool_kwargs=pool_kwargs
        )
        return pool


class OutboundSession(requests.Session):
    """A :class:`requests.Session` for outbound requests (make it with
    :meth:`OutboundPolicy.session`): every ``http(s)`` request goes through a
    :class:`PinnedAdapter`, no environment proxies or ``.netrc``, and redirects are not followed
    unless ``max_redirects`` > 0 (then each hop is checked again)."""

    def __init__(self, policy: OutboundPolicy, max_redirects: int = 0, **adapter_kwargs: Any):
        super().__init__()
        self.policy = policy
        self.trust_env = False
        self.max_redirects = max_redirects
        adapter = policy.adapter(**adapter_kwargs)
        self.mount("http://", adapter)
        self.mount("https://", adapter)

    def get_redirect_target(self, resp: requests.Response) -> str | None:
        """:returns: None when redirects are not followed (the 3xx answer is returned)."""
        if self.max_redirects <= 0:
            return None
        return super().get_redirect_target(resp)


@functools.lru_cache(maxsize=64)
def _cached(entries: tuple[str, ...]) -> OutboundPolicy:
    return OutboundPolicy.from_entries(entries)


def policy_for(settings: Settings) -> OutboundPolicy:
    """:returns: the policy of a server's settings (``Settings.allow_upstream``).

    :raises ValueError: for a malformed allowlist entry."""
    return _cached(tuple(settings.allow_upstream))


#: The policy without an allowlist (code that has no settings at hand).
DEFAULT_POLICY = OutboundPolicy()


def entries_from_env(value: str | None) -> list[str]:
    """:returns: the allowlist entries of ``$KLOUDLESS_ALLOW_UPSTREAM`` (comma or space
    separated)."""
    return [part for part in re.split(r"[\s,]+", value or "") if part]
