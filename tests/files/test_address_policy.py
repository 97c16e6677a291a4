"""One address policy (vendo.files.addresses) for input downloads and webhooks alike:
every IANA special-purpose range has a class, every host form getaddrinfo accepts gets the
decision of the address it names, at create time and at connect time."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from support import start_http_server, stop_http_server
from vendo.files.addresses import Kind, classify, host_refusal, parse_host, refusal
from vendo.files.fetch import FetchError, fetch_input
from vendo.webhooks.outbox import Outbox, WebhookTarget, WebhookURLError, check_webhook_url
from vendo.webhooks.signing import new_secret

# One address in each range, with its class. Public ones first, then each class.
RANGES = [
    ("93.184.216.34", Kind.PUBLIC),
    ("8.8.8.8", Kind.PUBLIC),
    ("192.31.196.1", Kind.PUBLIC),  # AS112-v4, globally reachable
    ("192.52.193.1", Kind.PUBLIC),  # AMT
    ("192.175.48.1", Kind.PUBLIC),  # AS112 direct delegation
    ("2606:4700::1111", Kind.PUBLIC),
    ("2001:3::1", Kind.PUBLIC),  # AMT
    ("2001:4:112::1", Kind.PUBLIC),  # AS112-v6
    ("2001:30::1", Kind.PUBLIC),  # drone remote ID
    ("2620:4f:8000::1", Kind.PUBLIC),  # AS112 direct delegation
    ("127.0.0.1", Kind.LOOPBACK),
    ("127.255.255.254", Kind.LOOPBACK),
    ("::1", Kind.LOOPBACK),
    ("10.1.2.3", Kind.PRIVATE),
    ("172.16.0.1", Kind.PRIVATE),
    ("172.31.255.255", Kind.PRIVATE),
    ("192.168.1.1", Kind.PRIVATE),
    ("100.64.0.1", Kind.PRIVATE),  # carrier-grade NAT
    ("100.127.255.254", Kind.PRIVATE),
    ("fc00::1", Kind.PRIVATE),
    ("fd12:3456::1", Kind.PRIVATE),
    ("fec0::1", Kind.PRIVATE),  # deprecated site local
    ("64:ff9b:1::1", Kind.PRIVATE),  # local-use NAT64
    ("169.254.169.254", Kind.LINK_LOCAL),
    ("169.254.0.1", Kind.LINK_LOCAL),
    ("fe80::1", Kind.LINK_LOCAL),
    ("fe80::1%1", Kind.LINK_LOCAL),
    ("100.100.100.200", Kind.METADATA),  # Alibaba Cloud
    ("168.63.129.16", Kind.METADATA),  # Azure wire server
    ("192.0.0.192", Kind.METADATA),  # Oracle Cloud
    ("fd00:ec2::254", Kind.METADATA),  # AWS over IPv6
    ("0.0.0.0", Kind.UNSPECIFIED),
    ("0.1.2.3", Kind.UNSPECIFIED),  # "this network"
    ("::", Kind.UNSPECIFIED),
    ("192.0.2.1", Kind.DOCUMENTATION),
    ("198.51.100.1", Kind.DOCUMENTATION),
    ("203.0.113.1", Kind.DOCUMENTATION),
    ("2001:db8::1", Kind.DOCUMENTATION),
    ("3fff::1", Kind.DOCUMENTATION),
    ("198.18.0.1", Kind.BENCHMARKING),
    ("198.19.255.254", Kind.BENCHMARKING),
    ("2001:2::1", Kind.BENCHMARKING),
    ("224.0.0.1", Kind.MULTICAST),
    ("239.255.255.250", Kind.MULTICAST),
    ("ff02::1", Kind.MULTICAST),
    ("255.255.255.255", Kind.BROADCAST),
    ("240.0.0.1", Kind.RESERVED),
    ("192.0.0.8", Kind.RESERVED),  # IETF protocol assignments
    ("192.0.0.170", Kind.RESERVED),
    ("192.88.99.1", Kind.RESERVED),  # deprecated 6to4 relay anycast
    ("::7f00:1", Kind.RESERVED),  # deprecated IPv4-compatible
    ("::ffff:0:7f00:1", Kind.RESERVED),  # IPv4-translated
    ("100::1", Kind.RESERVED),  # discard-only
    ("2001:10::1", Kind.RESERVED),  # deprecated ORCHID
    ("2001:20::1", Kind.RESERVED),  # ORCHIDv2
    ("5f00::1", Kind.RESERVED),  # SRv6 SIDs
    ("4000::1", Kind.RESERVED),  # not allocated
    # IPv6 forms that carry an IPv4 address get that address's class
    ("::ffff:127.0.0.1", Kind.LOOPBACK),
    ("::ffff:7f00:1", Kind.LOOPBACK),
    ("::ffff:10.0.0.1", Kind.PRIVATE),
    ("::ffff:169.254.169.254", Kind.LINK_LOCAL),
    ("::ffff:0.0.0.0", Kind.UNSPECIFIED),
    ("::ffff:8.8.8.8", Kind.PUBLIC),
    ("64:ff9b::7f00:1", Kind.LOOPBACK),  # NAT64
    ("64:ff9b::a9fe:a9fe", Kind.LINK_LOCAL),
    ("64:ff9b::808:808", Kind.PUBLIC),
    ("2002:7f00:1::1", Kind.LOOPBACK),  # 6to4
    ("2002:c000:c0::", Kind.METADATA),  # 6to4 of 192.0.0.192
    ("2002:808:808::1", Kind.PUBLIC),
    ("2001:0:4136:e378:8000:63bf:80ff:fffe", Kind.LOOPBACK),  # Teredo, client 127.0.0.1
]

ALLOWED_WITH_PRIVATE = {Kind.PUBLIC, Kind.LOOPBACK, Kind.PRIVATE}


@pytest.mark.parametrize(("address", "kind"), RANGES)
def test_every_range_has_a_class_and_a_decision(address: str, kind: Kind) -> None:
    assert classify(address).kind is kind
    assert (refusal(address, allow_private=True) is None) == (kind in ALLOWED_WITH_PRIVATE)
    assert (refusal(address, allow_private=False) is None) == (kind is Kind.PUBLIC)


# Host forms getaddrinfo (and browsers) accept, and the address each names.
FORMS = [
    ("127.0.0.1", "127.0.0.1"),
    ("2130706433", "127.0.0.1"),  # one decimal number
    ("0x7f000001", "127.0.0.1"),  # hex
    ("0X7F000001", "127.0.0.1"),
    ("0177.0.0.1", "127.0.0.1"),  # octal parts
    ("017700000001", "127.0.0.1"),
    ("127.1", "127.0.0.1"),  # short dotted
    ("0x7f.1", "127.0.0.1"),
    ("127.000.000.001", "127.0.0.1"),
    ("127.0.0.1.", "127.0.0.1"),  # a trailing dot, as browsers read it
    ("[::1]", "::1"),
    ("[::ffff:127.0.0.1]", "::ffff:7f00:1"),
    ("[::ffff:7f00:1]", "::ffff:7f00:1"),
    ("0", "0.0.0.0"),
    ("0x0", "0.0.0.0"),
    ("0.0", "0.0.0.0"),
    ("[::]", "::"),
    ("2852039166", "169.254.169.254"),
    ("0xa9fea9fe", "169.254.169.254"),
    ("0251.0376.0251.0376", "169.254.169.254"),
    ("169.254.43518", "169.254.169.254"),
    ("3221225664", "192.0.0.192"),
    ("0xc00000c0", "192.0.0.192"),
    ("167772161", "10.0.0.1"),
]


@pytest.mark.parametrize(("host", "address"), FORMS)
def test_host_forms_name_their_address(host: str, address: str) -> None:
    parsed = parse_host(host)
    assert parsed is not None and str(parsed) == address
    for allow_private in (True, False):
        assert host_refusal(host, allow_private=allow_private) == refusal(
            address, allow_private=allow_private
        )


def test_names_are_not_addresses() -> None:
    for host in ("example.com", "deadbeef", "1e2", "127.0.0.1.example", "08.0.0.1", "x"):
        assert parse_host(host) is None, host
    assert host_refusal("metadata.google.internal", allow_private=True) is not None
    assert host_refusal("localhost", allow_private=True) is None
    assert host_refusal("api.localhost", allow_private=False) is not None


# --- the same decision for webhooks and file inputs, at create and at connect time -------


class _Handler(BaseHTTPRequestHandler):
    hits: list[str]

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        self.rfile.read(length)
        self.hits.append(f"{self.command} {self.path}")
        self.send_response(200)
        self.send_header("content-length", "5")
        self.end_headers()
        self.wfile.write(b"hello")

    do_GET = do_POST = _answer  # noqa: N815

    def log_message(self, *args: Any) -> None:
        pass


class _Server6(ThreadingHTTPServer):
    address_family = socket.AF_INET6


class Loopback:
    """An HTTP server on 127.0.0.1 and one on [::1], on one port, recording requests."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        handler = type("Handler", (_Handler,), {"hits": self.hits})
        self.servers = [start_http_server(handler)]
        self.port = self.servers[0].server_address[1]
        self.servers.append(
            start_http_server(handler, self.port, host="::1", server_class=_Server6)
        )

    def url(self, host: str, path: str = "/a.txt") -> str:
        return f"http://{host}:{self.port}{path}"

    def close(self) -> None:
        for server in self.servers:
            stop_http_server(server)


