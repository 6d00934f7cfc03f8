"""The precomputed fast path agrees byte for byte with the general path, or declines."""

from __future__ import annotations

import random

import pytest

from protocols.dns.authority import Authority, AuthoritySettings, HostRecords
from protocols.dns.fastpath import (
    build_answer_table,
    fast_answer,
    iter_answer_entries,
)
from protocols.dns.message import (
    Edns,
    Header,
    Message,
    Question,
    RRClass,
    RRType,
    decode_message,
    encode_message,
    name_from_text,
)
from protocols.repeats import REPEATS_LIMIT
from tests.protocols.dns.test_authority import AUTHORITY, SETTINGS
from tests.protocols.dns.test_message import all_captures, capture

TABLE = build_answer_table(SETTINGS)
COOKIE = (10, bytes(range(8)))
EDNS_VARIANTS = {
    "plain": None,
    "edns": Edns(1232),
    "edns-do": Edns(1232, do=True),
    "edns-4096-cookie": Edns(4096, options=(COOKIE,)),
    "edns-512-do-cookie": Edns(512, do=True, options=(COOKIE,)),
}


def random_case(name: tuple[bytes, ...], rng: random.Random) -> tuple[bytes, ...]:
    return tuple(
        bytes(c ^ 0x20 if chr(c).isalpha() and rng.random() < 0.5 else c for c in label)
        for label in name
    )


def query(name, qtype, edns=None, *, id=0x1234, rd=True, cd=False) -> bytes:
    additionals = () if edns is None else (edns.to_record(),)
    header = Header(id, rd=rd, cd=cd)
    return encode_message(
        Message(header, (Question(name, qtype, RRClass.IN),), (), (), additionals)
    )


def configured() -> list[tuple[tuple[bytes, ...], int]]:
    keys = []
    for key in TABLE.entries:
        message = decode_message(b"\x00" * 5 + b"\x01" + b"\x00" * 6 + key)
        keys.append((message.questions[0].name, message.questions[0].qtype))
    return keys


def test_table_covers_every_configured_question():
    wanted = {
        ("sql01-cz1.corp.example", RRType.A),
        ("sql01-cz1.corp.example", RRType.AAAA),
        ("cozen-ns.corp.example", RRType.A),
        ("corp.example", RRType.SOA),
        ("corp.example", RRType.NS),
        ("11.0.0.127.in-addr.arpa", RRType.PTR),
        ("12.0.0.127.in-addr.arpa", RRType.NS),
    }
    have = {(".".join(p.decode() for p in name), qtype) for name, qtype in configured()}
    assert wanted <= have
    assert all(None not in variants for variants in TABLE.entries.values())


@pytest.mark.parametrize("variant", EDNS_VARIANTS)
def test_fast_equals_general_for_every_name_type_and_case(variant):
    rng = random.Random(0x20)
    edns = EDNS_VARIANTS[variant]
    checked = 0
    for name, qtype in configured():
        spellings = [name, tuple(label.upper() for label in name)]
        spellings += [random_case(name, rng) for _ in range(4)]
        for spelling in spellings:
            for rd, cd in ((True, False), (False, True), (False, False)):
                data = query(spelling, qtype, edns, id=rng.randrange(65536), rd=rd, cd=cd)
                fast = fast_answer(TABLE, data)
                assert fast is not None, (spelling, qtype)
                assert fast == AUTHORITY.respond(data, udp=True)
                checked += 1
    assert checked == len(TABLE.entries) * 6 * 3


@pytest.mark.parametrize("data", all_captures())
def test_captures_fast_equals_general_or_decline(data):
    fast = fast_answer(TABLE, data)
    if data == capture("dig_any_tcp"):
        assert fast is None  # ANY is not precomputed
    elif data == capture("kdig_soa_nsid"):
        assert fast is None  # NSID (RFC 5001) is answered by the general path only
    else:
        assert fast == AUTHORITY.respond(data, udp=True)


def test_tcp_flavour_matches_general_tcp():
    data = capture("dig_a_tcp")
    assert fast_answer(TABLE, data, udp=False) == AUTHORITY.respond(data, udp=False)


A_NAME = name_from_text("sql01-cz1.corp.example")
GOOD = query(A_NAME, RRType.A, Edns(1232, options=(COOKIE,)))


def patched(offset: int, value: bytes, data: bytes = GOOD) -> bytes:
    return data[:offset] + value + data[offset + len(value) :]


