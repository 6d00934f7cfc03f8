"""Fuzz target: one node answering NBNS datagrams (RFC 1002 §4.2.12-§4.2.18, §5.1.1.4).

Kept small and apart: it drives ``protocols.netbios.node`` through its
public functions as they are on this branch (``NodeState``,
``handle_datagram``), which the NBNS restructuring replaces.

Invariant: ``handle_datagram`` returns a reply, None, or raises
MalformedMessage; and a node with its fast path answers every datagram
exactly as a node without it (unicast and broadcast).
"""

from __future__ import annotations

from tests.fuzz import runner
from tests.helpers import goldens

with runner.instrumented():
    from protocols.errors import MalformedMessage
    from protocols.netbios.node import NbnsIdentity, NodeState, handle_datagram

IDENTITY = NbnsIdentity(
    cozen_name="SQL01-CZ1",
    workgroup="CORP",
    ipv4="127.0.0.11",
    mac=bytes(range(6)),
    public_name="SQL01",
)
FAST, GENERAL = NodeState(IDENTITY), NodeState(IDENTITY, fast_path=False)


def seeds() -> list[bytes]:
    return goldens("nbns_")


def outcome(state: NodeState, data: bytes, broadcast: bool) -> bytes | str | None:
    try:
        return handle_datagram(state, data, broadcast=broadcast, now=0.0)
    except MalformedMessage:
        return "malformed"


def one_input(data: bytes) -> None:
    for broadcast in (False, True):
        assert outcome(FAST, data, broadcast) == outcome(GENERAL, data, broadcast)


if __name__ == "__main__":
    runner.main(one_input, seeds())
