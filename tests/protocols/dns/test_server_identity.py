"""Server identity (RFC 5001 NSID, RFC 4892 CHAOS TXT) and NS glue, general and fast path."""

from __future__ import annotations

from dataclasses import replace

import dns.edns
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import pytest

from protocols.dns.authority import Authority
from protocols.dns.fastpath import build_answer_table, fast_answer
from tests.protocols.dns.test_authority import SETTINGS, texts

NAMED = replace(SETTINGS, identity="sidecar-a", version="cozen-responder 1.0")
NAMED_AUTHORITY = Authority(NAMED)
NAMED_TABLE = build_answer_table(NAMED)


def _ask(authority, query, *, udp=True):
    reply = authority.respond(query.to_wire(), udp=udp)
    assert reply is not None
    return dns.message.from_wire(reply)


def _chaos(name, rdtype="TXT"):
    return dns.message.make_query(name, rdtype, rdclass=dns.rdataclass.CH)


@pytest.mark.parametrize("name", ["id.server.", "hostname.bind.", "ID.Server."])
def test_identity_names_answer_identity(name):
    reply = _ask(NAMED_AUTHORITY, _chaos(name))
    assert reply.rcode() == dns.rcode.NOERROR
    (rrset,) = reply.answer
    assert (rrset.rdclass, rrset.rdtype, rrset.ttl) == (dns.rdataclass.CH, dns.rdatatype.TXT, 0)
    assert [r.strings for r in rrset] == [(b"sidecar-a",)]
    assert rrset.name.to_text() == name  # the question's letter case


@pytest.mark.parametrize("name", ["version.bind.", "version.server."])
def test_version_names_answer_version(name):
    (rrset,) = _ask(NAMED_AUTHORITY, _chaos(name)).answer
    assert [r.strings for r in rrset] == [(b"cozen-responder 1.0",)]


@pytest.mark.parametrize(
    ("settings", "name", "rdtype"),
    [
        (SETTINGS, "id.server.", "TXT"),  # no identity configured
        (SETTINGS, "version.bind.", "TXT"),
        (replace(NAMED, version=None), "version.bind.", "TXT"),  # the default: no version
        (NAMED, "authors.bind.", "TXT"),
        (NAMED, "id.server.", "A"),
        (NAMED, "sql01-cz1.corp.example.", "A"),
    ],
)
def test_other_chaos_questions_are_refused(settings, name, rdtype):
    reply = _ask(Authority(settings), _chaos(name, rdtype))
    assert reply.rcode() == dns.rcode.REFUSED
    assert reply.answer == []


def test_long_identity_is_split_into_character_strings():
    authority = Authority(replace(SETTINGS, identity="x" * 300))
    (rrset,) = _ask(authority, _chaos("id.server.")).answer
    assert [r.strings for r in rrset] == [(b"x" * 255, b"x" * 45)]


def _nsid_query(name="sql01-cz1.corp.example.", rdtype="A"):
    return dns.message.make_query(name, rdtype, use_edns=0, options=[dns.edns.NSIDOption(b"")])


def test_nsid_is_answered_with_identity():
    reply = _ask(NAMED_AUTHORITY, _nsid_query())
    (option,) = reply.options
    assert option.otype == dns.edns.NSID
    assert option.nsid == b"sidecar-a"
    assert reply.answer


def test_nsid_without_identity_gets_no_option():
    assert _ask(Authority(SETTINGS), _nsid_query()).options == ()


def test_no_nsid_without_the_request():
    query = dns.message.make_query("sql01-cz1.corp.example.", "A", use_edns=0)
    assert _ask(NAMED_AUTHORITY, query).options == ()


def test_fast_path_leaves_nsid_and_chaos_to_the_general_path():
    assert fast_answer(NAMED_TABLE, _nsid_query().to_wire()) is None
    assert fast_answer(NAMED_TABLE, _chaos("id.server.").to_wire()) is None
    # the same question without NSID is precomputed, and the two paths agree
    plain = dns.message.make_query("sql01-cz1.corp.example.", "A", use_edns=0).to_wire()
    assert fast_answer(NAMED_TABLE, plain) == NAMED_AUTHORITY.respond(plain, udp=True)


@pytest.mark.parametrize("apex", ["corp.example.", "CORP.Example.", "11.0.0.127.in-addr.arpa."])
def test_ns_answer_carries_glue(apex):
    reply = _ask(NAMED_AUTHORITY, dns.message.make_query(apex, "NS"))
    target = f"cozen-ns.{_zone_case(apex)}"
    assert texts(reply.answer) == [target]
    (glue,) = reply.additional
    assert (glue.name.to_text(), glue.rdtype, glue.ttl) == (target, dns.rdatatype.A, 300)
    assert texts(reply.additional) == ["127.0.0.10"]


def _zone_case(apex):
    return apex if apex.lower().startswith("corp.") else "corp.example."


@pytest.mark.parametrize("use_edns", [False, 0])
def test_ns_glue_fast_equals_general(use_edns):
    for spelling in ("corp.example.", "cORp.EXAMPLE."):
        data = dns.message.make_query(spelling, "NS", use_edns=use_edns).to_wire()
        fast = fast_answer(NAMED_TABLE, data)
        assert fast is not None
        assert fast == NAMED_AUTHORITY.respond(data, udp=True)
        assert dns.message.from_wire(fast).additional