@pytest.fixture
def loopback() -> Iterator[Loopback]:
    for _ in range(20):  # the IPv6 port may be taken; try another
        try:
            server = Loopback()
            break
        except OSError:
            continue
    else:
        pytest.skip("no free port on both 127.0.0.1 and ::1")
    yield server
    server.close()


# host forms of the loopback servers, of 0.0.0.0 and ::, and of a metadata address
LOOPBACK_FORMS = ["127.0.0.1", "[::1]", "2130706433", "0x7f000001", "127.1", "0x7f.1"]
LOOPBACK_FORMS += ["[::ffff:127.0.0.1]", "localhost"]
NEVER_FORMS = ["0.0.0.0", "0", "0x0", "[::]", "[::ffff:0.0.0.0]", "169.254.169.254"]
NEVER_FORMS += ["2852039166", "192.0.0.192", "3221225664", "[::ffff:169.254.169.254]"]


async def _fetch(url: str, tmp_path: Path, allow_private: bool) -> bool:
    try:
        path = await fetch_input(url, tmp_path, allow_private=allow_private, timeout=5)
    except FetchError:
        return False
    assert path.read_bytes() == b"hello"
    return True


async def _webhook(url: str, allow_private: bool, loopback: Loopback) -> tuple[bool, bool]:
    """(accepted at create, delivered): delivery is tried even when create refuses, as
    a URL recorded before a policy change would be."""
    try:
        check_webhook_url(url, allow_private=allow_private)
        accepted = True
    except WebhookURLError:
        accepted = False
    before = len(loopback.hits)
    outbox = Outbox(allow_private=allow_private, delays=[])
    await outbox.start()
    outbox.publish("p1", WebhookTarget(url, new_secret()), "completed", {"id": "p1"})
    await outbox.drain()
    await outbox.stop()
    return accepted, len(loopback.hits) > before


