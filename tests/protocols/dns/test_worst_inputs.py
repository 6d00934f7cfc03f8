"""The costliest DNS inputs we know, each decoded within its budget of work (issue 11).

Every input is as large as its transport allows (a 65,507-byte UDP datagram,
a 65,535-byte TCP message, a 64 KiB TCP segment) and built to make one loop of
the decoder run as long as it can: pointer chains (RFC 1035 §4.1.4), counts,
labels, EDNS options (RFC 6891 §6.1.2), pipelined messages (RFC 7766
§6.2.1.1). Work is counted in Python lines (tests.helpers.count_lines), never
in time; ``python -m benchmarks.worst_inputs`` reports the CPU time of the
same calls.
"""

from __future__ import annotations

import struct

import pytest

from protocols.dns.fastpath import fast_answer
from protocols.dns.message import decode_message
from protocols.dns.stream import DnsStream
from protocols.errors import Unsupported
from tests.helpers import WorstInput, check_worst
from tests.protocols.dns.test_authority import AUTHORITY
from tests.protocols.dns.test_fastpath import TABLE

MAX_DATAGRAM = 65_507  # IPv4: 65,535 - 20 (IP) - 8 (UDP)
MAX_TCP_MESSAGE = 65_535
QUESTION_TAIL = b"\x00\x01\x00\x01"  # QTYPE A, QCLASS IN
OPT_HEAD = b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00"  # root, OPT, 1232, TTL 0


def header(qd: int = 0, an: int = 0, ns: int = 0, ar: int = 0, flags: int = 0) -> bytes:
    return struct.pack(">6H", 0x4242, flags, qd, an, ns, ar)


def pointer(target: int) -> bytes:
    return struct.pack(">H", 0xC000 | target)


def chain_flood(size: int = MAX_DATAGRAM) -> bytes:
    """Issue 11's datagram: as many questions as fit, each name a 63-hop pointer chain.

    The first question is the root; question i points at question i-1 until
    the chain is 62 hops long, and every later one points at that 62-hop name.
    """
    starts, body = [12], bytearray(b"\x00" + QUESTION_TAIL)
    while 12 + len(body) + 6 <= size:
        target = starts[min(len(starts), 63) - 1]
        starts.append(12 + len(body))
        body += pointer(target) + QUESTION_TAIL
    return header(qd=len(starts)) + bytes(body)


def txt_record(rdata: bytes) -> bytes:
    """A root-owned TXT record with opaque ``rdata`` (11 bytes before the RDATA)."""
    return b"\x00\x00\x10\x00\x01\x00\x00\x00\x00" + struct.pack(">H", len(rdata)) + rdata


def a_record(owner: bytes) -> bytes:
    return owner + b"\x00\x01\x00\x01\x00\x00\x00\x00\x00\x04\x7f\x00\x00\x01"


RDATA_AT = 12 + 11  # where the first record's RDATA starts when it is a root-owned TXT


def ladder_records() -> bytes:
    """64 records whose owners are 64-hop chains the memo has never seen.

    The first record is a TXT whose opaque RDATA holds 63 ladders: a root
    label, then 63 pointers, each to the element before it. Every later owner
    points at the top of a ladder of its own, so each name walks 64 fresh hops.
    """
    ladders, tops = bytearray(), []
    for _ in range(63):
        previous = RDATA_AT + len(ladders)
        ladders += b"\x00"
        for _ in range(63):
            here = RDATA_AT + len(ladders)
            ladders += pointer(previous)
            previous = here
        tops.append(previous)
    records = b"".join(a_record(pointer(top)) for top in tops)
    return header(an=64) + txt_record(bytes(ladders)) + records


def shared_chain() -> bytes:
    """64 records, 63 of them owned by the same 63-hop name: one walk with the memo.

    The TXT's RDATA holds "a." and then 62 elements "a" + pointer to the
    element before, so its top is a.a. ... (63 labels) after 62 hops.
    """
    ladder = bytearray(b"\x01a\x00")
    previous = RDATA_AT
    for _ in range(62):
        here = RDATA_AT + len(ladder)
        ladder += b"\x01a" + pointer(previous)
        previous = here
    records = a_record(pointer(previous)) * 63
    return header(an=64) + txt_record(bytes(ladder)) + records


def longest_names(count: int) -> bytes:
    """``count`` questions, each 127 one-byte labels: the most labels a name can have."""
    question = b"\x01a" * 127 + b"\x00" + QUESTION_TAIL
    return header(qd=count) + question * count


