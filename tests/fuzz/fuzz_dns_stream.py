"""Fuzz target: DNS over TCP (RFC 1035 §4.2.2, RFC 7766 §6.2.1.1), answered by the authority.

Invariant: ``DnsStream.receive_data`` never raises; what it returns is a
run of complete length-prefixed responses; and the answers do not depend on
how the stream was segmented (every segmentation gives the bytes the whole
stream gives at once), the backlog answered through ``receive_data(b"")``.
"""

from __future__ import annotations

from tests.fuzz import runner
from tests.helpers import goldens

with runner.instrumented():
    from protocols.dns.message import decode_message
    from protocols.dns.stream import DnsStream

from tests.protocols.dns.test_authority import AUTHORITY


def answer(message: bytes) -> bytes | None:
    return AUTHORITY.respond(message, udp=False)


def frame(message: bytes) -> bytes:
    return len(message).to_bytes(2, "big") + message


def seeds() -> list[bytes]:
    messages = goldens("dns_")
    pipelined = b"".join(frame(m) for m in messages)
    return [b"\x00" + frame(m) for m in messages] + [b"\x00" + pipelined, b"\x03" + pipelined]


def feed(segments: list[bytes]) -> tuple[bytes, bool]:
    stream, out = DnsStream(answer), bytearray()
    for segment in segments:
        out += stream.receive_data(segment)
        while stream.pending:
            out += stream.receive_data(b"")
    return bytes(out), stream.closed


def check_framing(out: bytes) -> None:
    while out:
        length = int.from_bytes(out[:2])
        assert 2 + length <= len(out)
        assert decode_message(out[2 : 2 + length]).header.qr
        out = out[2 + length :]


def one_input(data: bytes) -> None:
    whole, segments = runner.split(data)
    out, closed = feed(segments)
    assert (out, closed) == feed([whole])
    check_framing(out)


if __name__ == "__main__":
    runner.main(one_input, seeds())
