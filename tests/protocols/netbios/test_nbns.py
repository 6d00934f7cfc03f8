"""NBNS message codec (RFC 1002 §4.2) against captured packets and oracles."""

from __future__ import annotations

import pytest
from scapy.layers.netbios import NBNSHeader

from protocols.errors import MalformedMessage, PointerLoop, TrailingBytes, Truncated, Unsupported
from protocols.netbios.names import NetbiosName
from protocols.netbios.nbns import (
    AddressEntry,
    NameFlags,
    NameQueryRequest,
    NameQueryResponse,
    NameRegistrationRequest,
    NameReleaseRequest,
    NbFlags,
    NmFlags,
    NodeStatusEntry,
    NodeStatusRequest,
    NodeStatusResponse,
    Opcode,
    Rcode,
    RegistrationResponse,
    ReleaseResponse,
    RRType,
    WaitForAck,
    decode_packet,
    make_statistics,
)
from protocols.netbios.nbns_encode import (
    encode_packet,
)
from tests.helpers import DATA, golden

CZ1 = NetbiosName("SQL01-CZ1")


ALL_GOLDENS = sorted(p.stem for p in DATA.glob("nbns_*.hex"))


@pytest.mark.parametrize("name", ALL_GOLDENS)
def test_golden_round_trips_byte_for_byte(name: str) -> None:
    data = golden(name)
    assert encode_packet(decode_packet(data)) == data


def test_nmblookup_query() -> None:
    assert decode_packet(golden("nbns_nmblookup_query")) == NameQueryRequest(
        0x1E99, CZ1, NmFlags.NONE
    )


def test_nmblookup_broadcast_query() -> None:
    message = decode_packet(golden("nbns_nmblookup_bcast_query"))
    assert message == NameQueryRequest(0x0FBA, NetbiosName("SQL01-CZ3"), NmFlags.RD | NmFlags.B)


def test_nmblookup_scoped_query() -> None:
    message = decode_packet(golden("nbns_nmblookup_scoped_query"))
    assert isinstance(message, NameQueryRequest)
    assert message.name == NetbiosName("SQL01-CZ3", 0, "CORP.EXAMPLE")


@pytest.mark.parametrize(
    ("name", "flags"),
    [
        ("nmblookup_node_status", NmFlags.NONE),
        ("nbtscan_node_status", NmFlags.B),  # nbtscan sets B on a unicast request
        ("nmap_nbstat", NmFlags.NONE),
        ("nmap_nbstat_bcast_flag", NmFlags.B),
    ],
)
def test_node_status_requests_from_clients(name: str, flags: NmFlags) -> None:
    message = decode_packet(golden(f"nbns_{name}"))
    assert isinstance(message, NodeStatusRequest)
    assert message.name == NetbiosName("*")
    assert message.nm_flags == flags


def test_nmbd_positive_query_response() -> None:
    assert decode_packet(golden("nbns_nmbd_query_response")) == NameQueryResponse(
        trn_id=0x0F06,
        name=CZ1,
        nm_flags=NmFlags.AA | NmFlags.RD | NmFlags.RA,
        rcode=0,
        ttl=259169,
        entries=(AddressEntry(NbFlags.ONT_H, "127.0.0.5"),),
    )


def test_nmbd_negative_query_response_uses_null_type() -> None:
    message = decode_packet(golden("nbns_nmbd_wins_negative_query_response"))
    assert isinstance(message, NameQueryResponse)
    assert (message.rcode, message.rr_type, message.entries) == (Rcode.NAM_ERR, RRType.NULL, ())


def test_nmbd_group_query_response() -> None:
    message = decode_packet(golden("nbns_nmbd_wins_group_query_response"))
    assert isinstance(message, NameQueryResponse)
    assert message.name == NetbiosName("CORP", 0x1E)
    assert message.entries == (AddressEntry(NbFlags.G | NbFlags.ONT_H, "0.0.0.0"),)


def test_nmbd_node_status_response() -> None:
    message = decode_packet(golden("nbns_nmbd_node_status_response"))
    assert isinstance(message, NodeStatusResponse)
    assert message.name == NetbiosName("*")
    assert message.nm_flags == NmFlags.AA
    assert message.unit_id == bytes(6)
    assert len(message.statistics) == 46
    active_h = NameFlags.ONT_H | NameFlags.ACT
    assert message.names[0] == NodeStatusEntry("SQL01-CZ1", 0x00, active_h)
    assert message.names[2] == NodeStatusEntry("SQL01-CZ1", 0x20, active_h)
    assert message.names[3] == NodeStatusEntry(
        "\x01\x02__MSBROWSE__\x02", 0x01, NameFlags.G | active_h
    )
    assert message.names[-1] == NodeStatusEntry("CORP", 0x1E, NameFlags.G | active_h)
    assert len(message.names) == 7


