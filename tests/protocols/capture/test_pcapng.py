"""pcapng written and read back; classic pcap and foreign link types read."""

from __future__ import annotations

import struct

import pytest

from protocols.capture import pcapng
from protocols.capture.packets import TCP, UDP, link_to_ip, parse_ip, tcp_packet, udp_packet
from protocols.capture.pcapng import UnreadableCapture, read_packets

CLIENT = ("127.0.0.1", 40000)
SERVER = ("127.0.0.10", 53)


def _file(*packets: bytes) -> bytes:
    blocks = [pcapng.section_header("test"), pcapng.interface_description("lo")]
    blocks += [pcapng.enhanced_packet(1700000000.25 + i, p) for i, p in enumerate(packets)]
    return b"".join([*blocks, pcapng.interface_statistics(1700000009.0, 3, "3 dropped")])


def test_pcapng_round_trip() -> None:
    packet = udp_packet(CLIENT, SERVER, b"\x12\x34query")
    read = list(read_packets(_file(packet, packet)))
    assert [p.data for p in read] == [packet, packet]
    assert read[0].linktype == pcapng.LINKTYPE_RAW
    assert read[1].timestamp == pytest.approx(1700000001.25)


def test_udp_packet_parses_back() -> None:
    segment = parse_ip(udp_packet(CLIENT, SERVER, b"abc"))
    assert segment is not None
    assert (segment.protocol, segment.source, segment.destination) == (UDP, CLIENT, SERVER)
    assert segment.payload == b"abc"


def test_ipv6_tcp_packet_parses_back() -> None:
    client, server = ("fd00::1", 5000), ("fd00::11", 445)
    segment = parse_ip(tcp_packet(client, server, 7, 9, 0x18, b"smb"))
    assert segment is not None
    assert (segment.protocol, segment.seq, segment.payload) == (TCP, 7, b"smb")
    assert segment.destination == server


def test_ipv4_header_checksum_verifies() -> None:
    header = udp_packet(CLIENT, SERVER, b"x")[:20]
    total = sum(struct.unpack("!10H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    assert total == 0xFFFF


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize(
    ("magic", "fraction", "expected"), [(0xA1B2C3D4, 500000, 0.5), (0xA1B23C4D, 250000000, 0.25)]
)
def test_classic_pcap_ethernet(order: str, magic: int, fraction: int, expected: float) -> None:
    packet = udp_packet(CLIENT, SERVER, b"q")
    frame = bytes(12) + b"\x08\x00" + packet
    header = struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, 65535, 1)
    record = struct.pack(order + "IIII", 10, fraction, len(frame), len(frame)) + frame
    (read,) = read_packets(header + record)
    assert read.timestamp == pytest.approx(10 + expected)
    assert link_to_ip(read.linktype, read.data) == packet


@pytest.mark.parametrize(
    ("linktype", "prefix"),
    [
        (113, bytes(14) + b"\x08\x00"),  # LINUX_SLL
        (276, b"\x08\x00" + bytes(18)),  # LINUX_SLL2
        (0, b"\x02\x00\x00\x00"),  # NULL
        (1, bytes(12) + b"\x81\x00\x00\x05\x08\x00"),  # Ethernet with an 802.1Q tag
    ],
)
def test_link_types(linktype: int, prefix: bytes) -> None:
    packet = udp_packet(CLIENT, SERVER, b"q")
    assert link_to_ip(linktype, prefix + packet) == packet


def test_reject_unknown_magic() -> None:
    with pytest.raises(UnreadableCapture, match="not pcap or pcapng"):
        list(read_packets(b"GIF89a" + bytes(40)))


def test_reject_truncated_pcapng() -> None:
    data = _file(udp_packet(CLIENT, SERVER, b"q" * 100))
    with pytest.raises(UnreadableCapture, match="cut"):
        list(read_packets(data[:-60]))


def test_reject_truncated_pcap_record() -> None:
    header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 101)
    with pytest.raises(UnreadableCapture, match="cut short"):
        list(read_packets(header + struct.pack("<IIII", 0, 0, 100, 100) + b"x"))


def test_reject_packet_on_undescribed_interface() -> None:
    data = pcapng.section_header("t") + pcapng.enhanced_packet(0, b"x")
    with pytest.raises(UnreadableCapture, match="never described"):
        list(read_packets(data))
