"""Authoritative answering rules, checked with dnspython and dnslib as oracles."""

from __future__ import annotations

import dns.edns
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdatatype
import dns.reversename
import dnslib
import pytest

from protocols.dns.authority import Authority, AuthoritySettings, HostRecords
from protocols.dns.message import (
    Edns,
    Header,
    Message,
    Question,
    RRType,
    decode_message,
    encode_message,
    name_from_text,
)
from tests.protocols.dns.test_message import all_captures, capture

SETTINGS = AuthoritySettings(
    domain="corp.example",
    hosts=(
        HostRecords("sql01-cz1.corp.example", ("127.0.0.11",), ("fd00::11",)),
        HostRecords("sql01-cz2.corp.example", ("127.0.0.12",), ()),
        HostRecords("deep.site.corp.example", ("127.0.0.13",), ()),
        HostRecords("cozen-ns.corp.example", ("127.0.0.10",), (), reverse=False),
    ),
    public_names=("sql01.corp.example",),
    ns_name="cozen-ns.corp.example",
    hostmaster="hostmaster.corp.example",
    serial=2026112401,
    ttl=300,
    negative_ttl=60,
)
AUTHORITY = Authority(SETTINGS)


def ask(qname, rdtype="A", *, udp=True, **kwargs) -> dns.message.Message:
    query = dns.message.make_query(qname, rdtype, **kwargs)
    reply = AUTHORITY.respond(query.to_wire(), udp=udp)
    assert reply is not None
    parsed = dns.message.from_wire(reply)
    assert parsed.id == query.id
    assert not parsed.flags & dns.flags.RA
    return parsed


def texts(section) -> list[str]:
    return sorted(str(rr) for rrset in section for rr in rrset)


def assert_negative(reply, rcode) -> None:
    assert reply.rcode() == rcode
    assert reply.flags & dns.flags.AA
    assert reply.answer == []
    (soa,) = reply.authority
    assert soa.rdtype == dns.rdatatype.SOA
    assert soa.ttl == 60


# ---------------------------------------------------------------- positive


def test_a_record():
    reply = ask("sql01-cz1.corp.example", "A")
    assert reply.rcode() == dns.rcode.NOERROR
    assert reply.flags & dns.flags.AA
    assert texts(reply.answer) == ["127.0.0.11"]
    assert reply.answer[0].ttl == 300


def test_aaaa_record():
    assert texts(ask("sql01-cz1.corp.example", "AAAA").answer) == ["fd00::11"]


def test_ns_host_glue_address():
    assert texts(ask("cozen-ns.corp.example", "A").answer) == ["127.0.0.10"]


def test_ptr_v4_and_v6():
    v4 = ask(dns.reversename.from_address("127.0.0.11"), "PTR")
    v6 = ask(dns.reversename.from_address("fd00::11"), "PTR")
    assert texts(v4.answer) == texts(v6.answer) == ["sql01-cz1.corp.example."]


def test_no_ptr_for_ns_glue():
    reply = ask(dns.reversename.from_address("127.0.0.10"), "PTR")
    assert reply.rcode() == dns.rcode.REFUSED


def test_forward_apex_soa_and_ns():
    soa = ask("corp.example", "SOA").answer[0]
    assert str(soa[0]) == (
        "cozen-ns.corp.example. hostmaster.corp.example. 2026112401 3600 600 86400 60"
    )
    assert texts(ask("corp.example", "NS").answer) == ["cozen-ns.corp.example."]


def test_reverse_apex_soa_and_ns():
    apex = dns.reversename.from_address("127.0.0.12")
    assert ask(apex, "SOA").answer[0][0].serial == 2026112401
    assert texts(ask(apex, "NS").answer) == ["cozen-ns.corp.example."]


def test_any_is_minimal():
    host = ask("sql01-cz1.corp.example", "ANY")
    apex = ask("corp.example", "ANY")
    assert [rrset.rdtype for rrset in host.answer] == [dns.rdatatype.A]
    assert [rrset.rdtype for rrset in apex.answer] == [dns.rdatatype.SOA]


# ---------------------------------------------------------------- negative


def test_nodata_for_other_type():
    assert_negative(ask("sql01-cz2.corp.example", "AAAA"), dns.rcode.NOERROR)


def test_nodata_for_empty_non_terminal():
    assert_negative(ask("site.corp.example", "A"), dns.rcode.NOERROR)


def test_nxdomain_inside_zone():
    reply = ask("nope.corp.example", "A")
    assert_negative(reply, dns.rcode.NXDOMAIN)
    assert str(reply.authority[0].name) == "corp.example."