def test_nmbd_broadcast_registration() -> None:
    assert decode_packet(golden("nbns_nmbd_bcast_registration_unique")) == NameRegistrationRequest(
        trn_id=0x5E38,
        opcode=Opcode.REGISTRATION,
        name=CZ1,
        nm_flags=NmFlags.RD | NmFlags.B,
        ttl=0,
        flags=NbFlags.ONT_H,
        address="127.0.0.5",
    )


def test_nmbd_group_registration() -> None:
    message = decode_packet(golden("nbns_nmbd_wins_registration_group"))
    assert isinstance(message, NameRegistrationRequest)
    assert message.flags == NbFlags.G | NbFlags.ONT_H
    assert message.nm_flags == NmFlags.RD
    assert message.ttl == 259200


def test_nmbd_multihomed_registration() -> None:
    message = decode_packet(golden("nbns_nmbd_wins_multihomed_registration"))
    assert isinstance(message, NameRegistrationRequest)
    assert message.opcode == Opcode.MULTIHOMED_REGISTRATION


def test_nmbd_positive_registration_response() -> None:
    message = decode_packet(golden("nbns_nmbd_wins_positive_registration_response"))
    assert isinstance(message, RegistrationResponse)
    assert (message.rcode, message.ttl, message.address) == (0, 259200, "127.0.0.6")


def test_nmbd_act_err_defense() -> None:
    assert decode_packet(golden("nbns_nmbd_act_err_registration_response")) == RegistrationResponse(
        trn_id=0x5E97,
        opcode=Opcode.REGISTRATION,
        name=NetbiosName("SQL01-CZ3", 0x20),
        nm_flags=NmFlags.AA | NmFlags.RD | NmFlags.RA,
        rcode=Rcode.ACT_ERR,
        ttl=0,
        flags=NbFlags.ONT_B,
        address="127.0.0.8",
    )


def test_nmbd_release_request_and_response() -> None:
    release = decode_packet(golden("nbns_nmbd_wins_release"))
    assert isinstance(release, NameReleaseRequest)
    assert release.nm_flags == NmFlags.NONE
    response = decode_packet(golden("nbns_nmbd_release_response_fmt_err"))
    assert isinstance(response, ReleaseResponse)
    assert response.rcode == Rcode.FMT_ERR


@pytest.mark.parametrize("opcode", [Opcode.REFRESH, Opcode.REFRESH_ALT])
def test_refresh_opcodes_decode_as_registration_requests(opcode: Opcode) -> None:
    request = NameRegistrationRequest(7, opcode, CZ1, NmFlags.NONE, 300, NbFlags.ONT_H, "10.0.0.1")
    assert decode_packet(encode_packet(request)) == request


def test_wack_round_trip() -> None:
    wack = WaitForAck(9, CZ1, NmFlags.AA, 60, 0x2900)
    data = encode_packet(wack)
    assert data[2:4] == b"\xbc\x00"  # R, opcode 7, AA
    assert decode_packet(data) == wack


def test_nmbd_wack_uses_null_type() -> None:
    assert decode_packet(golden("nbns_nmbd_wins_wack")) == WaitForAck(
        0x4000, NetbiosName("SQL01-CZ2"), NmFlags.AA, 60, 0x2900, RRType.NULL
    )


def test_nmbd_wins_act_err_after_wack() -> None:
    message = decode_packet(golden("nbns_nmbd_wins_act_err_registration_response"))
    assert isinstance(message, RegistrationResponse)
    assert (message.trn_id, message.rcode) == (0x4000, Rcode.ACT_ERR)


def test_nmbd_positive_release_response() -> None:
    message = decode_packet(golden("nbns_nmbd_wins_positive_release_response"))
    assert isinstance(message, ReleaseResponse)
    assert (message.rcode, message.nm_flags, message.address) == (0, NmFlags.AA, "127.0.0.9")


def test_conflict_demand_is_a_registration_response() -> None:
    demand = RegistrationResponse(
        1,
        Opcode.REGISTRATION,
        CZ1,
        NmFlags.AA | NmFlags.RD | NmFlags.RA,
        Rcode.CFT_ERR,
        0,
        NbFlags.ONT_B,
        "10.0.0.1",
    )
    assert decode_packet(encode_packet(demand)) == demand


