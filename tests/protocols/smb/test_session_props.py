"""SmbSession.receive_data never raises, whatever bytes and segmentation arrive."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.netbios import nbss
from tests.helpers import golden
from tests.protocols.smb.smb_helpers import new_session

SETTINGS = settings(max_examples=300, deadline=None)

FLOWS = [
    ["smb_smbclient_smb2_negotiate_req", "smb_smbclient_smb2_session_setup_negotiate_req",
     "smb_smbclient_smb2_session_setup_auth_req"],
    ["smb_impacket_multiprotocol_negotiate_req", "smb_impacket_smb2_negotiate_req",
     "smb_impacket_smb2_session_setup_negotiate_req", "smb_impacket_smb2_session_setup_auth_req"],
    ["smb_impacket_smb1_negotiate_req", "smb_impacket_smb1_session_setup_negotiate_req",
     "smb_impacket_smb1_session_setup_auth_req"],
    ["smb_nmap_smb1_negotiate_req", "smb_nmap_smb1_session_setup_plain_req",
     "smb_nmap_smb1_session_setup_anonymous_req"],
]  # fmt: skip


def _feed(session, chunks):
    out = b"".join(session.receive_data(chunk) for chunk in chunks)
    assert isinstance(out, bytes)
    assert isinstance(session.closed, bool)
    return out


@SETTINGS
@given(st.lists(st.binary(max_size=200), max_size=6), st.booleans())
def test_random_bytes_never_raise(chunks, netbios):
    _feed(new_session(netbios=netbios), chunks)


@SETTINGS
@given(st.sampled_from(FLOWS), st.data())
def test_mutated_flows_never_raise(flow, data):
    frames = [bytearray(golden(name)) for name in flow]
    index = data.draw(st.integers(0, len(frames) - 1))
    frame = frames[index]
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(4, len(frame) - 1))
        frame[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(4, len(frame)))
    frames[index] = frame[:cut]
    frames[index][1:4] = (cut - 4).to_bytes(3, "big")
    _feed(new_session(), [bytes(f) for f in frames])


@pytest.mark.parametrize("flow", FLOWS)
def test_every_truncated_message_in_flow(flow):
    frames = [golden(name) for name in flow]
    for index, frame in enumerate(frames):
        for cut in range(4, len(frame)):
            short = nbss.encode_frame(nbss.FrameType.SESSION_MESSAGE, frame[4:cut], direct=True)
            _feed(new_session(), [*frames[:index], short, *frames[index + 1 :]])


@pytest.mark.parametrize("flow", FLOWS)
def test_every_byte_flip_in_flow(flow):
    frames = [golden(name) for name in flow]
    for index, frame in enumerate(frames):
        for position in range(4, len(frame)):
            flipped = frame[:position] + bytes((frame[position] ^ 0xFF,)) + frame[position + 1 :]
            _feed(new_session(), [*frames[:index], flipped, *frames[index + 1 :]])
