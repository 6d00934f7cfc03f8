"""NBSS framing and SESSION REQUEST names against captured client frames."""

import pytest

from protocols.errors import MalformedMessage, TrailingBytes, Truncated, Unsupported
from protocols.netbios import nbss
from protocols.netbios.names import NetbiosName
from tests.helpers import golden


def _frames(framer: nbss.Framer) -> list[nbss.Frame]:
    out = []
    while (frame := framer.next_frame()) is not None:
        out.append(frame)
    return out


def test_golden_session_request_to_address_text():
    framer = nbss.Framer(direct=False)
    framer.feed(golden("smb_smbclient_nbss_session_request"))
    (frame,) = _frames(framer)
    assert frame.type is nbss.FrameType.SESSION_REQUEST
    request = nbss.decode_session_request(frame.payload)
    assert request.called == NetbiosName("127.0.0.5", 0x20)
    assert request.calling == NetbiosName("VM", 0x00)


def test_golden_session_request_smbserver_round_trip():
    raw = golden("smb_impacket_nbss_session_request")
    request = nbss.decode_session_request(raw[4:])
    assert request.called == NetbiosName("*SMBSERVER", 0x20)
    assert nbss.encode_session_request(request) == raw


def test_golden_positive_response():
    assert nbss.encode_positive_response() == golden("smb_smbd_nbss_positive_response")


def test_frame_split_across_segments_byte_by_byte():
    raw = golden("smb_smbclient_nbss_session_request")
    framer = nbss.Framer(direct=False)
    for byte in raw[:-1]:
        framer.feed(bytes((byte,)))
        assert framer.next_frame() is None
    framer.feed(raw[-1:])
    assert framer.next_frame() == nbss.Frame(nbss.FrameType.SESSION_REQUEST, raw[4:])
    assert framer.buffered == 0


def test_several_frames_in_one_segment():
    framer = nbss.Framer(direct=False)
    framer.feed(nbss.encode_keep_alive() + b"\x00\x00\x00\x02ab" + b"\x00\x00")
    assert _frames(framer) == [
        nbss.Frame(nbss.FrameType.KEEP_ALIVE, b""),
        nbss.Frame(nbss.FrameType.SESSION_MESSAGE, b"ab"),
    ]
    assert framer.buffered == 2


def test_length_extension_bit():
    payload = bytes(0x10005)
    framer = nbss.Framer(direct=False, max_message_size=0x20000)
    framer.feed(nbss.encode_frame(nbss.FrameType.SESSION_MESSAGE, payload, direct=False))
    assert framer.next_frame() == nbss.Frame(nbss.FrameType.SESSION_MESSAGE, payload)


def test_direct_tcp_24_bit_length():
    framer = nbss.Framer(direct=True, max_message_size=1 << 20)
    framer.feed(nbss.encode_frame(nbss.FrameType.SESSION_MESSAGE, bytes(0x20001), direct=True))
    frame = framer.next_frame()
    assert frame is not None
    assert len(frame.payload) == 0x20001


def test_negative_response_round_trip():
    raw = nbss.encode_negative_response(nbss.NegativeCode.CALLED_NAME_NOT_PRESENT)
    assert raw == b"\x83\x00\x00\x01\x82"
    assert nbss.decode_negative_response(raw[4:]) is nbss.NegativeCode.CALLED_NAME_NOT_PRESENT


def test_reject_oversized_frame():
    framer = nbss.Framer(direct=True)
    framer.feed(b"\x00\x01\x00\x01")
    with pytest.raises(MalformedMessage) as info:
        framer.next_frame()
    assert info.value.answer_hint is None  # nothing to answer: the stream is closed
    with pytest.raises(MalformedMessage):
        framer.next_frame()


def test_reject_unknown_nbss_type():
    framer = nbss.Framer(direct=False)
    framer.feed(b"\x86\x00\x00\x00")
    with pytest.raises(MalformedMessage):
        framer.next_frame()


def test_reject_reserved_flag_bits():
    framer = nbss.Framer(direct=False)
    framer.feed(b"\x00\x02\x00\x00")
    with pytest.raises(MalformedMessage):
        framer.next_frame()


def test_reject_session_request_on_direct_tcp():
    framer = nbss.Framer(direct=True)
    framer.feed(golden("smb_smbclient_nbss_session_request"))
    with pytest.raises(MalformedMessage):
        framer.next_frame()


def test_reject_truncated_session_request():
    raw = golden("smb_smbclient_nbss_session_request")[4:]
    with pytest.raises(Truncated):
        nbss.decode_session_request(raw[:40])


def test_reject_trailing_bytes_after_names():
    raw = golden("smb_smbclient_nbss_session_request")[4:]
    with pytest.raises(TrailingBytes):
        nbss.decode_session_request(raw + b"\x00")


def test_reject_name_not_half_ascii():
    raw = bytearray(golden("smb_smbclient_nbss_session_request")[4:])
    raw[1] = ord("Z")
    with pytest.raises(MalformedMessage):
        nbss.decode_session_request(bytes(raw))


def test_reject_first_label_not_32():
    raw = bytearray(golden("smb_smbclient_nbss_session_request")[4:])
    raw[0] = 31
    with pytest.raises(MalformedMessage):
        nbss.decode_session_request(bytes(raw))


def test_reject_compression_pointer_in_scope():
    raw = golden("smb_smbclient_nbss_session_request")[4:]
    with pytest.raises(MalformedMessage):
        nbss.decode_session_request(raw[:33] + b"\xc0\x0c" + raw[34:])


def test_reject_unknown_negative_code():
    with pytest.raises(Unsupported):
        nbss.decode_negative_response(b"\x10")


def test_ready_says_whether_next_frame_has_something_to_give():
    framer = nbss.Framer(direct=False)
    assert not framer.ready
    framer.feed(nbss.encode_keep_alive()[:3])
    assert not framer.ready
    framer.feed(nbss.encode_keep_alive()[3:] + b"\x00\x00\x00\x05abc")
    assert framer.ready
    assert framer.next_frame() == nbss.Frame(nbss.FrameType.KEEP_ALIVE, b"")
    assert not framer.ready  # the session message still misses two bytes
    framer.feed(b"de\x99\x00\x00\x00")
    assert framer.ready
    assert framer.next_frame() == nbss.Frame(nbss.FrameType.SESSION_MESSAGE, b"abcde")
    assert framer.ready  # the bad header: next_frame has an error to raise
    with pytest.raises(MalformedMessage):
        framer.next_frame()
    assert framer.ready
