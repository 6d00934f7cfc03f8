"""SMB1 codecs against captured impacket/smbclient/nmap requests and smbd responses."""

import pytest
from impacket import smb as imp_smb

from protocols.errors import MalformedMessage, Truncated, Unsupported
from protocols.smb import smb1
from tests.helpers import golden


def test_golden_header_from_bytes():
    header = smb1.decode_header(golden("smb_impacket_smb1_negotiate_req")[4:])
    assert header.command == smb1.Command.NEGOTIATE
    flags2 = smb1.Flags2
    assert header.flags2 == flags2.NT_STATUS | flags2.EXTENDED_SECURITY | flags2.LONG_NAMES
    assert (header.tid, header.pid_low, header.uid, header.mid) == (0xFFFF, 0x15C2, 0, 0)


def test_reject_short_header_bytes():
    with pytest.raises(Truncated):
        smb1.decode_header(golden("smb_impacket_smb1_negotiate_req")[4:35])


def test_reject_header_wrong_protocol():
    with pytest.raises(MalformedMessage):
        smb1.decode_header(b"\xfeSMB" + bytes(28))


def test_golden_negotiate_dialects():
    request = smb1.decode_negotiate_request(golden("smb_impacket_multiprotocol_negotiate_req")[4:])
    assert request.dialects == ("NT LM 0.12", "SMB 2.002", "SMB 2.???")
    assert request.header.flags2 & smb1.Flags2.EXTENDED_SECURITY


def test_golden_nmap_negotiate_with_empty_dialect():
    request = smb1.decode_negotiate_request(golden("smb_nmap_smb1_negotiate_req")[4:])
    assert request.dialects == ("NT LM 0.12", "")


def test_golden_extended_session_setup():
    raw = golden("smb_impacket_smb1_session_setup_negotiate_req")[4:]
    request = smb1.decode_session_setup_request(raw)
    assert request.security_blob is not None
    assert b"NTLMSSP\x00\x01" in request.security_blob
    assert (request.native_os, request.native_lanman) == ("Unix", "Samba")


def test_golden_plain_unicode_session_setup():
    raw = golden("smb_smbclient_nt1_nospnego_session_setup_req")[4:]
    request = smb1.decode_session_setup_request(raw)
    assert request.security_blob is None
    assert (request.account_name, request.primary_domain) == ("baduser", "WORKGROUP")
    assert len(request.unicode_password) == 24


def test_golden_plain_oem_session_setup_from_nmap():
    request = smb1.decode_session_setup_request(golden("smb_nmap_smb1_session_setup_plain_req")[4:])
    assert (request.account_name, request.native_os) == ("guest", "Nmap")


@pytest.mark.parametrize(
    "name",
    [
        "smb_smbd_smb1_ext_negotiate_resp",
        "smb_smbd_smb1_plain_negotiate_resp",
        "smb_smbd_smb1_nospnego_negotiate_resp",
    ],
)
def test_golden_smbd_negotiate_response_round_trip(name):
    raw = golden(name)[4:]
    assert smb1.encode_negotiate_response(smb1.decode_negotiate_response(raw)) == raw


def test_golden_smbd_session_setup_response_round_trip():
    raw = golden("smb_smbd_smb1_session_setup_challenge_resp")[4:]
    response = smb1.decode_session_setup_response(raw)
    assert response.primary_domain == "GOLDWG"
    assert smb1.encode_session_setup_response(response) == raw


def test_encoded_plain_negotiate_parses_with_impacket():
    header = smb1.Header(smb1.Command.NEGOTIATE, flags=0x98, flags2=smb1.Flags2.UNICODE)
    response = smb1.NegotiateResponse(
        header, 0, 3, 50, 1, 16644, 65536, 0, smb1.Capabilities.UNICODE, 7, -60,
        b"\x01" * 8, "CORP", "SQL01-CZ2",
    )  # fmt: skip
    packet = imp_smb.NewSMBPacket(data=smb1.encode_negotiate_response(response))
    command = imp_smb.SMBCommand(packet["Data"][0])
    params = imp_smb.SMBNTLMDialect_Parameters(command["Parameters"])
    assert params["ChallengeLength"] == 8
    assert params["ServerTimeZone"] == 0xFFC4
    data = imp_smb.SMBNTLMDialect_Data()
    data["ChallengeLength"] = 8
    data.fromString(command["Data"])
    assert data["Challenge"] == b"\x01" * 8
    assert data["Payload"] == "CORP\0SQL01-CZ2\0".encode("utf-16-le")


