"""Reflection filter and response rate limiting (sans-IO): the policy and its reference.

A UDP responder answers whoever the source address claims to be, so a
spoofed query turns it into a reflector. Two defences, both applied by the
daemon's UDP drain loop before it sends anything:

Reflection filter (RFC 5358 §4, and what BIND, dnsmasq and PowerDNS do).
A datagram is dropped unparsed when its source port is 0 or one of the
well-known reflection services (echo 7, daytime 13, qotd 17, chargen 19,
time 37, NTP 123, SNMP 161, LDAP 389, SSDP 1900, memcached 11211: answering
one of them starts a loop or feeds an amplifier; BIND drops 7, 13, 19, 37
and never sends errors to them, dnsmasq and PowerDNS drop port 0), or when
its source address can never send: unspecified, multicast, 240/4 (which
holds the limited broadcast address) or the broadcast address of a local
subnet (the kernel does not filter subnet-directed broadcast sources). The
service's own port (DNS 53, NBNS 137) is never in the list.

Response rate limiting, in the spirit of BIND's RRL (ARM "Response Rate
Limiting") and Knot's ``rrl`` module. Each answer is charged to its
destination's prefix (/32 for IPv4, /56 for IPv6 by default) in a token
bucket kept as a GCRA "theoretical arrival time" (ITU-T I.371): an answer
of cost ``c`` ns is sent when ``max(tat, now) + c - now <= tolerance`` and
then advances ``tat``; a bucket thus holds ``burst`` answers and refills
at ``rate`` per second. NBNS node status (whose answer is 3.5 times its
query) costs more: ``1 / heavy_rate`` seconds. An answer over the limit is
dropped, except that every ``slip``-th one per bucket is sent truncated
(DNS: TC=1, header and question only, so a real client retries over TCP;
NBNS has no TCP and no slip). ``log_only`` counts what would be limited and
sends it anyway. Exempt prefixes are never charged.

The table of buckets is fixed-size, as Knot's: a key hashes to a slot and
probes :data:`WAYS` slots; a miss takes the free or least-charged of them
(smallest ``tat``), so a flood of spoofed sources cannot grow the table,
and it evicts idle buckets before a limited one.

Python builds every parameter here (:func:`build_policy`); the compiled
drain loop (responder/net/_udploop.c) holds a C mirror of :class:`Guard`
built from the same :class:`Policy` and only applies it. Time is injected
(``now`` in ns). Counter names are :data:`COUNTER_NAMES`, in order.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

REFLECTION_PORTS = (7, 13, 17, 19, 37, 123, 161, 389, 1900, 11211)
ALWAYS_BAD = ("0.0.0.0/32", "224.0.0.0/3", "::/128", "ff00::/8")  # 224/3: multicast + 240/4
NBNS_STATUS_SUFFIX = b"\x00\x21\x00\x01"  # a node status request ends with NBSTAT, IN
WAYS = 4
PORT_BITMAP = 65536 // 8
RULE_SIZE = 18  # address length (4 or 16), prefix length, address padded to 16 bytes
SEND, DROP, SLIP = 0, 1, 2
COUNTER_NAMES = (
    "port_zero",
    "reflection_port",
    "bad_source",
    "limited_dropped",
    "limited_slipped",
    "log_only",
)
PORT_ZERO, REFLECTION_PORT, BAD_SOURCE, LIMITED_DROPPED, LIMITED_SLIPPED, LOG_ONLY = range(6)
NS = 1_000_000_000

Prefix = tuple[bytes, int]  # packed network address, prefix length


@dataclass(frozen=True, slots=True)
class Policy:
    """Every parameter of a :class:`Guard` (and of its C mirror), fixed per config load."""

    ports: bytes  # PORT_BITMAP bytes; bit p set: drop source port p
    bad_sources: tuple[Prefix, ...]
    interval: int  # ns per answer; 0: rate limiting off
    heavy_interval: int  # ns per heavy answer (NBNS node status)
    tolerance: int  # ns: the bucket's depth, burst * interval
    slip: int  # every slip-th limited answer is truncated; 0: none
    log_only: bool
    ipv4_prefix: int
    ipv6_prefix: int
    exempt: tuple[Prefix, ...]
    heavy_suffix: bytes  # a datagram ending with these bytes is charged heavy_interval
    table_size: int  # buckets, a power of two


def prefix(text: str) -> Prefix:
    """``"198.18.0.0/24"`` -> (packed network, 24).

    Raises:
        ValueError: not an IP network (host bits may be set; they are cleared).
    """
    network = ipaddress.ip_network(text, strict=False)
    return network.network_address.packed, network.prefixlen


def port_bitmap(ports: Iterable[int], allowed: int) -> bytes:
    """The bitmap of dropped source ports: ``ports`` and 0, never ``allowed``."""
    bitmap = bytearray(PORT_BITMAP)
    for port in {*ports} - {allowed} | {0}:
        bitmap[port >> 3] |= 1 << (port & 7)
    return bytes(bitmap)


def build_policy(
    *,
    reflection_ports: Iterable[int],
    service_port: int,
    broadcasts: Iterable[str],
    rate: int,
    burst: int,
    slip: int,
    heavy_rate: int | None = None,
    heavy_suffix: bytes = b"",
    ipv4_prefix: int = 32,
    ipv6_prefix: int = 56,
    exempt: Iterable[str] = (),
    log_only: bool = False,
    table_size: int = 16384,
) -> Policy:
    """A service's policy; ``rate`` 0 switches rate limiting off.

    Raises:
        ValueError: a broadcast or exempt address is invalid, or table_size
            is not a power of two.
    """
    if table_size < WAYS or table_size & (table_size - 1):
        raise ValueError(f"table_size {table_size} must be a power of two >= {WAYS}")
    interval = NS // rate if rate else 0
    heavy = NS // heavy_rate if rate and heavy_rate else interval
    bad = tuple(prefix(t) for t in (*ALWAYS_BAD, *(f"{b}/32" for b in broadcasts)))
    return Policy(
        ports=port_bitmap(reflection_ports, service_port),
        bad_sources=bad,
        interval=interval,
        heavy_interval=heavy,
        tolerance=burst * interval,
        slip=slip,
        log_only=log_only,
        ipv4_prefix=ipv4_prefix,
        ipv6_prefix=ipv6_prefix,
        exempt=tuple(prefix(t) for t in exempt),
        heavy_suffix=heavy_suffix,
        table_size=table_size,
    )


def rules_blob(prefixes: Iterable[Prefix]) -> bytes:
    """Prefixes in the compiled loop's layout (:data:`RULE_SIZE` bytes each)."""
    return b"".join(bytes([len(n), bits]) + n.ljust(16, b"\0") for n, bits in prefixes)


