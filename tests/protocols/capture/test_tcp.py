"""A synthesized TCP conversation reassembles to the payloads it was given."""

from __future__ import annotations

from protocols.capture.packets import ACK, FIN, RST, SYN, parse_ip
from protocols.capture.tcp import MAX_SEGMENT, Conversation, Reassembler

CLIENT = ("127.0.0.1", 50000)
SERVER = ("127.0.0.11", 445)


def _conversation() -> list[bytes]:
    conversation = Conversation(CLIENT, SERVER, 0xFFFFFFF0, 1000)  # the client's ISN wraps
    packets = conversation.open()
    packets += conversation.send(CLIENT, b"hello")
    packets += conversation.send(SERVER, b"x" * (MAX_SEGMENT + 10))
    packets += conversation.send(CLIENT, b"again")
    return packets + conversation.close(CLIENT)


def test_handshake_and_close_flags() -> None:
    segments = [parse_ip(p) for p in _conversation()]
    flags = [s.flags for s in segments if s is not None]
    assert flags[:3] == [SYN, SYN | ACK, ACK]
    assert flags[-3:] == [FIN | ACK, FIN | ACK, ACK]


def test_an_aborted_connection_ends_with_one_rst_from_the_side_that_reset_it() -> None:
    conversation = Conversation(CLIENT, SERVER, 100, 1000)
    conversation.open()
    conversation.send(CLIENT, b"hello")
    (packet,) = conversation.reset(SERVER)
    segment = parse_ip(packet)
    assert segment is not None and segment.flags == RST | ACK
    assert (segment.source, segment.destination, segment.seq) == (SERVER, CLIENT, 1001)


def test_sequence_numbers_advance() -> None:
    segments = [s for p in _conversation() if (s := parse_ip(p)) is not None]
    client = [s for s in segments if s.source == CLIENT and s.payload]
    assert client[1].seq == (client[0].seq + 5) & 0xFFFFFFFF


def test_reassembled_streams() -> None:
    reassembler = Reassembler()
    for packet in _conversation():
        segment = parse_ip(packet)
        assert segment is not None
        reassembler.add(segment)
    (stream,) = reassembler.streams()
    assert stream.client.data() == b"helloagain"
    assert stream.server is not None
    assert stream.server.data() == b"x" * (MAX_SEGMENT + 10)


def test_retransmission_and_reordering() -> None:
    packets = _conversation()
    segments = [s for p in packets if (s := parse_ip(p)) is not None]
    reassembler = Reassembler()
    for segment in [*segments[:3], segments[6], segments[3], segments[3], *segments[4:6]]:
        reassembler.add(segment)
    (stream,) = reassembler.streams()
    assert stream.client.data() == b"helloagain"


def test_capture_started_mid_connection() -> None:
    segments = [s for p in _conversation() if (s := parse_ip(p)) is not None]
    reassembler = Reassembler()
    for segment in segments[3:]:
        reassembler.add(segment)
    (stream,) = reassembler.streams()
    assert stream.client.data() == b"helloagain"