def test_reject_wrong_protocol():
    with pytest.raises(MalformedMessage):
        smb1.decode_negotiate_request(b"\xfeSMB" + golden("smb_impacket_smb1_negotiate_req")[8:])


def test_reject_truncated_header():
    with pytest.raises(Truncated):
        smb1.decode_negotiate_request(golden("smb_impacket_smb1_negotiate_req")[4:20])


def test_reject_dialect_without_marker():
    raw = bytearray(golden("smb_impacket_smb1_negotiate_req")[4:])
    raw[35] = 0x03
    with pytest.raises(MalformedMessage):
        smb1.decode_negotiate_request(bytes(raw))


def test_reject_unterminated_dialect():
    raw = golden("smb_impacket_smb1_negotiate_req")[4:]
    with pytest.raises(MalformedMessage):
        smb1.decode_negotiate_request(raw[:-1].replace(b"\x0c\x00\x02", b"\x0b\x00\x02", 1))


def test_reject_too_many_dialects():
    header = smb1.Header(smb1.Command.NEGOTIATE)
    raw = smb1.encode_negotiate_request(smb1.NegotiateRequest(header, ("x",) * 65))
    with pytest.raises(MalformedMessage):
        smb1.decode_negotiate_request(raw)


def test_reject_byte_count_past_end():
    raw = golden("smb_impacket_smb1_negotiate_req")[4:]
    with pytest.raises(Truncated):
        smb1.decode_negotiate_request(raw[:-2])


def test_reject_lanman_session_setup_word_count():
    raw = golden("smb_impacket_smb1_session_setup_negotiate_req")[4:36] + b"\x0a" + bytes(22)
    with pytest.raises(Unsupported):
        smb1.decode_session_setup_request(raw)


def test_reject_security_blob_past_byte_count():
    raw = bytearray(golden("smb_impacket_smb1_session_setup_negotiate_req")[4:])
    raw[32 + 1 + 14 : 32 + 1 + 16] = (0x400).to_bytes(2, "little")
    with pytest.raises(Truncated):
        smb1.decode_session_setup_request(bytes(raw))


def test_reject_wrong_command():
    with pytest.raises(Unsupported):
        smb1.decode_session_setup_request(golden("smb_impacket_smb1_negotiate_req")[4:])


def test_echo_request_round_trip():
    request = smb1.EchoRequest(smb1.Header(smb1.Command.ECHO, mid=3), 2, b"ping")
    assert smb1.decode_echo_request(smb1.encode_echo_request(request)) == request


def test_echo_response_layout():
    message = smb1.encode_echo_response(smb1.Header(smb1.Command.ECHO), 1, b"ab")
    assert message[32:] == b"\x01\x01\x00\x02\x00ab"


def test_logoff_response_layout():
    message = smb1.encode_logoff_response(smb1.Header(smb1.Command.LOGOFF_ANDX))
    assert message[4] == smb1.Command.LOGOFF_ANDX
    assert message[32:] == b"\x02\xff\x00\x00\x00\x00\x00"


def test_reject_echo_with_wrong_word_count():
    message = smb1.encode_error_response(smb1.Header(smb1.Command.ECHO))
    with pytest.raises(Unsupported):
        smb1.decode_echo_request(message)


def test_reject_echo_data_past_byte_count():
    message = smb1.encode_echo_request(smb1.EchoRequest(smb1.Header(smb1.Command.ECHO), 1, b"x"))
    with pytest.raises(Truncated):
        smb1.decode_echo_request(message[:-1])
