"""Sending a UDP broadcast from an address the host no longer holds, on the link layer.

When a VRRP standby loses its virtual address, its NetBIOS names must still be
released by broadcast (RFC 1002 §5.1.1.5), but the kernel refuses to route a
datagram from a source address that is no longer local (ENETUNREACH; ip(7)).
So the release goes out as a whole IPv4/UDP packet of our own making on an
``AF_PACKET``/``SOCK_DGRAM`` socket (packet(7)) to the link-layer broadcast
address of the interface that held the address: what the segment sees is
exactly what the socket would have sent. Opening the socket needs
CAP_NET_RAW, so the daemon opens it at start.
"""

from __future__ import annotations

import logging
import secrets
import socket
import struct

from responder.net import tap

log = logging.getLogger(__name__)

ETH_P_IP = 0x0800
ETHER_BROADCAST = b"\xff" * 6
_IP_HEADER = struct.Struct("!BBHHHBBH4s4s")
_UDP_HEADER = struct.Struct("!HHHH")
_TTL = 128  # [daemon] ip_ttl default: what a Windows node sends


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def udp_packet(
    source: tuple[str, int], destination: tuple[str, int], payload: bytes, ttl: int = _TTL
) -> bytes:
    """An IPv4 header with TTL ``ttl``, a UDP header (RFC 768, with checksum) and ``payload``.

    Raises:
        OSError: an address is not dotted-quad IPv4.
    """
    src, dst = socket.inet_aton(source[0]), socket.inet_aton(destination[0])
    length = _UDP_HEADER.size + len(payload)
    pseudo = src + dst + struct.pack("!BBH", 0, socket.IPPROTO_UDP, length)
    udp = _UDP_HEADER.pack(source[1], destination[1], length, 0) + payload
    udp = udp[:6] + struct.pack("!H", _checksum(pseudo + udp) or 0xFFFF) + udp[8:]
    total = _IP_HEADER.size + length
    ident = secrets.randbits(16)
    header = _IP_HEADER.pack(0x45, 0, total, ident, 0, ttl, socket.IPPROTO_UDP, 0, src, dst)
    header = header[:10] + struct.pack("!H", _checksum(header)) + header[12:]
    return header + udp


class LinkSender:
    """One AF_PACKET socket, opened while we may (CAP_NET_RAW), used for broadcasts."""

    def __init__(self) -> None:
        self._sock: socket.socket | None = None
        self.ttl = _TTL  # set from [daemon] ip_ttl

    def open(self) -> None:
        """Open the packet socket; without the privilege, later sends are skipped (logged)."""
        if self._sock is not None:
            return
        try:
            self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_IP))
            self._sock.setblocking(False)
        except OSError as exc:
            log.warning(
                "cannot open a packet socket (%s): names of an address that goes "
                "away will not be released by broadcast",
                exc,
            )

    def broadcast(
        self, ifindex: int, source: tuple[str, int], destination: tuple[str, int], data: bytes
    ) -> bool:
        """Send a UDP datagram to every station of the interface ``ifindex``; False if dropped."""
        if self._sock is None:
            return False
        try:
            name = socket.if_indextoname(ifindex)
            packet = udp_packet(source, destination, data, self.ttl)
            self._sock.sendto(packet, (name, ETH_P_IP, 0, 0, ETHER_BROADCAST))
        except OSError as exc:
            log.debug("link-layer send from %s on interface %d failed: %s", source, ifindex, exc)
            return False
        if tap.current is not None:  # run --pcap: this release is sent too
            tap.current.datagram(source, destination, data)
        return True

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
