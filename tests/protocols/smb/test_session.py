"""SmbSession driven by captured client requests, checked with impacket's structures."""

from dataclasses import replace

import pytest
from impacket import smb as imp_smb
from impacket import smb3structs as s3
from impacket.smb import SMB_DIALECT
from impacket.smbconnection import SessionError, SMBConnection
from impacket.spnego import SPNEGO_NegTokenResp

from protocols.auth import ntlmssp, spnego
from protocols.netbios import nbss
from protocols.netbios.names import NetbiosName
from protocols.smb import negotiate as neg
from protocols.smb import smb1, smb2
from protocols.smb._auth import MAX_SESSIONS
from protocols.smb._state import State
from protocols.smb.ntstatus import NtStatus
from protocols.smb.session import SmbSession
from tests.helpers import golden
from tests.protocols.smb.smb_helpers import (
    CLOCK,
    IDENTITY,
    SERVER_GUID,
    CountingRandom,
    LoopbackServer,
    body,
    new_session,
)


def _smb2_header(reply: bytes) -> s3.SMB2Packet:
    return s3.SMB2Packet(body(reply))


def _negotiated_smb2(name: str = "smb_smbclient_smb2_negotiate_req"):
    session = new_session()
    session.receive_data(golden(name))
    assert session.state is State.SMB2
    return session


def test_smb2_negotiate_from_smbclient_picks_311_with_contexts():
    session = new_session()
    reply = session.receive_data(golden("smb_smbclient_smb2_negotiate_req"))
    packet = _smb2_header(reply)
    assert packet["Status"] == 0
    assert packet["Flags"] & s3.SMB2_FLAGS_SERVER_TO_REDIR
    resp = s3.SMB2Negotiate_Response(packet["Data"])
    assert resp["DialectRevision"] == 0x0311
    assert resp["ServerGuid"] == SERVER_GUID
    assert resp["SecurityMode"] == s3.SMB2_NEGOTIATE_SIGNING_ENABLED
    assert resp["SystemTime"] == ntlmssp.filetime(CLOCK)
    assert resp["ServerStartTime"] == 0  # Windows 10 / Server 2016 and later
    assert resp["Capabilities"] == 0x2F  # Windows Server 2022 at 3.1.1
    assert resp["MaxReadSize"] == 8 * 1024 * 1024
    decoded = neg.decode_negotiate_response(body(reply))
    assert decoded.security_buffer == spnego.encode_neg_token_init2()
    types = [c.context_type for c in decoded.contexts]
    assert types == [1, 2, 8]
    assert decoded.contexts[1].data == b"\x01\x00\x02\x00"  # AES-128-GCM
    assert decoded.contexts[2].data == b"\x01\x00\x01\x00"  # AES-CMAC
    assert decoded.contexts[0].data[6:] == b"\x11" * 32  # injected salt


def test_smb2_negotiate_impacket_offers_only_ccm():
    reply = new_session().receive_data(golden("smb_impacket_smb2_negotiate_req"))
    decoded = neg.decode_negotiate_response(body(reply))
    assert [c.context_type for c in decoded.contexts] == [1, 2]
    assert decoded.contexts[1].data == b"\x01\x00\x01\x00"


def test_smb2_negotiate_capped_by_max_dialect():
    session = new_session(replace(IDENTITY, max_dialect=0x0210))
    reply = session.receive_data(golden("smb_smbclient_smb2_negotiate_req"))
    resp = s3.SMB2Negotiate_Response(_smb2_header(reply)["Data"])
    assert resp["DialectRevision"] == 0x0210
    assert resp["Capabilities"] == 0x07


def test_smb2_negotiate_202_only_from_nmap():
    reply = new_session().receive_data(golden("smb_nmap_smb2_single_dialect_negotiate_req"))
    resp = s3.SMB2Negotiate_Response(_smb2_header(reply)["Data"])
    assert resp["DialectRevision"] == 0x0202
    assert resp["Capabilities"] == 0x01
    assert resp["MaxTransactSize"] == 65536


def test_smb2_negotiate_without_common_dialect_is_not_supported():
    session = new_session(replace(IDENTITY, max_dialect=0x0200))
    reply = session.receive_data(golden("smb_nmap_smb2_single_dialect_negotiate_req"))
    assert _smb2_header(reply)["Status"] == NtStatus.NOT_SUPPORTED
    assert session.state is State.AWAIT_NEGOTIATE
    assert not session.closed


