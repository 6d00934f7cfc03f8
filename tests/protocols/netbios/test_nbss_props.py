"""NBSS: round trips and totality of the framer and the SESSION REQUEST decoder."""

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.errors import MalformedMessage
from protocols.netbios import nbss
from protocols.netbios.names import NetbiosName
from tests.helpers import golden

SETTINGS = settings(max_examples=300, deadline=None)

names = st.builds(
    NetbiosName,
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0xFF), min_size=1, max_size=15),
    st.integers(0, 255),
    st.lists(st.text("abcdefghij0123456789-", min_size=1, max_size=20), max_size=3).map(".".join),
)


@SETTINGS
@given(names, names)
def test_session_request_round_trip(called, calling):
    raw = nbss.encode_session_request(nbss.SessionRequest(called, calling))
    framer = nbss.Framer(direct=False)
    framer.feed(raw)
    frame = framer.next_frame()
    assert frame is not None
    assert nbss.decode_session_request(frame.payload) == nbss.SessionRequest(called, calling)


# hypothesis' own example cache compares bytes with int under -bb.
@pytest.mark.filterwarnings("ignore::BytesWarning")
@SETTINGS
@given(st.lists(st.binary(max_size=300), max_size=6), st.booleans(), st.data())
def test_framer_reassembles_any_segmentation(payloads, direct, data):
    stream = b"".join(
        nbss.encode_frame(nbss.FrameType.SESSION_MESSAGE, p, direct=direct) for p in payloads
    )
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    framer = nbss.Framer(direct=direct)
    got = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        framer.feed(stream[start:end])
        while (frame := framer.next_frame()) is not None:
            got.append(frame.payload)
    assert got == payloads


@SETTINGS
@given(st.binary(max_size=200), st.booleans())
def test_framer_total(data, direct):
    framer = nbss.Framer(direct=direct, max_message_size=100)
    framer.feed(data)
    try:
        for _ in range(100):
            if framer.next_frame() is None:
                break
    except MalformedMessage:
        pass


@SETTINGS
@given(st.binary(max_size=120))
def test_decode_session_request_total(data):
    with contextlib.suppress(MalformedMessage):
        nbss.decode_session_request(data)


def test_session_request_every_truncation_and_bit_flip():
    raw = golden("smb_smbclient_nbss_session_request")[4:]
    variants = [raw[:i] for i in range(len(raw))]
    variants += [
        raw[:i] + bytes((raw[i] ^ (1 << b),)) + raw[i + 1 :]
        for i in range(len(raw))
        for b in range(8)
    ]
    for variant in variants:
        with contextlib.suppress(MalformedMessage):
            nbss.decode_session_request(variant)


BAD_HEADERS = {
    False: [b"\x86\x00\x00\x00", b"\x00\x02\x00\x00", b"\x00\x01\xff\xff"],  # type, flags, length
    True: [b"\x01\x00\x00\x00", b"\x00\x01\x00\x01"],  # type, length
}


def framing_error_offset(stream: bytes, cuts: list[int], direct: bool) -> int:
    """Feed ``stream`` cut at ``cuts``, taking every frame; the offset of the error raised."""
    framer = nbss.Framer(direct=direct, max_message_size=1000)
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        framer.feed(stream[start:end])
        with contextlib.suppress(MalformedMessage):
            while framer.next_frame() is not None:
                pass
    with pytest.raises(MalformedMessage) as info:
        framer.next_frame()
    return info.value.offset


# hypothesis' own example cache compares bytes with int under -bb.
@pytest.mark.filterwarnings("ignore::BytesWarning")
@SETTINGS
@given(st.lists(st.binary(max_size=300), max_size=6), st.booleans(), st.data())
def test_framing_error_offset_is_the_stream_position_for_any_split(payloads, direct, data):
    good = b"".join(
        nbss.encode_frame(nbss.FrameType.SESSION_MESSAGE, p, direct=direct) for p in payloads
    )
    bad = data.draw(st.sampled_from(BAD_HEADERS[direct]))
    stream = good + bad + data.draw(st.binary(max_size=40))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    expected = len(good) + (1 if bad[:2] == b"\x00\x02" and not direct else 0)
    assert framing_error_offset(stream, cuts, direct) == expected
    assert framing_error_offset(stream, [], direct) == expected


def test_framing_error_offset_counts_bytes_compacted_away():
    keep_alive = nbss.encode_keep_alive()
    stream = keep_alive * 300 + b"\x99\x00\x00\x00"
    cuts = list(range(4, len(stream), 4))  # one frame per segment: the buffer compacts often
    assert framing_error_offset(stream, cuts, direct=False) == 1200