def test_nxdomain_below_reverse_apex():
    reply = ask("x." + dns.reversename.from_address("127.0.0.11").to_text(), "PTR")
    assert_negative(reply, dns.rcode.NXDOMAIN)


def test_negative_ttl_is_min_of_ttl_and_minimum():
    settings = AuthoritySettings(**{**_fields(SETTINGS), "ttl": 30, "negative_ttl": 90})
    query = dns.message.make_query("nope.corp.example", "A").to_wire()
    reply = dns.message.from_wire(Authority(settings).respond(query, udp=True))
    assert reply.authority[0].ttl == 30


def _fields(settings):
    return {name: getattr(settings, name) for name in settings.__slots__}


@pytest.mark.parametrize(
    "qname",
    ["sql01.corp.example", "SQL01.Corp.Example", "x.sql01.corp.example"],
)
def test_public_name_refused(qname):
    reply = ask(qname, "A")
    assert reply.rcode() == dns.rcode.REFUSED
    assert not reply.flags & dns.flags.AA
    assert reply.answer == reply.authority == []


def test_outside_zones_refused():
    assert ask("example.org", "A").rcode() == dns.rcode.REFUSED
    assert ask("example", "SOA").rcode() == dns.rcode.REFUSED
    assert ask(dns.reversename.from_address("127.0.0.99"), "PTR").rcode() == dns.rcode.REFUSED


@pytest.mark.parametrize("rdclass", ["CH", "ANY"])
def test_non_in_class_refused(rdclass):
    reply = ask("sql01-cz1.corp.example", "A", rdclass=rdclass)
    assert reply.rcode() == dns.rcode.REFUSED


def test_zone_transfer_refused():
    assert ask("corp.example", "AXFR", udp=False).rcode() == dns.rcode.REFUSED


# ---------------------------------------------------------------- header rules


def test_id_rd_cd_echoed_ra_clear():
    reply = ask("sql01-cz1.corp.example", flags=dns.flags.RD | dns.flags.CD)
    assert reply.flags & dns.flags.RD and reply.flags & dns.flags.CD
    plain = ask("sql01-cz1.corp.example", flags=0)
    assert not plain.flags & (dns.flags.RD | dns.flags.CD)


def test_question_case_echoed_exactly():
    query = dns.message.make_query("sQl01-Cz1.CoRp.eXample", "A")
    wire = query.to_wire()
    reply = AUTHORITY.respond(wire, udp=True)
    assert reply is not None
    question = wire[12 : wire.index(b"\x00", 12) + 5]
    assert reply[12 : 12 + len(question)] == question
    assert reply[12 + len(question) : 14 + len(question)] == b"\xc0\x0c"
    assert str(dns.message.from_wire(reply).answer[0].name) == "sQl01-Cz1.CoRp.eXample."


def test_negative_soa_owner_follows_question_case():
    reply = ask("NOPE.CORP.Example", "A")
    assert str(reply.authority[0].name) == "CORP.Example."


def test_drop_response():
    query = bytearray(dns.message.make_query("sql01-cz1.corp.example", "A").to_wire())
    query[2] |= 0x80
    assert AUTHORITY.respond(bytes(query), udp=True) is None


def test_drop_short_header():
    assert AUTHORITY.respond(b"\x12\x34\x01", udp=True) is None


def test_notimp_for_other_opcode():
    query = dns.message.make_query("corp.example", "SOA")
    query.set_opcode(dns.opcode.NOTIFY)
    reply = dns.message.from_wire(AUTHORITY.respond(query.to_wire(), udp=True))
    assert reply.rcode() == dns.rcode.NOTIMP
    assert reply.opcode() == dns.opcode.NOTIFY


@pytest.mark.parametrize("count", [0, 2])
def test_formerr_for_question_count(count):
    questions = (Question(name_from_text("corp.example"), RRType.SOA),) * count
    wire = encode_message(Message(Header(0x4242), questions))
    reply = decode_message(AUTHORITY.respond(wire, udp=True))
    assert (reply.header.id, reply.header.rcode, reply.header.qr) == (0x4242, 1, True)


def test_formerr_for_unparseable_question_echoes_id():
    reply = AUTHORITY.respond(bytes.fromhex("beef0100 0001 0000 0000 0000") + b"\x05ab", udp=True)
    assert reply is not None
    assert dnslib.DNSRecord.parse(reply).header.rcode == dnslib.RCODE.FORMERR
    assert reply[:2] == b"\xbe\xef"


def test_formerr_for_two_opts():
    opts = (Edns().to_record(), Edns().to_record())
    question = Question(name_from_text("corp.example"), RRType.SOA)
    wire = encode_message(Message(Header(9), (question,), (), (), opts))
    assert decode_message(AUTHORITY.respond(wire, udp=True)).header.rcode == 1


