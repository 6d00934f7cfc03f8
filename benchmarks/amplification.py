"""Amplification: bytes out over bytes in, per protocol and message type.

A reflector's worth to an attacker is how many bytes it sends for each byte
of spoofed query (RFC 5358 §1; BIND's and Knot's rate limiters exist to cap
it). This asks a running server each kind of question once over UDP and
divides the reply's size by the query's: DNS A, PTR, ANY (answered with
one RRset, RFC 8482 §4.2), SOA and NS at the apex, each without and with
EDNS (dig's OPT record with a COOKIE option); NBNS name query and node
status (RFC 1002 §4.2.12, §4.2.17); and the truncated answer a rate-limited
DNS client gets instead (the "slip": header and question, TC=1), computed
with the daemon's own :func:`protocols.ratelimit.dns_slip` from the largest
DNS reply seen. Every factor must stay at or below :data:`MAX_FACTOR`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from benchmarks import records
from benchmarks.records import Cluster
from protocols.ratelimit import dns_slip

MAX_FACTOR = 10.0
DNS_QUESTIONS = ("A", "PTR", "ANY", "SOA", "NS")

Exchange = Callable[[bytes, tuple[str, int]], bytes | None]
Row = dict[str, Any]


def dns_cases(cluster: Cluster) -> list[tuple[str, bytes]]:
    """(message label, query) for each DNS question, without and with EDNS."""
    node = cluster.nodes[0]
    names = {"A": node.fqdn(cluster.domain), "PTR": node.ptr_name, "ANY": node.fqdn(cluster.domain)}
    cases = []
    for edns in (False, True):
        for qtype in DNS_QUESTIONS:
            name = names.get(qtype, cluster.domain)
            label = f"{qtype}{' +EDNS' if edns else ''}"
            cases.append((label, records.dns_query(name, qtype, edns)))
    return cases


def nbns_cases(cluster: Cluster) -> list[tuple[str, bytes]]:
    name_query = records.nbns_name_query(cluster.nodes[0].cozen_name, 0x00)
    return [("name query", name_query), ("node status", records.nbns_status_query())]


def row(protocol: str, message: str, query: bytes, reply: bytes | None) -> Row:
    out = 0 if reply is None else len(reply)
    return {
        "protocol": protocol,
        "message": message,
        "bytes_in": len(query),
        "bytes_out": out,
        "factor": out / len(query),
        "answered": reply is not None,
    }


def measure(cluster: Cluster, kind: str, exchange: Exchange) -> list[Row]:
    """Ask the server for ``kind`` ("dns" or "nbns") each question once; one row each."""
    address = records.service_address(kind, cluster)
    if kind == "nbns":
        return [row("NBNS", m, q, exchange(q, address)) for m, q in nbns_cases(cluster)]
    rows, largest = [], (b"", b"")
    for message, query in dns_cases(cluster):
        reply = exchange(query, address)
        rows.append(row("DNS", message, query, reply))
        if reply is not None and len(reply) - len(query) > len(largest[1]) - len(largest[0]):
            largest = (query, reply)
    query, reply = largest
    if reply:
        rows.append(row("DNS", "TC slip (rate-limited)", query, dns_slip(reply)))
    return rows


def too_large(rows: list[Row]) -> list[str]:
    """The rows over MAX_FACTOR, or unanswered, as problems to report."""
    return [
        f"{r['protocol']} {r['message']}: {r['factor']:.2f}x"
        if r["answered"]
        else f"{r['protocol']} {r['message']}: no answer"
        for r in rows
        if not r["answered"] or r["factor"] > MAX_FACTOR
    ]


def markdown(rows: list[Row]) -> list[str]:
    if not rows:
        return []
    lines = [
        "",
        f"Amplification (bytes out / bytes in; every factor must be <= {MAX_FACTOR:.0f}):",
        "",
        "| protocol | message | bytes in | bytes out | factor |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        cells = [r["protocol"], r["message"], r["bytes_in"], r["bytes_out"], f"{r['factor']:.2f}"]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return lines
