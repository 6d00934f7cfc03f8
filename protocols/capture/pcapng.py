"""pcapng blocks out, pcap and pcapng packets in (sans-IO: bytes only, no files).

Writing follows draft-ietf-opsawg-pcapng: a Section Header Block (§4.1) opens
the file, one Interface Description Block (§4.2) declares LINKTYPE_RAW (101,
IPv4 and IPv6 packets without a link header), each packet is an Enhanced
Packet Block (§4.3) on interface 0 with microsecond timestamps (the default
``if_tsresol``), and an Interface Statistics Block (§4.6) closes it, carrying
``isb_ifdrop`` (records dropped before they were written) and an
``opt_comment`` (§3.5) saying so. Every block is padded to 32 bits and ends
with its length repeated.

Reading accepts both formats, either byte order:

- classic pcap (libpcap's file format, draft-ietf-opsawg-pcap): the 24-byte
  header (magic a1b2c3d4 for microseconds, a1b23c4d for nanoseconds), then
  16-byte record headers;
- pcapng: sections (§4.1, the byte-order magic per section), interfaces (§4.2
  with ``if_tsresol``, option 9), Enhanced (§4.3) and Simple (§4.4) Packet
  Blocks, the obsolete Packet Block (appendix); every other block is skipped.

Whatever cannot be read raises :class:`UnreadableCapture` with the offset.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from protocols.errors import MalformedMessage

LINKTYPE_RAW: Final = 101
SHB: Final = 0x0A0D0D0A
IDB: Final = 0x00000001
PB: Final = 0x00000002
SPB: Final = 0x00000003
ISB: Final = 0x00000005
EPB: Final = 0x00000006
BYTE_ORDER_MAGIC: Final = 0x1A2B3C4D
OPT_END: Final = 0
OPT_COMMENT: Final = 1
IF_TSRESOL: Final = 9
ISB_IFDROP: Final = 5
SNAPLEN: Final = 262144
_PCAP_MAGICS: Final = {0xA1B2C3D4: 1_000_000, 0xA1B23C4D: 1_000_000_000}


class UnreadableCapture(MalformedMessage):
    """Not a pcap or pcapng file, or one cut short."""


@dataclass(frozen=True, slots=True)
class Packet:
    """One captured frame: seconds since the epoch, its link type and its bytes."""

    timestamp: float
    linktype: int
    data: bytes


def _pad(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 4)


def _option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + _pad(value)


def _options(*options: bytes) -> bytes:
    return b"".join(options) + _option(OPT_END, b"") if options else b""


def _block(block_type: int, body: bytes) -> bytes:
    length = 12 + len(body)
    return struct.pack("<II", block_type, length) + body + struct.pack("<I", length)


def section_header(application: str) -> bytes:
    """The Section Header Block that opens a file (§4.1): little-endian, length unknown."""
    body = struct.pack("<IHHq", BYTE_ORDER_MAGIC, 1, 0, -1)
    return _block(SHB, body + _options(_option(4, application.encode())))  # shb_userappl


def interface_description(name: str) -> bytes:
    """The one interface every packet is written on (§4.2): raw IP, microseconds."""
    body = struct.pack("<HHI", LINKTYPE_RAW, 0, SNAPLEN)
    return _block(IDB, body + _options(_option(2, name.encode()), _option(IF_TSRESOL, b"\x06")))


def enhanced_packet(timestamp: float, packet: bytes, comment: str | None = None) -> bytes:
    """One packet on interface 0 at ``timestamp`` (§4.3)."""
    micros = int(timestamp * 1_000_000)
    header = struct.pack("<IIIII", 0, micros >> 32, micros & 0xFFFFFFFF, len(packet), len(packet))
    options = _options(_option(OPT_COMMENT, comment.encode())) if comment else b""
    return _block(EPB, header + _pad(packet) + options)


def interface_statistics(timestamp: float, dropped: int, comment: str) -> bytes:
    """Statistics for interface 0 (§4.6): ``isb_ifdrop`` and a comment."""
    micros = int(timestamp * 1_000_000)
    header = struct.pack("<III", 0, micros >> 32, micros & 0xFFFFFFFF)
    options = _options(
        _option(OPT_COMMENT, comment.encode()), _option(ISB_IFDROP, struct.pack("<Q", dropped))
    )
    return _block(ISB, header + options)


def read_packets(data: bytes) -> Iterator[Packet]:
    """Every packet of a pcap or pcapng file, in file order.

    Raises:
        UnreadableCapture: the bytes are neither format, or a block is cut short.
    """
    if len(data) < 24:
        raise UnreadableCapture("capture", 0, f"{len(data)} bytes is too short for a capture")
    magic_le = struct.unpack_from("<I", data)[0]
    magic_be = struct.unpack_from(">I", data)[0]
    if magic_le == SHB:
        yield from _read_pcapng(data)
    elif magic_le in _PCAP_MAGICS:
        yield from _read_pcap(data, "<", _PCAP_MAGICS[magic_le])
    elif magic_be in _PCAP_MAGICS:
        yield from _read_pcap(data, ">", _PCAP_MAGICS[magic_be])
    else:
        raise UnreadableCapture("capture", 0, f"unknown magic {magic_le:08x}: not pcap or pcapng")


def _read_pcap(data: bytes, order: str, units: int) -> Iterator[Packet]:
    linktype = struct.unpack_from(order + "I", data, 20)[0] & 0x0FFFFFFF
    offset = 24
    while offset < len(data):
        if offset + 16 > len(data):
            raise UnreadableCapture("pcap", offset, "record header cut short")
        seconds, fraction, caplen, _ = struct.unpack_from(order + "IIII", data, offset)
        end = offset + 16 + caplen
        if end > len(data):
            raise UnreadableCapture("pcap", offset, f"record of {caplen} bytes cut short")
        yield Packet(seconds + fraction / units, linktype, data[offset + 16 : end])
        offset = end


@dataclass(slots=True)
class _Interface:
    linktype: int
    units: int  # timestamp units per second


def _read_pcapng(data: bytes) -> Iterator[Packet]:
    order = "<"
    interfaces: list[_Interface] = []
    offset = 0
    while offset < len(data):
        if offset + 12 > len(data):
            raise UnreadableCapture("pcapng", offset, "block header cut short")
        block_type = struct.unpack_from(order + "I", data, offset)[0]
        if block_type == SHB:
            order = _section_order(data, offset)
            interfaces = []
        length = struct.unpack_from(order + "I", data, offset + 4)[0]
        if length < 12 or length % 4 or offset + length > len(data):
            raise UnreadableCapture("pcapng", offset, f"block length {length} is invalid or cut")
        body = data[offset + 8 : offset + length - 4]
        packet = _packet_block(block_type, body, order, interfaces, offset)
        if packet is not None:
            yield packet
        offset += length


def _section_order(data: bytes, offset: int) -> str:
    if offset + 12 > len(data):
        raise UnreadableCapture("pcapng", offset, "section header cut short")
    magic = struct.unpack_from("<I", data, offset + 8)[0]
    if magic == BYTE_ORDER_MAGIC:
        return "<"
    if magic == 0x4D3C2B1A:
        return ">"
    raise UnreadableCapture("pcapng", offset, "bad byte-order magic")


def _packet_block(
    block_type: int, body: bytes, order: str, interfaces: list[_Interface], offset: int
) -> Packet | None:
    try:
        if block_type == IDB:
            interfaces.append(_interface(body, order))
        elif block_type in (EPB, PB):
            return _enhanced(body, order, interfaces, block_type == PB)
        elif block_type == SPB and interfaces:
            caplen = min(struct.unpack_from(order + "I", body)[0], len(body) - 4)
            return Packet(0.0, interfaces[0].linktype, body[4 : 4 + caplen])
    except (struct.error, IndexError) as exc:
        raise UnreadableCapture("pcapng", offset, f"block {block_type:#x}: {exc}") from None
    return None


def _interface(body: bytes, order: str) -> _Interface:
    linktype = struct.unpack_from(order + "H", body)[0]
    units = 1_000_000
    at = 8
    while at + 4 <= len(body):
        code, size = struct.unpack_from(order + "HH", body, at)
        if code == OPT_END:
            break
        if code == IF_TSRESOL and size >= 1:
            value = body[at + 4]
            units = 2 ** (value & 0x7F) if value & 0x80 else 10 ** (value & 0x7F)
        at += 4 + size + (-size % 4)
    return _Interface(linktype, units)


def _enhanced(body: bytes, order: str, interfaces: list[_Interface], obsolete: bool) -> Packet:
    if obsolete:
        interface, _, high, low, caplen, _ = struct.unpack_from(order + "HHIIII", body)
    else:
        interface, high, low, caplen, _ = struct.unpack_from(order + "IIIII", body)
    if interface >= len(interfaces):
        raise IndexError(f"interface {interface} was never described")
    if 20 + caplen > len(body):
        raise IndexError(f"packet of {caplen} bytes overruns its block")
    described = interfaces[interface]
    stamp = ((high << 32) | low) / described.units
    return Packet(stamp, described.linktype, body[20 : 20 + caplen])