def test_badvers_for_edns_version_1():
    reply = ask("sql01-cz1.corp.example", use_edns=1)
    assert reply.rcode() == dns.rcode.BADVERS
    assert reply.edns == 0
    assert reply.answer == []


# ---------------------------------------------------------------- EDNS and sizes


def test_opt_only_when_asked():
    assert ask("sql01-cz1.corp.example", use_edns=False).edns == -1
    reply = ask("sql01-cz1.corp.example", use_edns=0, payload=4096)
    assert (reply.edns, reply.payload) == (0, 1232)


def test_do_bit_echoed_options_not():
    cookie = dns.edns.GenericOption(10, b"\x01" * 8)
    reply = ask("corp.example", "SOA", use_edns=0, want_dnssec=True, options=[cookie])
    assert reply.ednsflags & dns.flags.DO
    assert reply.options == ()


def big_settings(count: int) -> AuthoritySettings:
    addresses = tuple(f"127.0.1.{i}" for i in range(1, count + 1))
    host = HostRecords("big.corp.example", addresses, (), reverse=False)
    return AuthoritySettings(**{**_fields(SETTINGS), "hosts": (host,)})


def test_udp_without_edns_truncates_over_512():
    authority = Authority(big_settings(40))  # 40 * 16 bytes of answers
    query = dns.message.make_query("big.corp.example", "A", use_edns=False)
    reply = dns.message.from_wire(authority.respond(query.to_wire(), udp=True))
    assert reply.flags & dns.flags.TC
    assert reply.answer == [] and len(reply.question) == 1


def test_udp_with_edns_uses_client_payload():
    authority = Authority(big_settings(40))
    small = dns.message.make_query("big.corp.example", "A", use_edns=0, payload=512)
    large = dns.message.make_query("big.corp.example", "A", use_edns=0, payload=1232)
    cut = dns.message.from_wire(authority.respond(small.to_wire(), udp=True))
    full = dns.message.from_wire(authority.respond(large.to_wire(), udp=True))
    assert cut.flags & dns.flags.TC and cut.edns == 0 and cut.answer == []
    assert not full.flags & dns.flags.TC and len(full.answer[0]) == 40


def test_tcp_does_not_truncate():
    authority = Authority(big_settings(200))
    query = dns.message.make_query("big.corp.example", "A", use_edns=False)
    reply = dns.message.from_wire(authority.respond(query.to_wire(), udp=False))
    assert not reply.flags & dns.flags.TC and len(reply.answer[0]) == 200


# ---------------------------------------------------------------- captures


@pytest.mark.parametrize("data", all_captures())
def test_captured_queries_get_authoritative_answers(data):
    reply = dnslib.DNSRecord.parse(AUTHORITY.respond(data, udp=True))
    query = dnslib.DNSRecord.parse(data)
    assert reply.header.id == query.header.id
    assert reply.header.aa == 1 and reply.header.rcode == dnslib.RCODE.NOERROR
    assert reply.q == query.q


def test_captured_mixed_case_aaaa():
    reply = dns.message.from_wire(AUTHORITY.respond(capture("dig_aaaa_norec_mixedcase"), udp=True))
    assert str(reply.answer[0].name) == "SQL01-CZ1.corp.example."
    assert texts(reply.answer) == ["fd00::11"]
    assert not reply.flags & dns.flags.RD


def test_exact_answer_bytes_for_captured_plain_query():
    data = capture("dig_a_noedns")
    expected = (
        data[:2]
        + bytes.fromhex("8500 0001 0001 0000 0000")
        + data[12:]
        + bytes.fromhex("c00c 0001 0001 0000012c 0004 7f00000b")
    )
    assert AUTHORITY.respond(data, udp=True) == expected


def test_exact_answer_bytes_for_captured_edns_nodata():
    data = capture("kdig_aaaa_cookie")
    soa_rdata = (
        "08636f7a656e2d6e73c016 0a686f73746d6173746572c016"
        + "78c40591 00000e10 00000258 00015180 0000003c"
    )
    expected = (
        data[:2]
        + bytes.fromhex("8500 0001 0000 0001 0001")
        + data[12 : data.index(b"\x00\x00\x1c\x00\x01") + 5]
        + bytes.fromhex("c016 0006 0001 0000003c 002c" + soa_rdata)
        + bytes.fromhex("00 0029 04d0 00000000 0000")
    )
    assert AUTHORITY.respond(data, udp=True) == expected


def test_any_at_empty_non_terminal_is_nodata():
    assert_negative(ask("site.corp.example", "ANY"), dns.rcode.NOERROR)
