"""DNS codec: captured client queries, encoding, oracles, and one test per rejection."""

from __future__ import annotations

import ipaddress

import dns.message
import dns.rdatatype
import dnslib
import pytest

from protocols._wire import Writer
from protocols.dns.message import (
    AAAARdata,
    ARdata,
    Edns,
    Header,
    Message,
    NameRdata,
    Opcode,
    OPTRdata,
    Question,
    RawRdata,
    Rcode,
    ResourceRecord,
    RRClass,
    RRType,
    SOARdata,
    decode_message,
    encode_message,
    encode_name,
    find_edns,
    name_from_text,
    name_key,
    name_to_text,
)
from protocols.errors import MalformedMessage, PointerLoop, TrailingBytes, Truncated
from tests.helpers import DATA

COOKIE = 10
NSID = 3


def capture(name: str) -> bytes:
    lines = (DATA / f"dns_{name}.hex").read_text().splitlines()
    return bytes.fromhex("".join(line for line in lines if not line.startswith("#")))


def all_captures() -> list[bytes]:
    return [capture(path.stem[4:]) for path in sorted(DATA.glob("dns_*.hex"))]


QNAME = (b"sql01-cz1", b"corp", b"example")


# ---------------------------------------------------------------- captures


def test_decode_dig_a_with_cookie():
    message = decode_message(capture("dig_a_edns_cookie"))
    header = message.header
    assert (header.id, header.qr, header.opcode, header.rd, header.ad) == (
        0xCBB8,
        False,
        0,
        True,
        True,
    )
    assert message.questions == (Question(QNAME, RRType.A, RRClass.IN),)
    edns = find_edns(message)
    assert edns is not None
    assert (edns.payload, edns.version, edns.do) == (1232, 0, False)
    assert [(code, len(data)) for code, data in edns.options] == [(COOKIE, 8)]


def test_decode_dig_mixed_case_keeps_bytes():
    message = decode_message(capture("dig_aaaa_norec_mixedcase"))
    assert message.questions[0].name == (b"SQL01-CZ1", b"corp", b"example")
    assert message.questions[0].qtype == RRType.AAAA
    assert message.header.rd is False


def test_decode_dig_without_edns():
    message = decode_message(capture("dig_a_noedns"))
    assert message.additionals == ()
    assert find_edns(message) is None


def test_decode_dig_dnssec_ok_and_bufsize():
    edns = find_edns(decode_message(capture("dig_soa_dnssec_bufsize4096")))
    assert edns is not None
    assert (edns.payload, edns.do) == (4096, True)


def test_decode_dig_reverse_v4_and_v6():
    v4 = decode_message(capture("dig_ptr_v4_nocookie")).questions[0]
    v6 = decode_message(capture("dig_ptr_v6")).questions[0]
    assert name_to_text(v4.name) == "11.0.0.127.in-addr.arpa."
    assert v6.name == name_from_text(ipaddress.ip_address("fd00::11").reverse_pointer)
    assert v4.qtype == v6.qtype == RRType.PTR


def test_decode_kdig_nsid_option():
    edns = find_edns(decode_message(capture("kdig_soa_nsid")))
    assert edns is not None
    assert edns.options == ((NSID, b""),)


@pytest.mark.parametrize("data", all_captures())
def test_captures_reencode_identically(data):
    assert encode_message(decode_message(data)) == data


# ---------------------------------------------------------------- header and names


def test_header_flags_round_trip():
    header = Header(
        7, qr=True, opcode=Opcode.NOTIFY, aa=True, rd=True, cd=True, rcode=Rcode.REFUSED
    )
    assert header.flags == 0x8000 | 4 << 11 | 0x0400 | 0x0100 | 0x0010 | 5
    assert Header.from_flags(7, header.flags) == header


def test_name_text_helpers():
    name = name_from_text("Sql01.Corp.example.")
    assert name == (b"Sql01", b"Corp", b"example")
    assert name_key(name) == (b"sql01", b"corp", b"example")
    assert name_to_text(name) == "Sql01.Corp.example."
    assert name_from_text(".") == () and name_to_text(()) == "."


# ---------------------------------------------------------------- encoding