def test_smb1_multiprotocol_negotiate_gets_wildcard_then_smb2():
    session = new_session()
    reply = session.receive_data(golden("smb_impacket_multiprotocol_negotiate_req"))
    resp = s3.SMB2Negotiate_Response(_smb2_header(reply)["Data"])
    assert resp["DialectRevision"] == 0x02FF
    assert session.state is State.AWAIT_SMB2_NEGOTIATE
    reply = session.receive_data(golden("smb_impacket_smb2_negotiate_req"))
    assert s3.SMB2Negotiate_Response(_smb2_header(reply)["Data"])["DialectRevision"] == 0x0311
    assert session.receive_data(golden("smb_impacket_smb2_negotiate_req")) == b""
    assert session.closed


def test_smb2_session_setup_spnego_gets_wrapped_challenge():
    session = _negotiated_smb2()
    reply = session.receive_data(golden("smb_smbclient_smb2_session_setup_negotiate_req"))
    packet = _smb2_header(reply)
    assert packet["Status"] == NtStatus.MORE_PROCESSING_REQUIRED
    assert packet["SessionID"] != 0
    resp = s3.SMB2SessionSetup_Response(packet["Data"])
    token = SPNEGO_NegTokenResp(resp["Buffer"])
    assert token["NegState"] == b"\x01"
    challenge = ntlmssp.decode_challenge(token["ResponseToken"])
    assert challenge.server_challenge == b"\x13" * 8
    assert challenge.target_name == "CORP"


def test_smb2_authenticate_fails_and_connection_stays_usable():
    session = _negotiated_smb2("smb_impacket_smb2_negotiate_req")
    first = session.receive_data(golden("smb_impacket_smb2_session_setup_negotiate_req"))
    session_id = _smb2_header(first)["SessionID"]
    auth = bytearray(golden("smb_impacket_smb2_session_setup_auth_req"))
    auth[4 + 40 : 4 + 48] = session_id.to_bytes(8, "little")
    packet = _smb2_header(session.receive_data(bytes(auth)))
    assert packet["Status"] == NtStatus.LOGON_FAILURE
    again = session.receive_data(golden("smb_impacket_smb2_session_setup_negotiate_req"))
    assert _smb2_header(again)["Status"] == NtStatus.MORE_PROCESSING_REQUIRED
    assert not session.closed


def _anonymous_authenticate(session_id):
    """An SMB2 SESSION_SETUP with an MS-NLMP anonymous AUTHENTICATE in SPNEGO."""
    flags = ntlmssp.NegotiateFlags
    token = ntlmssp.encode_authenticate(
        ntlmssp.AuthenticateMessage(
            flags=flags.NTLMSSP_NEGOTIATE_UNICODE | flags.NTLMSSP_ANONYMOUS,
            domain="", user="", workstation="WKS", lm_response=b"\0", nt_response=b"",
            is_anonymous=True,
        )
    )  # fmt: skip
    blob = spnego.encode_neg_token_resp(None, response_token=token)
    header = smb2.Header(smb2.Command.SESSION_SETUP, message_id=2, session_id=session_id)
    request = smb2.SessionSetupRequest(header, 0, 1, 0, 0, 0, blob)
    return _direct(smb2.encode_session_setup_request(request))


def _smb2_anonymous_logon(session):
    first = session.receive_data(golden("smb_smbclient_smb2_session_setup_negotiate_req"))
    session_id = _smb2_header(first)["SessionID"]
    return session_id, session.receive_data(_anonymous_authenticate(session_id))


def test_smb2_named_user_without_proof_is_logon_failure():
    # smbclient -N: its Unix user name, empty responses; it retries anonymously after this.
    session = _negotiated_smb2()
    first = session.receive_data(golden("smb_smbclient_smb2_session_setup_negotiate_req"))
    auth = bytearray(golden("smb_smbclient_smb2_session_setup_auth_req"))
    auth[4 + 40 : 4 + 48] = _smb2_header(first)["SessionID"].to_bytes(8, "little")
    assert _smb2_header(session.receive_data(bytes(auth)))["Status"] == NtStatus.LOGON_FAILURE


