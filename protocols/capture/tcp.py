"""TCP: a plausible conversation synthesized from payloads, and streams reassembled from segments.

Synthesis (RFC 793 §3.4 and §3.5). The daemon sees a TCP connection as
"accepted", payloads in each direction and "closed"; a capture must show
what a sniffer would have seen, so Wireshark follows the stream and
reassembles SMB across segments. :class:`Conversation` gives each side an
initial sequence number, writes SYN, SYN-ACK and ACK at open, one PSH-ACK
segment per payload (the sequence number advancing by its length, the
acknowledgement being what the other side sent so far) and FIN-ACK, FIN-ACK,
ACK at close, or one RST-ACK from the side that reset it. Payloads longer
than 65000 bytes are split, so every segment fits an IP packet.

Reassembly. :class:`Reassembler` collects the segments of a capture per
direction of a connection (keyed by the 4-tuple), places each payload at its
sequence number relative to the SYN (or to the first segment seen, for a
capture started mid-connection), ignores retransmitted bytes, and hands out
each direction's bytes in order with the time of the first segment.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Final

from protocols.capture.packets import ACK, FIN, PSH, RST, SYN, Address, Segment, tcp_packet

MAX_SEGMENT: Final = 65000


class Conversation:
    """One connection's packets as a sniffer would see them (RFC 793 §3.4/§3.5)."""

    def __init__(self, client: Address, server: Address, client_isn: int, server_isn: int) -> None:
        self.client = client
        self.server = server
        self._next = {client: client_isn + 1 & 0xFFFFFFFF, server: server_isn + 1 & 0xFFFFFFFF}
        self._isn = {client: client_isn, server: server_isn}

    def _peer(self, side: Address) -> Address:
        return self.server if side == self.client else self.client

    def open(self) -> list[bytes]:
        """SYN, SYN-ACK, ACK."""
        c, s = self.client, self.server
        return [
            tcp_packet(c, s, self._isn[c], 0, SYN),
            tcp_packet(s, c, self._isn[s], self._next[c], SYN | ACK),
            tcp_packet(c, s, self._next[c], self._next[s], ACK),
        ]

    def send(self, sender: Address, payload: bytes) -> list[bytes]:
        """The PSH-ACK segments carrying ``payload`` from ``sender``."""
        peer = self._peer(sender)
        packets = []
        for at in range(0, len(payload), MAX_SEGMENT):
            chunk = payload[at : at + MAX_SEGMENT]
            seq, ack = self._next[sender], self._next[peer]
            packets.append(tcp_packet(sender, peer, seq, ack, PSH | ACK, chunk))
            self._next[sender] = seq + len(chunk) & 0xFFFFFFFF
        return packets

    def close(self, closer: Address) -> list[bytes]:
        """FIN-ACK from ``closer``, FIN-ACK from the peer, the last ACK."""
        peer = self._peer(closer)
        first = tcp_packet(closer, peer, self._next[closer], self._next[peer], FIN | ACK)
        self._next[closer] = self._next[closer] + 1 & 0xFFFFFFFF
        second = tcp_packet(peer, closer, self._next[peer], self._next[closer], FIN | ACK)
        self._next[peer] = self._next[peer] + 1 & 0xFFFFFFFF
        last = tcp_packet(closer, peer, self._next[closer], self._next[peer], ACK)
        return [first, second, last]

    def reset(self, resetter: Address) -> list[bytes]:
        """RST-ACK from ``resetter``: an aborted connection ends with it alone (RFC 793 §3.4)."""
        peer = self._peer(resetter)
        return [tcp_packet(resetter, peer, self._next[resetter], self._next[peer], RST | ACK)]


@dataclass(slots=True)
class Direction:
    """The bytes one side of a connection sent, as reassembled."""

    source: Address
    destination: Address
    first_seen: float
    base: int | None = None  # sequence number of byte 0
    pieces: dict[int, bytes] = field(default_factory=dict)

    def add(self, segment: Segment) -> None:
        """Place the segment's payload at its offset (a SYN sets the base)."""
        if segment.flags & SYN:
            self.base = segment.seq + 1 & 0xFFFFFFFF
        if not segment.payload:
            return
        if self.base is None:
            self.base = segment.seq
        offset = segment.seq - self.base & 0xFFFFFFFF
        if len(segment.payload) > len(self.pieces.get(offset, b"")):
            self.pieces[offset] = segment.payload

    def data(self) -> bytes:
        """The bytes in order; a gap (a segment the capture missed) ends them."""
        out = bytearray()
        for offset in sorted(self.pieces):
            piece = self.pieces[offset]
            if offset > len(out):
                break
            out += piece[len(out) - offset :]
        return bytes(out)


@dataclass(slots=True)
class Stream:
    """One TCP connection of a capture: the client's bytes and the server's."""

    client: Direction
    server: Direction | None = None


class Reassembler:
    """Collects TCP segments into :class:`Stream` objects, one per connection."""

    def __init__(self) -> None:
        self._streams: dict[tuple[Address, Address], Stream] = {}
        self._order: list[Stream] = []

    def add(self, segment: Segment) -> None:
        """File a segment under its connection; a new SYN on a used 4-tuple starts another."""
        key = (segment.source, segment.destination)
        reverse = (segment.destination, segment.source)
        stream = self._streams.get(key) or self._streams.get(reverse)
        if stream is None or (segment.flags & SYN and not segment.flags & ACK and stream.server):
            stream = self._start(segment)
        if stream.client.source == segment.source:
            stream.client.add(segment)
            return
        if stream.server is None:
            stream.server = Direction(segment.source, segment.destination, segment.timestamp)
        stream.server.add(segment)

    def _start(self, segment: Segment) -> Stream:
        # A SYN-ACK seen first means the capture started between SYN and SYN-ACK: flip.
        is_reply = segment.flags & SYN and segment.flags & ACK
        client = segment.destination if is_reply else segment.source
        server = segment.source if is_reply else segment.destination
        stream = Stream(Direction(client, server, segment.timestamp))
        self._streams[(client, server)] = stream
        self._streams.pop((server, client), None)
        self._order.append(stream)
        return stream

    def streams(self) -> Iterator[Stream]:
        """Every connection, in the order its first segment was seen."""
        yield from self._order