@pytest.mark.parametrize("host", LOOPBACK_FORMS)
async def test_loopback_follows_the_setting_for_files_and_webhooks(
    host: str, loopback: Loopback, tmp_path: Path
) -> None:
    url = loopback.url(host)
    assert await _fetch(url, tmp_path, allow_private=True)
    assert await _webhook(url, True, loopback) == (True, True)
    assert not await _fetch(url, tmp_path, allow_private=False)
    assert await _webhook(url, False, loopback) == (False, False)


@pytest.mark.parametrize("host", NEVER_FORMS)
async def test_unspecified_and_metadata_are_never_reached(
    host: str, loopback: Loopback, tmp_path: Path
) -> None:
    # 0.0.0.0 and :: reach this machine's servers when connected to: refused all the same
    url = loopback.url(host)
    assert not await _fetch(url, tmp_path, allow_private=True)
    assert await _webhook(url, True, loopback) == (False, False)
    assert loopback.hits == []


async def test_a_name_resolving_to_unspecified_is_refused_at_connect(
    loopback: Loopback, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = asyncio.get_running_loop().getaddrinfo

    async def getaddrinfo(host: str, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "zero.test":  # a stand-in for DNS: no resolver here knows this name
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("0.0.0.0", int(port)))]
        return await real(host, port, *args, **kwargs)

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", getaddrinfo)
    url = loopback.url("zero.test")
    assert not await _fetch(url, tmp_path, allow_private=True)
    assert await _webhook(url, True, loopback) == (True, False)
    assert loopback.hits == []


async def test_a_host_form_httpx_cannot_read_is_a_clear_refusal(tmp_path: Path) -> None:
    # Octal parts name 127.0.0.1 for getaddrinfo, but httpx refuses to parse them: such
    # a URL is refused up front (422 at create), never a server error later.
    url = "http://0177.0.0.1:9/a.txt"
    with pytest.raises(FetchError, match="invalid URL"):
        await fetch_input(url, tmp_path, allow_private=True)
    with pytest.raises(WebhookURLError, match="invalid webhook URL"):
        check_webhook_url(url, allow_private=True)
    with pytest.raises(FetchError, match="loopback"):
        await fetch_input(url, tmp_path, allow_private=False)
