"""The Windows Server rows and the NEGOTIATE responses built from them, against Windows' bytes.

Sources of every expectation: tests/data/README.md.
"""

import re
from dataclasses import replace

import pytest

from protocols.netbios import nbss
from protocols.netbios.names import NetbiosName
from protocols.smb import negotiate as neg
from protocols.smb import smb1
from protocols.smb.negotiate import Capabilities as Cap
from protocols.smb.negotiate import ContextType, Dialect
from protocols.smb.windows import WINDOWS_SERVERS, windows_server
from tests.helpers import golden
from tests.protocols.smb.smb_helpers import IDENTITY, body, new_session

#: nmap 7.93 nmap-service-probes, probe SMBProgNeg, "Microsoft Windows Server 2008 R2 - 2012
#: microsoft-ds" (the server-SKU line with workgroup and host name), as a bytes pattern.
NMAP_WINDOWS_SERVER = re.compile(
    rb"^\0\0\0.\xffSMBr\0\0\0\0\x88\x01@\0\0\0\0\0\0\0\0\0\0\0\0\0\0@\x06\0\0\x01\0\x11\x07\0"
    rb".2\0\x01\0\x04A\0\0\0\0\x01\0\0\0\0\0\xfc\xf3\x01\0.{21}((?:..)*)\0\0((?:..)*)\0\0",
    re.DOTALL,
)


def test_smb1_answer_to_nmap_smbprogneg_is_windows_byte_for_byte():
    session = new_session()
    reply = session.receive_data(golden("smb_nmap_smbprogneg_probe"))
    assert reply == golden("smb_windows2022_smb1_negotiate_resp_to_smbprogneg")


def test_smb1_answer_matches_nmap_windows_pattern():
    reply = new_session().receive_data(golden("smb_nmap_smbprogneg_probe"))
    match = NMAP_WINDOWS_SERVER.match(reply)
    assert match is not None
    assert match.group(1).decode("utf-16-le") == "CORP"
    assert match.group(2).decode("utf-16-le") == "SQL01-CZ2"


def _smb1_request(flags2):
    header = smb1.Header(smb1.Command.NEGOTIATE, flags=0x18, flags2=flags2, mid=1)
    request = smb1.NegotiateRequest(header, ("NT LM 0.12",))
    return nbss.encode_frame(
        nbss.FrameType.SESSION_MESSAGE, smb1.encode_negotiate_request(request), direct=True
    )


@pytest.mark.parametrize("flags2", [0x4001, 0xC001, 0xC853, 0x4801])
def test_smb1_flags2_mirror_the_request(flags2):
    decoded = smb1.decode_negotiate_response(
        body(new_session().receive_data(_smb1_request(flags2)))
    )
    assert decoded.header.flags2 == flags2
    assert decoded.header.flags == 0x98  # REPLY + the request's 0x18


def test_smb1_extended_security_capabilities():
    decoded = smb1.decode_negotiate_response(
        body(new_session().receive_data(_smb1_request(0xC853)))
    )
    assert decoded.capabilities == 0x8001F3FC
    assert decoded.server_guid == IDENTITY.server_guid


@pytest.mark.parametrize(
    ("build", "name"),
    [
        (14393, "Windows Server 2016"),
        (17134, "Windows Server 2016"),
        (17763, "Windows Server 2019"),
        (20348, "Windows Server 2022"),
        (22000, "Windows Server 2022"),
        (26100, "Windows Server 2025"),
        (30000, "Windows Server 2025"),
        (9600, "Windows Server 2016"),
    ],
)
def test_row_for_build_is_nearest_lower(build, name):
    assert windows_server(build).name == name


