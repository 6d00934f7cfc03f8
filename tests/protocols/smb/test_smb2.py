"""SMB2 codecs against captured smbclient/impacket/nmap requests and smbd responses."""

import pytest
from impacket import smb3structs as s3

from protocols.errors import MalformedMessage, Truncated, Unsupported
from protocols.smb import negotiate as neg
from protocols.smb import smb2
from protocols.smb.ntstatus import NtStatus
from protocols.smb.windows import windows_server
from tests.helpers import golden


def test_golden_smbclient_negotiate_request():
    request = neg.decode_negotiate_request(golden("smb_smbclient_smb2_negotiate_req")[4:])
    assert request.dialects == (0x0202, 0x0210, 0x0300, 0x0302, 0x0311)
    assert [c.context_type for c in request.contexts] == [1, 2, 8, 5]
    assert neg.context_values(request, neg.ContextType.ENCRYPTION_CAPABILITIES) == (2, 1, 4, 3)
    assert neg.context_values(request, neg.ContextType.SIGNING_CAPABILITIES) == (2, 1, 0)
    assert neg.context_values(request, neg.ContextType.PREAUTH_INTEGRITY_CAPABILITIES) == (1,)
    assert neg.context_values(request, neg.ContextType.COMPRESSION_CAPABILITIES) is None


def test_golden_nmap_single_dialect_has_start_time_not_contexts():
    request = neg.decode_negotiate_request(golden("smb_nmap_smb2_single_dialect_negotiate_req")[4:])
    assert request.dialects == (0x0202,)
    assert request.contexts == ()


@pytest.mark.parametrize(
    "name", ["smb_smbd_smb2_negotiate_resp", "smb_smbd_smb2_wildcard_negotiate_resp"]
)
def test_golden_smbd_negotiate_response_round_trip(name):
    raw = golden(name)[4:]
    assert neg.encode_negotiate_response(neg.decode_negotiate_response(raw)) == raw


def test_golden_smbd_session_setup_response_round_trip():
    raw = golden("smb_smbd_smb2_session_setup_challenge_resp")[4:]
    response = smb2.decode_session_setup_response(raw)
    assert response.header.status == NtStatus.MORE_PROCESSING_REQUIRED
    assert smb2.encode_session_setup_response(response) == raw


def test_golden_session_setup_request_round_trip():
    raw = golden("smb_smbclient_smb2_session_setup_negotiate_req")[4:]
    request = smb2.decode_session_setup_request(raw)
    assert request.security_buffer.startswith(b"\x60")
    assert smb2.encode_session_setup_request(request) == raw


CAPS_311 = windows_server(20348).capabilities(0x0311)


def test_encoded_negotiate_response_parses_with_impacket():
    request = neg.decode_negotiate_request(golden("smb_smbclient_smb2_negotiate_req")[4:])
    contexts = neg.response_contexts(request, b"\x5a" * 32)
    response = neg.NegotiateResponse(
        smb2.Header(smb2.Command.NEGOTIATE, flags=smb2.HeaderFlags.SERVER_TO_REDIR, credits=1),
        smb2.SecurityMode.SIGNING_ENABLED, 0x0311, bytes(16), CAPS_311,
        1, 2, 3, 4, 5, b"blob", contexts,
    )  # fmt: skip
    raw = neg.encode_negotiate_response(response)
    parsed = s3.SMB2Negotiate_Response(s3.SMB2Packet(raw)["Data"])
    assert parsed["NegotiateContextCount"] == 3
    assert parsed["NegotiateContextOffset"] % 8 == 0
    assert parsed["SecurityBufferOffset"] == 128
    first = s3.SMB2NegotiateContext(raw[parsed["NegotiateContextOffset"] :])
    preauth = s3.SMB2PreAuthIntegrityCapabilities(first["Data"])
    assert preauth["HashAlgorithms"] == b"\x01\x00"
    assert preauth["Salt"] == b"\x5a" * 32


def test_choose_dialect():
    assert neg.choose_dialect((0x0202, 0x0311, 0x02FF, 0x0999), 0x0302) == 0x0202
    assert neg.choose_dialect((0x0202, 0x0300), 0x0311) == 0x0300
    assert neg.choose_dialect((0x02FF,), 0x0311) is None


def test_cipher_preference_prefers_aes128_gcm():
    request = neg.NegotiateRequest(
        smb2.Header(0), (0x0311,), 0, 0, bytes(16),
        (neg.NegotiateContext(1, b"\x01\x00\x00\x00\x01\x00"),
         neg.NegotiateContext(2, b"\x03\x00\x04\x00\x01\x00\x02\x00")),
    )  # fmt: skip
    assert neg.response_contexts(request, b"")[1].data == b"\x01\x00\x02\x00"