def test_smb2_anonymous_authenticate_denied_without_null_session():
    session = SmbSession(
        replace(IDENTITY, null_session=False), netbios=False,
        random_bytes=CountingRandom(), clock=lambda: CLOCK,
    )  # fmt: skip
    session.receive_data(golden("smb_smbclient_smb2_negotiate_req"))
    _, reply = _smb2_anonymous_logon(session)
    assert _smb2_header(reply)["Status"] == NtStatus.ACCESS_DENIED


def test_smb2_anonymous_authenticate_is_null_session():
    session = _negotiated_smb2()
    session_id, reply = _smb2_anonymous_logon(session)
    response = smb2.decode_session_setup_response(body(reply))
    assert response.header.status == NtStatus.SUCCESS
    assert response.header.session_id == session_id
    assert response.session_flags == smb2.SessionFlags.IS_NULL
    assert spnego.decode_client_token(response.security_buffer) == spnego.NegTokenResp(
        spnego.NegState.ACCEPT_COMPLETED, None, None, None
    )


def _smb2_on(session, command, session_id, body_bytes=b""):
    header = smb2.Header(command, message_id=9, session_id=session_id)
    return session.receive_data(_direct(smb2.encode_header(header) + body_bytes))


def test_smb2_null_session_refuses_tree_connect_allows_echo_and_logoff():
    session = _negotiated_smb2()
    session_id, _ = _smb2_anonymous_logon(session)
    tree = _smb2_on(session, smb2.Command.TREE_CONNECT, session_id)
    assert _smb2_header(tree)["Status"] == NtStatus.ACCESS_DENIED
    echo = _smb2_on(session, smb2.Command.ECHO, session_id, b"\x04\x00\x00\x00")
    assert _smb2_header(echo)["Status"] == NtStatus.SUCCESS
    logoff = _smb2_on(session, smb2.Command.LOGOFF, session_id, b"\x04\x00\x00\x00")
    assert _smb2_header(logoff)["Status"] == NtStatus.SUCCESS
    assert body(logoff)[64:] == b"\x04\x00\x00\x00"
    again = _smb2_on(session, smb2.Command.TREE_CONNECT, session_id)
    assert _smb2_header(again)["Status"] == NtStatus.USER_SESSION_DELETED


@pytest.mark.parametrize(
    "command",
    [
        smb2.Command.TREE_DISCONNECT,
        smb2.Command.CREATE,
        smb2.Command.IOCTL,
        smb2.Command.CLOSE,
        smb2.Command.READ,
        smb2.Command.QUERY_INFO,
    ],
)
def test_smb2_null_session_tree_commands_get_network_name_deleted(command):
    # MS-SMB2 §3.3.5.2.11: a TreeId not in Session.TreeConnectTable (no tree is
    # ever connected: the TREE_CONNECT was denied) -> STATUS_NETWORK_NAME_DELETED
    session = _negotiated_smb2()
    session_id, _ = _smb2_anonymous_logon(session)
    _smb2_on(session, smb2.Command.TREE_CONNECT, session_id)
    reply = _smb2_on(session, command, session_id)
    assert _smb2_header(reply)["Status"] == NtStatus.NETWORK_NAME_DELETED


def test_smb2_null_session_unknown_command_is_invalid_parameter():
    session = _negotiated_smb2()
    session_id, _ = _smb2_anonymous_logon(session)
    reply = _smb2_on(session, 0x0099, session_id)
    assert _smb2_header(reply)["Status"] == NtStatus.INVALID_PARAMETER


def test_reject_too_many_sessions_closes():
    session = _negotiated_smb2()
    for _ in range(MAX_SESSIONS):
        reply = session.receive_data(golden("smb_smbclient_smb2_session_setup_negotiate_req"))
        assert _smb2_header(reply)["Status"] == NtStatus.MORE_PROCESSING_REQUIRED
    assert session.receive_data(golden("smb_smbclient_smb2_session_setup_negotiate_req")) == b""
    assert session.closed


def test_smb2_unknown_session_id_is_deleted():
    session = _negotiated_smb2()
    reply = session.receive_data(golden("smb_smbclient_smb2_session_setup_auth_req"))
    assert _smb2_header(reply)["Status"] == NtStatus.USER_SESSION_DELETED


