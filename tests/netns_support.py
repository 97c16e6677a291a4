"""Hosts of their own on one machine, for the multi-host tests of scaled mode (#15):
each a Linux network namespace with its own address, joined by veth pairs to a bridge
in the root namespace (where the database and the bucket listen, at the bridge's
address). Needs root and ``ip``; everything made is removed on the way out, whatever
happened."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

__all__ = ["Hosts", "netns_missing", "network"]


def netns_missing() -> str | None:
    """Why namespaces cannot be made here, or None."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "the `ip` tool (iproute2) is not installed"
    return None


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")


@dataclass
class Hosts:
    """The bridge's address (``gateway``: where the root namespace's services listen)
    and each host's namespace and address, by name."""

    gateway: str
    network: str
    namespaces: dict[str, str] = field(default_factory=dict)
    addresses: dict[str, str] = field(default_factory=dict)

    def prefix(self, host: str) -> list[str]:
        """The command that runs what follows on ``host``."""
        return ["ip", "netns", "exec", self.namespaces[host]]


@contextmanager
def network(names: list[str]) -> Iterator[Hosts]:
    """A bridge and one namespace per name (each with loopback and one address)."""
    tag = f"{os.getpid() % 100000}"
    subnet = 100 + os.getpid() % 150  # another run at the same time picks another
    bridge = f"vbr{tag}"
    hosts = Hosts(f"10.{subnet}.0.1", f"10.{subnet}.0.0/24")
    made_bridge = False
    try:
        _ip("link", "add", bridge, "type", "bridge")
        made_bridge = True
        _ip("addr", "add", f"{hosts.gateway}/24", "dev", bridge)
        _ip("link", "set", bridge, "up")
        for n, name in enumerate(names, 1):
            ns, veth = f"vns{tag}-{n}", f"vh{tag}-{n}"
            _ip("netns", "add", ns)
            hosts.namespaces[name] = ns
            _ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
            _ip("link", "set", veth, "master", bridge, "up")
            address = f"10.{subnet}.0.{10 + n}"
            _ip("-n", ns, "addr", "add", f"{address}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
            _ip("-n", ns, "link", "set", "lo", "up")
            hosts.addresses[name] = address
        yield hosts
    finally:
        for ns in hosts.namespaces.values():
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
        if made_bridge:
            subprocess.run(["ip", "link", "del", bridge], capture_output=True, timeout=30)