def test_no_common_cipher_answers_none():
    request = neg.NegotiateRequest(
        smb2.Header(0), (0x0311,), 0, 0, bytes(16),
        (neg.NegotiateContext(1, b"\x01\x00\x00\x00\x01\x00"),
         neg.NegotiateContext(2, b"\x01\x00\x09\x00")),
    )  # fmt: skip
    assert neg.response_contexts(request, b"")[1].data == b"\x01\x00\x00\x00"


def test_reject_missing_preauth_context():
    request = neg.NegotiateRequest(smb2.Header(0), (0x0311,), 0, 0, bytes(16))
    with pytest.raises(Unsupported) as info:
        neg.response_contexts(request, b"")
    assert info.value.answer_hint == NtStatus.INVALID_PARAMETER


def test_reject_preauth_without_sha512():
    request = neg.NegotiateRequest(
        smb2.Header(0),
        (0x0311,),
        0,
        0,
        bytes(16),
        (neg.NegotiateContext(1, b"\x01\x00\x00\x00\x02\x00"),),
    )
    with pytest.raises(Unsupported) as info:
        neg.response_contexts(request, b"")
    assert info.value.answer_hint == NtStatus.NO_PREAUTH_INTEGRITY_HASH_OVERLAP


def test_reject_short_header():
    with pytest.raises(Truncated):
        smb2.decode_header(golden("smb_smbclient_smb2_negotiate_req")[4:60])


def test_reject_wrong_protocol_id():
    with pytest.raises(MalformedMessage):
        smb2.decode_header(b"\xfdSMB" + golden("smb_smbclient_smb2_negotiate_req")[8:])


def test_reject_header_structure_size():
    raw = bytearray(golden("smb_smbclient_smb2_negotiate_req")[4:])
    raw[4] = 65
    with pytest.raises(MalformedMessage):
        smb2.decode_header(bytes(raw))


def test_reject_negotiate_zero_dialects():
    raw = bytearray(golden("smb_smbclient_smb2_negotiate_req")[4:])
    raw[66:68] = b"\x00\x00"
    with pytest.raises(MalformedMessage):
        neg.decode_negotiate_request(bytes(raw))


def test_reject_negotiate_dialects_past_end():
    raw = bytearray(golden("smb_nmap_smb2_single_dialect_negotiate_req")[4:])
    raw[66:68] = b"\x05\x00"
    with pytest.raises(Truncated):
        neg.decode_negotiate_request(bytes(raw))


def test_reject_misaligned_context_offset():
    raw = bytearray(golden("smb_smbclient_smb2_negotiate_req")[4:])
    offset = int.from_bytes(raw[92:96], "little")
    raw[92:96] = (offset + 2).to_bytes(4, "little")
    with pytest.raises(MalformedMessage):
        neg.decode_negotiate_request(bytes(raw))


def test_reject_context_offset_into_fixed_part():
    raw = bytearray(golden("smb_smbclient_smb2_negotiate_req")[4:])
    raw[92:96] = (64).to_bytes(4, "little")
    with pytest.raises(MalformedMessage):
        neg.decode_negotiate_request(bytes(raw))


def test_reject_too_many_contexts():
    raw = bytearray(golden("smb_smbclient_smb2_negotiate_req")[4:])
    raw[96:98] = (33).to_bytes(2, "little")
    with pytest.raises(MalformedMessage):
        neg.decode_negotiate_request(bytes(raw))


def test_reject_context_past_end():
    raw = golden("smb_smbclient_smb2_negotiate_req")[4:]
    with pytest.raises(Truncated):
        neg.decode_negotiate_request(raw[:-4])


def test_reject_security_buffer_outside_message():
    raw = bytearray(golden("smb_smbclient_smb2_session_setup_negotiate_req")[4:])
    raw[78:80] = (0x1000).to_bytes(2, "little")
    with pytest.raises(Truncated):
        smb2.decode_session_setup_request(bytes(raw))


def test_reject_security_buffer_inside_header():
    raw = bytearray(golden("smb_smbclient_smb2_session_setup_negotiate_req")[4:])
    raw[76:78] = (16).to_bytes(2, "little")
    with pytest.raises(MalformedMessage):
        smb2.decode_session_setup_request(bytes(raw))


def test_reject_session_setup_wrong_command():
    with pytest.raises(Unsupported):
        smb2.decode_session_setup_request(golden("smb_smbclient_smb2_negotiate_req")[4:])


def test_logoff_response_layout():
    message = smb2.encode_logoff_response(smb2.Header(smb2.Command.LOGOFF, status=0))
    assert smb2.decode_header(message).command == smb2.Command.LOGOFF
    assert message[64:] == b"\x04\x00\x00\x00"