def test_smb2_raw_ntlmssp_gets_raw_challenge():
    session = _negotiated_smb2()
    raw = ntlmssp.encode_negotiate(
        ntlmssp.NegotiateMessage(ntlmssp.NegotiateFlags.NTLMSSP_NEGOTIATE_UNICODE, "", "", None)
    )
    request = smb2.SessionSetupRequest(smb2.Header(smb2.Command.SESSION_SETUP), 0, 1, 0, 0, 0, raw)
    reply = session.receive_data(_direct(smb2.encode_session_setup_request(request)))
    response = smb2.decode_session_setup_response(body(reply))
    assert ntlmssp.message_type(response.security_buffer) is ntlmssp.MessageType.CHALLENGE


def test_smb2_kerberos_only_gets_ntlmssp_offer():
    session = _negotiated_smb2()
    blob = spnego.encode_neg_token_init((spnego.OID_MS_KRB5, spnego.OID_KRB5), b"krb")
    request = smb2.SessionSetupRequest(smb2.Header(smb2.Command.SESSION_SETUP), 0, 1, 0, 0, 0, blob)
    reply = session.receive_data(_direct(smb2.encode_session_setup_request(request)))
    response = smb2.decode_session_setup_response(body(reply))
    token = spnego.decode_client_token(response.security_buffer)
    assert token == spnego.NegTokenResp(
        spnego.NegState.ACCEPT_INCOMPLETE, spnego.OID_NTLMSSP, None, None
    )


@pytest.mark.parametrize(
    ("command", "status"),
    [
        (smb2.Command.TREE_CONNECT, NtStatus.USER_SESSION_DELETED),
        (smb2.Command.LOGOFF, NtStatus.USER_SESSION_DELETED),
        (0x0042, NtStatus.INVALID_PARAMETER),
    ],
)
def test_smb2_commands_before_authentication(command, status):
    session = _negotiated_smb2()
    reply = session.receive_data(_direct(smb2.encode_header(smb2.Header(command, message_id=7))))
    packet = _smb2_header(reply)
    assert (packet["Status"], packet["MessageID"]) == (status, 7)
    assert body(reply)[64:] == b"\x09\x00\x00\x00\x00\x00\x00\x00\x00"


def test_smb2_cancel_gets_no_frame():
    session = _negotiated_smb2()
    assert _smb2_on(session, smb2.Command.CANCEL, 0) == b""
    assert not session.closed


def test_smb2_echo_is_answered():
    session = _negotiated_smb2()
    header = smb2.encode_header(smb2.Header(smb2.Command.ECHO, message_id=3))
    reply = session.receive_data(_direct(header + b"\x04\x00\x00\x00"))
    assert _smb2_header(reply)["Status"] == 0
    assert body(reply)[64:] == b"\x04\x00\x00\x00"


def test_smb1_negotiate_extended_from_impacket():
    session = new_session()
    reply = session.receive_data(golden("smb_impacket_smb1_negotiate_req"))
    packet = imp_smb.NewSMBPacket(data=body(reply))
    assert packet["Flags1"] & imp_smb.SMB.FLAGS1_REPLY
    command = imp_smb.SMBCommand(packet["Data"][0])
    params = imp_smb.SMBExtended_Security_Parameters(command["Parameters"])
    assert params["DialectIndex"] == 0
    assert params["Capabilities"] & imp_smb.SMB.CAP_EXTENDED_SECURITY
    data = imp_smb.SMBExtended_Security_Data(command["Data"])
    assert data["ServerGUID"] == SERVER_GUID
    assert data["SecurityBlob"] == spnego.encode_neg_token_init2()


def test_smb1_negotiate_plain_from_nmap():
    session = new_session()
    reply = session.receive_data(golden("smb_nmap_smb1_negotiate_req"))
    decoded = smb1.decode_negotiate_response(body(reply))
    assert decoded.server_guid is None
    assert decoded.challenge == b"\x11" * 8
    assert (decoded.domain_name, decoded.server_name) == ("CORP", "SQL01-CZ2")
    assert decoded.system_time == ntlmssp.filetime(CLOCK)
    assert session.state is State.SMB1


def test_smb1_plain_session_setup_fails():
    session = new_session()
    session.receive_data(golden("smb_smbclient_nt1_nospnego_negotiate_req"))
    reply = session.receive_data(golden("smb_smbclient_nt1_nospnego_session_setup_req"))
    packet = imp_smb.NewSMBPacket(data=body(reply))
    assert packet["ErrorCode"] << 16 | packet["_reserved"] << 8 | packet["ErrorClass"] == (
        NtStatus.LOGON_FAILURE
    )


