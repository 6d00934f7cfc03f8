"""Fuzz target: NBNS packet decoding (RFC 1002 §4.2, names RFC 1002 §4.1).

Invariant: ``decode_packet`` returns one of the NBNS messages or raises
MalformedMessage; a message that decodes encodes (nbns_encode.encode_packet)
to bytes that decode to the same message.
"""

from __future__ import annotations

from tests.fuzz import runner
from tests.helpers import goldens

with runner.instrumented():
    from protocols.errors import MalformedMessage
    from protocols.netbios.nbns import decode_packet
    from protocols.netbios.nbns_encode import encode_packet


def seeds() -> list[bytes]:
    return goldens("nbns_")


def one_input(data: bytes) -> None:
    try:
        message = decode_packet(data)
    except MalformedMessage:
        return
    assert decode_packet(encode_packet(message)) == message


if __name__ == "__main__":
    runner.main(one_input, seeds())
