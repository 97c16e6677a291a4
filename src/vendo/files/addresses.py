"""The one address policy: where Vendo connects on a user's behalf.

Input file downloads and webhooks both ask :func:`refusal` about every address they would
connect to: at create time for an address written in the URL (in any form
``getaddrinfo`` or a browser accepts: ``2130706433``, ``0x7f000001``, ``0177.0.0.1``,
``127.1``, ``[::ffff:127.0.0.1]``), and at connect time for every address a host name
resolves to (``vendo.files.fetch.guarded_transport``).

Every range of IANA's IPv4 and IPv6 special-purpose address registries has a class
(:class:`Kind`). Public addresses are allowed; loopback and private ones only while
``allow_private`` (``VENDO_ALLOW_PRIVATE_URLS``, on by default) is on; everything else
never: link-local and cloud metadata addresses, unspecified ones (``0.0.0.0`` and ``::``
reach the machine itself), documentation, benchmarking, multicast, broadcast and
reserved ranges. IPv6 forms that carry an IPv4 address (IPv4-mapped, NAT64, 6to4,
Teredo) get the decision of that IPv4 address.
"""

from __future__ import annotations

import enum
import ipaddress
import socket
from dataclasses import dataclass
from typing import Union

__all__ = [
    "METADATA_HOSTS",
    "Address",
    "Kind",
    "Verdict",
    "classify",
    "host_refusal",
    "parse_host",
    "refusal",
]

Address = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]


class Kind(enum.Enum):
    """An address's class; its value is how messages name it."""

    PUBLIC = "public"
    LOOPBACK = "loopback"
    PRIVATE = "private"
    LINK_LOCAL = "link-local"
    METADATA = "cloud metadata"
    UNSPECIFIED = "unspecified"
    DOCUMENTATION = "documentation"
    BENCHMARKING = "benchmarking"
    MULTICAST = "multicast"
    BROADCAST = "broadcast"
    RESERVED = "reserved"


#: Allowed only while private addresses are (``allow_private``).
_PRIVATE_KINDS = frozenset({Kind.LOOPBACK, Kind.PRIVATE})

_OFF = "not allowed (VENDO_ALLOW_PRIVATE_URLS is off)"

#: Host names of cloud metadata services, refused before any lookup.
METADATA_HOSTS = frozenset(
    {"metadata", "metadata.google.internal", "instance-data", "metadata.azure.com"}
)

# Metadata services outside the link-local ranges (which are refused anyway).
_METADATA = {
    ipaddress.ip_address("100.100.100.200"): "Alibaba Cloud metadata",
    ipaddress.ip_address("168.63.129.16"): "Azure wire server",
    ipaddress.ip_address("192.0.0.192"): "Oracle Cloud metadata",
    ipaddress.ip_address("fd00:ec2::254"): "AWS metadata over IPv6",
}

# IANA special-purpose registries (iana-ipv4-special-registry, iana-ipv6-special-registry),
# plus multicast and the reserved blocks; the longest matching prefix wins. Ranges the
# registries mark globally reachable (AS112, AMT, drone remote ID) are public.
_RANGES: list[tuple[str, Kind, str]] = [
    ("0.0.0.0/8", Kind.UNSPECIFIED, "this network"),
    ("10.0.0.0/8", Kind.PRIVATE, "private use"),
    ("100.64.0.0/10", Kind.PRIVATE, "shared address space for carrier-grade NAT"),
    ("127.0.0.0/8", Kind.LOOPBACK, "loopback"),
    ("169.254.0.0/16", Kind.LINK_LOCAL, "link local"),
    ("172.16.0.0/12", Kind.PRIVATE, "private use"),
    ("192.0.0.0/24", Kind.RESERVED, "IETF protocol assignments"),
    ("192.0.2.0/24", Kind.DOCUMENTATION, "TEST-NET-1"),
    ("192.31.196.0/24", Kind.PUBLIC, "AS112-v4"),
    ("192.52.193.0/24", Kind.PUBLIC, "AMT"),
    ("192.88.99.0/24", Kind.RESERVED, "deprecated 6to4 relay anycast"),
    ("192.168.0.0/16", Kind.PRIVATE, "private use"),
    ("192.175.48.0/24", Kind.PUBLIC, "direct delegation AS112 service"),
    ("198.18.0.0/15", Kind.BENCHMARKING, "benchmarking"),
    ("198.51.100.0/24", Kind.DOCUMENTATION, "TEST-NET-2"),
    ("203.0.113.0/24", Kind.DOCUMENTATION, "TEST-NET-3"),
    ("224.0.0.0/4", Kind.MULTICAST, "multicast"),
    ("240.0.0.0/4", Kind.RESERVED, "reserved"),
    ("255.255.255.255/32", Kind.BROADCAST, "limited broadcast"),
    ("::/128", Kind.UNSPECIFIED, "unspecified"),
    ("::1/128", Kind.LOOPBACK, "loopback"),
    ("::/96", Kind.RESERVED, "deprecated IPv4-compatible"),
    ("::ffff:0:0:0/96", Kind.RESERVED, "IPv4-translated"),
    ("64:ff9b:1::/48", Kind.PRIVATE, "local-use IPv4/IPv6 translation"),
    ("100::/64", Kind.RESERVED, "discard-only"),
    ("100:0:0:1::/64", Kind.RESERVED, "dummy IPv6 prefix"),
    ("2001::/23", Kind.RESERVED, "IETF protocol assignments"),
    ("2001:2::/48", Kind.BENCHMARKING, "benchmarking"),
    ("2001:3::/32", Kind.PUBLIC, "AMT"),
    ("2001:4:112::/48", Kind.PUBLIC, "AS112-v6"),
    ("2001:30::/28", Kind.PUBLIC, "drone remote ID"),
    ("2001:db8::/32", Kind.DOCUMENTATION, "documentation"),
    ("2620:4f:8000::/48", Kind.PUBLIC, "direct delegation AS112 service"),
    ("3fff::/20", Kind.DOCUMENTATION, "documentation"),
    ("5f00::/16", Kind.RESERVED, "segment routing (SRv6) SIDs"),
    ("fc00::/7", Kind.PRIVATE, "unique local"),
    ("fe80::/10", Kind.LINK_LOCAL, "link local"),
    ("fec0::/10", Kind.PRIVATE, "deprecated site local"),
    ("ff00::/8", Kind.MULTICAST, "multicast"),
]
_NETWORKS = sorted(
    ((ipaddress.ip_network(net), kind, name) for net, kind, name in _RANGES),
    key=lambda entry: entry[0].prefixlen,
    reverse=True,
)
_GLOBAL_UNICAST = ipaddress.ip_network("2000::/3")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


