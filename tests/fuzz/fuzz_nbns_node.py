"""Fuzz target: one node answering NBNS datagrams (RFC 1002 §4.2.12-§4.2.18, §5.1.1.4).

It drives :class:`~protocols.netbios.node.NbnsNode` through
``receive_datagram``, the entry the daemon's NBNS service uses.

Invariant: ``receive_datagram`` returns a reply, None, or raises
MalformedMessage; and a node with its fast path answers every datagram
exactly as a node without it (unicast and broadcast).
"""

from __future__ import annotations

from tests.fuzz import runner
from tests.helpers import goldens

with runner.instrumented():
    from protocols.errors import MalformedMessage
    from protocols.netbios.node import NbnsIdentity, NbnsNode

IDENTITY = NbnsIdentity(
    cozen_name="SQL01-CZ1",
    workgroup="CORP",
    ipv4="127.0.0.11",
    mac=bytes(range(6)),
    public_name="SQL01",
)
FAST, GENERAL = NbnsNode(IDENTITY), NbnsNode(IDENTITY, fast_path=False)


def seeds() -> list[bytes]:
    return goldens("nbns_")


def outcome(node: NbnsNode, data: bytes, broadcast: bool) -> bytes | str | None:
    try:
        return node.receive_datagram(data, broadcast=broadcast, now=0.0)
    except MalformedMessage:
        return "malformed"


def one_input(data: bytes) -> None:
    for broadcast in (False, True):
        assert outcome(FAST, data, broadcast) == outcome(GENERAL, data, broadcast)


if __name__ == "__main__":
    runner.main(one_input, seeds())