UNUSUAL = {
    "empty": b"",
    "header-only": GOOD[:12],
    "response": patched(2, bytes([GOOD[2] | 0x80])),
    "opcode-notify": patched(2, bytes([GOOD[2] | 0x20])),
    "tc-set": patched(2, bytes([GOOD[2] | 0x02])),
    "qdcount-2": patched(4, b"\x00\x02"),
    "ancount-1": patched(6, b"\x00\x01"),
    "nscount-1": patched(8, b"\x00\x01"),
    "arcount-2": patched(10, b"\x00\x02"),
    "unknown-name": query(name_from_text("nope.corp.example"), RRType.A),
    "public-name": query(name_from_text("sql01.corp.example"), RRType.A),
    "any": query(A_NAME, RRType.ANY),
    "class-ch": encode_message(Message(Header(1), (Question(A_NAME, RRType.A, RRClass.CH),))),
    "edns-version-1": query(A_NAME, RRType.A, Edns(1232, version=1)),
    "edns-ext-rcode": query(A_NAME, RRType.A, Edns(1232, ext_rcode=1)),
    "truncated-question": GOOD[:30],
    "truncated-opt": GOOD[:-1],
    "trailing-byte": GOOD + b"\x00",
    "plain-trailing-byte": query(A_NAME, RRType.A) + b"\x00",
    "opt-not-root": patched(len(query(A_NAME, RRType.A)), b"\x01"),
    "opt-wrong-type": patched(len(query(A_NAME, RRType.A)) + 2, b"\x2a"),
    "option-overruns": patched(len(GOOD) - 10, b"\x00\x09"),
    "nsid": query(A_NAME, RRType.A, Edns(1232, options=(COOKIE, (3, b"")))),
    "pointer-in-qname": patched(12, b"\xc0\x0c"),
    "reserved-label": patched(12, b"\x49"),
}


@pytest.mark.parametrize("name", UNUSUAL)
def test_unusual_queries_fall_back(name):
    assert fast_answer(TABLE, UNUSUAL[name]) is None


def test_over_512_without_edns_falls_back():
    addresses = tuple(f"127.0.1.{i}" for i in range(1, 41))
    host = HostRecords("big.corp.example", addresses, (), reverse=False)
    settings = AuthoritySettings(
        "corp.example", (host,), (), "ns.corp.example", "h.corp.example", 1
    )
    table = build_answer_table(settings)
    big = name_from_text("big.corp.example")
    assert fast_answer(table, query(big, RRType.A)) is None
    assert fast_answer(table, query(big, RRType.A, Edns(512))) is None
    assert fast_answer(table, query(big, RRType.A, Edns(1232))) is not None


def test_repeat_with_new_id_is_served_from_the_repeats_table():
    table = build_answer_table(SETTINGS)
    first = query(A_NAME, RRType.A, Edns(1232, options=(COOKIE,)), id=0x0101)
    again = query(A_NAME, RRType.A, Edns(1232, options=(COOKIE,)), id=0xBEEF)
    assert fast_answer(table, first) == AUTHORITY.respond(first, udp=True)
    assert list(table.repeats) == [first[2:]]
    table.entries.clear()  # only the repeats table can answer now
    assert fast_answer(table, again) == AUTHORITY.respond(again, udp=True)


def test_memo_keeps_only_answered_udp_queries():
    table = build_answer_table(SETTINGS)
    fast_answer(table, UNUSUAL["unknown-name"])
    fast_answer(table, capture("dig_a_tcp"), udp=False)
    assert table.repeats == {}


def test_memo_skips_long_queries():
    table = build_answer_table(SETTINGS)
    padded = query(A_NAME, RRType.A, Edns(1232, options=((12, bytes(600)),)))
    assert fast_answer(table, padded) == AUTHORITY.respond(padded, udp=True)
    assert table.repeats == {}


def test_memo_is_cleared_when_full():
    table = build_answer_table(SETTINGS)
    rng = random.Random(7)
    for _ in range(REPEATS_LIMIT + 10):
        spelling = random_case(A_NAME, rng)
        fast_answer(table, query(spelling, RRType.A, Edns(rng.randrange(512, 4096))))
    assert 0 < len(table.repeats) <= REPEATS_LIMIT


def test_entries_come_one_by_one_and_make_the_table():
    entries = iter_answer_entries(Authority(SETTINGS))
    key, variants = next(entries)
    assert TABLE.entries[key] == variants
    assert dict([(key, variants), *entries]) == TABLE.entries
