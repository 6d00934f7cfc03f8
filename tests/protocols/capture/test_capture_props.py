"""Totality: any bytes either read as packets or raise UnreadableCapture; parsers never raise."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.capture import pcapng
from protocols.capture.packets import link_to_ip, parse_ip, udp_packet
from protocols.capture.pcapng import UnreadableCapture, read_packets
from protocols.capture.tcp import Reassembler

SETTINGS = settings(max_examples=300, deadline=None)
VALID = b"".join(
    [
        pcapng.section_header("t"),
        pcapng.interface_description("lo"),
        pcapng.enhanced_packet(1.0, udp_packet(("127.0.0.1", 1), ("127.0.0.10", 53), b"q" * 30)),
    ]
)


def _read_all(data: bytes) -> None:
    try:
        packets = list(read_packets(data))
    except UnreadableCapture:
        return
    reassembler = Reassembler()
    for packet in packets:
        ip = link_to_ip(packet.linktype, packet.data)
        segment = None if ip is None else parse_ip(ip)
        if segment is not None and segment.protocol == 6:
            reassembler.add(segment)
    for stream in reassembler.streams():
        stream.client.data()


@SETTINGS
@given(st.binary(max_size=300))
def test_arbitrary_bytes(data: bytes) -> None:
    _read_all(data)


@SETTINGS
@given(st.integers(0, len(VALID)), st.integers(0, len(VALID) - 1), st.integers(0, 255))
def test_truncated_and_flipped_captures(cut: int, at: int, value: int) -> None:
    mutated = bytearray(VALID)
    mutated[at] = value
    _read_all(bytes(mutated[:cut]))
    _read_all(VALID[:cut])


@SETTINGS
@given(st.integers(0, 300), st.binary(max_size=80))
def test_link_and_ip_parsers_never_raise(linktype: int, frame: bytes) -> None:
    ip = link_to_ip(linktype, frame)
    if ip is not None:
        parse_ip(ip)
