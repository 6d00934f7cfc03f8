"""What a node owns in the site's DNS: its DHCID (RFC 4701) and its record sets (RFC 4703).

Theory of operation:

- RFC 4703 §4 settles who may change a name with a DHCID RR stored beside
  the name's address records: an updater touches a name only when the name
  is unused or carries *its* DHCID. So every node needs a DHCID that is the
  same at every restart, and the same for both sidecars of a redundant pair
  that run one config: otherwise each would see the other as a stranger.
- The DHCID RDATA (RFC 4701 §3.3) is a 2-octet identifier type, a 1-octet
  digest type and a digest over ``identifier || FQDN`` (§3.4), the FQDN in
  canonical wire form (§3.5: RFC 4034 §6.2, lower case, uncompressed, with
  the root label). We use identifier type 0x0000 (§3.3.1: the DHCPv4
  ``htype`` octet followed by ``chaddr``) with htype 1 (Ethernet) and the
  node's MAC, which is configured or derived from the Cozen name, so stable,
  and digest type 1, SHA-256 (§3.3.2). The same DHCID guards the node's
  reverse names: its digest covers the forward FQDN there too.
- A :class:`RecordSet` is the unit one UPDATE changes: one owner name in one
  zone, the RR types whose RRsets the node owns there entirely (A and AAAA
  at the Cozen FQDN, PTR at each reverse name), the data it wants, and the
  DHCID that marks it. :func:`plan_record_sets` places each in its zone; a
  reverse set names the forward set its PTR points at, because a PTR is
  published only for a forward name the node holds (as Kea does: no
  reverse update after a forward conflict).

This module is plain Python (hashlib, ipaddress): the config check and the
identity derivation use it without loading the DNS update machinery.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

IDENTIFIER_HTYPE_CHADDR = 0x0000  # RFC 4701 §3.3.1: DHCPv4 htype + chaddr
IDENTIFIER_CLIENT_ID = 0x0001  # DHCPv4 client identifier option
IDENTIFIER_DUID = 0x0002  # DHCPv6 DUID
DIGEST_SHA256 = 1  # RFC 4701 §3.3.2
HTYPE_ETHERNET = 1  # RFC 1700 hardware type

FORWARD_TYPES = ("A", "AAAA")
REVERSE_TYPES = ("PTR",)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def canonical_wire_name(name: str) -> bytes:
    """``name`` in canonical wire form (RFC 4034 §6.2): lower case, uncompressed, root label.

    Raises:
        ValueError: a label is empty or longer than 63 octets, or the name is over 255.
    """
    labels = [label for label in name.lower().removesuffix(".").split(".")] if name else []
    wire = bytearray()
    for label in labels:
        raw = label.encode("ascii")
        if not 1 <= len(raw) <= 63:
            raise ValueError(f"{name!r} has a label of {len(raw)} octets")
        wire += bytes([len(raw)]) + raw
    wire += b"\x00"
    if len(wire) > 255:
        raise ValueError(f"{name!r} is longer than 255 octets in wire form")
    return bytes(wire)


def encode_dhcid(identifier_type: int, identifier: bytes, fqdn: str) -> bytes:
    """The DHCID RDATA (RFC 4701 §3.3) for ``identifier`` and ``fqdn``, SHA-256 digest.

    Raises:
        ValueError: ``identifier_type`` is not a 16-bit value, or ``fqdn`` is not a valid name.
    """
    if not 0 <= identifier_type <= 0xFFFF:
        raise ValueError(f"identifier type {identifier_type} is not a 16-bit value")
    digest = hashlib.sha256(identifier + canonical_wire_name(fqdn)).digest()
    return identifier_type.to_bytes(2, "big") + bytes([DIGEST_SHA256]) + digest


def mac_dhcid(mac: bytes, fqdn: str) -> bytes:
    """A node's DHCID: identifier type 0x0000 with htype 1 (Ethernet) and its 6-octet MAC.

    Raises:
        ValueError: ``mac`` is not 6 octets, or ``fqdn`` is not a valid name.
    """
    if len(mac) != 6:
        raise ValueError(f"a MAC address has 6 octets, not {len(mac)}")
    return encode_dhcid(IDENTIFIER_HTYPE_CHADDR, bytes([HTYPE_ETHERNET]) + mac, fqdn)


def in_zone(name: str, zone: str) -> bool:
    """True when ``name`` is ``zone`` or below it (both without the trailing dot)."""
    name, zone = name.lower(), zone.lower()
    return name == zone or name.endswith("." + zone)


def default_reverse_zone(address: IPAddress) -> str:
    """The reverse zone an address falls in by default: its /24 in-addr.arpa, its /64 ip6.arpa."""
    labels = address.reverse_pointer.split(".")
    return ".".join(labels[1:] if address.version == 4 else labels[16:])


def covering_zone(name: str, zones: Iterable[str]) -> str | None:
    """The longest of ``zones`` that ``name`` is in, or None."""
    inside = [zone for zone in zones if in_zone(name, zone)]
    return max(inside, key=len) if inside else None


@dataclass(frozen=True, slots=True)
class RecordSet:
    """What one node owns at one name of one zone: the unit of one UPDATE.

    ``types`` are the RR types whose whole RRsets the node owns at ``owner``
    (an empty one must stay empty); ``records`` is the data it wants there
    as (type, presentation text) pairs; ``dhcid`` is the RDATA that marks
    the name as the node's (RFC 4703 §4).
    """

    zone: str  # lower case, no trailing dot
    owner: str  # lower case, no trailing dot
    node: str  # the Cozen name, for logs and status
    types: tuple[str, ...]
    records: tuple[tuple[str, str], ...]
    dhcid: bytes
    ttl: int
    forward: tuple[str, str] | None = None  # a reverse set: the key of the set its PTR names

    @property
    def key(self) -> tuple[str, str]:
        return self.zone, self.owner


@dataclass(frozen=True, slots=True)
class NodeNames:
    """What :func:`plan_record_sets` needs of a node."""

    cozen_name: str
    fqdn: str
    addresses: tuple[IPAddress, ...]
    dhcid: bytes


def plan_record_sets(
    zone: str, reverse_zones: Iterable[str], nodes: Iterable[NodeNames], ttl: int
) -> tuple[RecordSet, ...]:
    """Every record set of every node: A/AAAA at the FQDN, PTR at each reverse name.

    A reverse name goes to the longest of ``reverse_zones`` that holds it; an
    address whose reverse name is in none of them gets no PTR.
    """
    reverse_zones = tuple(reverse_zones)
    sets: list[RecordSet] = []
    for node in nodes:
        records = tuple((_address_type(a), str(a)) for a in node.addresses)
        forward = RecordSet(
            zone, node.fqdn, node.cozen_name, FORWARD_TYPES, records, node.dhcid, ttl
        )
        sets.append(forward)
        for address in node.addresses:
            owner = address.reverse_pointer
            reverse_zone = covering_zone(owner, reverse_zones)
            if reverse_zone is not None:
                ptr = (("PTR", node.fqdn + "."),)
                sets.append(
                    RecordSet(
                        reverse_zone,
                        owner,
                        node.cozen_name,
                        REVERSE_TYPES,
                        ptr,
                        node.dhcid,
                        ttl,
                        forward.key,
                    )
                )
    return tuple(sets)


def _address_type(address: IPAddress) -> str:
    return "A" if address.version == 4 else "AAAA"
