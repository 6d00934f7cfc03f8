"""IP packets around UDP datagrams and TCP segments: built for pcapng, parsed from any link.

Building: IPv4 (RFC 791, header checksum computed, DF set, TTL 64) or IPv6
(RFC 8200, hop limit 64) carrying UDP (RFC 768) or TCP (RFC 793 §3.1, a
20-byte header without options); the transport checksums over the RFC 768 /
RFC 8200 §8.1 pseudo-header are computed, so Wireshark reports no bad
checksum.

Parsing: a frame of one of the link types tshark and tcpdump write on Linux
is peeled down to IP (LINKTYPE_ETHERNET 1 with 802.1Q tags, RAW 101 and its
IPv4/IPv6 forms 228/229, NULL 0 and LOOP 108, LINUX_SLL 113 and LINUX_SLL2
276), then to a :class:`Segment`. IPv4 fragments other than the first, IPv6
extension headers other than none, and other transports yield None: replay
has nothing to say about them.
"""

from __future__ import annotations

import functools
import ipaddress
import struct
from dataclasses import dataclass
from typing import Final

UDP: Final = 17
TCP: Final = 6
FIN: Final = 0x01
SYN: Final = 0x02
RST: Final = 0x04
PSH: Final = 0x08
ACK: Final = 0x10
_ETHERTYPE_IPV4: Final = 0x0800
_ETHERTYPE_IPV6: Final = 0x86DD
_VLAN: Final = (0x8100, 0x88A8)

Address = tuple[str, int]


@dataclass(frozen=True, slots=True)
class Segment:
    """A UDP datagram or TCP segment: endpoints, payload and (TCP) sequence and flags."""

    protocol: int  # UDP or TCP
    source: Address
    destination: Address
    payload: bytes
    seq: int = 0
    flags: int = 0
    timestamp: float = 0.0


def _checksum(data: bytes) -> int:
    # RFC 1071: the one's complement sum of 16-bit words. As 2**16 == 1 (mod 0xFFFF), it is
    # the big-endian number's remainder mod 0xFFFF (0 standing for 0xFFFF unless all is 0).
    if len(data) % 2:
        data += b"\0"
    number = int.from_bytes(data)
    total = number % 0xFFFF or (0xFFFF if number else 0)
    return ~total & 0xFFFF


@functools.lru_cache(maxsize=4096)
def _packed(address: str) -> bytes:
    return ipaddress.ip_address(address).packed


def _pseudo(source: str, destination: str, protocol: int, length: int) -> bytes:
    src, dst = _packed(source), _packed(destination)
    if len(src) == 4:
        return src + dst + struct.pack("!BBH", 0, protocol, length)
    return src + dst + struct.pack("!IxxxB", length, protocol)


def _ip(source: str, destination: str, protocol: int, transport: bytes) -> bytes:
    src, dst = _packed(source), _packed(destination)
    if len(src) == 16:
        header6 = struct.pack("!IHBB", 6 << 28, len(transport), protocol, 64)
        return header6 + src + dst + transport
    fields = [0x45, 0, 20 + len(transport), 0, 0x4000, 64, protocol, 0, src, dst]
    header = struct.pack("!BBHHHBBH4s4s", *fields)
    fields[7] = _checksum(header)
    return struct.pack("!BBHHHBBH4s4s", *fields) + transport


def udp_packet(source: Address, destination: Address, payload: bytes) -> bytes:
    """An IP packet carrying one UDP datagram, checksums filled in."""
    length = 8 + len(payload)
    header = struct.pack("!HHHH", source[1], destination[1], length, 0)
    pseudo = _pseudo(source[0], destination[0], UDP, length)
    checksum = _checksum(pseudo + header + payload) or 0xFFFF
    return _ip(source[0], destination[0], UDP, header[:6] + struct.pack("!H", checksum) + payload)


def tcp_packet(
    source: Address, destination: Address, seq: int, ack: int, flags: int, payload: bytes = b""
) -> bytes:
    """An IP packet carrying one TCP segment (no options, window 65535), checksums filled in."""
    header = struct.pack(
        "!HHIIBBHHH", source[1], destination[1], seq, ack, 5 << 4, flags, 65535, 0, 0
    )
    pseudo = _pseudo(source[0], destination[0], TCP, len(header) + len(payload))
    checksum = _checksum(pseudo + header + payload)
    header = header[:16] + struct.pack("!H", checksum) + header[18:]
    return _ip(source[0], destination[0], TCP, header + payload)


def link_to_ip(linktype: int, frame: bytes) -> bytes | None:
    """The IP packet inside a frame of ``linktype``; None for other link types or protocols."""
    if linktype in (101, 228, 229, 12, 14):
        return frame
    if linktype in (0, 108) and len(frame) >= 4:  # BSD loopback: family in host order
        return frame[4:]
    if linktype == 1:
        return _ethernet(frame)
    if linktype == 113 and len(frame) >= 16:
        return _by_ethertype(int.from_bytes(frame[14:16]), frame[16:])
    if linktype == 276 and len(frame) >= 20:
        return _by_ethertype(int.from_bytes(frame[0:2]), frame[20:])
    return None


def _ethernet(frame: bytes) -> bytes | None:
    at = 12
    while at + 2 <= len(frame) and int.from_bytes(frame[at : at + 2]) in _VLAN:
        at += 4
    if at + 2 > len(frame):
        return None
    return _by_ethertype(int.from_bytes(frame[at : at + 2]), frame[at + 2 :])


def _by_ethertype(ethertype: int, payload: bytes) -> bytes | None:
    return payload if ethertype in (_ETHERTYPE_IPV4, _ETHERTYPE_IPV6) else None


def parse_ip(packet: bytes, timestamp: float = 0.0) -> Segment | None:
    """The UDP datagram or TCP segment in an IP packet; None when there is none to replay."""
    if not packet:
        return None
    version = packet[0] >> 4
    if version == 4 and len(packet) >= 20:
        return _ipv4(packet, timestamp)
    if version == 6 and len(packet) >= 40:
        src = str(ipaddress.IPv6Address(packet[8:24]))
        dst = str(ipaddress.IPv6Address(packet[24:40]))
        length = int.from_bytes(packet[4:6])
        return _transport(packet[6], src, dst, packet[40 : 40 + length], timestamp)
    return None


def _ipv4(packet: bytes, timestamp: float) -> Segment | None:
    header_length = (packet[0] & 0x0F) * 4
    total = int.from_bytes(packet[2:4]) or len(packet)
    if int.from_bytes(packet[6:8]) & 0x1FFF:  # a later fragment: no transport header
        return None
    src = str(ipaddress.IPv4Address(packet[12:16]))
    dst = str(ipaddress.IPv4Address(packet[16:20]))
    return _transport(packet[9], src, dst, packet[header_length:total], timestamp)


def _transport(protocol: int, src: str, dst: str, body: bytes, timestamp: float) -> Segment | None:
    if protocol == UDP and len(body) >= 8:
        sport, dport, length = struct.unpack_from("!HHH", body)
        payload = body[8 : max(8, length)] if length >= 8 else body[8:]
        return Segment(UDP, (src, sport), (dst, dport), payload, timestamp=timestamp)
    if protocol == TCP and len(body) >= 20:
        sport, dport, seq, _, offset, flags = struct.unpack_from("!HHIIBB", body)
        payload = body[(offset >> 4) * 4 :]
        return Segment(TCP, (src, sport), (dst, dport), payload, seq, flags, timestamp)
    return None
