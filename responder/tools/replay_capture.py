"""Replay, step one: a capture turned into exchanges (requests and the answers captured for them).

Packets come from :func:`protocols.capture.pcapng.read_packets` (pcap or
pcapng, any of the link types :func:`protocols.capture.packets.link_to_ip`
knows). Then, by port (the config's DNS, NBNS, SMB and NBSS ports):

- a UDP DNS or NBNS datagram whose response bit is clear is a request; the
  answer is the first later response with the same transaction ID going
  back to the request's source (from the address asked, or for an NBNS
  broadcast from whichever node answered);
- a TCP connection to the DNS port is split into RFC 1035 §4.2.2
  length-prefixed messages each way; one to the SMB or NBSS port into
  NBSS frames (RFC 1002 §4.3.1, and the direct-TCP header of MS-SMB2 §2.1,
  both a type byte and a length).

An exchange is ours when the address asked is one the config serves there
(DNS: ``dns.listen``; NBNS, SMB: a management address; NBNS also any
broadcast), and it is not one of our own nodes talking (claims, WINS).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from protocols.capture import pcapng
from protocols.capture.packets import TCP, UDP, Address, Segment, link_to_ip, parse_ip
from protocols.capture.tcp import Reassembler, Stream
from responder.config import Config


@dataclass(slots=True)
class Exchange:
    """Requests sent to ``server`` and the answers the capture holds for them."""

    protocol: str  # dns, nbns, smb
    transport: str  # udp, tcp
    client: Address
    server: Address  # as asked: for an NBNS broadcast, the broadcast address
    requests: list[bytes]
    answers: list[bytes] = field(default_factory=list)
    answered_from: str | None = None  # the address a UDP answer came from
    ours: bool = True
    timestamp: float = 0.0


@dataclass(frozen=True, slots=True)
class Ports:
    dns: int
    nbns: int
    smb: int
    nbss: int

    @staticmethod
    def of(config: Config) -> Ports:
        """The ports ``config`` serves each protocol on."""
        return Ports(config.dns.port, config.netbios.port, config.smb.port, config.smb.netbios_port)


def read_capture(path: str) -> list[Segment]:
    """Every UDP and TCP segment of the file at ``path``, in file order.

    Raises:
        OSError: the file cannot be read.
        UnreadableCapture: it is neither pcap nor pcapng, or is cut short.
    """
    with open(path, "rb") as file:
        data = file.read()
    segments = []
    for packet in pcapng.read_packets(data):
        ip = link_to_ip(packet.linktype, packet.data)
        segment = None if ip is None else parse_ip(ip, packet.timestamp)
        if segment is not None:
            segments.append(segment)
    return segments


def exchanges(segments: Iterable[Segment], config: Config) -> list[Exchange]:
    """The exchanges of a capture, in the order their first request was seen."""
    ports = Ports.of(config)
    udp = [s for s in segments if s.protocol == UDP]
    reassembler = Reassembler()
    for segment in segments:
        if segment.protocol == TCP and _tcp_port(segment, ports) is not None:
            reassembler.add(segment)
    found = list(_udp_exchanges(udp, ports))
    found += [e for s in reassembler.streams() if (e := _tcp_exchange(s, ports)) is not None]
    _mark_ours(found, config)
    return sorted(found, key=lambda e: e.timestamp)


def _tcp_port(segment: Segment, ports: Ports) -> int | None:
    wanted = (ports.dns, ports.smb, ports.nbss)
    for port in (segment.destination[1], segment.source[1]):
        if port in wanted:
            return port
    return None


def _is_response(payload: bytes) -> bool:
    return len(payload) >= 12 and bool(payload[2] & 0x80)


def _udp_exchanges(datagrams: list[Segment], ports: Ports) -> Iterator[Exchange]:
    protocol_of = {ports.dns: "dns", ports.nbns: "nbns"}
    pending: dict[tuple[str, Address, bytes], list[Exchange]] = {}
    for datagram in datagrams:
        if len(datagram.payload) < 12:
            continue
        if not _is_response(datagram.payload) and datagram.destination[1] in protocol_of:
            protocol = protocol_of[datagram.destination[1]]
            exchange = Exchange(
                protocol, "udp", datagram.source, datagram.destination, [datagram.payload]
            )
            exchange.timestamp = datagram.timestamp
            key = (protocol, datagram.source, datagram.payload[:2])
            pending.setdefault(key, []).append(exchange)
            yield exchange
        elif _is_response(datagram.payload) and datagram.source[1] in protocol_of:
            _attach(pending, protocol_of[datagram.source[1]], datagram)


def _attach(
    pending: dict[tuple[str, Address, bytes], list[Exchange]], protocol: str, answer: Segment
) -> None:
    waiting = pending.get((protocol, answer.destination, answer.payload[:2]), [])
    for exchange in waiting:
        if exchange.answers:
            continue
        if exchange.server[0] == answer.source[0] or protocol == "nbns":
            exchange.answered_from = answer.source[0]
            exchange.answers.append(answer.payload)
            return


def _tcp_exchange(stream: Stream, ports: Ports) -> Exchange | None:
    server = stream.client.destination
    if server[1] not in (ports.dns, ports.smb, ports.nbss):
        return None
    client_bytes = stream.client.data()
    server_bytes = b"" if stream.server is None else stream.server.data()
    if server[1] == ports.dns:
        requests, answers = split_dns(client_bytes), split_dns(server_bytes)
        protocol = "dns"
    else:
        requests, answers = split_frames(client_bytes), split_frames(server_bytes)
        protocol = "smb"
    if not requests:
        return None
    exchange = Exchange(protocol, "tcp", stream.client.source, server, requests, answers)
    exchange.timestamp = stream.client.first_seen
    return exchange


def split_dns(data: bytes) -> list[bytes]:
    """RFC 1035 §4.2.2: each message after its two-byte length; a cut last one is left out."""
    messages, at = [], 0
    while at + 2 <= len(data):
        length = int.from_bytes(data[at : at + 2])
        if at + 2 + length > len(data):
            break
        messages.append(data[at + 2 : at + 2 + length])
        at += 2 + length
    return messages


def split_frames(data: bytes) -> list[bytes]:
    """NBSS / direct-TCP frames, header included; a cut last one is left out."""
    frames, at = [], 0
    while at + 4 <= len(data):
        length = int.from_bytes(data[at + 1 : at + 4])
        if at + 4 + length > len(data):
            break
        frames.append(data[at : at + 4 + length])
        at += 4 + length
    return frames


def _mark_ours(found: list[Exchange], config: Config) -> None:
    dns_listen = {str(a) for a in config.dns.listen}
    nodes = {str(a) for node in config.nodes for a in node.addresses}
    for exchange in found:
        asked, source = exchange.server[0], exchange.client[0]
        if source in nodes or source in dns_listen:
            exchange.ours = False  # our own claims, registrations, probes
        elif exchange.protocol == "dns":
            exchange.ours = asked in dns_listen
        elif exchange.protocol == "nbns":
            exchange.ours = asked in nodes or _broadcast(asked)
        else:
            exchange.ours = asked in nodes


def _broadcast(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return ip.version == 4 and (address.endswith(".255") or ip == ipaddress.IPv4Address(-1 % 2**32))