def test_smb1_extended_session_setup_challenge_and_failure():
    session = new_session()
    session.receive_data(golden("smb_impacket_smb1_negotiate_req"))
    reply = session.receive_data(golden("smb_impacket_smb1_session_setup_negotiate_req"))
    decoded = smb1.decode_session_setup_response(body(reply))
    assert decoded.header.status == NtStatus.MORE_PROCESSING_REQUIRED
    assert decoded.native_os == IDENTITY.native_os
    assert decoded.native_lanman == IDENTITY.native_lanman
    assert decoded.primary_domain == "CORP"
    token = spnego.decode_client_token(decoded.security_blob)
    assert isinstance(token, spnego.NegTokenResp)
    assert token.response_token is not None
    auth = bytearray(golden("smb_impacket_smb1_session_setup_auth_req"))
    auth[4 + 28 : 4 + 30] = decoded.header.uid.to_bytes(2, "little")
    failed = smb1.decode_header(body(session.receive_data(bytes(auth))))
    assert failed.status == NtStatus.LOGON_FAILURE


def test_smb1_other_command_gets_bad_uid():
    session = new_session()
    session.receive_data(golden("smb_impacket_smb1_negotiate_req"))
    message = smb1.encode_error_response(smb1.Header(smb1.Command.TREE_CONNECT_ANDX))
    reply = session.receive_data(_direct(message))
    assert smb1.decode_header(body(reply)).status == NtStatus.SMB_BAD_UID


def test_smb1_disabled_closes():
    session = new_session(replace(IDENTITY, smb1=False))
    assert session.receive_data(golden("smb_impacket_smb1_negotiate_req")) == b""
    assert session.closed


def test_netbios_session_request_accepted_any_case():
    session = new_session(netbios=True)
    request = nbss.SessionRequest(NetbiosName("sql01-cz2", 0x20), NetbiosName("C", 0))
    assert session.receive_data(nbss.encode_session_request(request)) == b"\x82\x00\x00\x00"
    assert session.receive_data(nbss.encode_keep_alive()) == b""
    reply = session.receive_data(golden("smb_smbclient_smb2_negotiate_req"))
    assert reply[0] == 0
    assert _smb2_header(reply)["Status"] == 0


def test_netbios_smbserver_accepted():
    session = new_session(netbios=True)
    assert session.receive_data(golden("smb_impacket_nbss_session_request")) == b"\x82\x00\x00\x00"


def test_netbios_public_name_refused():
    session = new_session(netbios=True)
    request = nbss.SessionRequest(NetbiosName("SQL01", 0x20), NetbiosName("C", 0))
    assert session.receive_data(nbss.encode_session_request(request)) == b"\x83\x00\x00\x01\x82"
    assert session.closed


def test_netbios_wrong_suffix_refused():
    session = new_session(netbios=True)
    request = nbss.SessionRequest(NetbiosName("SQL01-CZ2", 0x00), NetbiosName("C", 0))
    assert session.receive_data(nbss.encode_session_request(request))[0] == 0x83


def test_netbios_message_before_session_request_gets_negative_0x8f_and_closes():
    # Windows answers a premature SESSION MESSAGE with NEGATIVE "unspecified error"
    # (nmap-service-probes: match netbios-ssn m|^\x83\0\0\x01\x8f$| ... Microsoft Windows)
    session = new_session(netbios=True)
    assert session.receive_data(golden("smb_smbclient_smb2_negotiate_req")) == b"\x83\0\0\x01\x8f"
    assert session.closed


def test_session_request_on_445_closes():
    session = new_session()
    assert session.receive_data(golden("smb_impacket_nbss_session_request")) == b""
    assert session.closed


def test_reject_session_setup_before_negotiate():
    session = new_session()
    assert session.receive_data(golden("smb_smbclient_smb2_session_setup_negotiate_req")) == b""
    assert session.closed


def test_reject_oversized_frame_closes():
    session = new_session()
    assert session.receive_data(b"\x00\x01\x00\x01") == b""
    assert session.closed


def test_reject_wrong_negotiate_structure_size():
    raw = bytearray(golden("smb_smbclient_smb2_negotiate_req"))
    raw[4 + 64] = 35
    session = new_session()
    assert _smb2_header(session.receive_data(bytes(raw)))["Status"] == NtStatus.INVALID_PARAMETER
    assert session.closed


