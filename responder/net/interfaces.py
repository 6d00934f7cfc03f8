"""The host's IPv4 interface addresses and their subnet broadcast addresses.

NBNS B-node traffic (RFC 1002 §5.1.1) goes to, and arrives on, the subnet
broadcast address of the interface that holds a management address. We read
the interface table once per config load from ``ip -j -4 addr show``:
the ``broadcast`` field when the kernel has one, otherwise the prefix's
last address (for prefixes shorter than /31). Loopback addresses and
interfaces without the BROADCAST flag have no broadcast address.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import subprocess

log = logging.getLogger(__name__)

IP_COMMAND = ("ip", "-j", "-4", "addr", "show")
BroadcastMap = dict[ipaddress.IPv4Address, ipaddress.IPv4Address]


def parse_ip_addr_json(text: str) -> BroadcastMap:
    """Map each broadcast-capable local IPv4 address to its broadcast address.

    Raises:
        ValueError: ``text`` is not the JSON ``ip -j addr show`` prints.
    """
    links = json.loads(text)
    if not isinstance(links, list):
        raise ValueError("expected a JSON list of links")
    found: BroadcastMap = {}
    for link in links:
        if not isinstance(link, dict) or "BROADCAST" not in link.get("flags", ()):
            continue
        for info in link.get("addr_info", ()):
            pair = _broadcast_of(info)
            if pair is not None:
                found[pair[0]] = pair[1]
    return found


def _broadcast_of(
    info: object,
) -> tuple[ipaddress.IPv4Address, ipaddress.IPv4Address] | None:
    if not isinstance(info, dict) or info.get("family") != "inet" or "local" not in info:
        return None
    interface = ipaddress.IPv4Interface(f"{info['local']}/{info.get('prefixlen', 32)}")
    if interface.ip.is_loopback:
        return None
    if "broadcast" in info:
        return interface.ip, ipaddress.IPv4Address(info["broadcast"])
    if interface.network.prefixlen >= 31:
        return None
    return interface.ip, interface.network.broadcast_address


def subnet_broadcasts() -> BroadcastMap:
    """Read the host's interfaces now; an empty map (logged) if that fails."""
    try:
        done = subprocess.run(IP_COMMAND, capture_output=True, text=True, timeout=5, check=True)
        return parse_ip_addr_json(done.stdout)
    except (OSError, subprocess.SubprocessError, ValueError, KeyError, TypeError) as exc:
        log.warning("cannot read interface broadcast addresses: %s", exc)
        return {}
