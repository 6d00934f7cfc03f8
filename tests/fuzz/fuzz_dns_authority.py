"""Fuzz target: the DNS authority and its fast path (RFC 1034 §4.3.2, RFC 6891 §7).

Invariant: ``Authority.respond`` never raises, over UDP or TCP; what it
sends is a response (QR=1, RA=0) to the query's ID that decodes; and
``fast_answer``, when it answers, answers exactly what ``respond`` does
(tests/protocols/dns/test_fastpath.py checks the same for chosen queries).
"""

from __future__ import annotations

from tests.fuzz import runner
from tests.helpers import goldens

with runner.instrumented():
    from protocols.dns.fastpath import fast_answer
    from protocols.dns.message import Edns, decode_message

from tests.protocols.dns.test_authority import AUTHORITY
from tests.protocols.dns.test_fastpath import TABLE, configured, query


def seeds() -> list[bytes]:
    built = [
        query(name, qtype, edns)
        for name, qtype in configured()
        for edns in (None, Edns(1232, options=((10, bytes(8)),)), Edns(512, do=True))
    ]
    return goldens("dns_") + built


def one_input(data: bytes) -> None:
    for udp in (True, False):
        general = AUTHORITY.respond(data, udp=udp)
        if general is not None:
            reply = decode_message(general)
            assert reply.header.qr and not reply.header.ra
            assert reply.header.id == int.from_bytes(data[:2])
        fast = fast_answer(TABLE, data, udp=udp)
        assert fast is None or fast == general, (fast, general)


if __name__ == "__main__":
    runner.main(one_input, seeds())