def test_reject_zero_dialect_count():
    raw = bytearray(golden("smb_smbclient_smb2_negotiate_req"))
    raw[4 + 66 : 4 + 68] = b"\x00\x00"
    assert _smb2_header(new_session().receive_data(bytes(raw)))["Status"] == (
        NtStatus.INVALID_PARAMETER
    )


def test_reject_huge_dialect_count():
    raw = bytearray(golden("smb_smbclient_smb2_negotiate_req"))
    raw[4 + 66 : 4 + 68] = b"\xff\xff"
    assert _smb2_header(new_session().receive_data(bytes(raw)))["Status"] == (
        NtStatus.INVALID_PARAMETER
    )


def test_reject_bad_negotiate_context_offset():
    raw = bytearray(golden("smb_smbclient_smb2_negotiate_req"))
    raw[4 + 64 + 28 : 4 + 64 + 32] = (0xFFF0).to_bytes(4, "little")
    assert _smb2_header(new_session().receive_data(bytes(raw)))["Status"] == (
        NtStatus.INVALID_PARAMETER
    )


def test_reject_compound_request_closes():
    session = _negotiated_smb2()
    header = smb2.encode_header(smb2.Header(smb2.Command.ECHO, next_command=72))
    assert session.receive_data(_direct(header + bytes(8) + header)) == b""
    assert session.closed


def test_reject_unknown_protocol_id_closes():
    session = new_session()
    assert session.receive_data(_direct(b"\xfdSMB" + bytes(60))) == b""
    assert session.closed


def test_reject_bad_security_buffer_offset():
    session = _negotiated_smb2()
    raw = bytearray(golden("smb_smbclient_smb2_session_setup_negotiate_req"))
    raw[4 + 64 + 12 : 4 + 64 + 14] = (0x7000).to_bytes(2, "little")
    assert _smb2_header(session.receive_data(bytes(raw)))["Status"] == NtStatus.INVALID_PARAMETER
    assert not session.closed


def test_byte_by_byte_feeding_gives_same_answer():
    whole = new_session().receive_data(golden("smb_smbclient_smb2_negotiate_req"))
    session = new_session()
    raw = golden("smb_smbclient_smb2_negotiate_req")
    pieces = [session.receive_data(raw[i : i + 1]) for i in range(len(raw))]
    assert b"".join(pieces) == whole


# impacket compares received bytes with int/str internally; -bb would turn that into errors.
@pytest.mark.filterwarnings("ignore::BytesWarning")
@pytest.mark.parametrize("dialect", [None, SMB_DIALECT])
def test_impacket_client_against_session(dialect):
    server = LoopbackServer()
    try:
        kwargs = {} if dialect is None else {"preferredDialect": dialect}
        client = SMBConnection("SQL01-CZ2", "127.0.0.1", sess_port=server.port, timeout=5, **kwargs)
        with pytest.raises(SessionError) as info:
            client.login("someone", "wrong", "CORP")
        assert info.value.getErrorCode() == NtStatus.LOGON_FAILURE
        assert client.getServerName() == "SQL01-CZ2"
        assert client.getServerDomain() == "CORP"
        assert client.getServerDNSHostName() == "sql01-cz2.corp.example"
        assert client.getServerDNSDomainName() == "corp.example"
        if dialect == SMB_DIALECT:
            assert client.getServerOS() == IDENTITY.native_os
        else:
            assert "20348" in client.getServerOS()
        client.login("", "")
        with pytest.raises(SessionError) as info:
            client.connectTree("IPC$")
        assert info.value.getErrorCode() == NtStatus.ACCESS_DENIED
        client.logoff()
        client.close()
    finally:
        server.close()
    assert server.errors == []


def _direct(message: bytes) -> bytes:
    return nbss.encode_frame(nbss.FrameType.SESSION_MESSAGE, message, direct=True)


def _nmap_smb1_session(identity=IDENTITY):
    session = new_session(identity)
    session.receive_data(golden("smb_nmap_smb1_negotiate_req"))
    return session


def test_smb1_anonymous_plain_session_setup_denied_without_null_session():
    session = _nmap_smb1_session(replace(IDENTITY, null_session=False))
    reply = session.receive_data(golden("smb_nmap_smb1_session_setup_anonymous_req"))
    assert smb1.decode_header(body(reply)).status == NtStatus.ACCESS_DENIED
    assert not session.closed


