"""RFC 7766 framing: exact reads across segments, pipelining, closing rules."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.dns.stream import MAX_BATCH, DnsStream


def echo_upper(message: bytes) -> bytes | None:
    return None if message == b"drop" else message.upper()


def frame(message: bytes) -> bytes:
    return len(message).to_bytes(2, "big") + message


def test_one_message_in_one_segment():
    assert DnsStream(echo_upper).receive_data(frame(b"abc")) == frame(b"ABC")


def test_message_split_at_every_offset():
    wire = frame(b"hello") + frame(b"world")
    for cut in range(len(wire) + 1):
        stream = DnsStream(echo_upper)
        out = stream.receive_data(wire[:cut]) + stream.receive_data(wire[cut:])
        assert out == frame(b"HELLO") + frame(b"WORLD"), cut


def test_pipelined_messages_answered_in_order():
    stream = DnsStream(echo_upper)
    assert stream.receive_data(frame(b"a") + frame(b"b") + frame(b"c")) == (
        frame(b"A") + frame(b"B") + frame(b"C")
    )
    assert not stream.closed


def test_byte_by_byte():
    stream = DnsStream(echo_upper)
    out = b"".join(stream.receive_data(bytes([b])) for b in frame(b"xyz"))
    assert out == frame(b"XYZ")


def test_declined_message_closes_after_earlier_answers():
    stream = DnsStream(echo_upper)
    out = stream.receive_data(frame(b"ok") + frame(b"drop") + frame(b"late"))
    assert out == frame(b"OK")
    assert stream.closed
    assert stream.receive_data(frame(b"more")) == b""


def test_reject_zero_length_message():
    stream = DnsStream(echo_upper)
    assert stream.receive_data(b"\x00\x00") == b""
    assert stream.closed


def test_partial_message_buffer_is_bounded():
    stream = DnsStream(echo_upper)
    stream.receive_data(frame(b"q" * 100) + b"\xff\xff" + b"x" * 1000)
    assert len(stream._buffer) == 1002  # only the unfinished message is kept


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.binary(min_size=1, max_size=40), min_size=1, max_size=8),
    st.lists(st.integers(min_value=0, max_value=400), max_size=6),
)
def test_any_segmentation_gives_the_same_answers(messages, cuts):
    messages = [m for m in messages if m != b"drop"] or [b"x"]
    wire = b"".join(frame(m) for m in messages)
    points = sorted({c % (len(wire) + 1) for c in cuts})
    stream = DnsStream(echo_upper)
    out, start = b"", 0
    for point in [*points, len(wire)]:
        out += stream.receive_data(wire[start:point])
        start = point
    assert out == b"".join(frame(m.upper()) for m in messages)


def test_a_long_pipeline_is_answered_one_batch_per_call():
    stream = DnsStream(echo_upper)
    messages = [bytes([97 + i % 26]) for i in range(2 * MAX_BATCH + 3)]
    out = stream.receive_data(b"".join(frame(m) for m in messages))
    assert out == b"".join(frame(m.upper()) for m in messages[:MAX_BATCH])
    assert stream.pending
    out += stream.receive_data(b"")
    assert stream.pending
    out += stream.receive_data(b"")
    assert not stream.pending and not stream.closed
    assert out == b"".join(frame(m.upper()) for m in messages)
    assert len(stream._buffer) == 0


def test_pending_is_true_for_a_zero_length_message_and_false_once_closed():
    stream = DnsStream(echo_upper)
    stream.receive_data(b"".join(frame(b"a") for _ in range(MAX_BATCH)) + b"\x00\x00")
    assert stream.pending  # the zero length still has to close the stream
    assert stream.receive_data(b"") == b""
    assert stream.closed and not stream.pending
