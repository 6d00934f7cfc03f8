"""The probe's sans-IO half: requests decoded by our servers' codecs, answers interpreted.

No sockets: each request goes into the project's own server side (the SMB
session state machine, the DNS and NBNS decoders), and the bytes it answers
with, or answers captured from smbd and nmbd, come back through ``interpret_*``.
"""

from __future__ import annotations

import uuid
from dataclasses import replace

import pytest

from protocols.dns import message as dns
from protocols.errors import MalformedMessage
from protocols.netbios import nbss
from protocols.netbios.names import NetbiosName
from protocols.netbios.nbns import (
    AddressEntry,
    NameQueryRequest,
    NameQueryResponse,
    NbFlags,
    NmFlags,
    NodeStatusRequest,
    decode_packet,
)
from protocols.netbios.nbns_encode import encode_name_query_response
from protocols.smb import negotiate as neg
from protocols.smb import smb1
from protocols.smb.session import SmbSession
from responder.config import load_config
from responder.identity import node_identities, smb_identity
from responder.tools import wire
from responder.tools.result import Status
from tests.helpers import golden

CONFIG = load_config(None)
CZ2 = node_identities(CONFIG)[1]
NOW = 1_780_000_000.0


def server(*, netbios: bool = False, **changes: object) -> SmbSession:
    """The daemon's own SMB session for SQL01-CZ2, sans-IO, its clock at NOW + 5 s."""
    identity = replace(smb_identity(CONFIG, CZ2), **changes)
    return SmbSession(
        identity, netbios=netbios, random_bytes=lambda n: b"\x11" * n, clock=lambda: NOW + 5
    )


def exchange(session: SmbSession, message: bytes) -> bytes:
    """One framed request in, the payload of the one frame answered out."""
    answer = session.receive_data(
        nbss.encode_frame(nbss.FrameType.SESSION_MESSAGE, message, direct=True)
    )
    return answer[4:]


# -- DNS ----------------------------------------------------------------------------


def test_dns_request_is_a_recursive_ptr_query_with_edns():
    request = dns.decode_message(
        wire.dns_request(0x1234, wire.reverse_name("127.0.0.12"), dns.RRType.PTR)
    )
    assert request.header.id == 0x1234 and request.header.rd
    assert request.questions[0].name == (b"12", b"0", b"0", b"127", b"in-addr", b"arpa")
    assert dns.find_edns(request) is not None


def test_dns_answer_gives_rcode_and_targets():
    name = dns.name_from_text("12.0.0.127.in-addr.arpa")
    answer = dns.Message(
        dns.Header(7, qr=True, aa=True),
        (dns.Question(name, dns.RRType.PTR),),
        (
            dns.ResourceRecord(
                name, dns.RRType.PTR, 1, 300, dns.NameRdata((b"SQL01-CZ2", b"corp", b"example"))
            ),
        ),
    )
    assert wire.interpret_dns(dns.encode_message(answer), 7, dns.RRType.PTR) == (
        "NOERROR",
        False,
        ("sql01-cz2.corp.example",),
    )


def test_dns_answer_to_another_query_is_skipped():
    answer = dns.encode_message(dns.Message(dns.Header(8, qr=True)))
    with pytest.raises(wire.WrongAnswer):
        wire.interpret_dns(answer, 7, dns.RRType.PTR)


def test_dns_garbage_is_malformed():
    with pytest.raises(MalformedMessage):
        wire.interpret_dns(b"\x00\x07\x80", 7, dns.RRType.PTR)


# -- NBNS ---------------------------------------------------------------------------


def test_node_status_request_asks_for_the_wildcard_like_nmblookup():
    request = decode_packet(wire.node_status_request(0x4242))
    assert request == NodeStatusRequest(0x4242, NetbiosName("*"), NmFlags.NONE)


def test_nmbd_node_status_answer_gives_the_table_and_the_mac():
    data = golden("nbns_nmbd_node_status_response")
    trn_id = int.from_bytes(data[:2], "big")
    view = wire.interpret_node_status(data, trn_id)
    assert view.status is Status.ANSWERED
    assert [n.label for n in view.names][:3] == ["SQL01-CZ1<00>", "SQL01-CZ1<03>", "SQL01-CZ1<20>"]
    assert view.names[0].flags == ("H", "ACT") and not view.names[0].group
    assert view.names[-1].group and view.names[-1].label == "CORP<1e>"
    assert view.mac == "00:00:00:00:00:00"
    assert wire.host_name_of(view) == ("SQL01-CZ1", 0x20)
    with pytest.raises(wire.WrongAnswer):
        wire.interpret_node_status(data, trn_id ^ 1)


def test_name_query_request_and_answer():
    request = decode_packet(wire.name_query_request(9, "sql01-cz2", 0x20))
    assert request == NameQueryRequest(9, NetbiosName("SQL01-CZ2", 0x20), NmFlags.RD)
    answer = NameQueryResponse(
        9, NetbiosName("SQL01-CZ2", 0x20), NmFlags.AA | NmFlags.RD, 0, 300,
        (AddressEntry(NbFlags.ONT_B, "127.0.0.12"),),
    )  # fmt: skip
    view = wire.interpret_name_query(encode_name_query_response(answer), 9, "SQL01-CZ2<20>")
    assert (view.status, view.rcode, view.addresses) == (Status.ANSWERED, 0, ("127.0.0.12",))


# -- NBSS ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("called", "accepted", "answer"),
    [("SQL01-CZ2", True, "positive"), ("*SMBSERVER", True, "positive"),
     ("SQL01", False, "called_name_not_present")],
)  # fmt: skip
def test_session_request_against_the_daemons_session(called, accepted, answer):
    session = server(netbios=True)
    framer = nbss.Framer(direct=False)
    framer.feed(session.receive_data(wire.session_request(called)))
    view = wire.interpret_session_response(called, framer.next_frame())
    assert (view.accepted, view.answer) == (accepted, answer)