def answer_message() -> Message:
    soa = SOARdata((b"ns", *QNAME[1:]), (b"hostmaster", *QNAME[1:]), 1, 3600, 600, 86400, 60)
    return Message(
        Header(0x1234, qr=True, aa=True, rd=True),
        (Question(QNAME, RRType.A),),
        (
            ResourceRecord(
                QNAME, RRType.A, RRClass.IN, 300, ARdata(ipaddress.IPv4Address("127.0.0.11"))
            ),
            ResourceRecord(
                QNAME, RRType.AAAA, RRClass.IN, 300, AAAARdata(ipaddress.IPv6Address("fd00::11"))
            ),
        ),
        (ResourceRecord(QNAME[1:], RRType.SOA, RRClass.IN, 60, soa),),
        (Edns(1232, do=True).to_record(),),
    )


def test_answer_names_point_at_the_question():
    wire = encode_message(answer_message())
    question_end = 12 + 1 + len(b"sql01-cz1.corp.example") + 1 + 4
    assert wire[question_end : question_end + 2] == b"\xc0\x0c"
    assert decode_message(wire) == answer_message()


def test_compression_keeps_letter_case():
    upper = (b"SQL01-CZ1", b"corp", b"example")
    record = ResourceRecord(
        QNAME, RRType.A, RRClass.IN, 1, ARdata(ipaddress.IPv4Address("1.2.3.4"))
    )
    message = Message(Header(1), (Question(upper, RRType.A),), (record,))
    decoded = decode_message(encode_message(message))
    assert decoded.answers[0].name == QNAME
    assert decoded.questions[0].name == upper


def test_max_size_truncates_to_question_and_opt():
    full = answer_message()
    wire = encode_message(full, max_size=40)
    cut = decode_message(wire)
    assert cut.header.tc is True
    assert cut.questions == full.questions
    assert (cut.answers, cut.authorities) == ((), ())
    assert cut.additionals == full.additionals


def test_max_size_leaves_fitting_message_alone():
    wire = encode_message(answer_message())
    assert encode_message(answer_message(), max_size=len(wire)) == wire


def test_dnspython_parses_our_encoding():
    parsed = dns.message.from_wire(encode_message(answer_message()))
    assert parsed.id == 0x1234
    assert [str(rr) for rr in parsed.answer[0]] == ["127.0.0.11"]
    assert str(parsed.answer[0].name) == "sql01-cz1.corp.example."
    assert parsed.authority[0].rdtype == dns.rdatatype.SOA
    assert str(parsed.authority[0][0].mname) == "ns.corp.example."
    assert parsed.edns == 0 and parsed.payload == 1232
    assert parsed.ednsflags & 0x8000


def test_dnslib_parses_our_encoding():
    record = dnslib.DNSRecord.parse(encode_message(answer_message()))
    assert record.header.id == 0x1234
    assert record.header.aa == 1
    assert [str(rr.rdata) for rr in record.rr] == ["127.0.0.11", "fd00::11"]
    assert str(record.auth[0].rdata.times[0]) == "1"


def test_encode_rejects_label_too_long():
    with pytest.raises(ValueError, match="label"):
        encode_message(Message(Header(1), (Question((b"a" * 64,), RRType.A),)))


def test_encode_rejects_name_too_long():
    with pytest.raises(ValueError, match="255"):
        encode_message(Message(Header(1), (Question((b"a" * 60,) * 5, RRType.A),)))


def test_encode_rejects_out_of_range_field():
    with pytest.raises(ValueError):
        encode_message(Message(Header(1), (Question(QNAME, 70000),)))


def test_encode_name_pointer_table_exact_case():
    writer, table = Writer(), {}
    writer.write(bytes(12))
    encode_name(writer, QNAME, table)
    encode_name(writer, (b"SQL01-CZ1", b"corp", b"example"), table)
    assert writer.getvalue()[-2:] == b"\xc0\x16"  # only "corp.example" is shared


def test_ns_ptr_soa_rdata_decode_with_pointers():
    ns = ResourceRecord(QNAME[1:], RRType.NS, RRClass.IN, 5, NameRdata((b"ns", *QNAME[1:])))
    message = Message(Header(3, qr=True), (Question(QNAME[1:], RRType.NS),), (ns,))
    wire = encode_message(message)
    assert wire.endswith(b"\x02ns\xc0\x0c")
    assert decode_message(wire) == message


# ---------------------------------------------------------------- rejections

HEADER_1Q = bytes.fromhex("abcd0100 0001 0000 0000 0000")


def test_reject_truncated_header():
    with pytest.raises(Truncated) as info:
        decode_message(bytes.fromhex("abcd0100000100"))
    assert info.value.answer_hint is None


def test_reject_truncated_question():
    with pytest.raises(Truncated) as info:
        decode_message(HEADER_1Q + b"\x03abc\x00\x00\x01")
    assert info.value.answer_hint == Rcode.FORMERR


