"""Fuzz target: the DNS message codec (RFC 1035 §4.1, RFC 6891 §6.1).

Invariant: ``decode_message`` returns a Message or raises MalformedMessage;
a message that decodes encodes (with our compression, RFC 1035 §4.1.4) to
bytes that decode to the same message, and find_edns judges it or raises
MalformedMessage.
"""

from __future__ import annotations

import contextlib

from tests.fuzz import runner
from tests.helpers import goldens

with runner.instrumented():
    from protocols.dns.message import decode_message, encode_message, find_edns
    from protocols.errors import MalformedMessage


def seeds() -> list[bytes]:
    return goldens("dns_")


def one_input(data: bytes) -> None:
    try:
        message = decode_message(data)
    except MalformedMessage:
        return
    assert decode_message(encode_message(message)) == message
    with contextlib.suppress(MalformedMessage):
        find_edns(message)


if __name__ == "__main__":
    runner.main(one_input, seeds())