def test_make_statistics_puts_mac_first() -> None:
    stats = make_statistics(b"\x02\x00\x5e\x10\x00\x11")
    assert stats[:6] == b"\x02\x00\x5e\x10\x00\x11"
    assert len(stats) == 46
    with pytest.raises(ValueError, match="6 bytes"):
        make_statistics(b"\x00")


# ------------------------------------------------------------------ oracles


def test_scapy_parses_our_query_response() -> None:
    response = NameQueryResponse(
        0x1234,
        CZ1,
        NmFlags.AA | NmFlags.RD,
        0,
        300000,
        (AddressEntry(NbFlags.ONT_B, "127.0.0.5"),),
    )
    parsed = NBNSHeader(encode_packet(response))
    assert parsed.NAME_TRN_ID == 0x1234
    assert parsed.RESPONSE == 1
    assert parsed.ANCOUNT == 1
    assert parsed.payload.RR_NAME.rstrip(b" ") == b"SQL01-CZ1"
    assert parsed.payload.TTL == 300000
    assert parsed.payload.ADDR_ENTRY[0].NB_ADDRESS == "127.0.0.5"


def test_scapy_parses_our_node_status_response() -> None:
    response = NodeStatusResponse(
        0x4321,
        NetbiosName("*"),
        NmFlags.AA,
        (
            NodeStatusEntry("SQL01-CZ1", 0x00, NameFlags.ACT),
            NodeStatusEntry("CORP", 0x1E, NameFlags.G | NameFlags.ACT),
        ),
        make_statistics(b"\x02\x00\x5e\x10\x00\x11"),
    )
    parsed = NBNSHeader(encode_packet(response))
    assert parsed.payload.NUM_NAMES == 2
    assert parsed.payload.NODE_NAME[0].NETBIOS_NAME.rstrip(b" ") == b"SQL01-CZ1"
    assert parsed.payload.NODE_NAME[1].SUFFIX == 0x1E
    assert parsed.payload.MAC_ADDRESS == "02:00:5e:10:00:11"


def test_scapy_parses_our_registration_request() -> None:
    request = NameRegistrationRequest(
        0x0101,
        Opcode.REGISTRATION,
        NetbiosName("SQL01-CZ1", 0x20),
        NmFlags.RD | NmFlags.B,
        300000,
        NbFlags.ONT_B,
        "127.0.0.5",
    )
    parsed = NBNSHeader(encode_packet(request))
    assert parsed.OPCODE == 5
    assert parsed.ARCOUNT == 1
    assert parsed.payload.QUESTION_NAME.rstrip(b" ") == b"SQL01-CZ1"
    assert parsed.payload.NB_ADDRESS == "127.0.0.5"


def test_our_query_request_equals_scapy_built_one() -> None:
    from scapy.layers.netbios import NBNSQueryRequest

    theirs = bytes(
        NBNSHeader(NAME_TRN_ID=5, NM_FLAGS=0x11, QDCOUNT=1)
        / NBNSQueryRequest(QUESTION_NAME="SQL01-CZ1", SUFFIX=0x4141)
    )
    ours = encode_packet(NameQueryRequest(5, CZ1, NmFlags.RD | NmFlags.B))
    assert ours == theirs


# ------------------------------------------------------------------ rejections

QUERY = golden("nbns_nmblookup_query")
REGISTRATION = golden("nbns_nmbd_bcast_registration_unique")
STATUS = golden("nbns_nmbd_node_status_response")


def test_reject_empty_packet() -> None:
    with pytest.raises(Truncated):
        decode_packet(b"")


def test_reject_truncated_header() -> None:
    with pytest.raises(Truncated):
        decode_packet(QUERY[:11])


def test_reject_truncated_question() -> None:
    with pytest.raises(Truncated):
        decode_packet(QUERY[:-1])


def test_reject_trailing_bytes() -> None:
    with pytest.raises(TrailingBytes):
        decode_packet(QUERY + b"\x00")


def test_reject_query_with_two_questions() -> None:
    with pytest.raises(Unsupported, match="section counts"):
        decode_packet(QUERY[:4] + b"\x00\x02" + QUERY[6:])


def test_reject_unknown_question_type() -> None:
    with pytest.raises(Unsupported, match="question type"):
        decode_packet(QUERY[:-4] + b"\x00\x01\x00\x01")


def test_reject_question_class_not_in() -> None:
    with pytest.raises(MalformedMessage, match="class is not IN"):
        decode_packet(QUERY[:-2] + b"\x00\x03")


