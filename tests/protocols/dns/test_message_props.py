"""DNS codec properties: round trip of generated messages, totality of decoding."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.dns.message import (
    AAAARdata,
    ARdata,
    Edns,
    Header,
    Message,
    NameRdata,
    Question,
    RawRdata,
    ResourceRecord,
    RRType,
    SOARdata,
    decode_message,
    encode_message,
)
from protocols.errors import MalformedMessage
from tests.protocols.dns.test_message import all_captures

PROPS = settings(max_examples=300, deadline=None)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)

labels = st.binary(min_size=1, max_size=63)
# A small alphabet makes shared suffixes (and so compression) common.
short_labels = st.sampled_from([b"a", b"A", b"corp", b"CORP", b"example", b"x" * 63])
names = (
    st.lists(st.one_of(labels, short_labels), max_size=6)
    .map(tuple)
    .filter(lambda name: sum(len(label) + 1 for label in name) + 1 <= 255)
)

headers = st.builds(
    Header,
    id=u16,
    qr=st.booleans(),
    opcode=st.integers(0, 15),
    aa=st.booleans(),
    tc=st.booleans(),
    rd=st.booleans(),
    ra=st.booleans(),
    z=st.booleans(),
    ad=st.booleans(),
    cd=st.booleans(),
    rcode=st.integers(0, 15),
)
questions = st.builds(Question, names, u16, u16)

typed = st.one_of(
    st.tuples(st.just(RRType.A), st.builds(ARdata, st.ip_addresses(v=4))),
    st.tuples(st.just(RRType.AAAA), st.builds(AAAARdata, st.ip_addresses(v=6))),
    st.tuples(st.sampled_from([RRType.NS, RRType.PTR, RRType.CNAME]), st.builds(NameRdata, names)),
    st.tuples(st.just(RRType.SOA), st.builds(SOARdata, names, names, u32, u32, u32, u32, u32)),
    st.tuples(
        st.sampled_from([RRType.TXT, RRType.MX, 99, 65280]),
        st.builds(RawRdata, st.binary(max_size=40)),
    ),
)


@st.composite
def records(draw) -> ResourceRecord:
    rtype, rdata = draw(typed)
    return ResourceRecord(draw(names), rtype, draw(u16), draw(u32), rdata)


options = st.lists(st.tuples(u16, st.binary(max_size=12)), max_size=3).map(tuple)
opts = st.builds(
    Edns,
    u16,
    st.integers(0, 255),
    st.integers(0, 255),
    st.booleans(),
    st.integers(0, 0x7FFF),
    options,
).map(Edns.to_record)

messages = st.builds(
    Message,
    headers,
    st.lists(questions, max_size=3).map(tuple),
    st.lists(records(), max_size=4).map(tuple),
    st.lists(records(), max_size=3).map(tuple),
    st.lists(st.one_of(records(), opts), max_size=3).map(tuple),
)


@PROPS
@given(messages)
def test_round_trip(message):
    assert decode_message(encode_message(message)) == message


@PROPS
@given(messages, st.integers(12, 600))
def test_max_size_output_decodes(message, limit):
    wire = encode_message(message, max_size=limit)
    decoded = decode_message(wire)
    if decoded != message:
        assert decoded.header.tc and decoded.questions == message.questions
        assert decoded.answers == decoded.authorities == ()


def decodes_or_rejects(data: bytes) -> None:
    try:
        assert isinstance(decode_message(data), Message)
    except MalformedMessage as exc:
        assert exc.protocol == "dns"


@PROPS
@given(st.binary(max_size=600))
def test_decode_random_bytes_is_total(data):
    decodes_or_rejects(data)


@PROPS
@given(st.binary(min_size=12, max_size=12), st.binary(max_size=300))
def test_decode_random_body_is_total(header, body):
    decodes_or_rejects(header + body)


@PROPS
@given(st.sampled_from(all_captures()), st.data())
def test_decode_flipped_capture_is_total(data, draw):
    flips = draw.draw(
        st.lists(
            st.tuples(st.integers(0, len(data) - 1), st.integers(0, 255)), min_size=1, max_size=4
        )
    )
    mutated = bytearray(data)
    for offset, value in flips:
        mutated[offset] ^= value
    decodes_or_rejects(bytes(mutated))


@pytest.mark.parametrize("data", all_captures())
def test_decode_every_truncation_is_total(data):
    for end in range(len(data)):
        with pytest.raises(MalformedMessage):
            decode_message(data[:end])


@pytest.mark.parametrize("data", all_captures())
def test_decode_maximal_length_fields_is_total(data):
    for offset in range(4, len(data) - 1):
        decodes_or_rejects(data[:offset] + b"\xff\xff" + data[offset + 2 :])