@dataclass(frozen=True)
class Verdict:
    """What an address is: its class and range, and the IPv4 address it carries."""

    address: Address
    kind: Kind
    range: str
    ipv4: ipaddress.IPv4Address | None = None  # for IPv6 forms that embed one

    def describe(self) -> str:
        """``"0.0.0.0, an unspecified address (this network, 0.0.0.0/8)"``."""
        kind = self.kind.value
        article = "an" if kind[0] in "aeiou" else "a"
        what = f"{article} {kind} address ({self.range})"
        if self.ipv4 is not None:
            return f"{self.address}, which carries {self.ipv4}, {what}"
        return f"{self.address}, {what}"


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, str] | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped, "IPv4-mapped"
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF), "NAT64"
    if ip.sixtofour is not None:
        return ip.sixtofour, "6to4"
    if ip.teredo is not None:
        return ip.teredo[1], "Teredo"
    return None


def _lookup(ip: Address) -> tuple[Kind, str]:
    if ip in _METADATA:
        return Kind.METADATA, _METADATA[ip]
    for network, kind, name in _NETWORKS:
        if ip.version == network.version and ip in network:
            label = name.replace("-", " ") == kind.value.replace("-", " ")
            return kind, str(network) if label else f"{name}, {network}"
    if isinstance(ip, ipaddress.IPv6Address) and ip not in _GLOBAL_UNICAST:
        return Kind.RESERVED, "not allocated"
    return Kind.PUBLIC, "public"


def classify(address: str | Address) -> Verdict:
    """Class an IP address (a string may carry an IPv6 zone, ``fe80::1%eth0``)."""
    if isinstance(address, str):
        ip: Address = ipaddress.ip_address(address.split("%", 1)[0])
    else:
        ip = address
    if isinstance(ip, ipaddress.IPv6Address):
        ip = ipaddress.IPv6Address(int(ip))  # drop a zone: it changes nothing here
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            ipv4, form = embedded
            kind, name = _lookup(ipv4)
            return Verdict(ip, kind, f"{form} form of {name}", ipv4)
    kind, name = _lookup(ip)
    return Verdict(ip, kind, name)


def refusal(address: str | Address, *, allow_private: bool) -> str | None:
    """The policy: None when Vendo may connect to ``address``, else why not."""
    verdict = classify(address)
    if verdict.kind is Kind.PUBLIC:
        return None
    if verdict.kind in _PRIVATE_KINDS:
        if allow_private:
            return None
        return f"{verdict.describe()}: private and loopback addresses are {_OFF}"
    return verdict.describe()


def parse_host(host: str) -> Address | None:
    """The IP address a URL's host names by itself, read as ``getaddrinfo`` reads it
    (``2130706433``, ``0x7f000001``, ``0177.0.0.1``, ``127.1``, ``::ffff:7f00:1``), or
    None for a host name. No lookup happens: numeric forms only."""
    host = host.strip("[]")
    candidates = [host]
    if host.endswith(".") and not host.endswith(".."):
        candidates.append(host[:-1])  # browsers read "127.0.0.1." as 127.0.0.1
    for candidate in candidates:
        if not candidate:
            continue
        try:
            infos = socket.getaddrinfo(
                candidate, None, flags=socket.AI_NUMERICHOST, type=socket.SOCK_STREAM
            )
        except (socket.gaierror, UnicodeError, ValueError):
            continue
        for info in infos:
            return classify(str(info[4][0])).address
    return None


def host_refusal(host: str, *, allow_private: bool) -> str | None:
    """The create-time check of a URL's host (no DNS lookup): an address in any form
    goes through :func:`refusal`; a name is refused when it is a metadata service's, or
    ``localhost`` while private addresses are not allowed. Names are checked again, on
    every address they resolve to, when the connection is made."""
    ip = parse_host(host)
    if ip is not None:
        return refusal(ip, allow_private=allow_private)
    name = host.rstrip(".").lower()
    if name in METADATA_HOSTS:
        return f"{name}, a cloud metadata service"
    if not allow_private and (name == "localhost" or name.endswith(".localhost")):
        return f"{name}, a loopback name: private and loopback addresses are {_OFF}"
    return None