def _masks(prefixes: Iterable[Prefix]) -> dict[int, list[tuple[int, int]]]:
    """Per address length: (network as int, mask as int)."""
    found: dict[int, list[tuple[int, int]]] = {4: [], 16: []}
    for network, bits in prefixes:
        width = 8 * len(network)
        mask = ((1 << bits) - 1) << (width - bits)
        found[len(network)].append((int.from_bytes(network) & mask, mask))
    return found


def _matches(rules: dict[int, list[tuple[int, int]]], packed: bytes) -> bool:
    value = int.from_bytes(packed)
    for network, mask in rules.get(len(packed), ()):  # noqa: SIM110 (cheaper than any())
        if value & mask == network:
            return True
    return False


def dns_slip(reply: bytes) -> bytes | None:
    """The truncated form of a DNS reply (RFC 1035 §4.1.1 TC, RFC 7766 §5 retry over TCP).

    Header with TC set and the question only; None when the reply has no
    plain single question (the limited answer is then dropped).
    """
    if len(reply) < 12 or reply[4:6] != b"\x00\x01":
        return None
    offset = 12
    while offset < len(reply) and 0 < reply[offset] < 64:
        offset += reply[offset] + 1
    end = offset + 5
    if offset >= len(reply) or reply[offset] != 0 or end > len(reply):
        return None
    flags = (int.from_bytes(reply[2:4]) | 0x0200).to_bytes(2)
    return reply[:2] + flags + b"\x00\x01" + bytes(6) + reply[12:end]


class Guard:
    """The reference filter and bucket table; the compiled loop has a C mirror of it."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.counts = [0] * len(COUNTER_NAMES)
        self._ports = policy.ports
        self._bad = _masks(policy.bad_sources)
        self._exempt = _masks(policy.exempt)
        self._key_masks = {
            4: ((1 << policy.ipv4_prefix) - 1) << (32 - policy.ipv4_prefix),
            16: ((1 << policy.ipv6_prefix) - 1) << (128 - policy.ipv6_prefix),
        }
        size = policy.table_size
        self._keys: list[bytes | None] = [None] * size
        self._tats = [0] * size
        self._limited = [0] * size

    @property
    def limiting(self) -> bool:
        return self.policy.interval > 0

    def sources(self) -> int:
        """Buckets in use (at most ``table_size``)."""
        return sum(key is not None for key in self._keys)

    def check_source(self, packed: bytes, port: int) -> bool:
        """True (and counted by reason) when a datagram from here must be dropped unread."""
        if self._ports[port >> 3] & (1 << (port & 7)):
            self.counts[REFLECTION_PORT if port else PORT_ZERO] += 1
            return True
        if _matches(self._bad, packed):
            self.counts[BAD_SOURCE] += 1
            return True
        return False

    def admit(self, packed: bytes, now: int, heavy: bool) -> int:
        """SEND, DROP or SLIP for one answer to ``packed`` at ``now`` (ns); counted."""
        policy = self.policy
        if not policy.interval or _matches(self._exempt, packed):
            return SEND
        slot = self._slot(packed)
        cost = policy.heavy_interval if heavy else policy.interval
        tat = max(self._tats[slot], now) + cost
        if tat - now <= policy.tolerance:
            self._tats[slot] = tat
            return SEND
        self._limited[slot] += 1
        verdict = SLIP if policy.slip and self._limited[slot] % policy.slip == 0 else DROP
        if policy.log_only:
            self.counts[LOG_ONLY] += 1
            return SEND
        self.counts[LIMITED_SLIPPED if verdict == SLIP else LIMITED_DROPPED] += 1
        return verdict

    def _slot(self, packed: bytes) -> int:
        """The bucket of ``packed``'s prefix, taking a free or the least-charged one on a miss."""
        width = len(packed)
        key = (int.from_bytes(packed) & self._key_masks[width]).to_bytes(width)
        mask = self.policy.table_size - 1
        base = hash(key)
        victim, oldest = -1, None
        for way in range(WAYS):
            slot = (base + way) & mask
            held = self._keys[slot]
            if held == key:
                return slot
            tat = -1 if held is None else self._tats[slot]
            if oldest is None or tat < oldest:
                victim, oldest = slot, tat
        self._keys[victim], self._tats[victim], self._limited[victim] = key, 0, 0
        return victim