def minimal_records(size: int = MAX_DATAGRAM) -> bytes:
    """As many 11-byte records (root owner, no RDATA) as fit."""
    count = (size - 12) // 11
    return header(ar=count) + b"\x00\xff\x00\x00\x01\x00\x00\x00\x00\x00\x00" * count


def empty_options(size: int = MAX_DATAGRAM, question: bytes = b"") -> bytes:
    """One OPT packed with empty options (4 bytes each) up to ``size``."""
    room = size - 12 - len(question) - len(OPT_HEAD) - 2
    room -= room % 4
    opt = OPT_HEAD + struct.pack(">H", room) + b"\x00\x01\x00\x00" * (room // 4)
    return header(qd=1 if question else 0, ar=1) + question + opt


A_QUESTION = b"\x09sql01-cz1\x04corp\x07example\x00" + QUESTION_TAIL
LONG_QNAME = header(qd=1) + b"\x01a" * 32_000 + b"\x00" + QUESTION_TAIL


def pipelined_headers(segment: int = 65_536) -> bytes:
    """A 64 KiB segment of header-only queries, each a 2-byte length and 12 bytes."""
    message = struct.pack(">H", 12) + header()
    return message * (segment // len(message))


def respond(data: bytes) -> object:
    return AUTHORITY.respond(data, udp=True)


def fast(data: bytes) -> object:
    return fast_answer(TABLE, data)


def stream(data: bytes) -> object:
    return DnsStream(lambda m: AUTHORITY.respond(m, udp=False)).receive_data(data)


def _cases() -> list[WorstInput]:
    flood, ladders, longest = chain_flood(), ladder_records(), longest_names(64)
    options, records = empty_options(question=A_QUESTION), minimal_records()
    tcp_flood = chain_flood(MAX_TCP_MESSAGE)

    def case(decoder, name, data, call, expect=None):
        return WorstInput(decoder, name, len(data), lambda: call(data), expect)

    dm = "dns.decode_message"
    return [
        case(
            dm,
            "issue 11 flood: 10,916 questions of 63-hop chains",
            flood,
            decode_message,
            Unsupported,
        ),
        case(dm, "64 records owned by fresh 64-hop chains", ladders, decode_message, Unsupported),
        case(dm, "64 records sharing one 63-hop chain", shared_chain(), decode_message),
        case(dm, "64 questions of 127 labels", longest, decode_message, Unsupported),
        case(dm, "5,954 minimal records", records, decode_message, Unsupported),
        case(dm, "16,368 empty EDNS options", options, decode_message, Unsupported),
        case("dns.Authority.respond", "issue 11 flood", flood, respond),
        case("dns.Authority.respond", "fresh 64-hop chains", ladders, respond),
        case("dns.Authority.respond", "16,368 empty EDNS options", options, respond),
        case("dns.Authority.respond", "32,000-label name", LONG_QNAME, respond),
        case("dns.fast_answer", "32,000-label name", LONG_QNAME, fast),
        case("dns.fast_answer", "16,368 empty EDNS options", options, fast),
        case(
            "dns.DnsStream",
            "one 65,535-byte flood message",
            struct.pack(">H", len(tcp_flood)) + tcp_flood,
            stream,
        ),
        case(
            "dns.DnsStream",
            "4,681 pipelined queries in one 64 KiB segment",
            pipelined_headers(),
            stream,
        ),
    ]


WORST = _cases()


@pytest.mark.parametrize("case", WORST, ids=lambda case: case.id)
def test_worst_input_is_bounded(case):
    check_worst(case)


def test_the_flood_is_refused_from_its_header():
    with pytest.raises(Unsupported, match="10916 records"):
        decode_message(chain_flood())


def test_the_authority_answers_an_over_budget_query_formerr():
    reply = AUTHORITY.respond(chain_flood(), udp=True)
    assert reply is not None and reply[:2] == b"\x42\x42" and reply[3] & 0x0F == 1


def test_a_shared_chain_decodes_to_the_same_name_everywhere():
    message = decode_message(shared_chain())
    owners = {record.name for record in message.answers[1:]}
    assert owners == {(b"a",) * 63}


def test_a_pipelined_segment_is_answered_in_batches():
    stream = DnsStream(lambda m: AUTHORITY.respond(m, udp=False))
    answers = [stream.receive_data(pipelined_headers())]
    while stream.pending:
        answers.append(stream.receive_data(b""))
    assert len(answers) == -(-4681 // 16)
    assert sum(a.count(b"\x42\x42\x80\x01") for a in answers) == 4681  # FORMERR each