@pytest.mark.parametrize("row", WINDOWS_SERVERS, ids=lambda r: r.name)
def test_capabilities_per_dialect(row):
    smb3 = Cap.DFS | Cap.LEASING | Cap.LARGE_MTU | Cap.MULTI_CHANNEL | Cap.DIRECTORY_LEASING
    assert row.capabilities(Dialect.SMB202) == Cap.DFS == 0x01
    assert row.capabilities(Dialect.SMB210) == Cap.DFS | Cap.LEASING | Cap.LARGE_MTU == 0x07
    assert row.capabilities(Dialect.SMB300) == smb3 | Cap.ENCRYPTION == 0x6F
    assert row.capabilities(Dialect.SMB302) == 0x6F
    assert row.capabilities(Dialect.SMB311) == smb3 == 0x2F
    assert (row.max_sizes(Dialect.SMB202), row.max_sizes(Dialect.SMB311)) == (65536, 8388608)
    assert row.server_start_time == 0
    assert row.security_mode == 1


def test_wildcard_and_netbios_capabilities():
    # MS-SMB2 §3.3.5.3.1: 0x02FF gets DFS, LEASING, and LARGE_MTU iff SupportsMultiCredit
    # (TCP 445); §3.3.5.4: no LARGE_MTU on NetBIOS 139 either
    row = windows_server(20348)
    assert row.capabilities(Dialect.WILDCARD) == 0x07
    assert row.capabilities(Dialect.WILDCARD, multi_credit=False) == 0x03
    assert row.capabilities(Dialect.SMB311, multi_credit=False) == 0x2B
    assert row.max_sizes(Dialect.WILDCARD) == 8388608


def test_wildcard_answer_on_445_and_139():
    request = golden("smb_impacket_multiprotocol_negotiate_req")
    on_445 = neg.decode_negotiate_response(body(new_session().receive_data(request)))
    assert (on_445.dialect_revision, on_445.capabilities) == (0x02FF, 0x07)
    session = new_session(netbios=True)
    called = nbss.SessionRequest(NetbiosName("SQL01-CZ2", 0x20), NetbiosName("C", 0))
    assert session.receive_data(nbss.encode_session_request(called)) == b"\x82\0\0\0"
    on_139 = session.receive_data(request)
    assert neg.decode_negotiate_response(on_139[4:]).capabilities == 0x03


@pytest.mark.parametrize(
    ("dialect", "caps"),
    [
        ("smb_nmap_smb2_single_dialect_negotiate_req", 0x01),
        ("smb_smbclient_smb2_negotiate_req", 0x2F),
    ],
)
def test_smb2_answer_fields_for_server_2022(dialect, caps):
    decoded = neg.decode_negotiate_response(body(new_session().receive_data(golden(dialect))))
    assert decoded.capabilities == caps
    assert decoded.server_start_time == 0
    assert decoded.security_mode == 1


def _contexts_for(build):
    identity = replace(IDENTITY, windows=windows_server(build))
    reply = new_session(identity).receive_data(golden("smb_smbclient_smb2_negotiate_req"))
    return [c.context_type for c in neg.decode_negotiate_response(body(reply)).contexts]


def test_server_2016_and_2019_answer_no_signing_context():
    assert _contexts_for(14393) == _contexts_for(17763) == [1, 2]


def test_server_2022_answers_signing_context():
    assert _contexts_for(20348) == [1, 2, ContextType.SIGNING_CAPABILITIES]


def test_compression_context_keeps_windows_algorithms_in_client_order():
    data = b"\x03\x00\x00\x00\x01\x00\x00\x00" + b"\x05\x00\x02\x00\x04\x00"  # LZ4, LZ77, Pattern
    preauth = neg.NegotiateContext(1, b"\x01\x00\x20\x00\x01\x00" + bytes(32))
    request = neg.NegotiateRequest(
        neg.decode_negotiate_request(golden("smb_smbclient_smb2_negotiate_req")[4:]).header,
        (0x0311,), 1, 0, bytes(16), (preauth, neg.NegotiateContext(3, data)),
    )  # fmt: skip
    (_, compression) = neg.response_contexts(request, bytes(32))
    assert compression.data == b"\x02\x00\x00\x00\x01\x00\x00\x00\x02\x00\x04\x00"
    answered = windows_server(17763).contexts
    assert len(neg.response_contexts(request, bytes(32), answered)) == 1
