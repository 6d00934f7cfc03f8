"""Counting DNS answers by (qtype, outcome): the reply classifier and the fast path's counts."""

from __future__ import annotations

import random

import dns.message
import dns.opcode
import pytest

from protocols.dns.fastpath import build_answer_table, fast_answer
from protocols.dns.message import Edns, RRType
from protocols.dns.outcome import DROPPED, classify
from protocols.repeats import REPEATS_LIMIT
from tests.protocols.dns.test_authority import AUTHORITY, SETTINGS
from tests.protocols.dns.test_fastpath import A_NAME, query, random_case


def wire(qname: str, rdtype: str = "A", **kwargs: object) -> bytes:
    return dns.message.make_query(qname, rdtype, **kwargs).to_wire()  # type: ignore[arg-type]


def notimp() -> bytes:
    message = dns.message.make_query("sql01-cz1.corp.example", "A")
    message.set_opcode(dns.opcode.STATUS)
    return message.to_wire()


CASES = {
    "answered": (wire("sql01-cz1.corp.example", "A"), ("A", "answered")),
    "answered-edns": (wire("sql01-cz1.corp.example", "A", use_edns=0), ("A", "answered")),
    "nodata": (wire("sql01-cz2.corp.example", "AAAA"), ("AAAA", "nodata")),
    "nodata-edns": (wire("sql01-cz2.corp.example", "AAAA", use_edns=0), ("AAAA", "nodata")),
    "nxdomain": (wire("nope.corp.example", "A"), ("A", "nxdomain")),
    "refused-public": (wire("sql01.corp.example", "A"), ("A", "refused")),
    "refused-outside": (wire("example.org", "MX"), ("MX", "refused")),
    "other-qtype": (wire("sql01-cz1.corp.example", "LOC"), ("other", "nodata")),
    "badvers": (wire("sql01-cz1.corp.example", "A", use_edns=1), ("A", "badvers")),
    "formerr": (wire("sql01-cz1.corp.example")[:-3], ("none", "formerr")),
    "notimp": (notimp(), ("none", "notimp")),
    "dropped-short": (b"\x00\x01\x00", DROPPED),
}


@pytest.mark.parametrize("case", CASES)
def test_classify_labels_the_general_reply(case):
    datagram, label = CASES[case]
    assert classify(AUTHORITY.respond(datagram, udp=True)) == label


def test_classify_never_raises_on_short_or_odd_replies():
    for reply in (None, b"", b"\x00" * 11, b"\x00" * 12, b"\x00\x00\x00\x00\x00\x01" + b"\x00" * 6):
        assert classify(reply)[1] in ("dropped", "nodata")
    assert classify(b"\x00" * 4 + b"\x00\x01" + b"\x00" * 6 + b"\x40") == ("none", "nodata")


def test_fast_path_counts_each_answer_under_its_stored_key():
    counts: dict[tuple[str, str, str], list[int]] = {}
    table = build_answer_table(SETTINGS, counts)
    rng = random.Random(3)
    for _ in range(5):  # distinct spellings: each one a splice
        assert fast_answer(table, query(random_case(A_NAME, rng), RRType.A)) is not None
    aaaa = wire("sql01-cz2.corp.example", "AAAA")
    for qid in range(3):  # the first a splice, then repeats answered from the table
        assert fast_answer(table, qid.to_bytes(2) + aaaa[2:]) is not None
    assert fast_answer(table, wire("nope.corp.example")) is None  # the general path's
    assert {k: v[0] for k, v in counts.items() if v[0]} == {
        ("fast", "A", "answered"): 5,
        ("fast", "AAAA", "nodata"): 3,
    }


def test_tcp_flavour_counts_nothing():
    table = build_answer_table(SETTINGS)
    assert fast_answer(table, wire("sql01-cz1.corp.example"), udp=False) is not None
    assert table.counts  # a cell per stored key, from the build
    assert all(cell == [0] for cell in table.counts.values())


def test_repeat_labels_are_cleared_with_the_repeats():
    table = build_answer_table(SETTINGS)
    rng = random.Random(7)
    for _ in range(REPEATS_LIMIT + 10):
        spelling = random_case(A_NAME, rng)
        fast_answer(table, query(spelling, RRType.A, Edns(rng.randrange(512, 4096))))
        assert table.labels.keys() == table.repeats.keys()
    assert sum(cell[0] for cell in table.counts.values()) == REPEATS_LIMIT + 10