def test_reject_unknown_request_opcode() -> None:
    with pytest.raises(Unsupported, match="request opcode"):
        decode_packet(QUERY[:2] + bytes([0x10]) + QUERY[3:])


def test_reject_unknown_response_opcode() -> None:
    with pytest.raises(Unsupported, match="response opcode"):
        decode_packet(STATUS[:2] + bytes([STATUS[2] | 0x08]) + STATUS[3:])


def test_reject_response_without_answer() -> None:
    with pytest.raises(Unsupported, match="section counts"):
        decode_packet(STATUS[:6] + b"\x00\x00" + STATUS[8:12])


def test_reject_registration_without_additional_record() -> None:
    with pytest.raises(Unsupported, match="section counts"):
        decode_packet(REGISTRATION[:10] + b"\x00\x00" + REGISTRATION[12:])


def test_reject_registration_question_type_nbstat() -> None:
    data = bytearray(REGISTRATION)
    data[46:48] = b"\x00\x21"
    with pytest.raises(MalformedMessage, match="question type is not NB"):
        decode_packet(bytes(data))


def test_reject_registration_record_name_mismatch() -> None:
    other = bytes(REGISTRATION[12:46]).replace(b"FDFB", b"FDFC", 1)
    data = REGISTRATION[:50] + other + REGISTRATION[52:]
    with pytest.raises(MalformedMessage, match="differs from question"):
        decode_packet(data)


def test_reject_registration_record_not_nb() -> None:
    data = bytearray(REGISTRATION)
    data[52:54] = b"\x00\x21"
    with pytest.raises(Unsupported, match="not NB"):
        decode_packet(bytes(data))


def test_reject_registration_rdata_too_long() -> None:
    data = bytearray(REGISTRATION)
    data[60:62] = b"\x00\x07"
    with pytest.raises(Truncated):
        decode_packet(bytes(data))


def test_reject_registration_rdata_with_two_entries() -> None:
    entry = REGISTRATION[62:]
    data = REGISTRATION[:60] + b"\x00\x0c" + entry + entry
    with pytest.raises(TrailingBytes):
        decode_packet(data)


def test_reject_registration_forward_pointer() -> None:
    data = bytearray(REGISTRATION)
    data[50:52] = b"\xc0\x40"
    with pytest.raises(PointerLoop):
        decode_packet(bytes(data))


def test_reject_query_response_rdata_not_multiple_of_six() -> None:
    data = golden("nbns_nmbd_query_response")
    broken = data[:-8] + b"\x00\x05" + data[-6:-1]
    with pytest.raises(MalformedMessage, match="multiple of 6"):
        decode_packet(broken)


def test_reject_query_response_unknown_record_type() -> None:
    data = bytearray(golden("nbns_nmbd_query_response"))
    data[46:48] = b"\x00\x01"
    with pytest.raises(Unsupported, match="record type"):
        decode_packet(bytes(data))


def test_reject_node_status_names_past_rdata() -> None:
    data = bytearray(STATUS)
    data[56] = 0xFF  # NUM_NAMES far beyond RDLENGTH
    with pytest.raises(Truncated):
        decode_packet(bytes(data))


def test_reject_wack_with_long_rdata() -> None:
    data = encode_packet(WaitForAck(9, CZ1, NmFlags.AA, 60, 0x2900))
    broken = data[:-4] + b"\x00\x03" + data[-2:] + b"\x00"
    with pytest.raises(TrailingBytes):
        decode_packet(broken)


def test_reject_wack_record_not_nb() -> None:
    data = bytearray(encode_packet(WaitForAck(9, CZ1, NmFlags.AA, 60, 0x2900)))
    data[46:48] = b"\x00\x21"
    with pytest.raises(Unsupported, match="WACK"):
        decode_packet(bytes(data))


def test_reject_bad_name_letters_in_packet() -> None:
    with pytest.raises(MalformedMessage, match="outside 'A'"):
        decode_packet(QUERY.replace(b"FDFB", b"fdfb"))


def test_encoder_rejects_bad_address() -> None:
    request = NameRegistrationRequest(
        1, Opcode.REGISTRATION, CZ1, NmFlags.RD, 0, NbFlags.ONT_B, "x"
    )
    with pytest.raises(ValueError, match="octets"):
        encode_packet(request)


def test_encoder_rejects_long_status_name() -> None:
    response = NodeStatusResponse(
        1, CZ1, NmFlags.AA, (NodeStatusEntry("X" * 16, 0, NameFlags.ACT),), bytes(46)
    )
    with pytest.raises(ValueError, match="longer than 15"):
        encode_packet(response)
