"""The costliest NetBIOS inputs we know, each decoded within its budget of work (issue 11).

NBNS (RFC 1002 §4.2): a datagram holds at most two names and one record, so
the worst inputs are the longest lists a record can carry (NB entries
§4.2.15, NODE_NAME entries §4.2.18) and the longest names (255 bytes, 16
pointer hops). NBSS (RFC 1002 §4.3): a segment of the smallest frames, and a
SESSION REQUEST of two maximal names. Work is counted in Python lines
(tests.helpers.count_lines); ``python -m benchmarks.worst_inputs`` times the
same calls.
"""

from __future__ import annotations

import struct

import pytest

from protocols.errors import Unsupported
from protocols.netbios import nbss
from protocols.netbios.nbns import MAX_ADDRESS_ENTRIES, decode_packet
from tests.helpers import WorstInput, check_worst

MAX_DATAGRAM = 65_507
NAME = b"\x20" + b"EDFDEMDADBCNENFKDBCACACACACACAAA" + b"\x00"  # SQL01-CZ1<00>
LONGEST_NAME = b"\x20" + b"EDFDEMDADBCNENFKDBCACACACACACAAA" + b"\x01a" * 110 + b"\x00"
RECORD_HEAD = b"\x00\x20\x00\x01\x00\x00\x00\x00"  # NB, IN, TTL 0


def header(flags: int, qd: int = 0, an: int = 0, ar: int = 0) -> bytes:
    return struct.pack(">6H", 0x4242, flags, qd, an, 0, ar)


def query_response(entries: int) -> bytes:
    """A positive name query response (§4.2.13) carrying ``entries`` NB entries."""
    rdata = b"\x60\x00\x7f\x00\x00\x01" * entries
    return header(0x8500, an=1) + NAME + RECORD_HEAD + struct.pack(">H", len(rdata)) + rdata


def largest_query_response() -> bytes:
    fixed = len(query_response(0))
    return query_response((MAX_DATAGRAM - fixed) // 6)


def node_status_response() -> bytes:
    """A node status response (§4.2.18) with 255 names and the rest of a datagram as statistics."""
    names = b"".join(b"NAME%02d         " % (i % 100) + b"\x20\x04\x00" for i in range(255))
    statistics = bytes(MAX_DATAGRAM - 12 - len(NAME) - 10 - 1 - len(names))
    rdata = b"\xff" + names + statistics
    head = header(0x8400, an=1) + NAME + b"\x00\x21\x00\x01\x00\x00\x00\x00"
    return head + struct.pack(">H", len(rdata)) + rdata


def longest_names_registration() -> bytes:
    """A registration (§4.2.2) whose question and record names are 255 bytes each."""
    record = LONGEST_NAME + RECORD_HEAD + b"\x00\x06\x60\x00\x7f\x00\x00\x02"
    return header(0x2910, qd=1, ar=1) + LONGEST_NAME + b"\x00\x20\x00\x01" + record


def keep_alives(segment: int = 65_536) -> bytes:
    return nbss.encode_keep_alive() * (segment // 4)


def first_frame(data: bytes) -> object:
    framer = nbss.Framer(direct=False)
    framer.feed(data)
    return framer.next_frame()


def longest_session_request() -> bytes:
    return LONGEST_NAME + LONGEST_NAME


def _cases() -> list[WorstInput]:
    def case(decoder, name, data, call, expect=None):
        return WorstInput(decoder, name, len(data), lambda: call(data), expect)

    largest = largest_query_response()
    entries = (len(largest) - len(query_response(0))) // 6
    nbns = "nbns.decode_packet"
    return [
        case(
            nbns, f"query response of {entries:,} NB entries", largest, decode_packet, Unsupported
        ),
        case(
            nbns,
            f"query response of {MAX_ADDRESS_ENTRIES} NB entries",
            query_response(MAX_ADDRESS_ENTRIES),
            decode_packet,
        ),
        case(
            nbns,
            "node status of 255 names, 60 KiB statistics",
            node_status_response(),
            decode_packet,
        ),
        case(
            nbns,
            "registration with two 255-byte names",
            longest_names_registration(),
            decode_packet,
        ),
        case(
            "nbss.Framer", "64 KiB of 16,384 keep-alives, first frame", keep_alives(), first_frame
        ),
        case(
            "nbss.decode_session_request",
            "two 255-byte names",
            longest_session_request(),
            nbss.decode_session_request,
        ),
    ]


WORST = _cases()


@pytest.mark.parametrize("case", WORST, ids=lambda case: case.id)
def test_worst_input_is_bounded(case):
    check_worst(case)


def test_address_entries_up_to_the_budget_decode():
    assert len(decode_packet(query_response(MAX_ADDRESS_ENTRIES)).entries) == MAX_ADDRESS_ENTRIES
    with pytest.raises(Unsupported, match="65 NB entries"):
        decode_packet(query_response(MAX_ADDRESS_ENTRIES + 1))