def test_smb1_null_session_gives_os_to_nmap():
    session = _nmap_smb1_session()
    reply = session.receive_data(golden("smb_nmap_smb1_session_setup_anonymous_req"))
    packet = imp_smb.NewSMBPacket(data=body(reply))
    assert packet["ErrorCode"] == 0
    assert packet["Uid"] != 0
    command = imp_smb.SMBCommand(packet["Data"][0])
    assert imp_smb.SMBSessionSetupAndXResponse_Parameters(command["Parameters"])["Action"] == 0
    data = imp_smb.SMBSessionSetupAndXResponse_Data(flags=packet["Flags2"], data=command["Data"])
    assert data["NativeOS"] == IDENTITY.native_os
    assert data["NativeLanMan"] == IDENTITY.native_lanman
    assert data["PrimaryDomain"] == "CORP"
    tree = smb1.encode_error_response(
        smb1.Header(smb1.Command.TREE_CONNECT_ANDX, uid=packet["Uid"])
    )
    refused = session.receive_data(_direct(tree))
    assert smb1.decode_header(body(refused)).status == NtStatus.ACCESS_DENIED
    tree_disconnect = smb1.encode_error_response(smb1.Header(0x71, uid=packet["Uid"]))
    bad_tid = session.receive_data(_direct(tree_disconnect))
    assert smb1.decode_header(body(bad_tid)).status == NtStatus.SMB_BAD_TID
    echo = smb1.EchoRequest(smb1.Header(smb1.Command.ECHO, uid=packet["Uid"], mid=5), 1, b"hi")
    answer = body(session.receive_data(_direct(smb1.encode_echo_request(echo))))
    assert smb1.decode_header(answer).mid == 5
    assert answer[32:] == b"\x01\x01\x00\x02\x00hi"
    logoff = smb1.encode_error_response(smb1.Header(smb1.Command.LOGOFF_ANDX, uid=packet["Uid"]))
    answer = body(session.receive_data(_direct(logoff)))
    assert smb1.decode_header(answer).status == NtStatus.SUCCESS
    assert answer[32:] == b"\x02\xff\x00\x00\x00\x00\x00"
    after = session.receive_data(_direct(tree))
    assert smb1.decode_header(body(after)).status == NtStatus.SMB_BAD_UID


def test_smb1_null_session_echo_count_zero_gets_nothing():
    session = _nmap_smb1_session()
    reply = session.receive_data(golden("smb_nmap_smb1_session_setup_anonymous_req"))
    uid = smb1.decode_header(body(reply)).uid
    echo = smb1.EchoRequest(smb1.Header(smb1.Command.ECHO, uid=uid), 0, b"")
    assert session.receive_data(_direct(smb1.encode_echo_request(echo))) == b""
    assert not session.closed


def test_smb1_null_session_malformed_echo_is_invalid_parameter():
    session = _nmap_smb1_session()
    reply = session.receive_data(golden("smb_nmap_smb1_session_setup_anonymous_req"))
    uid = smb1.decode_header(body(reply)).uid
    bad = smb1.encode_error_response(smb1.Header(smb1.Command.ECHO, uid=uid))
    answer = session.receive_data(_direct(bad))
    assert smb1.decode_header(body(answer)).status == NtStatus.INVALID_PARAMETER


def test_smb1_null_session_still_refuses_named_user():
    session = _nmap_smb1_session()
    reply = session.receive_data(golden("smb_nmap_smb1_session_setup_plain_req"))
    assert smb1.decode_header(body(reply)).status == NtStatus.LOGON_FAILURE


# impacket compares received bytes with int/str internally; -bb would turn that into errors.
@pytest.mark.filterwarnings("ignore::BytesWarning")
def test_impacket_smb1_extended_anonymous_is_null_session():
    server = LoopbackServer()
    try:
        client = SMBConnection(
            "SQL01-CZ2", "127.0.0.1", sess_port=server.port, timeout=5,
            preferredDialect=SMB_DIALECT,
        )  # fmt: skip
        client.login("", "")
        assert client.getServerDNSHostName() == "sql01-cz2.corp.example"
        with pytest.raises(SessionError) as info:
            client.connectTree("IPC$")
        assert info.value.getErrorCode() == NtStatus.ACCESS_DENIED
        client.logoff()
        client.close()
    finally:
        server.close()
    assert server.errors == []
