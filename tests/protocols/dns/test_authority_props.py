"""respond() and fast_answer() never raise, and the fast path never disagrees."""

from __future__ import annotations

import dnslib
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.dns.fastpath import fast_answer
from protocols.dns.message import RRType, decode_message, name_from_text
from tests.protocols.dns.test_authority import AUTHORITY
from tests.protocols.dns.test_fastpath import TABLE, query, random_case
from tests.protocols.dns.test_message import all_captures

PROPS = settings(max_examples=300, deadline=None)
CAPTURES = all_captures()


def check(datagram: bytes) -> None:
    """Both paths are total; fast, when it answers, equals general."""
    for udp in (True, False):
        general = AUTHORITY.respond(datagram, udp=udp)
        if general is not None:
            reply = decode_message(general)  # our answers always decode
            assert reply.header.qr and reply.header.id == int.from_bytes(datagram[:2])
            assert not reply.header.ra
        fast = fast_answer(TABLE, datagram, udp=udp)
        assert fast is None or fast == general


@PROPS
@given(st.binary(max_size=300))
def test_random_bytes(data):
    check(data)


@PROPS
@given(st.sampled_from(CAPTURES), st.data())
def test_flipped_captures(data, draw):
    flip = st.tuples(st.integers(0, len(data) - 1), st.integers(1, 255))
    mutated = bytearray(data)
    for offset, value in draw.draw(st.lists(flip, min_size=1, max_size=3)):
        mutated[offset] ^= value
    check(bytes(mutated))


@PROPS
@given(st.sampled_from(CAPTURES), st.integers(0, 80), st.binary(max_size=8))
def test_truncated_or_extended_captures(data, cut, tail):
    check(data[: len(data) - cut] + tail)


NAMES = ["sql01-cz1.corp.example", "corp.example", "nope.corp.example", "sql01.corp.example"]


@PROPS
@given(
    st.sampled_from(NAMES),
    st.sampled_from([RRType.A, RRType.AAAA, RRType.SOA, RRType.NS, RRType.PTR, RRType.ANY]),
    st.randoms(use_true_random=False),
    st.integers(0, 0xFFFF),
)
def test_generated_queries_agree(text, qtype, rng, query_id):
    data = query(random_case(name_from_text(text), rng), qtype, id=query_id)
    check(data)
    parsed = dnslib.DNSRecord.parse(AUTHORITY.respond(data, udp=True))
    assert parsed.header.id == query_id
