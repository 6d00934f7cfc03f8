"""Precomputed DNS answers for the common queries (sans-IO fast path).

Theory of operation
-------------------
Almost every query a Cozen responder sees is one of a few hundred: A/AAAA
for a host, PTR for one of its addresses, SOA/NS at an apex, with or without
one EDNS OPT (RFC 6891 §6.1.2), often carrying a COOKIE option (RFC 7873)
that the general path ignores anyway. :func:`build_answer_table` asks the
general :class:`~protocols.dns.authority.Authority` once per (name, type)
and EDNS variant (none, DO=0, DO=1) and keeps the reply's counts and the
bytes after its question. The general path makes every name in that tail
either literal or a pointer into the question (RFC 1035 §4.1.4), whose
layout does not depend on letter case, so one tail serves every 0x20
spelling of the name.

:func:`fast_answer` checks the header (RFC 1035 §4.1.1: QR=0, opcode
QUERY, TC=0, QDCOUNT=1, ANCOUNT=NSCOUNT=0, ARCOUNT 0 or 1), walks the
question name without pointers, checks that the only additional record is a
well-formed version-0 OPT with its options skipped (an NSID option, RFC
5001, sends the query to the general path, which answers it), looks the case-folded
question up and splices: query ID, stored flags plus the query's RD and CD,
stored counts, the query's own question bytes, stored tail. Whatever it does
not recognise returns None and the caller falls back to the general path,
so the two can only differ by the fast path declining.

Cost. The general path runs once per (name, type) without OPT; the two EDNS
variants are that reply plus our OPT record (RFC 6891 §7), the only
additional record the general path ever emits, with ARCOUNT one higher.
They are asked of the general path only when the plain reply was not
stored (truncated at 512 bytes). :func:`iter_answer_entries` yields the
table entry by entry, so a caller can build a large table in slices
between other work.

Repeats. Resolvers repeat the same query bytes (same letter case, same
cookie) with a new ID. :func:`fast_answer` keeps the replies to the last
few thousand UDP queries it answered in the shared repeats table of
:mod:`protocols.repeats`; only queries up to 512 bytes are kept, so it
holds a few MB at most.

Counting. Each stored reply carries its (``fast``, qtype, outcome) key from
:mod:`protocols.dns.outcome`, worked out once at build time, and that key's
cell in the ``counts`` dict the caller passed in (the daemon keeps it across
reloads); every UDP answer :func:`fast_answer` gives adds one to the cell. A
repeat answered here finds the cell in ``table.labels``, kept beside
``repeats`` (which must hold bytes alone: the compiled UDP loop reads it, and
counts the repeats it answers itself as one total). Building adds only
``fast`` keys to ``counts`` (with ``setdefault``), so it may run in a thread
while the caller counts its ``general`` keys.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from protocols.dns.authority import (
    NSID_OPTION,
    OUR_UDP_PAYLOAD,
    Authority,
    AuthoritySettings,
    reverse_name,
)
from protocols.dns.message import (
    HEADER_SIZE,
    MAX_EDNS_OPTIONS,
    MAX_LABEL,
    MAX_NAME_WIRE,
    MIN_RR,
    PLAIN_UDP_LIMIT,
    Edns,
    Header,
    Message,
    Name,
    Question,
    RRClass,
    RRType,
    encode_message,
    name_from_text,
    name_key,
)
from protocols.dns.outcome import CountKey, Counts, classify
from protocols.repeats import ID_SIZE, REPEATS_LIMIT, Repeats

_COUNTS_PLAIN = b"\x00\x01\x00\x00\x00\x00\x00\x00"
_COUNTS_OPT = b"\x00\x01\x00\x00\x00\x00\x00\x01"
_REFUSED_FLAGS = 0xFA00  # QR, OPCODE and TC must all be zero in a query
_COPIED_FLAGS = 0x0110  # RD and CD are echoed
_TC = 0x0200
_EDNS_VARIANTS = (Edns(OUR_UDP_PAYLOAD), Edns(OUR_UDP_PAYLOAD, do=True))
_NSID = NSID_OPTION.to_bytes(2)  # answered by the general path only
REPEATS_MAX_QUERY = 512  # longer queries (padded options) are answered, not remembered as repeats


@dataclass(frozen=True, slots=True)
class Stored:
    """One precomputed reply: flags (RD/CD clear), counts, the post-question tail, its key."""

    flags: int
    counts: bytes
    tail: bytes
    key: CountKey  # what answering with it counts as (see protocols/dns/outcome.py)
    cell: list[int] = field(compare=False)  # counts[key]: add one per answer


Variants = tuple[Stored | None, Stored | None, Stored | None]
"""Replies for: no OPT, OPT with DO=0, OPT with DO=1."""


@dataclass(frozen=True, slots=True)
class AnswerTable:
    """Question key (lower-cased QNAME wire + QTYPE + QCLASS) -> replies.

    ``entries`` is a plain dict for lookup speed; treat it as read-only.
    ``repeats`` keeps UDP replies (:mod:`protocols.repeats`): datagram after
    the ID -> reply after the ID; :func:`fast_answer` alone writes it, and
    ``labels`` beside it (same keys -> the reply's cell in ``counts``). ``counts``:
    UDP answers given per count key, usually a dict the caller keeps.
    """

    entries: dict[bytes, Variants]
    repeats: Repeats = field(default_factory=dict, compare=False)
    counts: Counts = field(default_factory=dict, compare=False)
    labels: dict[bytes, list[int]] = field(default_factory=dict, compare=False)


def _questions(settings: AuthoritySettings) -> list[tuple[Name, int]]:
    apexes = [name_from_text(settings.domain)]
    wanted: list[tuple[Name, int]] = []
    for host in settings.hosts:
        owner = name_from_text(host.fqdn)
        wanted += [(owner, RRType.A), (owner, RRType.AAAA)]
        if host.reverse:
            apexes += [reverse_name(text) for text in (*host.ipv4, *host.ipv6)]
    for apex in dict.fromkeys(apexes):
        wanted += [(apex, RRType.PTR), (apex, RRType.SOA), (apex, RRType.NS)]
    return wanted


def _store(
    authority: Authority, question: Question, edns: Edns | None, counts: Counts
) -> Stored | None:
    additionals = () if edns is None else (edns.to_record(),)
    query = encode_message(Message(Header(0), (question,), (), (), additionals))
    reply = authority.respond(query, udp=True)
    if reply is None:
        return None
    flags = int.from_bytes(reply[2:4])
    question_end = _question_end(query)
    if flags & _TC or reply[HEADER_SIZE:question_end] != query[HEADER_SIZE:question_end]:
        return None
    key: CountKey = ("fast", *classify(reply))
    cell = counts.setdefault(key, [0])
    return Stored(flags & ~_COPIED_FLAGS, reply[4:HEADER_SIZE], reply[question_end:], key, cell)


def _opt_bytes(edns: Edns) -> bytes:
    """Our OPT record as the general path encodes it in an answer."""
    ours = Edns(OUR_UDP_PAYLOAD, do=edns.do)
    return encode_message(Message(Header(0), additionals=(ours.to_record(),)))[HEADER_SIZE:]


def _with_opt(plain: Stored, opt: bytes) -> Stored:
    arcount = int.from_bytes(plain.counts[6:8]) + 1
    counts = plain.counts[:6] + arcount.to_bytes(2)
    return Stored(plain.flags, counts, plain.tail + opt, plain.key, plain.cell)


def _variants(
    authority: Authority, question: Question, opts: tuple[bytes, bytes], counts: Counts
) -> Variants:
    plain = _store(authority, question, None, counts)
    if plain is None:  # truncated at 512: ask the general path for each EDNS size
        s1, s2 = (_store(authority, question, edns, counts) for edns in _EDNS_VARIANTS)
        return None, s1, s2
    return plain, _with_opt(plain, opts[0]), _with_opt(plain, opts[1])


def iter_answer_entries(
    authority: Authority, counts: Counts | None = None
) -> Iterator[tuple[bytes, Variants]]:
    """The table entries for ``authority``'s settings, one (key, variants) at a time.

    ``counts``: where the entries count their answers (give the table the same dict).

    Raises:
        Nothing: ``authority`` was validated when it was compiled.
    """
    opts = (_opt_bytes(_EDNS_VARIANTS[0]), _opt_bytes(_EDNS_VARIANTS[1]))
    counts = {} if counts is None else counts
    for name, qtype in _questions(authority.settings):
        question = Question(name_key(name), qtype, RRClass.IN)
        yield _question_bytes(question), _variants(authority, question, opts, counts)


def build_answer_table(settings: AuthoritySettings, counts: Counts | None = None) -> AnswerTable:
    """Run the general path once per configured (name, type), all at once.

    The daemon builds the same table from :func:`iter_answer_entries` in a
    thread beside its event loop (responder/services/dns.py); this is the one-call form.
    Covers A and AAAA of every host, and PTR, SOA and NS (with its glue) at
    every apex (the forward zone and each reverse name); negative answers are
    stored too.  Class CH questions (server identity) are never in the table.

    Raises:
        ValueError: the settings hold an invalid address or name.
    """
    counts = {} if counts is None else counts
    return AnswerTable(dict(iter_answer_entries(Authority(settings), counts)), counts=counts)


def _question_bytes(question: Question) -> bytes:
    query = encode_message(Message(Header(0), (question,)))
    return query[HEADER_SIZE:]


def _question_end(datagram: bytes) -> int:
    """Offset after QTYPE/QCLASS of an uncompressed first question, or -1.

    Walks at most 255 bytes of name (RFC 1035 §3.1): a longer one is no key.
    """
    offset, size = HEADER_SIZE, min(len(datagram), HEADER_SIZE + MAX_NAME_WIRE)
    while offset < size:
        length = datagram[offset]
        if length == 0:
            end = offset + 5
            return end if end <= len(datagram) else -1
        if length > MAX_LABEL:
            return -1
        offset += length + 1
    return -1


def _opt_limit(datagram: bytes, start: int) -> tuple[int, bool] | None:
    """(UDP limit, DO) for a lone well-formed version-0 OPT filling the rest.

    Declines an OPT of more than MAX_EDNS_OPTIONS options, as the general
    path's budget does.
    """
    if len(datagram) - start < MIN_RR or datagram[start : start + 3] != b"\x00\x00\x29":
        return None
    payload = int.from_bytes(datagram[start + 3 : start + 5])
    ext_rcode, version, eflags = datagram[start + 5], datagram[start + 6], datagram[start + 7]
    rdlength = int.from_bytes(datagram[start + 9 : start + 11])
    offset = start + MIN_RR
    if ext_rcode or version or offset + rdlength != len(datagram):
        return None
    for _ in range(MAX_EDNS_OPTIONS):
        if offset + 4 > len(datagram):
            break
        if datagram[offset : offset + 2] == _NSID:
            return None  # the general path answers NSID with our identity
        offset += 4 + int.from_bytes(datagram[offset + 2 : offset + 4])
    if offset != len(datagram):
        return None
    return max(PLAIN_UDP_LIMIT, payload), bool(eflags & 0x80)


def fast_answer(table: AnswerTable, datagram: bytes, *, udp: bool = True) -> bytes | None:
    """The precomputed reply to ``datagram``, or None to use the general path.

    When it returns bytes they equal what
    :meth:`~protocols.dns.authority.Authority.respond` would return. A UDP
    answer adds one to ``table.counts`` under the stored reply's key.

    Raises:
        Nothing for any input.
    """
    if not udp:
        return _splice(table, datagram, udp=False)
    tail_key = datagram[ID_SIZE:]
    tail = table.repeats.get(tail_key)
    if tail is not None:
        table.labels[tail_key][0] += 1  # stored with it, in _splice
        return datagram[:ID_SIZE] + tail
    return _splice(table, datagram, udp=True, tail_key=tail_key)


def _splice(
    table: AnswerTable, datagram: bytes, *, udp: bool, tail_key: bytes = b""
) -> bytes | None:
    """The table lookup and splice behind :func:`fast_answer`; for UDP, counted and remembered.

    Remembering is :func:`protocols.repeats.remember` written out, with the
    reply's count cell kept in ``table.labels`` beside it.
    """
    if len(datagram) <= HEADER_SIZE:
        return None
    flags = datagram[2] << 8 | datagram[3]
    counts = datagram[4:HEADER_SIZE]
    if flags & _REFUSED_FLAGS or counts not in (_COUNTS_PLAIN, _COUNTS_OPT):
        return None
    end = _question_end(datagram)
    if end < 0:
        return None
    variants = table.entries.get(datagram[HEADER_SIZE : end - 4].lower() + datagram[end - 4 : end])
    if variants is None:
        return None
    if counts == _COUNTS_PLAIN:
        limit, stored = PLAIN_UDP_LIMIT, variants[0] if end == len(datagram) else None
    else:
        opt = _opt_limit(datagram, end)
        if opt is None:
            return None
        limit, stored = opt[0], variants[2 if opt[1] else 1]
    if stored is None:
        return None
    head = (stored.flags | flags & _COPIED_FLAGS).to_bytes(2) + stored.counts
    reply = datagram[:2] + head + datagram[HEADER_SIZE:end] + stored.tail
    if udp:
        if len(reply) > limit:
            return None
        stored.cell[0] += 1
        if len(datagram) <= REPEATS_MAX_QUERY:
            repeats, labels = table.repeats, table.labels
            if len(repeats) >= REPEATS_LIMIT:
                repeats.clear()
                labels.clear()
            repeats[tail_key] = reply[ID_SIZE:]
            labels[tail_key] = stored.cell
    return reply
