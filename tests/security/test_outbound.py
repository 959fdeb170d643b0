"""The outbound-request policy (:mod:`kloudless.server.outbound`) on its own.

Decisions about non-loopback addresses (link-local, private, public) are checked as pure
functions, with an injected resolver: nothing here connects beyond loopback, even if the code
under test were wrong. The connection path is exercised only with loopback targets: refused by
default, reachable once allowlisted."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator, Sequence
from typing import Any, Callable

import pytest
import requests

from kloudless.server.outbound import (
    DEFAULT_POLICY,
    OutboundError,
    OutboundPolicy,
    OutboundRefused,
    blocked_reason,
    entries_from_env,
    parse_allow,
    parse_ip,
    policy_for,
)
from kloudless.server.settings import Settings

from .conftest import LoopbackServer, Reply, Seen

TIMEOUT = 10


def ok(seen: Seen) -> tuple[int, dict[str, str], bytes]:
    return 200, {"Content-Type": "text/plain"}, b"inside"


def fake_resolver(table: dict[str, Sequence[str]]) -> Callable[[str, int], Sequence[str]]:
    """A resolver that answers from ``table`` and refuses everything else (no DNS traffic)."""

    def resolve(host: str, port: int) -> Sequence[str]:
        if host not in table:
            raise OutboundError(f"cannot resolve {host}")
        return table[host]

    return resolve


# -- the pure decisions ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.255.254", "loopback"),
        ("0.0.0.0", "unspecified"),
        ("0.1.2.3", "private"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),  # the cloud metadata service
        ("100.64.0.1", "not a public"),  # shared address space (carrier NAT)
        ("224.0.0.1", "multicast"),
        ("255.255.255.255", "private"),
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fe80::1", "link-local"),
        ("fc00::1", "unique-local"),
        ("fd12:3456::1", "unique-local"),
        ("ff02::1", "multicast"),
        ("::ffff:127.0.0.1", "IPv4-mapped"),
        ("::ffff:8.8.8.8", "IPv4-mapped"),  # mapped forms are refused whatever they embed
        ("2002:7f00:1::", "embedding a loopback"),  # 6to4 of 127.0.0.1
        ("64:ff9b::a9fe:a9fe", "embedding a link-local"),  # NAT64 of 169.254.169.254
        ("2001:db8::1", "private"),  # documentation range
    ],
)
def test_non_public_addresses_are_refused(address: str, reason: str) -> None:
    found = blocked_reason(ipaddress.ip_address(address))
    assert found is not None and reason in found


@pytest.mark.parametrize("address", ["8.8.8.8", "93.184.216.34", "2606:4700:4700::1111"])
def test_public_addresses_pass(address: str) -> None:
    assert blocked_reason(ipaddress.ip_address(address)) is None
    assert DEFAULT_POLICY.refusal("example.com", ipaddress.ip_address(address), 443) is None


@pytest.mark.parametrize(
    ("spelling", "address"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),  # decimal
        ("0x7f000001", "127.0.0.1"),  # hexadecimal
        ("0177.0.0.1", "127.0.0.1"),  # octal
        ("0177.0.0.01", "127.0.0.1"),
        ("127.1", "127.0.0.1"),  # short form
        ("0x7f.1", "127.0.0.1"),
        ("0", "0.0.0.0"),
        ("[::1]", "::1"),
        ("[::ffff:127.0.0.1]", "::ffff:7f00:1"),
        ("::ffff:7f00:1", "::ffff:7f00:1"),
    ],
)
def test_ip_spellings_are_parsed_as_the_c_library_does(spelling: str, address: str) -> None:
    assert parse_ip(spelling) == ipaddress.ip_address(address)


@pytest.mark.parametrize("name", ["example.com", "1e100.net", "localhost", "0x7f.example", ""])
def test_host_names_are_not_ip_literals(name: str) -> None:
    assert parse_ip(name) is None


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://2130706433:8080/admin",
        "http://0x7f.1/",
        "http://0177.0.0.1/",
        "http://0.0.0.0:8002/",
        "http://[::1]:8002/",
        "http://[::ffff:127.0.0.1]/",
        "https://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/",
        "http://[fd00::1]/",
    ],
)
def test_literal_urls_are_refused_without_resolving(url: str) -> None:
    def no_dns(host: str, port: int) -> Sequence[str]:
        raise AssertionError(f"an IP literal was resolved: {host}")

    with pytest.raises(OutboundRefused) as info:
        OutboundPolicy(resolver=no_dns).check_url(url)
    assert "--allow-upstream" in str(info.value)


def test_names_resolving_to_refused_addresses() -> None:
    policy = OutboundPolicy(
        resolver=fake_resolver(
            {
                "intranet.example": ["10.0.0.5"],
                "metadata.example": ["169.254.169.254"],
                "mixed.example": ["93.184.216.34", "127.0.0.1"],  # any bad address refuses
                "public.example": ["93.184.216.34", "2606:4700:4700::1111"],
                "zoned.example": ["fe80::1%eth0"],
            }
        )
    )
    for name, reason in [
        ("intranet.example", "private"),
        ("metadata.example", "link-local"),
        ("mixed.example", "loopback"),
        ("zoned.example", "link-local"),
    ]:
        with pytest.raises(OutboundRefused) as info:
            policy.check_url(f"https://{name}/dav/")
        assert info.value.host == name and reason in info.value.reason
    target = policy.check_url("https://public.example/dav/")  # decided, nothing contacted
    assert (target.host, target.port, str(target.address)) == (
        "public.example",
        443,
        "93.184.216.34",
    )
    assert target.host_header == "public.example"
    assert policy.check_url("http://public.example:8080/").host_header == "public.example:8080"
    with pytest.raises(OutboundError):
        policy.check_url("http://unknown.example/")


def test_localhost_resolves_to_loopback_and_is_refused() -> None:
    with pytest.raises(OutboundRefused):
        DEFAULT_POLICY.check_url("http://localhost:8002/")  # the system resolver, /etc/hosts
    with pytest.raises(OutboundRefused):
        DEFAULT_POLICY.check_url("http://LOCALHOST.:8002/")


@pytest.mark.parametrize(
    "url", ["ftp://example.com/", "file:///etc/passwd", "javascript:alert(1)", "http:///x", "x"]
)
def test_only_http_urls_with_a_host(url: str) -> None:
    with pytest.raises(ValueError):
        DEFAULT_POLICY.check_url(url)


def test_allowlist_entries() -> None:
    policy = OutboundPolicy.from_entries(
        ["10.0.0.0/8", "nextcloud.lan:8443", "[fd00::5]:80", "127.0.0.1", "192.168.1.7:8080"],
        resolver=fake_resolver({"nextcloud.lan": ["192.168.1.20"], "other.lan": ["10.9.9.9"]}),
    )

    def allowed(host: str, address: str, port: int) -> bool:
        return policy.refusal(host, ipaddress.ip_address(address), port) is None

    assert allowed("x", "10.200.0.1", 1234)  # CIDR, any port
    assert allowed("x", "11.0.0.1", 80)  # public anyway
    assert allowed("nextcloud.lan", "192.168.1.20", 8443)
    assert not allowed("nextcloud.lan", "192.168.1.20", 80)  # another port
    assert not allowed("evil.example", "192.168.1.20", 8443)  # the name is what is trusted
    assert allowed("x", "fd00::5", 80) and not allowed("x", "fd00::5", 81)
    assert allowed("x", "127.0.0.1", 9) and not allowed("x", "127.0.0.2", 9)
    assert allowed("x", "192.168.1.7", 8080) and not allowed("x", "192.168.1.7", 8081)
    assert not allowed("x", "169.254.169.254", 80)
    assert str(policy.check_url("https://nextcloud.lan:8443/").address) == "192.168.1.20"
    assert str(policy.check_url("http://other.lan/").address) == "10.9.9.9"  # via the CIDR
    with pytest.raises(OutboundRefused):
        policy.check_url("https://nextcloud.lan/")


@pytest.mark.parametrize(
    "entry", ["", "10.0.0.0/33", "host:0", "host:99999", "host:x", "[::1", "[::1]x", "bad host"]
)
def test_malformed_allowlist_entries(entry: str) -> None:
    with pytest.raises(ValueError):
        parse_allow(entry)
    with pytest.raises(ValueError):
        policy_for(Settings(allow_upstream=[entry]))


def test_settings_and_environment_entries() -> None:
    assert policy_for(Settings()) == DEFAULT_POLICY
    policy = policy_for(Settings(allow_upstream=["10.0.0.0/8"]))
    assert policy is policy_for(Settings(allow_upstream=["10.0.0.0/8"]))  # cached
    assert policy.refusal("h", ipaddress.ip_address("10.1.1.1"), 80) is None
    assert entries_from_env(" a.lan,10.0.0.0/8  [::1]:80 ,") == ["a.lan", "10.0.0.0/8", "[::1]:80"]
    assert entries_from_env(None) == []


# -- the connection path, loopback only --------------------------------------------------------


@pytest.fixture
def server(loopback: Callable[[Reply], LoopbackServer]) -> LoopbackServer:
    return loopback(ok)


def test_loopback_is_refused_by_default_and_nothing_is_sent(server: LoopbackServer) -> None:
    with DEFAULT_POLICY.session() as session, pytest.raises(OutboundRefused):
        session.get(server.url + "/admin/secret", timeout=TIMEOUT)
    with DEFAULT_POLICY.session() as session, pytest.raises(requests.ConnectionError):
        session.get(f"http://localhost:{server.port}/", timeout=TIMEOUT)  # handled as such
    assert server.seen == []


def test_allowlisted_loopback_is_reached(server: LoopbackServer) -> None:
    policy = OutboundPolicy.from_entries([f"127.0.0.1:{server.port}"])
    with policy.session() as session:
        response = session.get(server.url + "/x", timeout=TIMEOUT)
    assert response.status_code == 200 and response.text == "inside"
    assert server.seen[0].headers["Host"] == f"127.0.0.1:{server.port}"
    with pytest.raises(OutboundRefused):
        policy.check_url(f"http://127.0.0.1:{server.port + 1}/")  # another port is not allowed


def test_redirects_are_not_followed(loopback: Callable[[Reply], LoopbackServer]) -> None:
    inner = loopback(ok)
    outer = loopback(lambda seen: (302, {"Location": inner.url + "/admin"}, b""))
    both = OutboundPolicy.from_entries([f"127.0.0.1:{outer.port}", f"127.0.0.1:{inner.port}"])
    with both.session() as session:
        response = session.get(outer.url + "/", timeout=TIMEOUT)
    assert response.status_code == 302 and inner.seen == []


def test_followed_redirects_are_checked_at_every_hop(
    loopback: Callable[[Reply], LoopbackServer],
) -> None:
    inner = loopback(ok)
    outer = loopback(lambda seen: (302, {"Location": inner.url + "/admin"}, b""))
    only_outer = OutboundPolicy.from_entries([f"127.0.0.1:{outer.port}"])
    with only_outer.session(max_redirects=3) as session, pytest.raises(OutboundRefused):
        session.get(outer.url + "/", timeout=TIMEOUT)
    assert len(outer.seen) == 1 and inner.seen == []
    both = OutboundPolicy.from_entries([f"127.0.0.1:{outer.port}", f"127.0.0.1:{inner.port}"])
    with both.session(max_redirects=3) as session:
        assert session.get(outer.url + "/", timeout=TIMEOUT).text == "inside"


@pytest.fixture
def no_name_lookups(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Make every ``getaddrinfo`` of a host *name* fail (and record it): only the policy's own
    resolver may resolve names, and no DNS query leaves the machine."""
    real = socket.getaddrinfo
    names: list[str] = []

    def guarded(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host is not None and parse_ip(str(host)) is None:
            names.append(str(host))
            raise socket.gaierror(socket.EAI_NONAME, "name lookups are disabled in this test")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", guarded)
    yield names


def test_the_checked_address_is_the_one_connected_to(
    server: LoopbackServer, no_name_lookups: list[str]
) -> None:
    """DNS rebinding: the name resolves to an allowed address for the check and to a refused
    one afterwards; the connection still goes to the checked address, resolved once."""
    answers = iter([["127.0.0.1"]])
    calls: list[str] = []

    def rebinding(host: str, port: int) -> Sequence[str]:
        calls.append(host)
        return next(answers, ["127.0.0.2"])  # a second lookup would get the other address

    policy = OutboundPolicy.from_entries(["127.0.0.1"], resolver=rebinding)
    with policy.session() as session:
        response = session.get(f"http://rebind.test:{server.port}/x", timeout=TIMEOUT)
    assert response.status_code == 200 and response.text == "inside"
    assert calls == ["rebind.test"] and no_name_lookups == []
    assert server.seen[0].headers["Host"] == f"rebind.test:{server.port}"  # the name, not the IP
    with policy.session() as session, pytest.raises(OutboundRefused):
        session.get(f"http://rebind.test:{server.port}/y", timeout=TIMEOUT)  # now 127.0.0.2
    assert len(server.seen) == 1


def test_proxies_are_never_used(server: LoopbackServer) -> None:
    policy = OutboundPolicy.from_entries(["127.0.0.1"])
    with policy.session() as session, pytest.raises(OutboundError):
        session.get(server.url, proxies={"http": server.url}, timeout=TIMEOUT)
    assert server.seen == []