def test_reject_count_beyond_data():
    header = bytes.fromhex("abcd0100 0001 ffff 0000 0000")
    with pytest.raises(Truncated) as info:
        decode_message(header + b"\x00\x00\x01\x00\x01")
    assert "counts" in info.value.reason


def test_reject_trailing_bytes():
    with pytest.raises(TrailingBytes) as info:
        decode_message(HEADER_1Q + b"\x00\x00\x01\x00\x01\x00")
    assert info.value.answer_hint == Rcode.FORMERR


def test_reject_pointer_loop():
    with pytest.raises(PointerLoop):
        decode_message(HEADER_1Q + b"\xc0\x0c\x00\x01\x00\x01")


def test_reject_pointer_loop_through_label():
    with pytest.raises(PointerLoop):
        decode_message(HEADER_1Q + b"\x01a\xc0\x0c\x00\x01\x00\x01")


def test_reject_forward_pointer():
    with pytest.raises(PointerLoop):
        decode_message(HEADER_1Q + b"\xc0\x12\x00\x01\x00\x01\x00")


def test_reject_pointer_into_header():
    with pytest.raises(MalformedMessage) as info:
        decode_message(bytes.fromhex("abcd0100 0002 0000 0000 0000") + _q_with_ptr(2))
    assert type(info.value) is MalformedMessage


def _q_with_ptr(target: int) -> bytes:
    return b"\x01a\x00\x00\x01\x00\x01" + b"\xc0" + bytes([target]) + b"\x00\x01\x00\x01"


def test_reject_label_too_long():
    with pytest.raises(MalformedMessage) as info:
        decode_message(HEADER_1Q + b"\x40" + b"a" * 64 + b"\x00\x00\x01\x00\x01")
    assert type(info.value) is MalformedMessage
    assert info.value.answer_hint == Rcode.FORMERR


def test_reject_reserved_label_type():
    with pytest.raises(MalformedMessage) as info:
        decode_message(HEADER_1Q + b"\x81a\x00\x00\x01\x00\x01")
    assert type(info.value) is MalformedMessage


def test_reject_name_too_long():
    name = (b"\x3f" + b"a" * 63) * 4 + b"\x00"  # 257 bytes on the wire
    with pytest.raises(MalformedMessage) as info:
        decode_message(HEADER_1Q + name + b"\x00\x01\x00\x01")
    assert type(info.value) is MalformedMessage
    assert "255" in info.value.reason


def test_reject_a_rdata_wrong_length():
    rr = b"\x00\x00\x01\x00\x01\x00\x00\x00\x05\x00\x03\x7f\x00\x00"
    with pytest.raises(MalformedMessage) as info:
        decode_message(bytes.fromhex("abcd8100 0000 0001 0000 0000") + rr)
    assert type(info.value) is MalformedMessage


def test_reject_rdata_beyond_data():
    rr = b"\x00\x00\x10\x00\x01\x00\x00\x00\x05\x00\x09abc"
    with pytest.raises(Truncated):
        decode_message(bytes.fromhex("abcd8100 0000 0001 0000 0000") + rr)


def test_reject_opt_option_beyond_rdata():
    opt = b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x04\x00\x0a\x00\x08"
    with pytest.raises(Truncated):
        decode_message(bytes.fromhex("abcd0100 0000 0000 0000 0001") + opt)


def test_reject_two_opts():
    message = Message(
        Header(1), (Question(QNAME, RRType.A),), (), (), (Edns().to_record(), Edns().to_record())
    )
    with pytest.raises(MalformedMessage) as info:
        find_edns(decode_message(encode_message(message)))
    assert info.value.answer_hint == Rcode.FORMERR


def test_reject_opt_with_owner_name():
    opt = ResourceRecord(QNAME, RRType.OPT, 1232, 0, OPTRdata())
    message = Message(Header(1), (Question(QNAME, RRType.A),), (), (), (opt,))
    with pytest.raises(MalformedMessage, match="root"):
        find_edns(decode_message(encode_message(message)))


def test_reject_opt_in_answer_section():
    message = Message(Header(1), (Question(QNAME, RRType.A),), (Edns().to_record(),))
    with pytest.raises(MalformedMessage, match="additional"):
        find_edns(decode_message(encode_message(message)))


def test_encode_rejects_oversized_rdata():
    record = ResourceRecord(QNAME, 65280, RRClass.IN, 0, RawRdata(bytes(0x10000)))
    with pytest.raises(ValueError, match="RDATA"):
        encode_message(Message(Header(1), (), (record,)))