# -- SMB2 and NTLM ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dialects", "chosen"), list(zip(wire.DIALECT_SETS, ["2.0.2", "3.0.2", "3.1.1"], strict=True))
)
def test_negotiate_each_dialect_set(dialects, chosen):
    request = wire.smb2_negotiate_request(dialects, b"\x01" * 16, b"\x02" * 32)
    decoded = neg.decode_negotiate_request(request)
    assert decoded.dialects == dialects
    if neg.Dialect.SMB311 in dialects:
        assert neg.context_values(decoded, neg.ContextType.PREAUTH_INTEGRITY_CAPABILITIES) == (1,)
    view = wire.interpret_negotiate(exchange(server(), request), dialects, NOW)
    assert view.dialect == chosen
    assert view.server_guid == str(CZ2.server_guid)
    assert view.security_mode == ("SIGNING_ENABLED",)
    assert view.skew_seconds == 5.0
    assert view.system_time.endswith("Z")


def test_negotiate_refused_dialect_is_reported_not_raised():
    session = server(max_dialect=neg.Dialect.SMB210)
    view = wire.interpret_negotiate(
        exchange(session, wire.smb2_negotiate_request((0x0311,), bytes(16), bytes(32))),
        (0x0311,),
        NOW,
    )
    assert view.status is Status.ANSWERED and view.dialect == ""
    assert view.detail.startswith("STATUS_") or view.detail.startswith("0x")


def test_session_setup_challenge_names_the_node():
    session = server()
    exchange(session, wire.smb2_negotiate_request(wire.DIALECT_SETS[2], bytes(16), bytes(32)))
    view = wire.interpret_session_setup(exchange(session, wire.smb2_session_setup_request(1)))
    assert (view.nb_computer_name, view.nb_domain_name) == ("SQL01-CZ2", "CORP")
    assert (view.dns_computer_name, view.dns_domain_name) == (
        "sql01-cz2.corp.example",
        "corp.example",
    )
    assert (view.dns_tree_name, view.os_version, view.target_name) == (
        "corp.example",
        "10.0.20348",
        "CORP",
    )


def test_smbd_challenge_golden_is_read():
    view = wire.interpret_session_setup(golden("smb_smbd_smb2_session_setup_challenge_resp")[4:])
    assert view.status is Status.ANSWERED and view.nb_computer_name
    assert view.os_version.count(".") == 2


def test_smbd_negotiate_golden_is_read():
    raw = golden("smb_smbd_smb2_negotiate_resp")[4:]
    view = wire.interpret_negotiate(raw, (0x0202, 0x0311), NOW)
    response = neg.decode_negotiate_response(raw)
    assert view.server_guid == str(uuid.UUID(bytes_le=response.server_guid))
    assert view.dialect == neg.DIALECT_NAMES[neg.Dialect(response.dialect_revision)]


def test_filetime_zero_is_a_hidden_clock():
    assert wire.filetime_seconds(0) is None
    assert wire.filetime_seconds(116_444_736_000_000_000) == 0.0


def test_bad_salt_is_a_caller_bug():
    with pytest.raises(ValueError, match="salt"):
        wire.smb2_negotiate_request((0x0202,), bytes(16), bytes(8))


# -- SMB1 ---------------------------------------------------------------------------


def test_smb1_negotiate_and_anonymous_setup_like_nmap():
    session = server()
    view = wire.interpret_smb1_negotiate(exchange(session, wire.smb1_negotiate_request()))
    assert (view.dialect, view.server_name, view.domain_name) == ("NT LM 0.12", "SQL01-CZ2", "CORP")
    view = wire.interpret_smb1_setup(view, exchange(session, wire.smb1_anonymous_setup_request()))
    assert view.setup_status == "STATUS_SUCCESS"
    assert view.native_os == "Windows Server 2022 Standard 20348"
    assert view.native_lanman == "Windows Server 2022 Standard 6.3"
    assert view.primary_domain == "CORP"


def test_smb1_anonymous_setup_refused():
    session = server(null_session=False)
    view = wire.interpret_smb1_negotiate(exchange(session, wire.smb1_negotiate_request()))
    view = wire.interpret_smb1_setup(view, exchange(session, wire.smb1_anonymous_setup_request()))
    assert view.setup_status == "STATUS_ACCESS_DENIED" and view.native_os == ""


def test_smbd_plain_negotiate_golden_is_read():
    view = wire.interpret_smb1_negotiate(golden("smb_smbd_smb1_plain_negotiate_resp")[4:])
    assert view.dialect == "NT LM 0.12" and view.server_name and view.domain_name


def test_unknown_dialect_is_shown_as_its_revision():
    assert wire.dialect_names((0x0202, 0x0311, 0x02FF, 0x0999)) == (
        "2.0.2",
        "3.1.1",
        "0x02ff",
        "0x0999",
    )


def test_smb1_refused_by_a_server_without_smb1():
    """Samba with 'server min protocol = SMB2_02': WordCount 1, DialectIndex 0xFFFF."""
    header = smb1.encode_error_response(smb1.Header(smb1.Command.NEGOTIATE, flags=smb1.Flags.REPLY))
    view = wire.interpret_smb1_negotiate(header[: smb1.HEADER_SIZE] + b"\x01\xff\xff\x00\x00")
    assert (view.status, view.dialect, view.detail) == (
        Status.ANSWERED,
        "",
        "no dialect chosen (0xffff): SMB1 off",
    )
