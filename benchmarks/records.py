"""The identity every server in one run serves, and the packets that ask for it.

One `Cluster` (public name, DNS domain, workgroup, nodes) is turned into:
DNS queries and their template replies (RFC 1035 §4.1, with an RFC 6891 OPT
record carrying an RFC 7873 COOKIE option as dig sends it), NBNS name queries,
node status requests and their replies (RFC 1002 §4.2.12, §4.2.13, §4.2.17,
§4.2.18), and the record files the reference servers read.

Nodes get management addresses in 127.0.0.0/8: .11, .12 for a two-node
cluster, and 127.0.1.0 upwards for larger ones (Linux answers the whole /8 on
lo, so nothing has to be added).  A second C reference runs beside each
server at PAIRED_LISTEN, for latency measured in alternating turns.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import cached_property
from ipaddress import IPv4Address
from pathlib import Path

from dnslib import EDNS0, QTYPE, RR, A, DNSHeader, DNSQuestion, DNSRecord, EDNSOption

DNS_LISTEN = "127.0.0.10"
PAIRED_LISTEN = "127.0.0.9"
PORTS = {"dns": 53, "nbns": 137, "smb": 445}
DNS_TTL = 300
EDNS_PAYLOAD = 1232
COOKIE_OPTION = 10
CLIENT_COOKIE = bytes.fromhex("a1b2c3d4e5f60718")
NBNS_TTL = 300000
NB_TYPE, NBSTAT_TYPE, IN_CLASS = 0x20, 0x21, 1
GROUP_FLAG, ACTIVE_FLAG = 0x8000, 0x0400


@dataclass(frozen=True)
class Node:
    cozen_name: str
    ip: str

    def fqdn(self, domain: str) -> str:
        return f"{self.cozen_name.lower()}.{domain}"

    @property
    def ptr_name(self) -> str:
        return IPv4Address(self.ip).reverse_pointer

    @property
    def mac(self) -> bytes:
        return bytes([0x02, 0x00, 0x5E]) + IPv4Address(self.ip).packed[1:]


@dataclass(frozen=True)
class Cluster:
    name: str
    domain: str
    workgroup: str
    nodes: tuple[Node, ...]

    @cached_property
    def a_records(self) -> dict[str, str]:
        return {n.fqdn(self.domain): n.ip for n in self.nodes}

    @cached_property
    def ptr_records(self) -> dict[str, str]:
        return {n.ptr_name: n.fqdn(self.domain) for n in self.nodes}

    def netbios_names(self) -> list[tuple[str, int, bool]]:
        """(name, suffix, is_group) registered by the first node."""
        first, group = self.nodes[0].cozen_name, self.workgroup
        unique = [(first, 0x00, False), (first, 0x20, False)]
        return [*unique, (group, 0x00, True), (group, 0x1E, True)]


def node_ip(index: int, count: int) -> str:
    if count <= 2:
        return f"127.0.0.{11 + index}"
    return str(IPv4Address("127.0.1.0") + index)


def service_address(kind: str, cluster: Cluster) -> tuple[str, int]:
    """Where every server under test serves one protocol kind."""
    return (DNS_LISTEN if kind == "dns" else cluster.nodes[0].ip), PORTS[kind]


def make_cluster(count: int) -> Cluster:
    nodes = tuple(Node(f"SQL01-CZ{i + 1}", node_ip(i, count)) for i in range(count))
    return Cluster("SQL01", "corp.example", "CORP", nodes)


# --- DNS -------------------------------------------------------------------


def dns_query(name: str, qtype: str, edns: bool) -> bytes:
    query = DNSRecord(DNSHeader(id=0, rd=1), q=DNSQuestion(name, getattr(QTYPE, qtype)))
    if edns:
        query.add_ar(EDNS0(udp_len=EDNS_PAYLOAD, opts=[EDNSOption(COOKIE_OPTION, CLIENT_COOKIE)]))
    return bytes(query.pack())


def dns_reply(query: bytes, cluster: Cluster) -> bytes:
    request = DNSRecord.parse(query)
    reply = request.reply()
    name = str(request.q.qname).rstrip(".").lower()
    if request.q.qtype == QTYPE.A:
        reply.add_answer(RR(name, QTYPE.A, rdata=A(cluster.a_records[name]), ttl=DNS_TTL))
    else:
        target = cluster.ptr_records[name] + "."
        reply.add_answer(RR.fromZone(f"{name}. {DNS_TTL} IN PTR {target}")[0])
    if request.ar:
        reply.add_ar(EDNS0(udp_len=EDNS_PAYLOAD))
    return bytes(reply.pack())


def questions(cluster: Cluster, qtypes: tuple[str, ...]) -> list[tuple[str, str]]:
    """(name, qtype) for every node and type, node by node."""
    out: list[tuple[str, str]] = []
    for node in cluster.nodes:
        names = {"A": node.fqdn(cluster.domain), "PTR": node.ptr_name}
        out.extend((names[t], t) for t in qtypes)
    return out


def dns_queries(cluster: Cluster, qtypes: tuple[str, ...], edns: bool) -> list[bytes]:
    return [dns_query(name, t, edns) for name, t in questions(cluster, qtypes)]


# --- NBNS ------------------------------------------------------------------


def netbios_encode(name: str, suffix: int) -> bytes:
    """First-level encoding (RFC 1001 §14.1), no scope."""
    raw = name.upper().encode("ascii").ljust(15, b" ")[:15] + bytes([suffix])
    if name == "*":
        raw = b"*" + bytes(15)
    encoded = bytes(c for b in raw for c in (0x41 + (b >> 4), 0x41 + (b & 0x0F)))
    return b"\x20" + encoded + b"\x00"


def nbns_name_query(name: str, suffix: int) -> bytes:
    header = struct.pack(">HHHHHH", 0, 0x0100, 1, 0, 0, 0)
    return header + netbios_encode(name, suffix) + struct.pack(">HH", NB_TYPE, IN_CLASS)


def nbns_status_query() -> bytes:
    header = struct.pack(">HHHHHH", 0, 0x0000, 1, 0, 0, 0)
    return header + netbios_encode("*", 0) + struct.pack(">HH", NBSTAT_TYPE, IN_CLASS)


def nbns_name_reply(cluster: Cluster, name: str, suffix: int, group: bool) -> bytes:
    header = struct.pack(">HHHHHH", 0, 0x8500, 0, 1, 0, 0)
    flags = GROUP_FLAG if group else 0
    rdata = struct.pack(">H", flags) + IPv4Address(cluster.nodes[0].ip).packed
    rr = struct.pack(">HHIH", NB_TYPE, IN_CLASS, NBNS_TTL, len(rdata)) + rdata
    return header + netbios_encode(name, suffix) + rr


def nbns_status_reply(cluster: Cluster) -> bytes:
    names = cluster.netbios_names()
    body = bytes([len(names)])
    for name, suffix, group in names:
        flags = ACTIVE_FLAG | (GROUP_FLAG if group else 0)
        body += name.encode("ascii").ljust(15, b" ") + bytes([suffix]) + struct.pack(">H", flags)
    body += cluster.nodes[0].mac + bytes(40)
    header = struct.pack(">HHHHHH", 0, 0x8400, 0, 1, 0, 0)
    rr = struct.pack(">HHIH", NBSTAT_TYPE, IN_CLASS, 0, len(body)) + body
    return header + netbios_encode("*", 0) + rr


def nbns_queries(cluster: Cluster, status: bool) -> list[bytes]:
    if status:
        return [nbns_status_query()]
    first = cluster.nodes[0].cozen_name
    return [nbns_name_query(first, 0x00), nbns_name_query(first, 0x20)]


# --- files -----------------------------------------------------------------


def question_key(packet: bytes) -> bytes:
    """The C responder's lookup key: lower-cased question + 'has additionals'."""
    end = 12
    while packet[end] != 0:
        end += 1 + packet[end]
    question = packet[12 : end + 5].lower()
    return question + (b"\x01" if packet[10:12] != b"\x00\x00" else b"\x00")


def write_blobs(path: Path, blobs: list[bytes]) -> Path:
    path.write_bytes(b"".join(struct.pack(">H", len(b)) + b for b in blobs))
    return path


def c_templates(cluster: Cluster, kind: str) -> list[tuple[bytes, bytes]]:
    """(query, reply) pairs the C responder precomputes for DNS or NBNS."""
    if kind == "dns":
        queries = [q for e in (False, True) for q in dns_queries(cluster, ("A", "PTR"), e)]
        return [(q, dns_reply(q, cluster)) for q in queries]
    pairs = [
        (nbns_name_query(n, s), nbns_name_reply(cluster, n, s, g))
        for n, s, g in cluster.netbios_names()
    ]
    return [*pairs, (nbns_status_query(), nbns_status_reply(cluster))]
