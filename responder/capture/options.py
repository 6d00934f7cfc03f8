"""``--pcap-rotate`` and ``--pcap-filter`` (and ``[capture]``) parsed: no I/O, imported by config.

Rotation: a size (``100MB``, ``512KB``, ``1GB``, or bytes) or a duration
(``30s``, ``15m``, ``1h``, ``1d``). Filter: comma-separated protocol names
(``dns``, ``nbns``, ``smb``) and addresses or networks (``127.0.0.11``,
``10.0.0.0/24``, ``fd00::/64``); a packet is recorded when its protocol is
listed (or none is) and one of its endpoints is listed (or none is).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

PROTOCOLS = ("dns", "nbns", "smb")
_SIZE = re.compile(r"^(\d+)\s*(B|KB|MB|GB|KIB|MIB|GIB)?$", re.IGNORECASE)
_TIME = re.compile(r"^(\d+)\s*(S|M|H|D)$", re.IGNORECASE)
_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9}
_UNITS |= {"KIB": 2**10, "MIB": 2**20, "GIB": 2**30}
_SECONDS = {"S": 1, "M": 60, "H": 3600, "D": 86400}
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Rotation:
    """Start a new file after ``size`` bytes or ``seconds``; 0: never."""

    size: int = 0
    seconds: int = 0


@dataclass(frozen=True, slots=True)
class CaptureFilter:
    """What to record: empty tuples mean everything."""

    protocols: tuple[str, ...] = ()
    networks: tuple[Network, ...] = ()


def parse_rotation(raw: str) -> Rotation:
    """``100MB`` -> Rotation(size=100_000_000); ``1h`` -> Rotation(seconds=3600).

    Raises:
        ValueError: neither a size nor a duration.
    """
    text = raw.strip()
    size = _SIZE.match(text)
    if size:
        return Rotation(size=int(size[1]) * _UNITS[(size[2] or "").upper()])
    duration = _TIME.match(text)
    if duration:
        return Rotation(seconds=int(duration[1]) * _SECONDS[duration[2].upper()])
    raise ValueError(f"{raw!r} is neither a size (100MB) nor a duration (1h)")


def parse_filter(raw: str) -> CaptureFilter:
    """``dns,nbns,10.0.0.0/24`` -> protocols and networks.

    Raises:
        ValueError: an item is neither a protocol name nor an address or network.
    """
    protocols: list[str] = []
    networks: list[Network] = []
    for item in filter(None, (part.strip() for part in raw.split(","))):
        if item.lower() in PROTOCOLS:
            protocols.append(item.lower())
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            known = ", ".join(PROTOCOLS)
            raise ValueError(f"{item!r} is neither a protocol ({known}) nor an address") from None
    return CaptureFilter(tuple(protocols), tuple(networks))


NO_ROTATION = Rotation()
NO_FILTER = CaptureFilter()
